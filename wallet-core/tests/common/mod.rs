//! Test support shared by the test binaries of wallet-core and by the fuzz
//! crate (which includes this module by path): a service over the in-memory
//! store with a manual clock and deterministic ids, snapshots of stored
//! state, the invariant checks, and the reference model with its driver.
#![allow(dead_code)]

pub mod model;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use wallet_core::testing::invariants;
use wallet_core::{
    Applied, Command, CurrencyCode, Decimal, IdempotencyKey, InMemoryStore, ManualClock, Policy,
    SequentialIdGenerator, StoredEvent, StoredPointAccount, StoredWallet, Uuid, WalletError,
    WalletService,
};

/// The time every harness starts at.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("a valid start time")
}

/// A currency code of the default table.
pub fn code(text: &str) -> CurrencyCode {
    CurrencyCode::parse(text).expect("a valid currency code")
}

/// A decimal from text, exactly.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).expect("a valid decimal")
}

/// An idempotency key.
pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("a valid idempotency key")
}

/// A service over a fresh in-memory store, on a manual clock, with
/// sequential ids.
pub struct Harness {
    pub service: WalletService<InMemoryStore>,
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<ManualClock>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    pub fn with_policy(policy: Policy) -> Self {
        let store = Arc::new(InMemoryStore::new());
        let clock = Arc::new(ManualClock::new(start_time()));
        let service = WalletService::with_parts(
            Arc::clone(&store),
            policy,
            clock.clone(),
            Arc::new(SequentialIdGenerator::new()),
        );
        Harness {
            service,
            store,
            clock,
        }
    }

    /// Runs a command without a key, on this thread.
    pub fn run(&self, command: Command) -> Result<Applied, WalletError> {
        futures::executor::block_on(self.service.execute(command, None))
    }

    /// Runs a command with an idempotency key, on this thread.
    pub fn run_keyed(&self, command: Command, key_text: &str) -> Result<Applied, WalletError> {
        futures::executor::block_on(self.service.execute(command, Some(key(key_text))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.service.now()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Everything stored for a user, to compare before and after a command.
    pub fn snapshot(&self, user_id: Uuid) -> Snapshot {
        Snapshot {
            wallet: self.store.stored_wallet(user_id),
            points: self.store.stored_point_account(user_id),
            events: self.store.stored_events(),
        }
    }

    /// Every invariant of the domain rules on what is stored for a user.
    pub fn check(&self, user_id: Uuid) -> Result<(), String> {
        self.snapshot(user_id).check()
    }
}

/// The stored state of one user, and the whole outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub wallet: Option<StoredWallet>,
    pub points: Option<StoredPointAccount>,
    pub events: Vec<StoredEvent>,
}

impl Snapshot {
    /// Invariants 1 to 5, the point-account invariants and the outbox order.
    pub fn check(&self) -> Result<(), String> {
        if let Some(stored) = &self.wallet {
            invariants::check_wallet_aggregate(&stored.wallet, &stored.holds, &stored.transactions)
                .map_err(|violation| format!("wallet: {violation}"))?;
        }
        if let Some(stored) = &self.points {
            invariants::check_point_account_aggregate(&stored.account, &stored.transactions)
                .map_err(|violation| format!("points: {violation}"))?;
        }
        invariants::check_events(&self.events).map_err(|violation| format!("outbox: {violation}"))
    }
}
