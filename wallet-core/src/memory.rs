//! An in-memory store that meets the whole store contract.
//!
//! One lock guards all state: a unit of work runs its mutation on a copy of
//! the aggregate while holding the write lock, then applies the changes, so
//! every command is atomic and all commands are serialised. That is simple,
//! obviously correct, and fast enough for embedding, tests and examples;
//! reads share the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::command::{Claim, IdempotencyKey, IdempotencyRecord};
use crate::error::WalletError;
use crate::events::{DomainEvent, StoredEvent};
use crate::money::CurrencyCode;
use crate::points::{PointAccount, PointAccountView, PointTransaction, PointTransactionType};
use crate::query::{
    CurrencyStatistics, Cursor, Page, PageRequest, PointStatistics, Statistics, TransactionFilter,
    TransactionStatistics,
};
use crate::relay::{LeaseOutcome, PositionUpdate, RelayLease, RelayName, RelayState};
use crate::store::{
    AggregateStore, Applied, Create, IdempotencyStore, LedgerReader, RelayStore, SetUpdate, Update,
    WalletStore,
};
use crate::transfer::WalletSet;
use crate::wallet::{
    Hold, HoldStatus, TransactionType, Wallet, WalletItem, WalletStatus, WalletTransaction,
    WalletView,
};

/// The in-memory store. Cheap to share: wrap it in an `Arc`.
#[derive(Default)]
pub struct InMemoryStore {
    state: RwLock<State>,
    /// The event relays' positions and leases, apart from the ledger's
    /// state: they never change in a unit of work with it.
    relays: Mutex<HashMap<RelayName, RelayState>>,
}

/// A wallet as the in-memory store keeps it; see [`InMemoryStore::stored_wallet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWallet {
    pub wallet: Wallet,
    /// Every hold, in creation order.
    pub holds: Vec<Hold>,
    /// The full log, by sequence.
    pub transactions: Vec<WalletTransaction>,
}

/// A point account as the in-memory store keeps it; see
/// [`InMemoryStore::stored_point_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPointAccount {
    /// The aggregate with its live lots.
    pub account: PointAccount,
    /// The full log, by sequence.
    pub transactions: Vec<PointTransaction>,
}

#[derive(Default)]
struct State {
    /// Wallet aggregates by user, holding only their active holds.
    wallets: HashMap<Uuid, Wallet>,
    /// `(created_at, wallet id)` -> user, for the admin listing.
    wallet_order: BTreeMap<(DateTime<Utc>, Uuid), Uuid>,
    holds: HashMap<Uuid, Hold>,
    /// Per wallet, `(created_at, hold id)` of every hold.
    holds_by_wallet: HashMap<Uuid, BTreeSet<(DateTime<Utc>, Uuid)>>,
    /// Per wallet, its log: entry `i` has sequence `i + 1`.
    transactions: HashMap<Uuid, Vec<WalletTransaction>>,
    /// Every wallet transaction -> its wallet id and index in that log.
    transaction_index: HashMap<Uuid, (Uuid, usize)>,
    /// Transfer id -> the legs of that transfer or payout, in order.
    transfer_legs: HashMap<Uuid, Vec<Uuid>>,
    /// The running total of the reversals of each reversed leg, kept
    /// beside the log, whose rows never change.
    reversed: HashMap<Uuid, Decimal>,
    accounts: HashMap<Uuid, PointAccount>,
    /// Every lot ever made -> its account id.
    lot_accounts: HashMap<Uuid, Uuid>,
    point_transactions: HashMap<Uuid, Vec<PointTransaction>>,
    events: Vec<StoredEvent>,
    idempotency: HashMap<(Uuid, IdempotencyKey), IdempotencyRecord>,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave half-applied state:
        // changes are applied only after the mutation has returned.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of a user's stored wallet: the aggregate (with its active
    /// holds), every hold it ever had, oldest first, and its full log. For
    /// tests, invariant checks and tooling; it costs the size of the history.
    pub fn stored_wallet(&self, user_id: Uuid) -> Option<StoredWallet> {
        let state = self.read();
        let wallet = state.wallets.get(&user_id)?.clone();
        let holds = state
            .holds_by_wallet
            .get(&wallet.id())
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| state.holds.get(id).cloned())
            .collect();
        let transactions = state
            .transactions
            .get(&wallet.id())
            .cloned()
            .unwrap_or_default();
        Some(StoredWallet {
            wallet,
            holds,
            transactions,
        })
    }

    /// A copy of a user's stored point account (with its live lots) and its
    /// full log, oldest first.
    pub fn stored_point_account(&self, user_id: Uuid) -> Option<StoredPointAccount> {
        let state = self.read();
        let account = state.accounts.get(&user_id)?.clone();
        let transactions = state
            .point_transactions
            .get(&account.id())
            .cloned()
            .unwrap_or_default();
        Some(StoredPointAccount {
            account,
            transactions,
        })
    }

    /// A copy of the whole outbox, in sequence order.
    pub fn stored_events(&self) -> Vec<StoredEvent> {
        self.read().events.clone()
    }
}

impl State {
    /// The stored answer to a claim, if the key was used before.
    fn replay(&self, claim: &Option<Claim>) -> Option<Result<Applied, WalletError>> {
        let claim = claim.as_ref()?;
        let record = self.idempotency.get(&(claim.user_id, claim.key.clone()))?;
        Some(record.replay(claim).map(|output| Applied {
            output,
            replayed: true,
        }))
    }

    fn remember(
        &mut self,
        claim: Option<Claim>,
        output: &crate::command::CommandOutput,
        now: DateTime<Utc>,
    ) {
        if let Some(claim) = claim {
            let record = IdempotencyRecord {
                user_id: claim.user_id,
                key: claim.key.clone(),
                fingerprint: claim.fingerprint,
                output: output.clone(),
                created_at: now,
            };
            self.idempotency.insert((claim.user_id, claim.key), record);
        }
    }

    fn append_events(&mut self, events: Vec<DomainEvent>) {
        for event in events {
            let sequence = self.events.len() as u64 + 1;
            self.events.push(StoredEvent { sequence, event });
        }
    }

    /// Persists a wallet's changes; the wallet keeps only its active holds.
    fn save_wallet(&mut self, mut wallet: Wallet) {
        let changes = wallet.take_changes();
        for hold_id in &changes.touched {
            if let Some(hold) = wallet.holds().get(hold_id) {
                self.holds_by_wallet
                    .entry(wallet.id())
                    .or_default()
                    .insert((hold.created_at, hold.id));
                self.holds.insert(hold.id, hold.clone());
            }
        }
        for total in wallet.reversal_totals(&changes.transactions) {
            self.reversed
                .insert(total.transaction_id, total.reversed_amount);
        }
        wallet.forget_ended_holds();
        wallet.forget_named_transactions();
        let log = self.transactions.entry(wallet.id()).or_default();
        for transaction in changes.transactions {
            self.transaction_index
                .insert(transaction.id, (wallet.id(), log.len()));
            if let Some(transfer_id) = transaction.transfer_id {
                self.transfer_legs
                    .entry(transfer_id)
                    .or_default()
                    .push(transaction.id);
            }
            log.push(transaction);
        }
        self.append_events(changes.events);
        if changes.created {
            self.wallet_order
                .insert((wallet.created_at(), wallet.id()), wallet.user_id());
        }
        self.wallets.insert(wallet.user_id(), wallet);
    }

    fn save_account(&mut self, mut account: PointAccount) {
        let changes = account.take_changes();
        for lot in &changes.touched {
            self.lot_accounts.insert(lot.id, account.id());
        }
        self.point_transactions
            .entry(account.id())
            .or_default()
            .extend(changes.transactions);
        self.append_events(changes.events);
        self.accounts.insert(account.user_id(), account);
    }

    /// A row of any wallet's log, with its reversed amount as kept.
    fn stored_transaction(&self, transaction_id: Uuid) -> Option<WalletTransaction> {
        let (wallet_id, index) = self.transaction_index.get(&transaction_id)?;
        let row = self.transactions.get(wallet_id)?.get(*index)?;
        Some(self.with_total(row.clone()))
    }

    /// A row with its reversed amount as kept.
    fn with_total(&self, row: WalletTransaction) -> WalletTransaction {
        let total = self.reversed.get(&row.id).copied();
        row.with_reversed_amount(total)
    }

    fn wallet_id(&self, user_id: Uuid) -> Result<Uuid, WalletError> {
        self.wallets
            .get(&user_id)
            .map(Wallet::id)
            .ok_or(WalletError::WalletNotFound)
    }

    /// The log of the user's wallet, oldest first (`WalletNotFound`
    /// without one).
    fn log_of(&self, user_id: Uuid) -> Result<&[WalletTransaction], WalletError> {
        let wallet_id = self.wallet_id(user_id)?;
        Ok(self
            .transactions
            .get(&wallet_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]))
    }
}

/// The balances of a log at `at`: per currency, the after-values of its
/// latest row (by `created_at`, then sequence) with `created_at <= at`,
/// ordered by code. Every store answers as this does.
pub fn balances_at(log: &[WalletTransaction], at: DateTime<Utc>) -> Vec<WalletItem> {
    let mut last: BTreeMap<CurrencyCode, &WalletTransaction> = BTreeMap::new();
    for row in log.iter().filter(|row| row.created_at <= at) {
        let newer = last
            .get(&row.currency)
            .is_none_or(|seen| (seen.created_at, seen.sequence) <= (row.created_at, row.sequence));
        if newer {
            last.insert(row.currency, row);
        }
    }
    last.into_values()
        .map(|row| WalletItem {
            currency: row.currency,
            balance: row.balance_after,
            held: row.held_after,
        })
        .collect()
}

/// Newest-first page over `(created_at, id)` keys.
fn position_page<K: Copy, T>(
    keys: impl DoubleEndedIterator<Item = ((DateTime<Utc>, Uuid), K)>,
    page: PageRequest,
    lookup: impl Fn(K) -> Option<T>,
    keep: impl Fn(&T) -> bool,
    position_of: impl Fn(&T) -> (DateTime<Utc>, Uuid),
) -> Result<Page<T>, WalletError> {
    let before = page.cursor.map(|c| c.position()).transpose()?;
    let items: Vec<T> = keys
        .rev()
        .filter(|(position, _)| before.is_none_or(|b| *position < b))
        .filter_map(|(_, key)| lookup(key))
        .filter(|item| keep(item))
        .take(page.limit as usize + 1)
        .collect();
    Ok(Page::from_overfetch(items, page.limit, |item| {
        let (at, id) = position_of(item);
        Cursor::Position { at, id }
    }))
}

/// Newest-first page over a log whose entry `i` has sequence `i + 1`.
fn sequence_page<T: Clone>(
    log: &[T],
    page: PageRequest,
    keep: impl Fn(&T) -> bool,
    sequence_of: impl Fn(&T) -> u64,
) -> Result<Page<T>, WalletError> {
    let end = match page.cursor {
        None => log.len(),
        Some(cursor) => (cursor.sequence()?.saturating_sub(1) as usize).min(log.len()),
    };
    let items: Vec<T> = log[..end]
        .iter()
        .rev()
        .filter(|item| keep(item))
        .take(page.limit as usize + 1)
        .cloned()
        .collect();
    Ok(Page::from_overfetch(items, page.limit, |item| {
        Cursor::Sequence(sequence_of(item))
    }))
}

/// What the in-memory store needs of each kind of aggregate besides
/// [`Aggregate`], so that one create and one update unit of work serve
/// wallets and point accounts.
trait Kept: Aggregate {
    /// How the internal error names the aggregate.
    const KIND: &'static str;
    /// The user's stored aggregate.
    fn find(state: &State, user_id: Uuid) -> Option<&Self>;
    /// Tells a loaded aggregate about the hold or lot a command names.
    fn load_named(&mut self, state: &State, named: Uuid);
    /// Persists the aggregate's changes.
    fn save(self, state: &mut State);
    /// Every stored aggregate of the kind.
    fn all(state: &State) -> impl Iterator<Item = &Self>;
    /// When its first live hold or lot expires.
    fn next_expiry(&self) -> Option<DateTime<Utc>>;
}

impl Kept for Wallet {
    const KIND: &'static str = "a wallet";
    fn find(state: &State, user_id: Uuid) -> Option<&Self> {
        state.wallets.get(&user_id)
    }
    fn load_named(&mut self, state: &State, hold_id: Uuid) {
        if let Some(hold) = state.holds.get(&hold_id) {
            self.remember_hold(hold.clone());
        }
    }
    fn save(self, state: &mut State) {
        state.save_wallet(self);
    }
    fn all(state: &State) -> impl Iterator<Item = &Self> {
        state.wallets.values()
    }
    fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.next_hold_expiry()
    }
}

impl Kept for PointAccount {
    const KIND: &'static str = "an account";
    fn find(state: &State, user_id: Uuid) -> Option<&Self> {
        state.accounts.get(&user_id)
    }
    fn load_named(&mut self, state: &State, lot_id: Uuid) {
        if state.lot_accounts.get(&lot_id) == Some(&self.id()) {
            self.remember_lot(lot_id);
        }
    }
    fn save(self, state: &mut State) {
        state.save_account(self);
    }
    fn all(state: &State) -> impl Iterator<Item = &Self> {
        state.accounts.values()
    }
    fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.next_lot_expiry()
    }
}

impl InMemoryStore {
    /// Inserts the aggregate the factory makes, under the write lock.
    fn create_one<A: Kept>(&self, unit: Create<A>) -> Result<Applied, WalletError> {
        let Create {
            user_id,
            claim,
            factory,
        } = unit;
        let mut state = self.write();
        if let Some(replayed) = state.replay(&claim) {
            return replayed;
        }
        if A::find(&state, user_id).is_some() {
            return Err(A::EXISTS);
        }
        let (aggregate, output) = factory()?;
        if aggregate.user_id() != user_id {
            return Err(WalletError::Internal(format!(
                "factory made {} for another user",
                A::KIND
            )));
        }
        let now = aggregate.created_at();
        aggregate.save(&mut state);
        state.remember(claim, &output, now);
        Ok(Applied {
            output,
            replayed: false,
        })
    }

    /// Runs the mutation on a copy of the stored aggregate under the write
    /// lock, and keeps the copy only when the mutation succeeds and changed
    /// something.
    fn update_one<A: Kept>(&self, unit: Update<A>) -> Result<Applied, WalletError> {
        let Update {
            user_id,
            named,
            claim,
            mutation,
        } = unit;
        let mut state = self.write();
        if let Some(replayed) = state.replay(&claim) {
            return replayed;
        }
        let mut aggregate = A::find(&state, user_id).cloned().ok_or(A::NOT_FOUND)?;
        if let Some(named) = named {
            aggregate.load_named(&state, named);
        }
        let output = mutation(&mut aggregate)?;
        if aggregate.is_changed() {
            let now = aggregate.updated_at();
            aggregate.save(&mut state);
            state.remember(claim, &output, now);
        }
        Ok(Applied {
            output,
            replayed: false,
        })
    }
}

impl InMemoryStore {
    /// Runs the mutation on copies of the set's stored wallets under the
    /// write lock, which serialises it with every other unit of work, and
    /// keeps the copies that changed, in user id order, only when the
    /// mutation succeeds.
    fn update_set(&self, unit: SetUpdate) -> Result<Applied, WalletError> {
        let mut state = self.write();
        if let Some(replayed) = state.replay(&unit.claim) {
            return replayed;
        }
        let mut set: WalletSet = unit
            .user_ids
            .iter()
            .filter_map(|user_id| state.wallets.get(user_id).cloned())
            .collect();
        for hold in unit.hold_ids.iter().filter_map(|id| state.holds.get(id)) {
            // Only the wallet the hold belongs to takes it.
            set.iter_mut()
                .for_each(|wallet| wallet.remember_hold(hold.clone()));
        }
        for row in unit
            .transaction_ids
            .iter()
            .filter_map(|id| state.stored_transaction(*id))
        {
            // Only the wallet the row belongs to takes it, with the total
            // as it stands under the write lock.
            set.iter_mut()
                .for_each(|wallet| wallet.remember_transaction(row.clone()));
        }
        let output = (unit.mutation)(&mut set)?;
        let changed: Vec<Wallet> = set
            .into_iter()
            .filter(|wallet| !wallet.changes().is_empty())
            .collect();
        if let Some(now) = changed.iter().map(Wallet::updated_at).max() {
            changed
                .into_iter()
                .for_each(|wallet| state.save_wallet(wallet));
            state.remember(unit.claim, &output, now);
        }
        Ok(Applied {
            output,
            replayed: false,
        })
    }
}

impl<A: Kept> AggregateStore<A> for InMemoryStore {
    async fn create(&self, unit: Create<A>) -> Result<Applied, WalletError> {
        self.create_one(unit)
    }

    async fn update(&self, unit: Update<A>) -> Result<Applied, WalletError> {
        self.update_one(unit)
    }

    async fn users_with_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, WalletError> {
        let state = self.read();
        Ok(A::all(&state)
            .filter(|aggregate| aggregate.next_expiry().is_some_and(|at| at <= now))
            .map(Aggregate::user_id)
            .take(limit as usize)
            .collect())
    }
}

impl WalletStore for InMemoryStore {
    async fn update_wallets(&self, unit: SetUpdate) -> Result<Applied, WalletError> {
        self.update_set(unit)
    }

    async fn transaction_legs(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Vec<WalletTransaction>, WalletError> {
        let state = self.read();
        let Ok(wallet_id) = state.wallet_id(user_id) else {
            return Ok(Vec::new());
        };
        let Some(named) = state
            .stored_transaction(transaction_id)
            .filter(|row| row.wallet_id == wallet_id)
        else {
            return Ok(Vec::new());
        };
        let others = named
            .transfer_id
            .and_then(|transfer_id| state.transfer_legs.get(&transfer_id))
            .into_iter()
            .flatten()
            .filter(|id| **id != transaction_id)
            .filter_map(|id| state.stored_transaction(*id))
            .filter(|row| row.wallet_id != wallet_id);
        Ok(std::iter::once(named.clone()).chain(others).collect())
    }
}

impl IdempotencyStore for InMemoryStore {
    async fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, WalletError> {
        let mut state = self.write();
        let before = state.idempotency.len();
        state
            .idempotency
            .retain(|_, record| record.created_at >= older_than);
        Ok((before - state.idempotency.len()) as u64)
    }
}

impl LedgerReader for InMemoryStore {
    async fn wallet(&self, user_id: Uuid) -> Result<Option<WalletView>, WalletError> {
        Ok(self.read().wallets.get(&user_id).map(Wallet::view))
    }

    async fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<WalletTransaction>, WalletError> {
        let state = self.read();
        let log = state.log_of(user_id)?;
        sequence_page(
            log,
            page,
            |t| {
                filter.currency.is_none_or(|c| c == t.currency)
                    && filter
                        .transaction_type
                        .is_none_or(|k| k == t.transaction_type)
            },
            |t| t.sequence,
        )
        .map(|page| Page {
            items: page
                .items
                .into_iter()
                .map(|row| state.with_total(row))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Option<WalletTransaction>, WalletError> {
        let state = self.read();
        let wallet_id = state.wallet_id(user_id)?;
        Ok(state
            .stored_transaction(transaction_id)
            .filter(|row| row.wallet_id == wallet_id))
    }

    async fn balances_at(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<WalletItem>, WalletError> {
        let state = self.read();
        Ok(balances_at(state.log_of(user_id)?, at))
    }

    async fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> Result<Page<Hold>, WalletError> {
        let state = self.read();
        let wallet_id = state.wallet_id(user_id)?;
        let empty = BTreeSet::new();
        let keys = state.holds_by_wallet.get(&wallet_id).unwrap_or(&empty);
        position_page(
            keys.iter().map(|k| (*k, k.1)),
            page,
            |id| state.holds.get(&id).cloned(),
            |hold| status.is_none_or(|s| s == hold.status),
            |hold| (hold.created_at, hold.id),
        )
    }

    async fn hold(&self, user_id: Uuid, hold_id: Uuid) -> Result<Option<Hold>, WalletError> {
        let state = self.read();
        let wallet_id = state.wallet_id(user_id)?;
        Ok(state
            .holds
            .get(&hold_id)
            .filter(|h| h.wallet_id == wallet_id)
            .cloned())
    }

    async fn point_account(&self, user_id: Uuid) -> Result<Option<PointAccountView>, WalletError> {
        Ok(self.read().accounts.get(&user_id).map(PointAccount::view))
    }

    async fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<PointTransaction>, WalletError> {
        let state = self.read();
        let account_id = state
            .accounts
            .get(&user_id)
            .map(|a| a.id())
            .ok_or(WalletError::PointAccountNotFound)?;
        let log = state
            .point_transactions
            .get(&account_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        sequence_page(log, page, |_| true, |t| t.sequence)
    }

    async fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> Result<Page<WalletView>, WalletError> {
        let state = self.read();
        position_page(
            state.wallet_order.iter().map(|(k, user)| (*k, *user)),
            page,
            |user| state.wallets.get(&user).map(Wallet::view),
            |wallet| status.is_none_or(|s| s == wallet.status),
            |wallet| (wallet.created_at, wallet.id),
        )
    }

    async fn statistics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Statistics, WalletError> {
        let state = self.read();
        let mut wallets: BTreeMap<WalletStatus, u64> =
            WalletStatus::ALL.iter().map(|s| (*s, 0)).collect();
        let mut currencies: BTreeMap<CurrencyCode, CurrencyStatistics> = BTreeMap::new();
        for wallet in state.wallets.values() {
            *wallets.entry(wallet.status()).or_default() += 1;
            for item in wallet.items().values() {
                let entry = currencies
                    .entry(item.currency)
                    .or_insert_with(|| CurrencyStatistics {
                        currency: item.currency,
                        balance: Decimal::ZERO,
                        held: Decimal::ZERO,
                        wallets: 0,
                    });
                entry.balance += item.balance;
                entry.held += item.held;
                entry.wallets += 1;
            }
        }
        let in_window = |at: DateTime<Utc>| from <= at && at <= to;
        let mut transactions: BTreeMap<(TransactionType, CurrencyCode), (u64, Decimal)> =
            BTreeMap::new();
        for transaction in state
            .transactions
            .values()
            .flatten()
            .filter(|t| in_window(t.created_at))
        {
            let volume = if transaction.amount.is_zero() {
                transaction.held_change.abs()
            } else {
                transaction.amount.abs()
            };
            let entry = transactions
                .entry((transaction.transaction_type, transaction.currency))
                .or_insert((0, Decimal::ZERO));
            entry.0 += 1;
            entry.1 += volume;
        }
        let mut points = PointStatistics::default();
        let overflow = || WalletError::Internal("point statistics overflow".into());
        for account in state.accounts.values() {
            points.available = points
                .available
                .checked_add(account.available_points())
                .ok_or_else(overflow)?;
            points.pending = points
                .pending
                .checked_add(account.pending_points())
                .ok_or_else(overflow)?;
        }
        for transaction in state
            .point_transactions
            .values()
            .flatten()
            .filter(|t| in_window(t.created_at))
        {
            accumulate_point_flow(
                &mut points,
                transaction.transaction_type,
                transaction.points,
            )?;
        }
        Ok(Statistics {
            from,
            to,
            wallets,
            currencies: currencies.into_values().collect(),
            transactions: transactions
                .into_iter()
                .map(
                    |((transaction_type, currency), (count, volume))| TransactionStatistics {
                        transaction_type,
                        currency,
                        count,
                        volume,
                    },
                )
                .collect(),
            points,
        })
    }

    async fn events(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, WalletError> {
        let state = self.read();
        let start = (after as usize).min(state.events.len());
        Ok(state.events[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn ping(&self) -> Result<(), WalletError> {
        Ok(())
    }
}

/// Adds one point transaction to the window's flows (shared by stores so
/// that every store counts the same way).
///
/// Sums are checked: totals beyond `i64` are an internal error, never a
/// wrapped number.
pub fn accumulate_point_flow(
    points: &mut PointStatistics,
    transaction_type: PointTransactionType,
    change: i64,
) -> Result<(), WalletError> {
    let (total, amount) = match transaction_type {
        PointTransactionType::Earn | PointTransactionType::PendingConfirmed => {
            (&mut points.earned, Some(change))
        }
        PointTransactionType::Adjust if change > 0 => (&mut points.earned, Some(change)),
        PointTransactionType::Adjust | PointTransactionType::Spend => {
            (&mut points.spent, change.checked_neg())
        }
        PointTransactionType::Expire => (&mut points.expired, change.checked_neg()),
        PointTransactionType::EarnPending | PointTransactionType::PendingCancelled => return Ok(()),
    };
    *total = amount
        .and_then(|amount| total.checked_add(amount))
        .ok_or_else(|| WalletError::Internal("point statistics overflow".into()))?;
    Ok(())
}

impl InMemoryStore {
    fn relays(&self) -> MutexGuard<'_, HashMap<RelayName, RelayState>> {
        // Every change below is one assignment, so a panic elsewhere while
        // holding the lock cannot leave a relay's state half-written.
        self.relays
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One lock over all relays serialises every grant and every move, which
/// is what the port asks for.
impl RelayStore for InMemoryStore {
    async fn relay_state(&self, relay: &RelayName) -> Result<RelayState, WalletError> {
        Ok(self.relays().get(relay).copied().unwrap_or_default())
    }

    async fn take_relay_lease(
        &self,
        relay: &RelayName,
        owner: Uuid,
        now: DateTime<Utc>,
        duration: chrono::Duration,
    ) -> Result<LeaseOutcome, WalletError> {
        let mut relays = self.relays();
        let state = relays.entry(relay.clone()).or_default();
        if let Some(holder) = state.lease {
            if holder.owner != owner && holder.is_live(now) {
                return Ok(LeaseOutcome::Refused { holder });
            }
        }
        let lease = RelayLease {
            owner,
            expires_at: now + duration,
        };
        state.lease = Some(lease);
        Ok(LeaseOutcome::Held {
            lease,
            position: state.position,
        })
    }

    async fn release_relay_lease(&self, relay: &RelayName, owner: Uuid) -> Result<(), WalletError> {
        let mut relays = self.relays();
        if let Some(state) = relays.get_mut(relay) {
            if state.lease.is_some_and(|lease| lease.owner == owner) {
                state.lease = None;
            }
        }
        Ok(())
    }

    async fn advance_relay_position(
        &self,
        relay: &RelayName,
        owner: Uuid,
        to: u64,
        now: DateTime<Utc>,
    ) -> Result<PositionUpdate, WalletError> {
        let mut relays = self.relays();
        let Some(state) = relays.get_mut(relay) else {
            return Ok(PositionUpdate::LeaseNotHeld);
        };
        if !state.is_held_by(owner, now) {
            return Ok(PositionUpdate::LeaseNotHeld);
        }
        if state.position > to {
            return Ok(PositionUpdate::Behind {
                position: state.position,
            });
        }
        state.position = to;
        Ok(PositionUpdate::Moved)
    }

    async fn relay_lag(&self, relay: &RelayName) -> Result<u64, WalletError> {
        let position = self.relays().get(relay).map_or(0, |state| state.position);
        let state = self.read();
        // The outbox is in sequence order: a binary search, not a scan.
        let delivered = state.events.partition_point(|e| e.sequence <= position);
        Ok(u64::try_from(state.events.len() - delivered).unwrap_or(u64::MAX))
    }
}
