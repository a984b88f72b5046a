//! The application service: runs every command and query over any store.
//!
//! It validates what it can before touching the store, builds the unit of
//! work (expire what is overdue, then apply the command), hands it to the
//! store with the idempotency claim, and retries a bounded number of times
//! when the store reports a concurrency conflict.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::command::{
    account_output, wallet_output, AggregateCommand, Claim, Command, CommandOutput, IdempotencyKey,
    ValidCommand, WalletsCommand,
};
use crate::context::{
    truncate_to_micros, Clock, Ctx, IdGenerator, Policy, SystemClock, UuidV7Generator,
};
use crate::error::WalletError;
use crate::events::StoredEvent;
use crate::points::{PointAccount, PointAccountView, PointTransaction};
use crate::query::{
    balances_time, events_limit, statistics_window, BalancesAt, Page, PageRequest, Statistics,
    TransactionFilter,
};
use crate::reversal::{ReversalPlan, ReversalRequest};
use crate::store::{AggregateStore, Applied, Create, Factory, Mutation, SetUpdate, Store, Update};
use crate::transfer::WalletSet;
use crate::wallet::{Hold, HoldStatus, Wallet, WalletStatus, WalletTransaction, WalletView};

/// How many times a unit of work is tried when the store keeps reporting
/// concurrency conflicts.
pub const CONFLICT_ATTEMPTS_MAX: u32 = 8;
/// How many overdue aggregates one sweep round handles at most, per kind.
pub const SWEEP_BATCH_MAX: u32 = 1000;
/// How many rounds one sweep runs at most before it leaves the rest to the
/// next sweep.
pub const SWEEP_ROUNDS_MAX: u32 = 16;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Wallets whose overdue holds were expired.
    pub wallets: usize,
    /// Point accounts whose overdue lots were expired.
    pub point_accounts: usize,
    /// Aggregates that could not be swept this time (left for the next).
    pub failures: usize,
}

/// An aggregate a sweep expires: where its count goes in the report.
trait Sweep: Aggregate {
    fn swept(report: &mut SweepReport) -> &mut usize;
}

impl Sweep for Wallet {
    fn swept(report: &mut SweepReport) -> &mut usize {
        &mut report.wallets
    }
}

impl Sweep for PointAccount {
    fn swept(report: &mut SweepReport) -> &mut usize {
        &mut report.point_accounts
    }
}

/// The clock, ids, policy and key of one unit of work.
struct UnitContext {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    policy: Arc<Policy>,
    idempotency_key: Option<Arc<str>>,
}

impl UnitContext {
    /// Runs `work` with a context at the current time: each call (a retry
    /// included) reads the clock afresh.
    fn run<R>(&self, work: impl FnOnce(&Ctx<'_>) -> R) -> R {
        work(&Ctx {
            now: truncate_to_micros(self.clock.now()),
            ids: &*self.ids,
            policy: &self.policy,
            idempotency_key: self.idempotency_key.as_deref(),
        })
    }

    /// The mutation a store runs (again on each retry): `change` with a
    /// context read afresh at each call.
    fn mutation<A: 'static>(
        self,
        change: impl Fn(&mut A, &Ctx<'_>) -> Result<CommandOutput, WalletError> + Send + Sync + 'static,
    ) -> Mutation<A> {
        Arc::new(move |aggregate: &mut A| self.run(|ctx| change(aggregate, ctx)))
    }
}

/// Runs commands and queries against a store.
pub struct WalletService<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    policy: Arc<Policy>,
}

impl<S> Clone for WalletService<S> {
    fn clone(&self) -> Self {
        WalletService {
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            ids: Arc::clone(&self.ids),
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<S: Store> WalletService<S> {
    /// A service on the system clock with UUID v7 ids.
    pub fn new(store: S, policy: Policy) -> Self {
        Self::with_parts(
            Arc::new(store),
            policy,
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator::new()),
        )
    }

    /// A service with an injected clock and id generator.
    pub fn with_parts(
        store: Arc<S>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        WalletService {
            store,
            clock,
            ids,
            policy: Arc::new(policy),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current time, as the service sees it.
    pub fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(self.clock.now())
    }

    /// Runs a command. With a key, a repeat with the same parameters returns
    /// the first result (`replayed: true`) and changes nothing.
    ///
    /// The command is validated once, before any store work; each attempt
    /// of the unit of work applies the validated command.
    pub async fn execute(
        &self,
        command: Command,
        key: Option<IdempotencyKey>,
    ) -> Result<Applied, WalletError> {
        let valid = command.validate(&self.policy)?;
        let user_id = command.user_id();
        let claim = key.map(|key| Claim {
            user_id,
            fingerprint: command.fingerprint(),
            key,
        });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.run_once(user_id, &valid, claim.clone()).await;
            match result {
                Err(error) if error.is_retryable_conflict() && attempt < CONFLICT_ATTEMPTS_MAX => {
                    continue
                }
                other => return other,
            }
        }
    }

    async fn run_once(
        &self,
        user_id: Uuid,
        valid: &ValidCommand,
        claim: Option<Claim>,
    ) -> Result<Applied, WalletError> {
        let unit = self.unit(claim.as_ref().map(|c| Arc::from(c.key.as_str())));
        match valid {
            ValidCommand::CreateWallet {
                default_currency, ..
            } => {
                let default_currency = *default_currency;
                self.run_create(user_id, unit, claim, wallet_output, move |ctx| {
                    let currency = default_currency.unwrap_or(ctx.policy.default_wallet_currency);
                    Wallet::open(user_id, currency, ctx)
                })
                .await
            }
            ValidCommand::Wallet(command) => self.run_update(user_id, command, unit, claim).await,
            ValidCommand::Wallets(wallets_command) => {
                self.run_over_wallets(wallets_command, unit, claim).await
            }
            ValidCommand::Reversal(request) => self.run_reversal(request, unit, claim).await,
            ValidCommand::CreatePointAccount { .. } => {
                self.run_create(user_id, unit, claim, account_output, move |ctx| {
                    Ok(PointAccount::open(user_id, ctx))
                })
                .await
            }
            ValidCommand::PointAccount(command) => {
                self.run_update(user_id, command, unit, claim).await
            }
        }
    }

    /// Hands the creation of the user's aggregate to the store: `open`
    /// makes it, `output` is the command's answer.
    async fn run_create<A: Aggregate>(
        &self,
        user_id: Uuid,
        unit: UnitContext,
        claim: Option<Claim>,
        output: fn(&A) -> CommandOutput,
        open: impl Fn(&Ctx<'_>) -> Result<A, WalletError> + Send + Sync + 'static,
    ) -> Result<Applied, WalletError>
    where
        S: AggregateStore<A>,
    {
        let factory: Factory<A> = Arc::new(move || {
            let aggregate = unit.run(&open)?;
            let answer = output(&aggregate);
            Ok((aggregate, answer))
        });
        let unit = Create {
            user_id,
            claim,
            factory,
        };
        self.store.create(unit).await
    }

    /// Hands a command on one existing aggregate to the store as a unit of
    /// work on that aggregate.
    async fn run_update<C: AggregateCommand>(
        &self,
        user_id: Uuid,
        command: &C,
        unit: UnitContext,
        claim: Option<Claim>,
    ) -> Result<Applied, WalletError>
    where
        S: AggregateStore<C::Target>,
    {
        let named = command.named();
        let command = command.clone();
        let mutation = unit.mutation(move |target: &mut C::Target, ctx| command.apply(target, ctx));
        let unit = Update {
            user_id,
            named,
            claim,
            mutation,
        };
        self.store.update(unit).await
    }

    /// Hands a transfer or payout to the store as one unit of work over
    /// every wallet it touches, listed in user id order.
    async fn run_over_wallets(
        &self,
        wallets_command: &WalletsCommand,
        unit: UnitContext,
        claim: Option<Claim>,
    ) -> Result<Applied, WalletError> {
        let (user_ids, hold_ids) = (wallets_command.user_ids(), wallets_command.hold_ids());
        let wallets_command = wallets_command.clone();
        let mutation =
            unit.mutation(move |set: &mut WalletSet, ctx| wallets_command.apply(set, ctx));
        self.store
            .update_wallets(SetUpdate {
                user_ids,
                hold_ids,
                transaction_ids: Vec::new(),
                claim,
                mutation,
            })
            .await
    }

    /// Hands a reversal to the store as one unit of work over the wallets
    /// of the original's legs. The legs are read first only to know which
    /// wallets to lock and which rows to load (see [`ReversalPlan`]); the
    /// store loads the rows again, with their totals, under the locks.
    async fn run_reversal(
        &self,
        request: &ReversalRequest,
        unit: UnitContext,
        claim: Option<Claim>,
    ) -> Result<Applied, WalletError> {
        let legs = self
            .store
            .transaction_legs(request.user_id, request.transaction_id)
            .await?;
        let plan = ReversalPlan::of(request.user_id, request.transaction_id, &legs);
        let request = request.clone();
        let mutation = unit.mutation(move |set: &mut WalletSet, ctx| request.apply(set, ctx));
        self.store
            .update_wallets(SetUpdate {
                user_ids: plan.user_ids,
                hold_ids: Vec::new(),
                transaction_ids: plan.transaction_ids,
                claim,
                mutation,
            })
            .await
    }

    /// What a unit of work needs to build its [`Ctx`], owned so that the
    /// unit can be handed to the store (and called again on retry).
    fn unit(&self, idempotency_key: Option<Arc<str>>) -> UnitContext {
        UnitContext {
            clock: Arc::clone(&self.clock),
            ids: Arc::clone(&self.ids),
            policy: Arc::clone(&self.policy),
            idempotency_key,
        }
    }

    /// Expires overdue holds and point lots, in rounds of up to `batch`
    /// aggregates of each kind (at most [`SWEEP_BATCH_MAX`]), until a round
    /// finds fewer than `batch` or [`SWEEP_ROUNDS_MAX`] rounds have run, so a
    /// burst of expiries is caught up within one call. Safe to run from
    /// several processes at once: each aggregate is expired in its own unit
    /// of work, and one that another sweeper got to first simply has nothing
    /// left to do (and writes nothing).
    pub async fn sweep_expired(&self, batch: u32) -> Result<SweepReport, WalletError> {
        let batch = batch.clamp(1, SWEEP_BATCH_MAX);
        let mut report = SweepReport::default();
        for _ in 0..SWEEP_ROUNDS_MAX {
            let now = self.now();
            let wallets = self
                .sweep(now, batch, &mut report, |wallet: &mut Wallet, ctx| {
                    wallet.expire_overdue_holds(ctx)?;
                    Ok(wallet_output(wallet))
                })
                .await?;
            let accounts = self
                .sweep(
                    now,
                    batch,
                    &mut report,
                    |account: &mut PointAccount, ctx| {
                        account.expire_overdue_lots(ctx);
                        Ok(account_output(account))
                    },
                )
                .await?;
            if wallets < batch as usize && accounts < batch as usize {
                break;
            }
        }
        Ok(report)
    }

    /// Deletes the idempotency records older than the policy's
    /// `idempotency_retention` and returns how many went. A key whose
    /// record is gone is a new command again. Safe to run from several
    /// processes at once.
    pub async fn purge_idempotency_records(&self) -> Result<u64, WalletError> {
        let older_than = self
            .now()
            .checked_sub_signed(self.policy.idempotency_retention)
            .ok_or_else(|| WalletError::Internal("idempotency retention out of range".into()))?;
        self.store.purge_idempotency_records(older_than).await
    }

    /// One round of a sweep over the aggregates of kind `A`: up to `batch`
    /// users with something overdue, each expired by `expire` in its own
    /// unit of work and counted in `report`. Returns how many users were
    /// found; an unavailable store stops the sweep.
    async fn sweep<A: Sweep>(
        &self,
        now: DateTime<Utc>,
        batch: u32,
        report: &mut SweepReport,
        expire: fn(&mut A, &Ctx<'_>) -> Result<CommandOutput, WalletError>,
    ) -> Result<usize, WalletError>
    where
        S: AggregateStore<A>,
    {
        let found = AggregateStore::<A>::users_with_overdue(&*self.store, now, batch).await?;
        for user_id in &found {
            let mutation = self.unit(None).mutation(expire);
            match self.store.update(Update::of(*user_id, mutation)).await {
                Ok(_) => *A::swept(report) += 1,
                Err(WalletError::Unavailable(reason)) => {
                    return Err(WalletError::Unavailable(reason))
                }
                Err(_) => report.failures += 1,
            }
        }
        Ok(found.len())
    }

    // ---- queries -----------------------------------------------------------

    /// The user's wallet, or `wallet_not_found`.
    pub async fn wallet(&self, user_id: Uuid) -> Result<WalletView, WalletError> {
        self.store
            .wallet(user_id)
            .await?
            .ok_or(WalletError::WalletNotFound)
    }

    /// The wallet's transactions, newest first.
    pub async fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<WalletTransaction>, WalletError> {
        if let Some(currency) = filter.currency {
            self.policy.currencies.get(currency)?;
        }
        if let Some(cursor) = page.cursor {
            cursor.sequence()?;
        }
        self.store.transactions(user_id, filter, page).await
    }

    /// One transaction of the user's wallet, with its reversed amount, or
    /// `wallet_not_found` / `transaction_not_found`.
    pub async fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<WalletTransaction, WalletError> {
        self.store
            .transaction(user_id, transaction_id)
            .await?
            .ok_or(WalletError::TransactionNotFound)
    }

    /// The wallet's balances at `at` (default: now), from its log.
    pub async fn balances_at(
        &self,
        user_id: Uuid,
        at: Option<DateTime<Utc>>,
    ) -> Result<BalancesAt, WalletError> {
        let at = balances_time(at, self.now())?;
        let balances = self.store.balances_at(user_id, at).await?;
        Ok(BalancesAt { at, balances })
    }

    /// The wallet's holds, newest first.
    pub async fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> Result<Page<Hold>, WalletError> {
        if let Some(cursor) = page.cursor {
            cursor.position()?;
        }
        self.store.holds(user_id, status, page).await
    }

    /// One hold, or `wallet_not_found` / `hold_not_found`.
    pub async fn hold(&self, user_id: Uuid, hold_id: Uuid) -> Result<Hold, WalletError> {
        self.store
            .hold(user_id, hold_id)
            .await?
            .ok_or(WalletError::HoldNotFound)
    }

    /// The user's point account, or `point_account_not_found`.
    pub async fn point_account(&self, user_id: Uuid) -> Result<PointAccountView, WalletError> {
        self.store
            .point_account(user_id)
            .await?
            .ok_or(WalletError::PointAccountNotFound)
    }

    /// The point account's transactions, newest first.
    pub async fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<PointTransaction>, WalletError> {
        if let Some(cursor) = page.cursor {
            cursor.sequence()?;
        }
        self.store.point_transactions(user_id, page).await
    }

    /// All wallets, newest first (admin).
    pub async fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> Result<Page<WalletView>, WalletError> {
        if let Some(cursor) = page.cursor {
            cursor.position()?;
        }
        self.store.wallets(status, page).await
    }

    /// Statistics for `from..=to`, by default the last 24 hours (admin).
    pub async fn statistics(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Statistics, WalletError> {
        let (from, to) = statistics_window(from, to, self.now())?;
        self.store.statistics(from, to).await
    }

    /// Outbox events after `after` (admin). Returns the events and the
    /// sequence to pass next time.
    pub async fn events(
        &self,
        after: Option<u64>,
        limit: Option<i64>,
    ) -> Result<(Vec<StoredEvent>, u64), WalletError> {
        let limit = events_limit(limit)?;
        let after = after.unwrap_or(0);
        let events = self.store.events(after, limit).await?;
        let next_after = events.last().map_or(after, |e| e.sequence);
        Ok((events, next_after))
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), WalletError> {
        self.store.ping().await
    }
}
