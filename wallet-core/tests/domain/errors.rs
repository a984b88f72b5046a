//! Every error the core can produce, and the service's bounded retries of
//! store conflicts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use wallet_core::{
    apply_to_point_account, apply_to_wallet, Access, Actor, Aggregate, AggregateStore, Applied,
    Command, Create, Ctx, HoldStatus, IdempotencyStore, InMemoryStore, LedgerReader, ManualClock,
    Page, PageRequest, PointAccount, PointAccountView, PointTransaction, Policy,
    SequentialIdGenerator, SetUpdate, Statistics, StoredEvent, TransactionFilter, Update, Uuid,
    Wallet, WalletError, WalletService, WalletStatus, WalletStore, WalletTransaction, WalletView,
};

use crate::common::{code, start_time, Harness};
use crate::support::*;

#[test]
fn every_error_code_is_stable_and_distinct() {
    let all = [
        WalletError::Validation(String::new()),
        WalletError::InvalidAmount(String::new()),
        WalletError::UnsupportedCurrency(String::new()),
        WalletError::SameCurrency,
        WalletError::SameWallet,
        WalletError::Forbidden,
        WalletError::WalletNotFound,
        WalletError::HoldNotFound,
        WalletError::PointAccountNotFound,
        WalletError::LotNotFound,
        WalletError::WalletExists,
        WalletError::PointAccountExists,
        WalletError::ConcurrencyConflict,
        WalletError::IdempotencyKeyInFlight,
        WalletError::InsufficientFunds,
        WalletError::InsufficientPoints,
        WalletError::WalletFrozen,
        WalletError::WalletClosed,
        WalletError::WalletNotFrozen,
        WalletError::WalletNotEmpty,
        WalletError::HoldNotActive,
        WalletError::AmountExceedsHold,
        WalletError::AmountTooSmall,
        WalletError::BalanceLimitExceeded,
        WalletError::LotNotPending,
        WalletError::IdempotencyKeyReused,
        WalletError::CounterpartyNotFound,
        WalletError::CounterpartyClosed,
        WalletError::Unavailable(String::new()),
        WalletError::Internal(String::new()),
    ];
    let codes: Vec<&str> = all.iter().map(WalletError::code).collect();
    let mut distinct = codes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), codes.len());
    assert!(codes
        .iter()
        .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    assert_eq!(
        all.iter().filter(|e| e.is_retryable_conflict()).count(),
        1,
        "only concurrency_conflict is retried"
    );
}

#[test]
fn commands_on_missing_aggregates() {
    let harness = Harness::new();
    assert_eq!(code_of(&harness, deposit("1", "USD")), "wallet_not_found");
    assert_eq!(code_of(&harness, cancel(Uuid::nil())), "wallet_not_found");
    assert_eq!(code_of(&harness, spend(1)), "point_account_not_found");
    assert_eq!(
        code_of(&harness, confirm(Uuid::nil())),
        "point_account_not_found"
    );
    let error = futures::executor::block_on(harness.service.wallet(USER)).expect_err("no wallet");
    assert_eq!(error, WalletError::WalletNotFound);
    let error = futures::executor::block_on(harness.service.hold(USER, Uuid::nil()))
        .expect_err("no wallet");
    assert_eq!(error, WalletError::WalletNotFound);
    ok(&harness, create_wallet());
    let error =
        futures::executor::block_on(harness.service.hold(USER, Uuid::nil())).expect_err("no hold");
    assert_eq!(error, WalletError::HoldNotFound);
}

#[test]
fn a_wallet_with_an_unsupported_default_currency_is_refused() {
    let harness = Harness::new();
    let command = Command::CreateWallet {
        user_id: USER,
        default_currency: Some(code("EUR")),
    };
    assert_eq!(code_of(&harness, command), "unsupported_currency");
    let command = Command::CreateWallet {
        user_id: USER,
        default_currency: Some(code("usd")),
    };
    ok(&harness, command);
    assert_eq!(wallet(&harness).default_currency, code("USD"));
    assert_eq!(wallet(&harness).status, WalletStatus::Active);
    assert!(wallet(&harness).balances.is_empty());
}

#[test]
fn the_permission_table_refuses_with_forbidden() {
    let owner = Actor {
        user_id: USER,
        roles: Vec::new(),
    };
    assert_eq!(
        owner.authorize(Access::Deposit, Some(USER)),
        Err(WalletError::Forbidden)
    );
    assert_eq!(owner.authorize(Access::Spend, Some(USER)), Ok(()));
    assert_eq!(
        owner.authorize(Access::Read, Some(Uuid::from_u128(2))),
        Err(WalletError::Forbidden)
    );
    assert_eq!(wallet_core::access_of(&close()), Access::Admin);
}

#[test]
fn a_command_for_the_other_aggregate_is_an_internal_error() {
    let policy = Policy::default();
    let ids = SequentialIdGenerator::new();
    let ctx = Ctx {
        now: start_time(),
        ids: &ids,
        policy: &policy,
        idempotency_key: None,
    };
    let mut wallet = Wallet::open(USER, code("VND"), &ctx).expect("open");
    let error = apply_to_wallet(&mut wallet, &spend(1), &ctx).expect_err("not a wallet command");
    assert_eq!(error.code(), "internal_error");
    let mut account = PointAccount::open(USER, &ctx);
    let error =
        apply_to_point_account(&mut account, &deposit("1", "USD"), &ctx).expect_err("not points");
    assert_eq!(error.code(), "internal_error");
}

/// The in-memory store, with conflicts or outages injected into updates.
#[derive(Default)]
struct FlakyStore {
    inner: InMemoryStore,
    conflicts: AtomicU32,
    outages: AtomicU32,
    attempts: AtomicU32,
}

impl FlakyStore {
    fn fault(&self) -> Option<WalletError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let take = |counter: &AtomicU32| {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if take(&self.outages) {
            return Some(WalletError::Unavailable("injected".into()));
        }
        take(&self.conflicts).then_some(WalletError::ConcurrencyConflict)
    }
}

impl<A: Aggregate> AggregateStore<A> for FlakyStore
where
    InMemoryStore: AggregateStore<A>,
{
    async fn create(&self, unit: Create<A>) -> Result<Applied, WalletError> {
        self.inner.create(unit).await
    }

    async fn update(&self, unit: Update<A>) -> Result<Applied, WalletError> {
        match self.fault() {
            Some(error) => Err(error),
            None => self.inner.update(unit).await,
        }
    }

    async fn users_with_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, WalletError> {
        AggregateStore::<A>::users_with_overdue(&self.inner, now, limit).await
    }
}

impl WalletStore for FlakyStore {
    async fn update_wallets(&self, unit: SetUpdate) -> Result<Applied, WalletError> {
        match self.fault() {
            Some(error) => Err(error),
            None => self.inner.update_wallets(unit).await,
        }
    }

    async fn transaction_legs(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Vec<WalletTransaction>, WalletError> {
        self.inner.transaction_legs(user_id, transaction_id).await
    }
}

impl IdempotencyStore for FlakyStore {
    async fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, WalletError> {
        self.inner.purge_idempotency_records(older_than).await
    }
}

impl LedgerReader for FlakyStore {
    async fn wallet(&self, user_id: Uuid) -> Result<Option<WalletView>, WalletError> {
        self.inner.wallet(user_id).await
    }

    async fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<WalletTransaction>, WalletError> {
        self.inner.transactions(user_id, filter, page).await
    }

    async fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Option<WalletTransaction>, WalletError> {
        self.inner.transaction(user_id, transaction_id).await
    }

    async fn balances_at(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<wallet_core::WalletItem>, WalletError> {
        self.inner.balances_at(user_id, at).await
    }

    async fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> Result<Page<wallet_core::Hold>, WalletError> {
        self.inner.holds(user_id, status, page).await
    }

    async fn hold(
        &self,
        user_id: Uuid,
        hold_id: Uuid,
    ) -> Result<Option<wallet_core::Hold>, WalletError> {
        self.inner.hold(user_id, hold_id).await
    }

    async fn point_account(&self, user_id: Uuid) -> Result<Option<PointAccountView>, WalletError> {
        self.inner.point_account(user_id).await
    }

    async fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<PointTransaction>, WalletError> {
        self.inner.point_transactions(user_id, page).await
    }

    async fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> Result<Page<WalletView>, WalletError> {
        self.inner.wallets(status, page).await
    }

    async fn statistics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Statistics, WalletError> {
        self.inner.statistics(from, to).await
    }

    async fn events(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, WalletError> {
        self.inner.events(after, limit).await
    }

    async fn ping(&self) -> Result<(), WalletError> {
        self.inner.ping().await
    }
}

fn flaky() -> (WalletService<FlakyStore>, Arc<FlakyStore>) {
    let store = Arc::new(FlakyStore::default());
    let service = WalletService::with_parts(
        Arc::clone(&store),
        Policy::default(),
        Arc::new(ManualClock::new(start_time())),
        Arc::new(SequentialIdGenerator::new()),
    );
    futures::executor::block_on(service.execute(create_wallet(), None)).expect("wallet");
    futures::executor::block_on(service.execute(create_points(), None)).expect("account");
    (service, store)
}

#[test]
fn conflicts_are_retried_and_surface_only_when_retries_run_out() {
    use wallet_core::service::CONFLICT_ATTEMPTS_MAX;
    let (service, store) = flaky();
    store
        .conflicts
        .store(CONFLICT_ATTEMPTS_MAX - 1, Ordering::SeqCst);
    futures::executor::block_on(service.execute(deposit("5", "USD"), None)).expect("retried");
    assert_eq!(store.attempts.load(Ordering::SeqCst), CONFLICT_ATTEMPTS_MAX);

    store.attempts.store(0, Ordering::SeqCst);
    store
        .conflicts
        .store(CONFLICT_ATTEMPTS_MAX, Ordering::SeqCst);
    let error = futures::executor::block_on(service.execute(deposit("5", "USD"), None))
        .expect_err("retries exhausted");
    assert_eq!(error, WalletError::ConcurrencyConflict);
    assert_eq!(store.attempts.load(Ordering::SeqCst), CONFLICT_ATTEMPTS_MAX);
    let view = futures::executor::block_on(service.wallet(USER)).expect("wallet");
    assert_eq!(text(view.balances[0].balance), "5.00");

    store.conflicts.store(2, Ordering::SeqCst);
    futures::executor::block_on(service.execute(earn(3, None, false), None)).expect("retried");
}

#[test]
fn an_unavailable_store_is_not_retried_and_stops_the_sweep() {
    let (service, store) = flaky();
    store.attempts.store(0, Ordering::SeqCst);
    store.outages.store(1, Ordering::SeqCst);
    let error =
        futures::executor::block_on(service.execute(deposit("5", "USD"), None)).expect_err("down");
    assert_eq!(error.code(), "unavailable");
    assert_eq!(store.attempts.load(Ordering::SeqCst), 1);

    futures::executor::block_on(service.execute(deposit("5", "USD"), None)).expect("back");
    let soon = service.now() + chrono::Duration::hours(1);
    futures::executor::block_on(service.execute(hold("1", "USD", Some(soon)), None)).expect("hold");
    let clockless = WalletService::with_parts(
        Arc::clone(&store),
        Policy::default(),
        Arc::new(ManualClock::new(start_time() + chrono::Duration::hours(2))),
        Arc::new(SequentialIdGenerator::new()),
    );
    store.outages.store(1, Ordering::SeqCst);
    let error = futures::executor::block_on(clockless.sweep_expired(10)).expect_err("down");
    assert_eq!(error.code(), "unavailable");
    store.conflicts.store(1, Ordering::SeqCst);
    let report = futures::executor::block_on(clockless.sweep_expired(10)).expect("sweep");
    assert_eq!((report.wallets, report.failures), (0, 1));
    let report = futures::executor::block_on(clockless.sweep_expired(10)).expect("sweep");
    assert_eq!((report.wallets, report.failures), (1, 0));
}
