//! The store contract, written once and run against every store.
//!
//! Each scenario is an `async fn` taking a fresh, empty store and asserting
//! the contract of [`crate::store`] and the domain rules through a
//! [`WalletService`] on a [`ManualClock`] and a [`SequentialIdGenerator`],
//! so that every store sees the same times and ids. A scenario panics with
//! a message on the first broken promise.
//!
//! Run them all with [`run_all`] (one test), or one test per scenario with
//! [`store_contract_tests!`](crate::store_contract_tests):
//!
//! ```text
//! // tests/contract_memory.rs
//! wallet_core::store_contract_tests!(async { wallet_core::InMemoryStore::new() });
//! ```
//!
//! The module is pure: no runtime, no I/O; the caller's test runtime drives
//! the futures.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::command::{Command, CommandOutput, IdempotencyKey};
use crate::context::{ManualClock, Policy, SequentialIdGenerator};
use crate::error::WalletError;
use crate::events::{EventData, StoredEvent};
use crate::money::CurrencyCode;
use crate::points::{PointAccount, PointAccountView, PointTransaction, PointTransactionType};
use crate::query::{
    CurrencyStatistics, Cursor, PageRequest, PointStatistics, TransactionFilter,
    TransactionStatistics,
};
use crate::relay::{LeaseOutcome, PositionUpdate, RelayLease, RelayName, RelayState};
use crate::service::WalletService;
use crate::store::{AggregateStore, Applied, RelayStore, Store};
use crate::testing::invariants;
use crate::wallet::{
    Hold, HoldStatus, ReleaseCause, TransactionType, Wallet, WalletStatus, WalletTransaction,
    WalletView,
};

pub use super::reversal_contract::{
    balances_at_a_time, reversal_idempotency, reversal_rules, reversals_between_wallets,
    reversals_on_one_wallet, single_transaction_reads,
};
pub use super::transfer_contract::{
    hold_payouts, payout, payout_rules, payout_to_sixteen_payees, transfer, transfer_idempotency,
    transfer_of, transfer_rules, transfers, transfers_expire_overdue_holds_first,
    wallets_unit_of_work,
};

/// Where every scenario's clock starts: 2030-01-01T00:00:00Z.
pub const CONTRACT_EPOCH_SECONDS: i64 = 1_893_456_000;

/// The names of all scenarios, in the order [`run_all`] runs them.
pub const SCENARIOS: &[&str] = &[
    "create_and_exists",
    "not_found",
    "deposit_withdraw_exchange",
    "hold_execute_release_cancel",
    "status_table",
    "failed_commands_persist_nothing",
    "idempotent_replay_and_key_reuse",
    "hold_expiry",
    "points_lifecycle",
    "lot_expiry",
    "transaction_paging",
    "hold_paging",
    "wallet_paging",
    "filters",
    "statistics",
    "events_in_order",
    "sweep_with_nothing_due_writes_nothing",
    "idempotency_retention",
    "relay_lease_taken_renewed_and_lost",
    "relay_position_moves_forward_by_its_holder",
    "transfers",
    "transfer_rules",
    "hold_payouts",
    "payout_to_sixteen_payees",
    "payout_rules",
    "transfers_expire_overdue_holds_first",
    "transfer_idempotency",
    "wallets_unit_of_work",
    "reversals_on_one_wallet",
    "reversals_between_wallets",
    "reversal_rules",
    "reversal_idempotency",
    "single_transaction_reads",
    "balances_at_a_time",
];

/// Runs every scenario, each on a fresh store from `make_store`.
pub async fn run_all<S, F, Fut>(make_store: F)
where
    S: Store + RelayStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    create_and_exists(make_store().await).await;
    not_found(make_store().await).await;
    deposit_withdraw_exchange(make_store().await).await;
    hold_execute_release_cancel(make_store().await).await;
    status_table(make_store().await).await;
    failed_commands_persist_nothing(make_store().await).await;
    idempotent_replay_and_key_reuse(make_store().await).await;
    hold_expiry(make_store().await).await;
    points_lifecycle(make_store().await).await;
    lot_expiry(make_store().await).await;
    transaction_paging(make_store().await).await;
    hold_paging(make_store().await).await;
    wallet_paging(make_store().await).await;
    filters(make_store().await).await;
    statistics(make_store().await).await;
    events_in_order(make_store().await).await;
    sweep_with_nothing_due_writes_nothing(make_store().await).await;
    idempotency_retention(make_store().await).await;
    relay_lease_taken_renewed_and_lost(make_store().await).await;
    relay_position_moves_forward_by_its_holder(make_store().await).await;
    transfers(make_store().await).await;
    transfer_rules(make_store().await).await;
    hold_payouts(make_store().await).await;
    payout_to_sixteen_payees(make_store().await).await;
    payout_rules(make_store().await).await;
    transfers_expire_overdue_holds_first(make_store().await).await;
    transfer_idempotency(make_store().await).await;
    wallets_unit_of_work(make_store().await).await;
    reversals_on_one_wallet(make_store().await).await;
    reversals_between_wallets(make_store().await).await;
    reversal_rules(make_store().await).await;
    reversal_idempotency(make_store().await).await;
    single_transaction_reads(make_store().await).await;
    balances_at_a_time(make_store().await).await;
}

/// One `#[tokio::test]` per scenario, each on a fresh store made by the
/// expression given (a future, evaluated anew for each test). The calling
/// crate needs `tokio` with the `macros` and `rt` features.
#[macro_export]
macro_rules! store_contract_tests {
    ($make_store:expr) => {
        $crate::store_contract_tests!(@each $make_store;
            create_and_exists,
            not_found,
            deposit_withdraw_exchange,
            hold_execute_release_cancel,
            status_table,
            failed_commands_persist_nothing,
            idempotent_replay_and_key_reuse,
            hold_expiry,
            points_lifecycle,
            lot_expiry,
            transaction_paging,
            hold_paging,
            wallet_paging,
            filters,
            statistics,
            events_in_order,
            sweep_with_nothing_due_writes_nothing,
            idempotency_retention,
            relay_lease_taken_renewed_and_lost,
            relay_position_moves_forward_by_its_holder,
            transfers,
            transfer_rules,
            hold_payouts,
            payout_to_sixteen_payees,
            payout_rules,
            transfers_expire_overdue_holds_first,
            transfer_idempotency,
            wallets_unit_of_work,
            reversals_on_one_wallet,
            reversals_between_wallets,
            reversal_rules,
            reversal_idempotency,
            single_transaction_reads,
            balances_at_a_time
        );
    };
    (@each $make_store:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $scenario() {
                $crate::testing::contract::$scenario(($make_store).await).await;
            }
        )*
    };
}

// ---- the harness ----------------------------------------------------------

/// A service over the store under test, on a manual clock and sequential ids.
pub struct Harness<S: Store> {
    pub service: WalletService<S>,
    pub clock: Arc<ManualClock>,
}

impl<S: Store> Harness<S> {
    /// A harness on the default policy, the clock at [`CONTRACT_EPOCH_SECONDS`].
    pub fn new(store: S) -> Self {
        let start = DateTime::from_timestamp(CONTRACT_EPOCH_SECONDS, 0).unwrap_or_default();
        let clock = Arc::new(ManualClock::new(start));
        let service = WalletService::with_parts(
            Arc::new(store),
            Policy::default(),
            clock.clone(),
            Arc::new(SequentialIdGenerator::new()),
        );
        Harness { service, clock }
    }

    /// The clock's time.
    pub fn now(&self) -> DateTime<Utc> {
        self.service.now()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Runs a command without a key.
    pub async fn run(&self, command: Command) -> Result<CommandOutput, WalletError> {
        self.service
            .execute(command, None)
            .await
            .map(|applied| applied.output)
    }

    /// Runs a command that must succeed.
    pub async fn ok(&self, command: Command) -> CommandOutput {
        let name = command.name();
        self.run(command)
            .await
            .unwrap_or_else(|error| panic!("{name} failed: {error:?}"))
    }

    /// Runs a command with an idempotency key.
    pub async fn run_keyed(&self, command: Command, key: &str) -> Result<Applied, WalletError> {
        let key = IdempotencyKey::parse(key).unwrap_or_else(|_| panic!("bad test key {key}"));
        self.service.execute(command, Some(key)).await
    }

    /// Creates a wallet for a new user and returns the user.
    pub async fn new_wallet(&self, seed: u128) -> Uuid {
        let user_id = Uuid::from_u128(seed);
        self.ok(create_wallet(user_id)).await;
        user_id
    }

    /// The wallet's whole history, walked page by page.
    pub async fn all_transactions(&self, user_id: Uuid) -> Vec<WalletTransaction> {
        walk_transactions(self, user_id, TransactionFilter::default(), 50, |_| async {
        })
        .await
    }

    /// Every hold of the wallet, walked page by page.
    pub async fn all_holds(&self, user_id: Uuid) -> Vec<Hold> {
        walk_holds(self, user_id, None, 50, |_| async {}).await
    }

    /// Every event of the outbox.
    pub async fn all_events(&self) -> Vec<StoredEvent> {
        let mut events = Vec::new();
        let mut after = None;
        loop {
            let (batch, next) = self
                .service
                .events(after, Some(1000))
                .await
                .unwrap_or_else(|error| panic!("events: {error:?}"));
            if batch.is_empty() {
                return events;
            }
            events.extend(batch);
            after = Some(next);
        }
    }

    /// Checks the wallet invariants of the domain rules on stored state.
    pub async fn check_wallet(&self, user_id: Uuid) {
        let view = self.wallet(user_id).await;
        let holds = self.all_holds(user_id).await;
        let log = self.all_transactions(user_id).await;
        invariants::check_wallet(&view, &holds, &log)
            .unwrap_or_else(|violation| panic!("wallet invariant broken: {violation}"));
    }

    /// Checks the point account invariants on stored state.
    pub async fn check_points(&self, user_id: Uuid) {
        let view = self.points(user_id).await;
        let log = self.all_point_transactions(user_id).await;
        invariants::check_point_log(&view, &log)
            .unwrap_or_else(|violation| panic!("point invariant broken: {violation}"));
        invariants::check_points_conserved(&view, &log)
            .unwrap_or_else(|violation| panic!("point invariant broken: {violation}"));
    }

    /// The wallet, which must exist.
    pub async fn wallet(&self, user_id: Uuid) -> WalletView {
        self.service
            .wallet(user_id)
            .await
            .unwrap_or_else(|error| panic!("wallet {user_id}: {error:?}"))
    }

    /// The point account, which must exist.
    pub async fn points(&self, user_id: Uuid) -> PointAccountView {
        self.service
            .point_account(user_id)
            .await
            .unwrap_or_else(|error| panic!("point account {user_id}: {error:?}"))
    }

    /// The point account's whole history.
    pub async fn all_point_transactions(&self, user_id: Uuid) -> Vec<PointTransaction> {
        let mut items = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .service
                .point_transactions(user_id, PageRequest { limit: 50, cursor })
                .await
                .unwrap_or_else(|error| panic!("point transactions: {error:?}"));
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(decode(&next)),
                None => return items,
            }
        }
    }

    /// Everything the store shows about a user, and the outbox: two equal
    /// snapshots mean nothing observable changed.
    pub async fn snapshot(&self, user_id: Uuid) -> Snapshot {
        let wallet = self.service.wallet(user_id).await.ok();
        let (transactions, holds) = if wallet.is_some() {
            (
                self.all_transactions(user_id).await,
                self.all_holds(user_id).await,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let points = self.service.point_account(user_id).await.ok();
        let point_transactions = if points.is_some() {
            self.all_point_transactions(user_id).await
        } else {
            Vec::new()
        };
        Snapshot {
            wallet,
            transactions,
            holds,
            points,
            point_transactions,
            events: self.all_events().await,
        }
    }
}

/// What [`Harness::snapshot`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub wallet: Option<WalletView>,
    pub transactions: Vec<WalletTransaction>,
    pub holds: Vec<Hold>,
    pub points: Option<PointAccountView>,
    pub point_transactions: Vec<PointTransaction>,
    pub events: Vec<StoredEvent>,
}

fn decode(cursor: &str) -> Cursor {
    Cursor::decode(cursor).unwrap_or_else(|_| panic!("the store made a bad cursor {cursor}"))
}

/// Walks a wallet's history page by page, calling `between` after each
/// page (to write while walking).
pub async fn walk_transactions<S, F, Fut>(
    harness: &Harness<S>,
    user_id: Uuid,
    filter: TransactionFilter,
    limit: u32,
    between: F,
) -> Vec<WalletTransaction>
where
    S: Store,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let page = harness
            .service
            .transactions(user_id, filter, PageRequest { limit, cursor })
            .await
            .unwrap_or_else(|error| panic!("transactions: {error:?}"));
        assert!(page.items.len() <= limit as usize, "a page over its limit");
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(decode(&next)),
            None => break,
        }
        between(page_number).await;
    }
    items
}

/// Walks a wallet's holds page by page.
pub async fn walk_holds<S, F, Fut>(
    harness: &Harness<S>,
    user_id: Uuid,
    status: Option<HoldStatus>,
    limit: u32,
    between: F,
) -> Vec<Hold>
where
    S: Store,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let page = harness
            .service
            .holds(user_id, status, PageRequest { limit, cursor })
            .await
            .unwrap_or_else(|error| panic!("holds: {error:?}"));
        assert!(page.items.len() <= limit as usize, "a page over its limit");
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(decode(&next)),
            None => break,
        }
        between(page_number).await;
    }
    items
}

/// Walks the admin listing page by page.
pub async fn walk_wallets<S, F, Fut>(
    harness: &Harness<S>,
    status: Option<WalletStatus>,
    limit: u32,
    between: F,
) -> Vec<WalletView>
where
    S: Store,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    for page_number in 0.. {
        let page = harness
            .service
            .wallets(status, PageRequest { limit, cursor })
            .await
            .unwrap_or_else(|error| panic!("wallets: {error:?}"));
        assert!(page.items.len() <= limit as usize, "a page over its limit");
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(decode(&next)),
            None => break,
        }
        between(page_number).await;
    }
    items
}

// ---- command builders -------------------------------------------------------

/// An exact decimal from text.
pub fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap_or_else(|_| panic!("bad test decimal {text}"))
}

/// A currency code from text.
pub fn code(text: &str) -> CurrencyCode {
    CurrencyCode::from_str(text).unwrap_or_else(|_| panic!("bad test currency {text}"))
}

pub fn create_wallet(user_id: Uuid) -> Command {
    Command::CreateWallet {
        user_id,
        default_currency: None,
    }
}

pub fn deposit(user_id: Uuid, amount: &str, currency: &str) -> Command {
    Command::Deposit {
        user_id,
        amount: dec(amount),
        currency: code(currency),
        description: None,
        reference: None,
    }
}

pub fn withdraw(user_id: Uuid, amount: &str, currency: &str) -> Command {
    Command::Withdraw {
        user_id,
        amount: dec(amount),
        currency: code(currency),
        description: None,
        reference: None,
    }
}

pub fn exchange(user_id: Uuid, amount: &str, from: &str, to: &str) -> Command {
    Command::Exchange {
        user_id,
        amount: dec(amount),
        from_currency: code(from),
        to_currency: code(to),
    }
}

pub fn hold(
    user_id: Uuid,
    amount: &str,
    currency: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Command {
    Command::CreateHold {
        user_id,
        amount: dec(amount),
        currency: code(currency),
        reference_type: "order".into(),
        reference_id: Uuid::from_u128(0xabc),
        description: Some("held for an order".into()),
        expires_at,
    }
}

pub fn execute(user_id: Uuid, hold_id: Uuid, amount: Option<&str>) -> Command {
    Command::ExecuteHold {
        user_id,
        hold_id,
        amount: amount.map(dec),
        reference: Some("payment".into()),
        payees: None,
    }
}

pub fn release(user_id: Uuid, hold_id: Uuid, amount: Option<&str>) -> Command {
    Command::ReleaseHold {
        user_id,
        hold_id,
        amount: amount.map(dec),
    }
}

pub fn earn(
    user_id: Uuid,
    points: i64,
    expires_at: Option<DateTime<Utc>>,
    pending: bool,
) -> Command {
    Command::EarnPoints {
        user_id,
        points,
        source: "purchase".into(),
        description: None,
        expires_at,
        pending,
    }
}

pub fn spend(user_id: Uuid, points: i64) -> Command {
    Command::SpendPoints {
        user_id,
        points,
        source: "checkout".into(),
        description: None,
    }
}

pub fn adjust(user_id: Uuid, delta: i64) -> Command {
    Command::AdjustPoints {
        user_id,
        delta,
        source: "support".into(),
        description: Some("goodwill".into()),
    }
}

/// The hold of a hold command's result.
pub fn hold_of(output: CommandOutput) -> Hold {
    match output {
        CommandOutput::Hold { hold } => hold,
        other => panic!("expected a hold, got {other:?}"),
    }
}

/// The wallet of a command's result.
pub fn wallet_of(output: &CommandOutput) -> &WalletView {
    match output {
        CommandOutput::Wallet { wallet }
        | CommandOutput::Transaction { wallet, .. }
        | CommandOutput::Exchange { wallet, .. } => wallet,
        other => panic!("expected a wallet, got {other:?}"),
    }
}

/// The lot id of a points result.
pub fn lot_of(output: &CommandOutput) -> Uuid {
    match output {
        CommandOutput::Points {
            lot_id: Some(lot_id),
            ..
        } => *lot_id,
        other => panic!("expected a points result with a lot, got {other:?}"),
    }
}

pub(crate) fn balance(view: &WalletView, currency: &str) -> (Decimal, Decimal) {
    view.balances
        .iter()
        .find(|item| item.currency == code(currency))
        .map(|item| (item.balance, item.held))
        .unwrap_or((Decimal::ZERO, Decimal::ZERO))
}

pub(crate) fn assert_error<T: std::fmt::Debug>(
    result: Result<T, WalletError>,
    expected: WalletError,
) {
    match result {
        Err(error) => assert_eq!(error, expected),
        Ok(value) => panic!("expected {expected:?}, got {value:?}"),
    }
}

pub(crate) fn assert_code<T: std::fmt::Debug>(result: Result<T, WalletError>, expected_code: &str) {
    match result {
        Err(error) => assert_eq!(error.code(), expected_code, "{error:?}"),
        Ok(value) => panic!("expected {expected_code}, got {value:?}"),
    }
}

// ---- the scenarios ---------------------------------------------------------

/// A wallet is created once per user, in any status; a point account too,
/// and independently of the wallet.
pub async fn create_and_exists<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = Uuid::from_u128(1);
    let created = h.ok(create_wallet(user)).await;
    let view = wallet_of(&created).clone();
    assert_eq!(view.user_id, user);
    assert_eq!(view.status, WalletStatus::Active);
    assert_eq!(view.default_currency, code("VND"));
    assert_eq!(view.version, 1);
    assert!(view.balances.is_empty());
    assert_eq!(
        h.wallet(user).await,
        view,
        "the stored wallet is the result"
    );
    assert_error(h.run(create_wallet(user)).await, WalletError::WalletExists);

    let other = Uuid::from_u128(2);
    let usd = Command::CreateWallet {
        user_id: other,
        default_currency: Some(code("usd")),
    };
    assert_eq!(wallet_of(&h.ok(usd).await).default_currency, code("USD"));
    h.ok(Command::CloseWallet { user_id: other }).await;
    assert_error(h.run(create_wallet(other)).await, WalletError::WalletExists);
    assert_eq!(h.wallet(other).await.status, WalletStatus::Closed);

    // A point account without a wallet, once.
    let points_only = Uuid::from_u128(3);
    let account = match h
        .ok(Command::CreatePointAccount {
            user_id: points_only,
        })
        .await
    {
        CommandOutput::PointAccount { account } => account,
        other => panic!("expected an account, got {other:?}"),
    };
    assert_eq!(account.total_points, 0);
    assert_eq!(account.version, 1);
    assert_eq!(h.points(points_only).await, account);
    assert_error(
        h.run(Command::CreatePointAccount {
            user_id: points_only,
        })
        .await,
        WalletError::PointAccountExists,
    );
    assert_error(
        h.service.wallet(points_only).await,
        WalletError::WalletNotFound,
    );
}

/// Missing wallets, accounts, holds and lots are told apart.
pub async fn not_found<S: Store>(store: S) {
    let h = Harness::new(store);
    let nobody = Uuid::from_u128(9);
    assert_error(h.service.wallet(nobody).await, WalletError::WalletNotFound);
    assert_eq!(h.service.store().wallet(nobody).await, Ok(None));
    assert_error(
        h.run(deposit(nobody, "1", "VND")).await,
        WalletError::WalletNotFound,
    );
    assert_error(
        h.run(execute(nobody, Uuid::from_u128(5), None)).await,
        WalletError::WalletNotFound,
    );
    assert_error(
        h.service
            .transactions(nobody, TransactionFilter::default(), PageRequest::default())
            .await,
        WalletError::WalletNotFound,
    );
    assert_error(
        h.service.holds(nobody, None, PageRequest::default()).await,
        WalletError::WalletNotFound,
    );
    assert_error(
        h.service.hold(nobody, Uuid::from_u128(5)).await,
        WalletError::WalletNotFound,
    );
    assert_error(
        h.run(spend(nobody, 1)).await,
        WalletError::PointAccountNotFound,
    );
    assert_error(
        h.service
            .point_transactions(nobody, PageRequest::default())
            .await,
        WalletError::PointAccountNotFound,
    );
    assert_eq!(h.service.store().point_account(nobody).await, Ok(None));

    // A hold of another wallet is not found, whatever its id.
    let owner = h.new_wallet(10).await;
    let stranger = h.new_wallet(11).await;
    h.ok(deposit(owner, "100", "VND")).await;
    let held = hold_of(h.ok(hold(owner, "10", "VND", None)).await);
    assert_error(
        h.service.hold(stranger, held.id).await,
        WalletError::HoldNotFound,
    );
    assert_eq!(h.service.store().hold(stranger, held.id).await, Ok(None));
    assert_error(
        h.run(execute(stranger, held.id, None)).await,
        WalletError::HoldNotFound,
    );
    assert_error(
        h.run(release(owner, Uuid::from_u128(77), None)).await,
        WalletError::HoldNotFound,
    );
    assert_eq!(h.service.hold(owner, held.id).await, Ok(held));

    // A lot of another account is not found.
    for user in [owner, stranger] {
        h.ok(Command::CreatePointAccount { user_id: user }).await;
    }
    let lot = lot_of(&h.ok(earn(owner, 5, None, true)).await);
    assert_error(
        h.run(Command::ConfirmPendingPoints {
            user_id: stranger,
            lot_id: lot,
        })
        .await,
        WalletError::LotNotFound,
    );
    assert_error(
        h.run(Command::CancelPendingPoints {
            user_id: owner,
            lot_id: Uuid::from_u128(78),
        })
        .await,
        WalletError::LotNotFound,
    );
    h.check_wallet(owner).await;
}

/// Deposit, withdraw and exchange: balances in each currency's scale, the
/// audit trail and the results.
pub async fn deposit_withdraw_exchange<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let deposited = h.ok(deposit(user, "10.5", "usd")).await;
    let CommandOutput::Transaction {
        wallet,
        transaction,
    } = deposited
    else {
        panic!("a deposit returns a transaction");
    };
    assert_eq!(wallet.balances.len(), 1);
    assert_eq!(wallet.balances[0].balance.to_string(), "10.50");
    assert_eq!(wallet.version, 2);
    assert_eq!(transaction.sequence, 1);
    assert_eq!(transaction.transaction_type, TransactionType::Deposit);
    assert_eq!(transaction.amount.to_string(), "10.50");
    assert_eq!(transaction.balance_after.to_string(), "10.50");
    let stored = h.wallet(user).await;
    assert_eq!(stored, wallet);
    assert_eq!(stored.balances[0].balance.to_string(), "10.50");
    assert_eq!(stored.balances[0].held.to_string(), "0.00");

    let withdrawn = h.ok(withdraw(user, "0.5", "USD")).await;
    assert_eq!(balance(wallet_of(&withdrawn), "USD").0, dec("10.00"));
    assert_error(
        h.run(withdraw(user, "10.01", "USD")).await,
        WalletError::InsufficientFunds,
    );

    // USD -> VND at 25000; VND -> USD rounds down.
    let exchanged = h.ok(exchange(user, "2", "USD", "VND")).await;
    let CommandOutput::Exchange {
        wallet,
        exchange: result,
    } = exchanged
    else {
        panic!("an exchange returns an exchange");
    };
    assert_eq!(result.to_amount, dec("50000"));
    assert_eq!(result.rate, dec("25000"));
    assert_eq!(
        result.transactions[0].transaction_type,
        TransactionType::ExchangeOut
    );
    assert_eq!(
        result.transactions[1].transaction_type,
        TransactionType::ExchangeIn
    );
    assert_eq!(balance(&wallet, "USD").0, dec("8.00"));
    assert_eq!(balance(&wallet, "VND").0, dec("50000"));
    let back = h.ok(exchange(user, "10001", "VND", "USD")).await;
    let CommandOutput::Exchange {
        exchange: result, ..
    } = back
    else {
        panic!("an exchange returns an exchange");
    };
    assert_eq!(result.to_amount.to_string(), "0.40");
    assert_error(
        h.run(exchange(user, "249", "VND", "USD")).await,
        WalletError::AmountTooSmall,
    );
    let stored = h.wallet(user).await;
    assert_eq!(balance(&stored, "USD").0.to_string(), "8.40");
    assert_eq!(balance(&stored, "VND").0, dec("39999"));
    let codes: Vec<&str> = stored
        .balances
        .iter()
        .map(|b| b.currency.as_str())
        .collect();
    assert_eq!(codes, ["USD", "VND"], "balances are ordered by code");

    let log = h.all_transactions(user).await;
    let sequences: Vec<u64> = log.iter().map(|t| t.sequence).collect();
    assert_eq!(sequences, [6, 5, 4, 3, 2, 1], "newest first, without gaps");
    assert_eq!(log[0].amount.to_string(), "0.40");
    h.check_wallet(user).await;
}

/// Holds: partial executes and releases, the statuses they end in, and the
/// errors of ended holds and excessive amounts.
pub async fn hold_execute_release_cancel<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "100", "USD")).await;
    let held = hold_of(h.ok(hold(user, "40", "USD", None)).await);
    assert_eq!(held.status, HoldStatus::Active);
    assert_eq!(held.remaining_amount.to_string(), "40.00");
    assert_eq!(held.expires_at, h.now() + Duration::days(7));
    assert_eq!(
        balance(&h.wallet(user).await, "USD"),
        (dec("100"), dec("40"))
    );
    assert_error(
        h.run(withdraw(user, "60.01", "USD")).await,
        WalletError::InsufficientFunds,
    );

    let partly = hold_of(h.ok(execute(user, held.id, Some("15"))).await);
    assert_eq!(partly.executed_amount, dec("15"));
    assert_eq!(partly.remaining_amount, dec("25"));
    assert_eq!(partly.status, HoldStatus::Active);
    assert_error(
        h.run(execute(user, held.id, Some("25.01"))).await,
        WalletError::AmountExceedsHold,
    );
    let released = hold_of(h.ok(release(user, held.id, Some("5"))).await);
    assert_eq!(released.released_amount, dec("5"));
    let executed = hold_of(h.ok(execute(user, held.id, None)).await);
    assert_eq!(executed.status, HoldStatus::Executed);
    assert_eq!(executed.remaining_amount, Decimal::ZERO);
    assert_eq!(executed.executed_amount, dec("35"));
    assert_eq!(h.service.hold(user, held.id).await, Ok(executed.clone()));
    assert_error(
        h.run(release(user, held.id, Some("1"))).await,
        WalletError::HoldNotActive,
    );
    assert_eq!(balance(&h.wallet(user).await, "USD"), (dec("65"), dec("0")));

    let second = hold_of(h.ok(hold(user, "10", "USD", None)).await);
    let ended = hold_of(h.ok(release(user, second.id, None)).await);
    assert_eq!(ended.status, HoldStatus::Released);
    let third = hold_of(h.ok(hold(user, "10", "USD", None)).await);
    let cancelled = hold_of(
        h.ok(Command::CancelHold {
            user_id: user,
            hold_id: third.id,
        })
        .await,
    );
    assert_eq!(cancelled.status, HoldStatus::Cancelled);
    assert_eq!(cancelled.released_amount, dec("10"));
    assert_error(
        h.run(execute(user, third.id, None)).await,
        WalletError::HoldNotActive,
    );
    assert_error(
        h.run(hold(user, "1", "USD", Some(h.now() - Duration::seconds(1))))
            .await,
        WalletError::Validation("expiresAt must be in the future".into()),
    );
    assert_code(
        h.run(hold(user, "1", "USD", Some(h.now() + Duration::days(31))))
            .await,
        "validation_error",
    );
    let log = h.all_transactions(user).await;
    let execute_log = log
        .iter()
        .find(|t| t.transaction_type == TransactionType::HoldExecute)
        .expect("an execute transaction");
    assert_eq!(execute_log.hold_id, Some(held.id));
    assert_eq!(execute_log.reference.as_deref(), Some("payment"));
    h.check_wallet(user).await;
}

/// The status table: frozen wallets take deposits and releases only,
/// closed wallets nothing, and close needs an empty wallet.
pub async fn status_table<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "50", "VND")).await;
    let held = hold_of(h.ok(hold(user, "10", "VND", None)).await);
    let frozen = h
        .ok(Command::FreezeWallet {
            user_id: user,
            reason: "review".into(),
        })
        .await;
    assert_eq!(wallet_of(&frozen).status, WalletStatus::Frozen);
    assert_eq!(wallet_of(&frozen).frozen_reason.as_deref(), Some("review"));
    assert_eq!(h.wallet(user).await, *wallet_of(&frozen));
    h.ok(deposit(user, "5", "VND")).await;
    assert_error(
        h.run(withdraw(user, "1", "VND")).await,
        WalletError::WalletFrozen,
    );
    assert_error(
        h.run(hold(user, "1", "VND", None)).await,
        WalletError::WalletFrozen,
    );
    assert_error(
        h.run(execute(user, held.id, None)).await,
        WalletError::WalletFrozen,
    );
    assert_error(
        h.run(Command::FreezeWallet {
            user_id: user,
            reason: "again".into(),
        })
        .await,
        WalletError::WalletFrozen,
    );
    h.ok(release(user, held.id, None)).await;
    let unfrozen = h.ok(Command::UnfreezeWallet { user_id: user }).await;
    assert_eq!(wallet_of(&unfrozen).status, WalletStatus::Active);
    assert_eq!(wallet_of(&unfrozen).frozen_reason, None);
    assert_error(
        h.run(Command::UnfreezeWallet { user_id: user }).await,
        WalletError::WalletNotFrozen,
    );
    assert_error(
        h.run(Command::CloseWallet { user_id: user }).await,
        WalletError::WalletNotEmpty,
    );
    h.ok(withdraw(user, "55", "VND")).await;
    let closed = h.ok(Command::CloseWallet { user_id: user }).await;
    assert_eq!(wallet_of(&closed).status, WalletStatus::Closed);
    for command in [
        deposit(user, "1", "VND"),
        withdraw(user, "1", "VND"),
        Command::UnfreezeWallet { user_id: user },
        Command::CloseWallet { user_id: user },
        release(user, held.id, None),
    ] {
        assert_error(h.run(command).await, WalletError::WalletClosed);
    }
    assert_eq!(h.wallet(user).await.status, WalletStatus::Closed);
    assert_eq!(h.all_transactions(user).await.len(), 5);
    h.check_wallet(user).await;
}

/// A failed command changes nothing: same state, no transaction, no event,
/// no idempotency record (its key can be used again).
pub async fn failed_commands_persist_nothing<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(Command::CreatePointAccount { user_id: user }).await;
    h.ok(deposit(user, "10", "USD")).await;
    let held = hold_of(h.ok(hold(user, "4", "USD", None)).await);
    h.ok(earn(user, 10, None, false)).await;
    let before = h.snapshot(user).await;
    let failing: Vec<(Command, &str)> = vec![
        (withdraw(user, "6.01", "USD"), "insufficient_funds"),
        (withdraw(user, "1.001", "USD"), "invalid_amount"),
        (deposit(user, "0", "USD"), "invalid_amount"),
        (deposit(user, "1", "XXX"), "unsupported_currency"),
        (
            deposit(user, "1000000000000000", "USD"),
            "balance_limit_exceeded",
        ),
        (exchange(user, "1", "USD", "USD"), "same_currency"),
        (exchange(user, "7", "USD", "VND"), "insufficient_funds"),
        (hold(user, "6.01", "USD", None), "insufficient_funds"),
        (execute(user, held.id, Some("4.01")), "amount_exceeds_hold"),
        (release(user, held.id, Some("0")), "invalid_amount"),
        (execute(user, Uuid::from_u128(99), None), "hold_not_found"),
        (
            Command::UnfreezeWallet { user_id: user },
            "wallet_not_frozen",
        ),
        (Command::CloseWallet { user_id: user }, "wallet_not_empty"),
        (spend(user, 11), "insufficient_points"),
        (adjust(user, -11), "insufficient_points"),
        (spend(user, 0), "validation_error"),
        (
            Command::ConfirmPendingPoints {
                user_id: user,
                lot_id: Uuid::from_u128(98),
            },
            "lot_not_found",
        ),
        (create_wallet(user), "wallet_exists"),
        (
            Command::CreatePointAccount { user_id: user },
            "point_account_exists",
        ),
    ];
    for (index, (command, expected)) in failing.into_iter().enumerate() {
        let key = format!("failing-{index}");
        assert_code(h.run_keyed(command, &key).await, expected);
        assert_eq!(
            h.snapshot(user).await,
            before,
            "a failed command changed state"
        );
    }
    // The keys of failed commands were not recorded.
    let applied = h
        .run_keyed(deposit(user, "1", "USD"), "failing-0")
        .await
        .expect("a failed command's key is free");
    assert!(!applied.replayed);
    h.check_wallet(user).await;
    h.check_points(user).await;
}

/// Replays return the first result and change nothing; a key on another
/// command is refused; keys are the user's.
pub async fn idempotent_replay_and_key_reuse<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = Uuid::from_u128(1);
    let created = h
        .run_keyed(create_wallet(user), "create")
        .await
        .expect("create");
    let again = h
        .run_keyed(create_wallet(user), "create")
        .await
        .expect("replayed create");
    assert!(again.replayed && !created.replayed);
    assert_eq!(again.output, created.output);

    let first = h
        .run_keyed(deposit(user, "10", "USD"), "dep-1")
        .await
        .expect("deposit");
    h.advance(Duration::minutes(5));
    // The same amount written differently is the same command.
    let replay = h
        .run_keyed(deposit(user, "10.00", "usd"), "dep-1")
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.output, first.output);
    assert_eq!(balance(&h.wallet(user).await, "USD").0, dec("10"));
    assert_eq!(h.all_transactions(user).await.len(), 1);
    if let CommandOutput::Transaction { transaction, .. } = &first.output {
        assert_eq!(transaction.idempotency_key.as_deref(), Some("dep-1"));
    }

    assert_error(
        h.run_keyed(deposit(user, "11", "USD"), "dep-1").await,
        WalletError::IdempotencyKeyReused,
    );
    assert_error(
        h.run_keyed(withdraw(user, "10", "USD"), "dep-1").await,
        WalletError::IdempotencyKeyReused,
    );
    // Keys span the user's wallet and point account.
    h.ok(Command::CreatePointAccount { user_id: user }).await;
    assert_error(
        h.run_keyed(earn(user, 5, None, false), "dep-1").await,
        WalletError::IdempotencyKeyReused,
    );
    let earned = h
        .run_keyed(earn(user, 5, None, false), "earn-1")
        .await
        .expect("earn");
    let earned_again = h
        .run_keyed(earn(user, 5, None, false), "earn-1")
        .await
        .expect("earn replay");
    assert!(earned_again.replayed);
    assert_eq!(earned_again.output, earned.output);
    assert_eq!(h.points(user).await.available_points, 5);

    // Another user may use the same key.
    let other = h.new_wallet(2).await;
    let theirs = h
        .run_keyed(deposit(other, "10", "USD"), "dep-1")
        .await
        .expect("another user's key");
    assert!(!theirs.replayed);

    // Holds replay the hold as it was first returned.
    let held = h
        .run_keyed(hold(user, "3", "USD", None), "hold-1")
        .await
        .expect("hold");
    let hold_id = hold_of(held.output.clone()).id;
    h.ok(execute(user, hold_id, Some("1"))).await;
    let held_again = h
        .run_keyed(hold(user, "3", "USD", None), "hold-1")
        .await
        .expect("hold replay");
    assert_eq!(held_again.output, held.output);
    assert_eq!(h.all_holds(user).await.len(), 1);
    let events_before = h.all_events().await.len();
    h.run_keyed(deposit(user, "10", "USD"), "dep-1")
        .await
        .expect("replay");
    assert_eq!(
        h.all_events().await.len(),
        events_before,
        "a replay raises no event"
    );
    h.check_wallet(user).await;
    h.check_wallet(other).await;
}

/// Holds expire by the sweep and before any command on their wallet.
pub async fn hold_expiry<S: Store>(store: S) {
    let h = Harness::new(store);
    let swept = h.new_wallet(1).await;
    let touched = h.new_wallet(2).await;
    for user in [swept, touched] {
        h.ok(deposit(user, "100", "VND")).await;
    }
    let expires_at = h.now() + Duration::hours(1);
    let first = hold_of(h.ok(hold(swept, "30", "VND", Some(expires_at))).await);
    let second = hold_of(h.ok(hold(touched, "100", "VND", Some(expires_at))).await);
    let later = hold_of(
        h.ok(hold(swept, "20", "VND", Some(h.now() + Duration::days(2))))
            .await,
    );
    let store = h.service.store();
    assert_eq!(
        AggregateStore::<Wallet>::users_with_overdue(&**store, h.now(), 10)
            .await
            .map(|users| users.len()),
        Ok(0)
    );
    h.advance(Duration::hours(1));
    let mut overdue = AggregateStore::<Wallet>::users_with_overdue(&**store, h.now(), 10)
        .await
        .expect("overdue holds");
    overdue.sort();
    assert_eq!(overdue, vec![swept, touched]);
    assert_eq!(
        AggregateStore::<Wallet>::users_with_overdue(&**store, h.now(), 1)
            .await
            .map(|users| users.len()),
        Ok(1),
        "the limit bounds the batch"
    );
    // Queries show the stored state until something expires the hold.
    assert_eq!(
        h.service.hold(swept, first.id).await.map(|h| h.status),
        Ok(HoldStatus::Active)
    );

    // A command expires its wallet's overdue holds first.
    h.ok(withdraw(touched, "100", "VND")).await;
    let expired = h.service.hold(touched, second.id).await.expect("hold");
    assert_eq!(expired.status, HoldStatus::Expired);
    assert_eq!(expired.released_amount, dec("100"));

    let report = h.service.sweep_expired(100).await.expect("sweep");
    assert_eq!((report.wallets, report.failures), (1, 0));
    let expired = h.service.hold(swept, first.id).await.expect("hold");
    assert_eq!(expired.status, HoldStatus::Expired);
    assert_eq!(expired.remaining_amount, Decimal::ZERO);
    assert_eq!(
        h.service.hold(swept, later.id).await.map(|h| h.status),
        Ok(HoldStatus::Active)
    );
    assert_eq!(
        balance(&h.wallet(swept).await, "VND"),
        (dec("100"), dec("20"))
    );
    let log = h.all_transactions(swept).await;
    assert_eq!(log[0].transaction_type, TransactionType::HoldRelease);
    assert_eq!(log[0].description.as_deref(), Some("hold expired"));
    assert_eq!(log[0].held_change, dec("-30"));
    let released = h
        .all_events()
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e.event.data,
                EventData::EscrowReleased {
                    cause: ReleaseCause::Expiry,
                    ..
                }
            )
        })
        .count();
    assert_eq!(released, 2);
    assert_eq!(
        AggregateStore::<Wallet>::users_with_overdue(&**store, h.now(), 10)
            .await
            .map(|users| users.len()),
        Ok(0)
    );
    assert_error(
        h.run(execute(swept, first.id, None)).await,
        WalletError::HoldNotActive,
    );
    h.check_wallet(swept).await;
    h.check_wallet(touched).await;
}

/// Points: earn, pending, confirm, cancel, spend soonest-expiring first,
/// adjust both ways.
pub async fn points_lifecycle<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = Uuid::from_u128(1);
    h.ok(Command::CreatePointAccount { user_id: user }).await;
    let far = h.now() + Duration::days(30);
    let near = h.now() + Duration::days(3);
    let never = lot_of(&h.ok(earn(user, 100, None, false)).await);
    let far_lot = lot_of(&h.ok(earn(user, 50, Some(far), false)).await);
    let near_lot = lot_of(&h.ok(earn(user, 20, Some(near), false)).await);
    let pending = lot_of(&h.ok(earn(user, 40, None, true)).await);
    let view = h.points(user).await;
    assert_eq!(
        (
            view.available_points,
            view.pending_points,
            view.total_points
        ),
        (170, 40, 210)
    );
    assert_eq!(view.lifetime_earned, 170);

    // Soonest expiry first: 20 from the near lot, 10 from the far one.
    let spent = h.ok(spend(user, 30)).await;
    let CommandOutput::Points { transaction, .. } = &spent else {
        panic!("spend returns points");
    };
    assert_eq!(transaction.points, -30);
    assert_eq!(transaction.balance_after, 140);
    h.advance(Duration::days(4));
    // The near lot was used up, so nothing expires now.
    assert_eq!(h.points(user).await.available_points, 140);
    h.ok(spend(user, 40)).await; // 40 from the far lot, which then has 0
    h.advance(Duration::days(30));
    h.ok(spend(user, 1)).await; // the far lot is empty: nothing to expire
    assert_eq!(h.points(user).await.available_points, 99);

    let confirmed = h
        .ok(Command::ConfirmPendingPoints {
            user_id: user,
            lot_id: pending,
        })
        .await;
    let CommandOutput::Points {
        account,
        transaction,
        lot_id,
    } = confirmed
    else {
        panic!("confirm returns points");
    };
    assert_eq!(lot_id, Some(pending));
    assert_eq!(
        transaction.transaction_type,
        PointTransactionType::PendingConfirmed
    );
    assert_eq!((account.available_points, account.pending_points), (139, 0));
    assert_eq!(account.lifetime_earned, 210);
    assert_error(
        h.run(Command::ConfirmPendingPoints {
            user_id: user,
            lot_id: pending,
        })
        .await,
        WalletError::LotNotPending,
    );
    for spent_lot in [near_lot, far_lot, never] {
        assert_error(
            h.run(Command::CancelPendingPoints {
                user_id: user,
                lot_id: spent_lot,
            })
            .await,
            WalletError::LotNotPending,
        );
    }
    let to_cancel = lot_of(&h.ok(earn(user, 7, None, true)).await);
    h.ok(Command::CancelPendingPoints {
        user_id: user,
        lot_id: to_cancel,
    })
    .await;
    assert_error(
        h.run(Command::ConfirmPendingPoints {
            user_id: user,
            lot_id: to_cancel,
        })
        .await,
        WalletError::LotNotPending,
    );
    let adjusted = h.ok(adjust(user, -39)).await;
    assert!(matches!(
        adjusted,
        CommandOutput::Points { lot_id: None, .. }
    ));
    let added = h.ok(adjust(user, 5)).await;
    lot_of(&added);
    assert_error(
        h.run(adjust(user, -106)).await,
        WalletError::InsufficientPoints,
    );
    let view = h.points(user).await;
    assert_eq!((view.available_points, view.pending_points), (105, 0));
    assert_eq!(view.lifetime_earned, 215);
    let log = h.all_point_transactions(user).await;
    assert_eq!(log.len(), 12);
    assert_eq!(log[0].sequence, 12);
    h.check_points(user).await;
}

/// Lots expire, available or pending, by the sweep and before commands.
pub async fn lot_expiry<S: Store>(store: S) {
    let h = Harness::new(store);
    let swept = Uuid::from_u128(1);
    let touched = Uuid::from_u128(2);
    for user in [swept, touched] {
        h.ok(Command::CreatePointAccount { user_id: user }).await;
    }
    let soon = h.now() + Duration::hours(2);
    h.ok(earn(swept, 30, Some(soon), false)).await;
    let pending = lot_of(&h.ok(earn(swept, 12, Some(soon), true)).await);
    h.ok(earn(swept, 5, None, false)).await;
    h.ok(earn(touched, 8, Some(soon), false)).await;
    let store = h.service.store();
    assert_eq!(
        AggregateStore::<PointAccount>::users_with_overdue(&**store, h.now(), 10)
            .await
            .map(|users| users.len()),
        Ok(0)
    );
    assert_error(
        h.run(earn(swept, 1, Some(h.now()), false)).await,
        WalletError::Validation("expiresAt must be in the future".into()),
    );
    h.advance(Duration::hours(2));
    let mut overdue = AggregateStore::<PointAccount>::users_with_overdue(&**store, h.now(), 10)
        .await
        .expect("overdue lots");
    overdue.sort();
    assert_eq!(overdue, vec![swept, touched]);

    // A command expires first: 8 points are gone before the spend.
    assert_error(
        h.run(spend(touched, 1)).await,
        WalletError::InsufficientPoints,
    );
    h.ok(earn(touched, 1, None, false)).await;
    assert_eq!(h.points(touched).await.available_points, 1);

    let report = h.service.sweep_expired(10).await.expect("sweep");
    assert_eq!((report.point_accounts, report.failures), (1, 0));
    let view = h.points(swept).await;
    assert_eq!((view.available_points, view.pending_points), (5, 0));
    assert_error(
        h.run(Command::ConfirmPendingPoints {
            user_id: swept,
            lot_id: pending,
        })
        .await,
        WalletError::LotNotPending,
    );
    let expiries: Vec<i64> = h
        .all_point_transactions(swept)
        .await
        .iter()
        .filter(|t| t.transaction_type == PointTransactionType::Expire)
        .map(|t| t.points)
        .collect();
    assert_eq!(expiries.len(), 2);
    assert_eq!(expiries.iter().sum::<i64>(), -42);
    assert_eq!(
        AggregateStore::<PointAccount>::users_with_overdue(&**store, h.now(), 10)
            .await
            .map(|users| users.len()),
        Ok(0)
    );
    h.check_points(swept).await;
    h.check_points(touched).await;
}

/// Walking a history visits each transaction once, newest first, also
/// while new transactions are written between pages.
pub async fn transaction_paging<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    for amount in 1..=23 {
        h.ok(deposit(user, &amount.to_string(), "VND")).await;
    }
    let all = h.all_transactions(user).await;
    let expected: Vec<u64> = (1..=23).rev().collect();
    assert_eq!(all.iter().map(|t| t.sequence).collect::<Vec<_>>(), expected);
    for limit in [1, 5, 23, 24] {
        let walked =
            walk_transactions(&h, user, TransactionFilter::default(), limit, |_| async {}).await;
        assert_eq!(walked, all, "limit {limit}");
    }
    let page = h
        .service
        .transactions(
            user,
            TransactionFilter::default(),
            PageRequest {
                limit: 23,
                cursor: None,
            },
        )
        .await
        .expect("one page");
    assert_eq!(
        page.next_cursor, None,
        "an exact last page has no next cursor"
    );

    // Writes between pages never show up in, or shift, a walk begun before.
    let writer = &h;
    let written = std::cell::Cell::new(0);
    let counter = &written;
    let walked = walk_transactions(&h, user, TransactionFilter::default(), 4, |_| async move {
        writer.ok(deposit(user, "1000", "VND")).await;
        counter.set(counter.get() + 1);
    })
    .await;
    assert_eq!(walked, all);
    assert_eq!(
        written.get(),
        5,
        "23 items in pages of 4: five pages have a next one"
    );
    assert_eq!(h.all_transactions(user).await.len(), 23 + 5);
    h.check_wallet(user).await;
}

/// Walking holds by `(created_at, id)`, with ties on the time.
pub async fn hold_paging<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "1000", "USD")).await;
    // Five holds at one instant (ordered by id), then five a second apart.
    for _ in 0..5 {
        h.ok(hold(user, "1", "USD", None)).await;
    }
    for _ in 0..5 {
        h.advance(Duration::seconds(1));
        h.ok(hold(user, "1", "USD", None)).await;
    }
    let all = h.all_holds(user).await;
    assert_eq!(all.len(), 10);
    let mut expected = all.clone();
    expected.sort_by_key(|hold| std::cmp::Reverse((hold.created_at, hold.id)));
    assert_eq!(all, expected, "newest first by (created_at, id)");
    for limit in [1, 2, 3, 10] {
        assert_eq!(walk_holds(&h, user, None, limit, |_| async {}).await, all);
    }
    let writer = &h;
    let walked = walk_holds(&h, user, None, 3, |_| async move {
        writer.ok(hold(user, "1", "USD", None)).await;
    })
    .await;
    assert_eq!(walked, all);
    h.check_wallet(user).await;
}

/// Walking the admin listing, with and without a status filter.
pub async fn wallet_paging<S: Store>(store: S) {
    let h = Harness::new(store);
    let mut users = Vec::new();
    for seed in 1..=9u128 {
        if seed % 3 == 0 {
            h.advance(Duration::seconds(1));
        }
        users.push(h.new_wallet(seed).await);
    }
    for user in users.iter().step_by(4) {
        h.ok(Command::FreezeWallet {
            user_id: *user,
            reason: "review".into(),
        })
        .await;
    }
    let all = walk_wallets(&h, None, 50, |_| async {}).await;
    assert_eq!(all.len(), 9);
    let mut expected = all.clone();
    expected.sort_by_key(|w| std::cmp::Reverse((w.created_at, w.id)));
    assert_eq!(all, expected);
    for user in &users {
        let view = h.wallet(*user).await;
        assert!(
            all.contains(&view),
            "the listing shows each wallet as stored"
        );
    }
    for limit in [1, 2, 4, 9] {
        assert_eq!(walk_wallets(&h, None, limit, |_| async {}).await, all);
    }
    let frozen = walk_wallets(&h, Some(WalletStatus::Frozen), 2, |_| async {}).await;
    assert_eq!(frozen.len(), 3);
    assert!(frozen.iter().all(|w| w.status == WalletStatus::Frozen));
    let writer = &h;
    let walked = walk_wallets(&h, None, 2, |page| async move {
        writer.advance(Duration::seconds(1));
        writer.new_wallet(100 + page as u128).await;
    })
    .await;
    assert_eq!(walked, all);
}

/// History filters by currency and type; holds by status.
pub async fn filters<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "100", "USD")).await;
    h.ok(deposit(user, "100000", "VND")).await;
    h.ok(withdraw(user, "1", "USD")).await;
    let active = hold_of(h.ok(hold(user, "5", "USD", None)).await);
    let done = hold_of(h.ok(hold(user, "5", "VND", None)).await);
    h.ok(execute(user, done.id, None)).await;
    h.ok(exchange(user, "1", "USD", "VND")).await;
    let all = h.all_transactions(user).await;

    for (currency, kind) in [
        (Some("USD"), None),
        (Some("VND"), None),
        (None, Some(TransactionType::Deposit)),
        (Some("USD"), Some(TransactionType::Withdraw)),
        (Some("VND"), Some(TransactionType::Withdraw)),
        (Some("PPOINT"), None),
    ] {
        let filter = TransactionFilter {
            currency: currency.map(code),
            transaction_type: kind,
        };
        let expected: Vec<WalletTransaction> = all
            .iter()
            .filter(|t| filter.currency.is_none_or(|c| c == t.currency))
            .filter(|t| kind.is_none_or(|k| k == t.transaction_type))
            .cloned()
            .collect();
        for limit in [1, 2, 50] {
            let walked = walk_transactions(&h, user, filter, limit, |_| async {}).await;
            assert_eq!(walked, expected, "{filter:?} limit {limit}");
        }
    }
    assert_code(
        h.service
            .transactions(
                user,
                TransactionFilter {
                    currency: Some(code("XXX")),
                    transaction_type: None,
                },
                PageRequest::default(),
            )
            .await,
        "unsupported_currency",
    );
    let active_holds = walk_holds(&h, user, Some(HoldStatus::Active), 1, |_| async {}).await;
    assert_eq!(active_holds, vec![active]);
    let executed = walk_holds(&h, user, Some(HoldStatus::Executed), 1, |_| async {}).await;
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0].id, done.id);
    let none = walk_holds(&h, user, Some(HoldStatus::Expired), 1, |_| async {}).await;
    assert!(none.is_empty());
    // A cursor of the wrong kind is a validation error.
    assert_code(
        h.service
            .holds(
                user,
                None,
                PageRequest {
                    limit: 1,
                    cursor: Some(Cursor::Sequence(3)),
                },
            )
            .await,
        "validation_error",
    );
}

/// The admin statistics, computed by hand.
pub async fn statistics<S: Store>(store: S) {
    let h = Harness::new(store);
    let start = h.now();
    let active = h.new_wallet(1).await;
    let frozen = h.new_wallet(2).await;
    let closed = h.new_wallet(3).await;
    h.ok(deposit(active, "100", "USD")).await;
    h.ok(withdraw(active, "30", "USD")).await;
    let held = hold_of(h.ok(hold(active, "20", "USD", None)).await);
    h.ok(execute(active, held.id, Some("5"))).await;
    h.ok(deposit(active, "1000", "VND")).await;
    h.ok(deposit(frozen, "7", "VND")).await;
    h.ok(Command::FreezeWallet {
        user_id: frozen,
        reason: "review".into(),
    })
    .await;
    h.ok(Command::CloseWallet { user_id: closed }).await;
    for user in [active, frozen] {
        h.ok(Command::CreatePointAccount { user_id: user }).await;
    }
    h.ok(earn(active, 100, None, false)).await;
    h.ok(earn(active, 50, None, true)).await;
    h.ok(spend(active, 30)).await;
    h.ok(adjust(active, -5)).await;
    h.ok(adjust(active, 10)).await;
    h.ok(earn(
        frozen,
        20,
        Some(h.now() + Duration::minutes(30)),
        false,
    ))
    .await;
    h.advance(Duration::minutes(40));
    h.service.sweep_expired(10).await.expect("sweep");
    let end = start + Duration::hours(1);
    h.advance(Duration::hours(2));
    h.ok(deposit(active, "1", "VND")).await; // outside the window

    let stats = h
        .service
        .statistics(Some(start), Some(end))
        .await
        .expect("statistics");
    assert_eq!((stats.from, stats.to), (start, end));
    let wallets: Vec<(WalletStatus, u64)> = stats.wallets.clone().into_iter().collect();
    assert_eq!(
        wallets,
        vec![
            (WalletStatus::Active, 1),
            (WalletStatus::Frozen, 1),
            (WalletStatus::Closed, 1)
        ]
    );
    assert_eq!(
        stats.currencies,
        vec![
            CurrencyStatistics {
                currency: code("USD"),
                balance: dec("65"),
                held: dec("15"),
                wallets: 1,
            },
            CurrencyStatistics {
                currency: code("VND"),
                balance: dec("1008"),
                held: dec("0"),
                wallets: 2,
            },
        ]
    );
    let row = |kind, currency: &str, count, volume: &str| TransactionStatistics {
        transaction_type: kind,
        currency: code(currency),
        count,
        volume: dec(volume),
    };
    assert_eq!(
        stats.transactions,
        vec![
            row(TransactionType::Deposit, "USD", 1, "100"),
            row(TransactionType::Deposit, "VND", 2, "1007"),
            row(TransactionType::Withdraw, "USD", 1, "30"),
            row(TransactionType::Hold, "USD", 1, "20"),
            row(TransactionType::HoldExecute, "USD", 1, "5"),
        ]
    );
    assert_eq!(
        stats.points,
        PointStatistics {
            available: 75,
            pending: 50,
            earned: 130,
            spent: 35,
            expired: 20,
        }
    );
    let empty = h
        .service
        .statistics(
            Some(end + Duration::days(10)),
            Some(end + Duration::days(11)),
        )
        .await
        .expect("statistics");
    assert!(empty.transactions.is_empty());
    assert_eq!(empty.points.earned, 0);
    assert_eq!(empty.currencies, stats.currencies, "balances are all time");
}

/// The outbox holds every event once, in commit order, readable in chunks.
pub async fn events_in_order<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "10", "USD")).await;
    let held = hold_of(h.ok(hold(user, "4", "USD", None)).await);
    h.ok(execute(user, held.id, Some("1"))).await;
    h.ok(exchange(user, "1", "USD", "VND")).await;
    h.ok(Command::CreatePointAccount { user_id: user }).await;
    h.ok(earn(user, 5, None, true)).await;
    h.ok(Command::FreezeWallet {
        user_id: user,
        reason: "review".into(),
    })
    .await;
    let events = h.all_events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event.event_type()).collect();
    assert_eq!(
        types,
        [
            "WalletCreated",
            "WalletBalanceChanged",
            "EscrowHeld",
            "WalletBalanceChanged",
            "EscrowExecuted",
            "WalletExchanged",
            "PointAccountCreated",
            "PointsEarned",
            "WalletFrozen",
        ]
    );
    invariants::check_events(&events).unwrap_or_else(|violation| panic!("{violation}"));
    let wallet = h.wallet(user).await;
    let last_wallet_event = events
        .iter()
        .rev()
        .find(|e| e.event.aggregate_id == wallet.id)
        .expect("wallet events");
    assert_eq!(last_wallet_event.event.aggregate_version, wallet.version);
    assert!(events.iter().all(|e| e.event.user_id == user));
    assert_eq!(events[0].event.occurred_at, wallet.created_at);

    // Chunked reads following `next_after` see the same events.
    let mut chunked = Vec::new();
    let mut after = None;
    loop {
        let (batch, next) = h.service.events(after, Some(2)).await.expect("events");
        assert!(batch.len() <= 2);
        if batch.is_empty() {
            assert_eq!(Some(next), after.or(Some(0)));
            break;
        }
        chunked.extend(batch);
        after = Some(next);
    }
    assert_eq!(chunked, events);
    let middle = events[3].sequence;
    let (rest, _) = h
        .service
        .events(Some(middle), Some(1000))
        .await
        .expect("events");
    assert_eq!(rest, events[4..].to_vec());
    assert_code(h.service.events(None, Some(0)).await, "validation_error");
}

/// A sweep (or any unit of work) that finds nothing to do writes nothing.
pub async fn sweep_with_nothing_due_writes_nothing<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    h.ok(deposit(user, "10", "VND")).await;
    h.ok(hold(user, "5", "VND", None)).await;
    h.ok(Command::CreatePointAccount { user_id: user }).await;
    h.ok(earn(user, 5, Some(h.now() + Duration::days(1)), false))
        .await;
    let before = h.snapshot(user).await;
    let report = h.service.sweep_expired(10).await.expect("sweep");
    assert_eq!((report.wallets, report.point_accounts), (0, 0));
    assert_eq!(h.snapshot(user).await, before);
}

/// The service's purge keeps every record for the policy's retention and
/// no longer: at exactly the retention a key still replays; one microsecond
/// later its record is gone, the key is a new command, and the younger
/// record stays.
pub async fn idempotency_retention<S: Store>(store: S) {
    let h = Harness::new(store);
    let user = h.new_wallet(1).await;
    let retention = h.service.policy().idempotency_retention;
    h.run_keyed(deposit(user, "1", "USD"), "old")
        .await
        .expect("deposit");
    h.advance(Duration::hours(1));
    h.run_keyed(deposit(user, "2", "USD"), "young")
        .await
        .expect("deposit");
    h.advance(retention - Duration::hours(1));
    assert_eq!(h.service.purge_idempotency_records().await, Ok(0));
    let replay = h.run_keyed(deposit(user, "1", "USD"), "old").await;
    assert!(replay.expect("replay").replayed, "kept for the retention");
    h.advance(Duration::microseconds(1));
    assert_eq!(h.service.purge_idempotency_records().await, Ok(1));
    let again = h
        .run_keyed(deposit(user, "3", "USD"), "old")
        .await
        .expect("a purged key is a new command");
    assert!(!again.replayed);
    let young = h.run_keyed(deposit(user, "2", "USD"), "young").await;
    assert!(young.expect("replay").replayed, "the younger record stays");
    let wallet = h.service.wallet(user).await.expect("wallet");
    let usd = wallet.balances.iter().find(|i| i.currency == code("USD"));
    assert_eq!(usd.map(|i| i.balance.to_string()).as_deref(), Some("6.00"));
}

// ---- the event relay's position and lease ----------------------------------

/// How long the relay scenarios' leases last.
const RELAY_LEASE_SECONDS: i64 = 10;

fn relay_name(text: &str) -> RelayName {
    RelayName::parse(text).unwrap_or_else(|error| panic!("bad test relay name {text}: {error}"))
}

async fn take_lease<S: Store + RelayStore>(
    h: &Harness<S>,
    relay: &RelayName,
    owner: Uuid,
) -> LeaseOutcome {
    h.service
        .store()
        .take_relay_lease(
            relay,
            owner,
            h.now(),
            Duration::seconds(RELAY_LEASE_SECONDS),
        )
        .await
        .unwrap_or_else(|error| panic!("take_relay_lease: {error:?}"))
}

async fn advance<S: Store + RelayStore>(
    h: &Harness<S>,
    relay: &RelayName,
    owner: Uuid,
    to: u64,
) -> PositionUpdate {
    h.service
        .store()
        .advance_relay_position(relay, owner, to, h.now())
        .await
        .unwrap_or_else(|error| panic!("advance_relay_position: {error:?}"))
}

async fn relay_state<S: Store + RelayStore>(h: &Harness<S>, relay: &RelayName) -> RelayState {
    h.service
        .store()
        .relay_state(relay)
        .await
        .unwrap_or_else(|error| panic!("relay_state: {error:?}"))
}

async fn relay_lag<S: Store + RelayStore>(h: &Harness<S>, relay: &RelayName) -> u64 {
    h.service
        .store()
        .relay_lag(relay)
        .await
        .unwrap_or_else(|error| panic!("relay_lag: {error:?}"))
}

/// A lease is granted when free, refused while another's is live, renewed
/// by its holder, free again at its expiry or when released.
pub async fn relay_lease_taken_renewed_and_lost<S: Store + RelayStore>(store: S) {
    let h = Harness::new(store);
    let relay = relay_name("WALLET_EVENTS");
    let (first, second) = (Uuid::from_u128(0xa), Uuid::from_u128(0xb));
    assert_eq!(relay_state(&h, &relay).await, RelayState::default());
    let lease = RelayLease {
        owner: first,
        expires_at: h.now() + Duration::seconds(RELAY_LEASE_SECONDS),
    };
    assert_eq!(
        take_lease(&h, &relay, first).await,
        LeaseOutcome::Held { lease, position: 0 }
    );
    assert_eq!(relay_state(&h, &relay).await.lease, Some(lease));
    assert_eq!(
        take_lease(&h, &relay, second).await,
        LeaseOutcome::Refused { holder: lease },
        "a live lease is refused to another owner"
    );
    h.advance(Duration::seconds(RELAY_LEASE_SECONDS - 1));
    let renewed = RelayLease {
        owner: first,
        expires_at: h.now() + Duration::seconds(RELAY_LEASE_SECONDS),
    };
    assert_eq!(
        take_lease(&h, &relay, first).await,
        LeaseOutcome::Held {
            lease: renewed,
            position: 0
        },
        "the holder renews its lease"
    );
    h.advance(Duration::seconds(RELAY_LEASE_SECONDS - 1));
    assert_eq!(
        take_lease(&h, &relay, second).await,
        LeaseOutcome::Refused { holder: renewed },
        "a renewed lease binds past the first expiry"
    );
    h.advance(Duration::seconds(1));
    let taken_over = take_lease(&h, &relay, second).await;
    assert!(
        matches!(taken_over, LeaseOutcome::Held { lease, .. } if lease.owner == second),
        "an expired lease is free: {taken_over:?}"
    );
    // Releasing someone else's lease changes nothing; one's own frees it.
    let store = h.service.store();
    store
        .release_relay_lease(&relay, first)
        .await
        .unwrap_or_else(|error| panic!("release_relay_lease: {error:?}"));
    assert!(matches!(
        take_lease(&h, &relay, first).await,
        LeaseOutcome::Refused { holder } if holder.owner == second
    ));
    store
        .release_relay_lease(&relay, second)
        .await
        .unwrap_or_else(|error| panic!("release_relay_lease: {error:?}"));
    assert!(matches!(
        take_lease(&h, &relay, first).await,
        LeaseOutcome::Held { lease, .. } if lease.owner == first
    ));
    // Another relay name has a lease of its own.
    let other = relay_name("OTHER_EVENTS");
    assert!(matches!(
        take_lease(&h, &other, second).await,
        LeaseOutcome::Held { lease, position: 0 } if lease.owner == second
    ));
}

/// The position moves only forward and only by the holder of a live
/// lease; the lag counts the events past it.
pub async fn relay_position_moves_forward_by_its_holder<S: Store + RelayStore>(store: S) {
    let h = Harness::new(store);
    let relay = relay_name("WALLET_EVENTS");
    let (first, second) = (Uuid::from_u128(0xa), Uuid::from_u128(0xb));
    assert_eq!(relay_lag(&h, &relay).await, 0, "an empty outbox has no lag");
    let user = h.new_wallet(1).await;
    for amount in ["1", "2", "3", "4"] {
        h.ok(deposit(user, amount, "USD")).await;
    }
    let events = h.all_events().await;
    assert_eq!(events.len(), 5);
    let sequence = |index: usize| events[index].sequence;
    assert_eq!(relay_lag(&h, &relay).await, 5);
    assert_eq!(
        advance(&h, &relay, first, sequence(0)).await,
        PositionUpdate::LeaseNotHeld,
        "no lease, no move"
    );
    take_lease(&h, &relay, first).await;
    assert_eq!(
        advance(&h, &relay, second, sequence(0)).await,
        PositionUpdate::LeaseNotHeld
    );
    assert_eq!(
        advance(&h, &relay, first, sequence(2)).await,
        PositionUpdate::Moved
    );
    assert_eq!(relay_state(&h, &relay).await.position, sequence(2));
    assert_eq!(relay_lag(&h, &relay).await, 2);
    assert_eq!(
        advance(&h, &relay, first, sequence(1)).await,
        PositionUpdate::Behind {
            position: sequence(2)
        },
        "the position never moves back"
    );
    assert_eq!(
        advance(&h, &relay, first, sequence(2)).await,
        PositionUpdate::Moved,
        "moving to where it is already is a repeat, not an error"
    );
    h.advance(Duration::seconds(RELAY_LEASE_SECONDS));
    assert_eq!(
        advance(&h, &relay, first, sequence(4)).await,
        PositionUpdate::LeaseNotHeld,
        "an expired lease moves nothing"
    );
    assert_eq!(
        take_lease(&h, &relay, second).await,
        LeaseOutcome::Held {
            lease: RelayLease {
                owner: second,
                expires_at: h.now() + Duration::seconds(RELAY_LEASE_SECONDS),
            },
            position: sequence(2)
        },
        "the successor resumes from the stored position"
    );
    assert_eq!(
        advance(&h, &relay, second, sequence(4)).await,
        PositionUpdate::Moved
    );
    assert_eq!(relay_lag(&h, &relay).await, 0);
    h.ok(withdraw(user, "1", "USD")).await;
    assert_eq!(relay_lag(&h, &relay).await, 1, "a new event is lag at once");
    assert_eq!(relay_lag(&h, &relay_name("OTHER_EVENTS")).await, 6);
}
