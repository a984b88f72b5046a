//! A batch's state: its aggregates as the commands applied so far left
//! them, the records its keys have, and what it will write. Applying a
//! command here is pure (no I/O): the same code serves a batch of many, a
//! batch of one, and both aggregates ([`Working`] is generic over
//! [`Aggregate`]).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use wallet_core::{
    Applied, Claim, CommandOutput, DomainEvent, IdempotencyKey, IdempotencyRecord, PointAccount,
    Wallet, WalletError, WalletSet,
};

use super::kept::WalletCache;
use super::queue::{Command, Work};
use crate::aggregate::{Aggregate, AggregateColumns};
use crate::idempotency::{record_of, replay};
use crate::write::{RowWrite, WriteColumns};

/// An aggregate in a batch: as the commands applied so far left it.
pub(crate) struct Working<A: Aggregate> {
    aggregate: A,
    loaded_version: u64,
    changed: bool,
    /// Taken from the writer's kept copies: written even if unchanged, so
    /// that the write's version check proves the copy was the newest.
    kept: bool,
    transactions: Vec<A::Transaction>,
    touched: Vec<A::Touched>,
}

impl<A: Aggregate> Working<A> {
    fn new(aggregate: A, kept: bool) -> Self {
        Working {
            loaded_version: aggregate.version(),
            aggregate,
            changed: false,
            kept,
            transactions: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Runs `mutation` on a copy, so that a command that fails leaves
    /// nothing behind; one that succeeds becomes the aggregate the next
    /// command sees, and its events join `events`. Returns the output and,
    /// when the command changed something, the time of its change.
    fn apply(
        &mut self,
        mutation: &(dyn Fn(&mut A) -> Result<CommandOutput, WalletError> + Send + Sync),
        events: &mut Vec<DomainEvent>,
    ) -> Result<(CommandOutput, Option<DateTime<Utc>>), WalletError> {
        let mut trial = self.aggregate.clone();
        let output = guarded(|| mutation(&mut trial))?;
        Ok((output, self.absorb(trial, events)))
    }

    /// Makes `trial`, a copy a command changed successfully, the aggregate
    /// the next command sees, taking its changes (its events join
    /// `events`). Returns the time of the change, if there was one.
    fn absorb(&mut self, mut trial: A, events: &mut Vec<DomainEvent>) -> Option<DateTime<Utc>> {
        if !trial.is_changed() {
            return None;
        }
        let mut changes = trial.take();
        self.changed = true;
        self.transactions.append(&mut changes.transactions);
        self.touched.append(&mut changes.touched);
        events.append(&mut changes.events);
        let updated_at = trial.updated_at();
        self.aggregate = trial;
        Some(updated_at)
    }

    /// Adds what the batch must write of this aggregate: its changes, or
    /// a kept wallet as it is (for the version check).
    fn push_columns<'a>(&'a self, columns: &mut WriteColumns<'a>) -> Result<(), WalletError> {
        if !(self.changed || self.kept) {
            return Ok(());
        }
        A::columns(columns).push(
            &self.aggregate,
            self.loaded_version,
            &self.transactions,
            &self.touched,
        )
    }
}

/// The aggregates of a batch by user id.
fn by_user<A: Aggregate>(aggregates: impl IntoIterator<Item = (A, bool)>) -> Users<A> {
    aggregates
        .into_iter()
        .map(|(aggregate, kept)| (aggregate.user_id(), Working::new(aggregate, kept)))
        .collect()
}

type Users<A> = HashMap<Uuid, Working<A>>;

/// The batch's aggregates, the records its keys have (stored, or made by
/// an earlier command of the batch), and what it will write.
pub(crate) struct BatchState {
    wallets: Users<Wallet>,
    accounts: Users<PointAccount>,
    records: HashMap<(Uuid, IdempotencyKey), IdempotencyRecord>,
    new_records: Vec<IdempotencyRecord>,
    events: Vec<DomainEvent>,
}

impl BatchState {
    /// The state of a batch that locked and loaded `loaded` and
    /// `accounts`, took `kept` from the writer's kept wallets, and found
    /// `records` for its keys.
    pub fn new(
        loaded: Vec<Wallet>,
        kept: Vec<Wallet>,
        accounts: Vec<PointAccount>,
        records: Vec<IdempotencyRecord>,
    ) -> Self {
        let loaded = loaded.into_iter().map(|wallet| (wallet, false));
        let kept = kept.into_iter().map(|wallet| (wallet, true));
        let records = records
            .into_iter()
            .map(|record| ((record.user_id, record.key.clone()), record))
            .collect();
        BatchState {
            wallets: by_user(loaded.chain(kept)),
            accounts: by_user(accounts.into_iter().map(|account| (account, false))),
            records,
            new_records: Vec::new(),
            events: Vec::new(),
        }
    }

    /// One command, exactly as a batch of one would run it on the state
    /// the earlier commands of the batch left.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, WalletError> {
        if let Some(claim) = &command.claim {
            if let Some(record) = self.records.get(&(claim.user_id, claim.key.clone())) {
                return replay(record, claim);
            }
        }
        let user = command.user_id;
        let (output, changed_at) = match &command.work {
            Work::Wallet { mutation, .. } => {
                apply_to(self.wallets.get_mut(&user), &**mutation, &mut self.events)?
            }
            Work::Wallets {
                user_ids, mutation, ..
            } => apply_to_set(&mut self.wallets, user_ids, &**mutation, &mut self.events)?,
            Work::Points { mutation, .. } => {
                apply_to(self.accounts.get_mut(&user), &**mutation, &mut self.events)?
            }
        };
        if let Some(at) = changed_at {
            self.remember(command.claim.as_ref(), &output, at);
        }
        Ok(Applied {
            output,
            replayed: false,
        })
    }

    /// Keeps the record of a successful command's claim: written with the
    /// batch, and replayed to a later command of the batch with its key.
    fn remember(&mut self, claim: Option<&Claim>, output: &CommandOutput, now: DateTime<Utc>) {
        if let Some(claim) = claim {
            let record = record_of(claim.clone(), output, now);
            self.records
                .insert((claim.user_id, claim.key.clone()), record.clone());
            self.new_records.push(record);
        }
    }

    /// Writes every change of the batch with the one write statement.
    /// Returns whether there was anything to write.
    pub async fn write(&self, conn: &mut PgConnection) -> Result<bool, WalletError> {
        let mut columns = WriteColumns::default();
        for working in self.wallets.values() {
            working.push_columns(&mut columns)?;
        }
        for working in self.accounts.values() {
            working.push_columns(&mut columns)?;
        }
        columns.push_events(&self.events)?;
        columns.push_records(&self.new_records);
        columns.write(conn, RowWrite::Update).await
    }

    /// Hands the batch's wallets, as committed, to the writer's cache.
    pub fn keep_wallets(self, cache: &mut WalletCache) {
        for (_, working) in self.wallets {
            cache.keep(working.aggregate);
        }
    }
}

/// A command on the user's aggregate of one kind, if the batch has it.
fn apply_to<A: Aggregate>(
    working: Option<&mut Working<A>>,
    mutation: &(dyn Fn(&mut A) -> Result<CommandOutput, WalletError> + Send + Sync),
    events: &mut Vec<DomainEvent>,
) -> Result<(CommandOutput, Option<DateTime<Utc>>), WalletError> {
    working.ok_or(A::NOT_FOUND)?.apply(mutation, events)
}

/// A unit of work over the wallets of `user_ids` that the batch has (a
/// user without a wallet is absent from the set, for the mutation to
/// answer): runs on copies, so that a failure leaves every wallet as it
/// was; on success each changed wallet becomes the one the next command
/// sees, its events joining `events` in user id order. Returns the output
/// and the latest time of the wallets' changes, if any changed.
fn apply_to_set(
    wallets: &mut Users<Wallet>,
    user_ids: &[Uuid],
    mutation: &(dyn Fn(&mut WalletSet) -> Result<CommandOutput, WalletError> + Send + Sync),
    events: &mut Vec<DomainEvent>,
) -> Result<(CommandOutput, Option<DateTime<Utc>>), WalletError> {
    let mut set: WalletSet = user_ids
        .iter()
        .filter_map(|user| wallets.get(user))
        .map(|working| working.aggregate.clone())
        .collect();
    let output = guarded(|| mutation(&mut set))?;
    let mut changed_at = None;
    for trial in set {
        let Some(working) = wallets.get_mut(&trial.user_id()) else {
            return Err(WalletError::Internal(
                "a unit of work returned a wallet it was not given".into(),
            ));
        };
        changed_at = changed_at.max(working.absorb(trial, events));
    }
    Ok((output, changed_at))
}

/// Runs a mutation; a panic in it fails that command alone (as
/// `internal`) instead of the writer and every command behind it.
fn guarded<T>(mutation: impl FnOnce() -> Result<T, WalletError>) -> Result<T, WalletError> {
    std::panic::catch_unwind(AssertUnwindSafe(mutation)).unwrap_or_else(|_| {
        Err(WalletError::Internal(
            "the command's mutation panicked".into(),
        ))
    })
}
