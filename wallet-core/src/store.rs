//! The ports: what a store must do for the application service.
//!
//! Writes are units of work: the store loads the aggregate, runs the
//! service's mutation on it, and persists the new state, its transactions,
//! its events (the outbox) and the idempotency record atomically, or nothing
//! at all. How it keeps two units of work on one aggregate apart (a row lock,
//! a version check, a mutex) is the store's choice; the result must equal
//! some serial order of the successful commands.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::command::{Claim, CommandOutput};
use crate::error::WalletError;
use crate::events::StoredEvent;
use crate::points::{PointAccount, PointAccountView, PointTransaction};
use crate::query::{Page, PageRequest, Statistics, TransactionFilter};
use crate::relay::{LeaseOutcome, PositionUpdate, RelayName, RelayState};
use crate::transfer::WalletSet;
use crate::wallet::{
    Hold, HoldStatus, Wallet, WalletItem, WalletStatus, WalletTransaction, WalletView,
};

/// Makes a new aggregate and the command's result. May be called more than
/// once (on retry); each call makes a fresh aggregate.
pub type Factory<A> = Arc<dyn Fn() -> Result<(A, CommandOutput), WalletError> + Send + Sync>;
/// Changes an aggregate and returns the command's result. May be called
/// more than once (on retry), each time on freshly loaded state.
pub type Mutation<A> = Arc<dyn Fn(&mut A) -> Result<CommandOutput, WalletError> + Send + Sync>;
/// Makes a new wallet and the command's result.
pub type WalletFactory = Factory<Wallet>;
/// Changes a wallet and returns the command's result.
pub type WalletMutation = Mutation<Wallet>;
/// Changes several wallets in one unit of work (a transfer, a hold payout,
/// a reversal)
/// and returns the command's result.
pub type WalletsMutation = Mutation<WalletSet>;
/// Makes a new point account and the command's result.
pub type PointAccountFactory = Factory<PointAccount>;
/// Changes a point account and returns the command's result.
pub type PointMutation = Mutation<PointAccount>;

/// A unit of work that makes a user's first aggregate of kind `A`: the
/// argument of [`AggregateStore::create`].
pub struct Create<A> {
    /// The user the aggregate is for.
    pub user_id: Uuid,
    /// The idempotency claim (see the stores' common contract).
    pub claim: Option<Claim>,
    /// Makes the aggregate and the command's result.
    pub factory: Factory<A>,
}

/// A unit of work on a user's aggregate of kind `A`: the argument of
/// [`AggregateStore::update`].
pub struct Update<A> {
    /// The user whose aggregate is loaded.
    pub user_id: Uuid,
    /// The part the command names, loaded in whatever status (a wallet's
    /// hold; a point account's lot), when it names one.
    pub named: Option<Uuid>,
    /// The idempotency claim (see the stores' common contract).
    pub claim: Option<Claim>,
    /// Changes the loaded aggregate and returns the command's result.
    pub mutation: Mutation<A>,
}

impl<A> Update<A> {
    /// A unit of work with no claim and no named part (an expiry sweep's).
    pub fn of(user_id: Uuid, mutation: Mutation<A>) -> Self {
        Update {
            user_id,
            named: None,
            claim: None,
            mutation,
        }
    }
}

/// A unit of work over several wallets (a transfer, a hold payout, a
/// reversal): the argument of [`WalletStore::update_wallets`]. Each list is
/// a list of ids, so they are named here rather than passed in order.
pub struct SetUpdate {
    /// Every wallet the unit touches, by user id.
    pub user_ids: Vec<Uuid>,
    /// Holds to load in the wallet of the set they belong to.
    pub hold_ids: Vec<Uuid>,
    /// Transactions to load, with their reversed amounts, in the wallet of
    /// the set they belong to.
    pub transaction_ids: Vec<Uuid>,
    /// The idempotency claim, scoped to the payer (`claim.user_id`).
    pub claim: Option<Claim>,
    /// Changes the loaded set and returns the command's result.
    pub mutation: WalletsMutation,
}

impl SetUpdate {
    /// A unit of work over `user_ids` that loads no named hold or row and
    /// has no claim.
    pub fn of(user_ids: Vec<Uuid>, mutation: WalletsMutation) -> Self {
        SetUpdate {
            user_ids,
            hold_ids: Vec::new(),
            transaction_ids: Vec::new(),
            claim: None,
            mutation,
        }
    }
}

/// What a unit of work returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub output: CommandOutput,
    /// Whether this is the stored result of an earlier command with the
    /// same idempotency key (nothing was changed this time).
    pub replayed: bool,
}

/// Creates, changes and sweeps the aggregates of one kind `A`, a [`Wallet`]
/// or a [`PointAccount`]: every store implements it for both kinds (the
/// stores of this workspace with one generic impl each).
///
/// Common contract of the write methods (those of [`WalletStore`] too),
/// when a `claim` is given:
/// - a record for `(claim.user_id, claim.key)` with the same fingerprint
///   MUST be answered with its stored output and `replayed: true`, changing
///   nothing; with another fingerprint, with `IdempotencyKeyReused`;
/// - a successful unit of work MUST store the record in the same atomic
///   step as its changes; a failed one MUST NOT store it;
/// - under concurrent calls with one key, exactly one may take effect; the
///   others replay it or get `IdempotencyKeyInFlight`.
///
/// A store MUST return `ConcurrencyConflict` only for conflicts that a
/// retry of the whole unit of work can resolve, and `Unavailable` when it
/// cannot reach its storage.
pub trait AggregateStore<A: Aggregate>: Send + Sync + 'static {
    /// Inserts the aggregate the factory makes, with its events. MUST fail
    /// with [`Aggregate::EXISTS`] if the user has one (a wallet in any
    /// status).
    fn create(&self, unit: Create<A>) -> impl Future<Output = Result<Applied, WalletError>> + Send;

    /// Loads the user's aggregate, runs `mutation` on it, and persists
    /// `take_changes()` when it succeeds. A wallet is loaded with its
    /// items, its active holds, and the hold `named` in whatever status; a
    /// point account with its live lots, and told about the lot `named` if
    /// that lot is the account's but no longer live
    /// ([`PointAccount::remember_lot`]). When the mutation fails, MUST
    /// persist nothing and return its error. MUST fail with
    /// [`Aggregate::NOT_FOUND`] if the user has none. A mutation that
    /// changes nothing (an expiry sweep that finds nothing due) MUST write
    /// nothing.
    fn update(&self, unit: Update<A>) -> impl Future<Output = Result<Applied, WalletError>> + Send;

    /// Up to `limit` users whose aggregate has something overdue at `now`:
    /// a wallet an active hold with `expires_at <= now`, a point account a
    /// live lot with `expires_at <= now`. Several sweepers may call this at
    /// once; the same user may be returned to more than one of them.
    fn users_with_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Uuid>, WalletError>> + Send;
}

/// The units of work over several wallets, beside those on one wallet
/// ([`AggregateStore<Wallet>`]), under the same common contract.
pub trait WalletStore: AggregateStore<Wallet> {
    /// One unit of work over several wallets (a transfer, a hold payout).
    ///
    /// - MUST lock or version-check every wallet of `user_ids` together, in
    ///   one canonical order (ascending user id, whatever order the caller
    ///   gives), so that two units of work over the same wallets in
    ///   opposite directions never deadlock and never lose an update; the
    ///   result MUST equal some serial order of the successful commands,
    ///   single-wallet ones included.
    /// - MUST load each wallet as [`AggregateStore::update`] does (its
    ///   items, its active holds) and remember each hold of `hold_ids` in
    ///   the wallet of the set it belongs to ([`Wallet::remember_hold`]).
    /// - MUST remember each row of `transaction_ids` that is in a wallet of
    ///   the set in that wallet ([`Wallet::remember_transaction`]), with its
    ///   reversed amount as stored ([`WalletTransaction::with_reversed_amount`]),
    ///   read under the locks of this unit of work, never from a copy kept
    ///   from an earlier one; and, when the mutation succeeds, MUST store
    ///   the running totals of [`Wallet::reversal_totals`] beside their rows in the
    ///   same atomic step, so that two reversals of one transaction, however
    ///   they interleave, never add up to more than its amount.
    /// - MUST leave a user without a wallet simply absent from the
    ///   [`WalletSet`], so that the mutation answers `wallet_not_found`
    ///   or `counterparty_not_found`; it is not an error of the store.
    /// - MUST run `mutation` once per attempt on the whole set and, when
    ///   it succeeds, persist `wallet.take_changes()` of every wallet of the
    ///   set that changed, in user id order, all in one atomic step with
    ///   the idempotency record of `claim` (scoped to `claim.user_id`, the
    ///   payer); when it fails, MUST persist nothing (not even the expiry of
    ///   overdue holds that the mutation ran first) and return its error.
    /// - A mutation that changes nothing MUST write nothing.
    /// - The common contract of the write methods (replay, one key at a time)
    ///   holds as for a single wallet.
    fn update_wallets(
        &self,
        unit: SetUpdate,
    ) -> impl Future<Output = Result<Applied, WalletError>> + Send;

    /// The row `transaction_id` of the user's wallet followed by the rows of
    /// other wallets that share its transfer id (the other legs of its
    /// transfer or payout), from the store's primary copy; empty when the
    /// user has no wallet or the wallet has no such row. A reversal reads
    /// them first to know which wallets to lock and which rows to load;
    /// rows never change, and the totals they carry are not used.
    fn transaction_legs(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> impl Future<Output = Result<Vec<WalletTransaction>, WalletError>> + Send;
}

/// Reads. They show the stored state (a hold past its expiry that no
/// command or sweep has expired yet still shows as `Active`).
pub trait LedgerReader: Send + Sync + 'static {
    /// The user's wallet, in any status.
    fn wallet(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<WalletView>, WalletError>> + Send;

    /// The wallet's transactions, newest first (by sequence).
    /// MUST fail with `WalletNotFound` if the user has no wallet.
    fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<WalletTransaction>, WalletError>> + Send;

    /// One transaction of the user's wallet, with its reversed amount.
    /// MUST fail with `WalletNotFound` if the user has no wallet; `Ok(None)`
    /// if the wallet has no such transaction (another wallet's included).
    fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> impl Future<Output = Result<Option<WalletTransaction>, WalletError>> + Send;

    /// For each currency of the user's wallet, its balance and held amount
    /// after the wallet's last transaction in that currency with
    /// `created_at <= at` (the latest `created_at`, ties broken by
    /// sequence), ordered by code; a currency with no transaction by then
    /// is absent. Read from the log, one row per currency, not the whole
    /// history. MUST fail with `WalletNotFound` if the user has no wallet.
    fn balances_at(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<WalletItem>, WalletError>> + Send;

    /// The wallet's holds, newest first (by `(created_at, id)`), optionally
    /// of one status. MUST fail with `WalletNotFound` if there is no wallet.
    fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Hold>, WalletError>> + Send;

    /// One hold of the user's wallet. MUST fail with `WalletNotFound` if
    /// there is no wallet; `Ok(None)` if the wallet has no such hold.
    fn hold(
        &self,
        user_id: Uuid,
        hold_id: Uuid,
    ) -> impl Future<Output = Result<Option<Hold>, WalletError>> + Send;

    /// The user's point account.
    fn point_account(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<PointAccountView>, WalletError>> + Send;

    /// The account's transactions, newest first (by sequence). MUST fail
    /// with `PointAccountNotFound` if the user has no account.
    fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<PointTransaction>, WalletError>> + Send;

    /// All wallets, newest first (by `(created_at, id)`), optionally of one status.
    fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<WalletView>, WalletError>> + Send;

    /// The admin statistics for `from..=to` (see [`Statistics`]).
    fn statistics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Statistics, WalletError>> + Send;

    /// Up to `limit` outbox events with a sequence greater than `after`, in
    /// sequence order. A reader that always passes the last sequence it saw
    /// MUST see every event exactly once, however many writers commit at
    /// once: an event never becomes visible with a sequence lower than one
    /// already returned.
    fn events(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, WalletError>> + Send;

    /// Whether the store answers (for readiness checks).
    fn ping(&self) -> impl Future<Output = Result<(), WalletError>> + Send;
}

/// The upkeep of idempotency records, which the write methods store.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Deletes the records created before `older_than` and returns how many
    /// went. MUST keep every record created at or after `older_than`; a key
    /// whose record is gone MUST be treated as never used. Several callers
    /// may purge at once.
    fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, WalletError>> + Send;
}

/// Everything the application service needs.
pub trait Store:
    WalletStore + AggregateStore<PointAccount> + LedgerReader + IdempotencyStore
{
}

impl<T> Store for T where
    T: WalletStore + AggregateStore<PointAccount> + LedgerReader + IdempotencyStore
{
}

/// The event relay's position and lease (see [`crate::relay`]), kept next
/// to the outbox they point into.
///
/// Times are the caller's: every instance passes its own clock's `now`, so
/// the instances' clocks must agree to well within a lease's duration.
pub trait RelayStore: Send + Sync + 'static {
    /// The relay's position and lease as stored: position 0 and no lease
    /// for a relay that never ran.
    fn relay_state(
        &self,
        relay: &RelayName,
    ) -> impl Future<Output = Result<RelayState, WalletError>> + Send;

    /// Takes or renews the lease for `owner` until `now + duration`.
    /// MUST grant it (`Held`, with the stored position) when there is no
    /// lease, when the stored lease has expired (`expires_at <= now`), or
    /// when `owner` holds it (a renewal); MUST refuse it (`Refused`, naming
    /// the holder) while another owner's lease is live, and then change
    /// nothing. Grants MUST be serialised: of concurrent callers at most
    /// one is granted a lease that overlaps another's.
    fn take_relay_lease(
        &self,
        relay: &RelayName,
        owner: Uuid,
        now: DateTime<Utc>,
        duration: chrono::Duration,
    ) -> impl Future<Output = Result<LeaseOutcome, WalletError>> + Send;

    /// Gives the lease up at once, so that another instance takes over
    /// without waiting for its expiry. MUST change nothing unless `owner`
    /// holds the lease; the position stays.
    fn release_relay_lease(
        &self,
        relay: &RelayName,
        owner: Uuid,
    ) -> impl Future<Output = Result<(), WalletError>> + Send;

    /// Moves the position to `to`. MUST move it (`Moved`) only when `owner`
    /// holds a lease live at `now` and `to` is at or past the stored
    /// position; MUST answer `LeaseNotHeld` when the lease is another's,
    /// expired or absent, and `Behind` when the stored position is past
    /// `to`, changing nothing in either case. The check and the move MUST be
    /// one atomic step, so a holder whose lease has just been taken over
    /// cannot move the position after its successor has.
    fn advance_relay_position(
        &self,
        relay: &RelayName,
        owner: Uuid,
        to: u64,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PositionUpdate, WalletError>> + Send;

    /// How many outbox events lie past the stored position, counting those
    /// committed but not yet given a sequence. MUST be cheap (it is polled
    /// for health and metrics): not a scan of the outbox.
    fn relay_lag(&self, relay: &RelayName)
        -> impl Future<Output = Result<u64, WalletError>> + Send;
}
