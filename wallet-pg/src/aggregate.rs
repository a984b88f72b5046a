//! What the write path needs to know of an aggregate, so that the units of
//! work of wallets and of point accounts are written once, generically:
//! the create ([`crate::unit::create`]) and the batch state
//! ([`crate::batch`]) work on any [`Aggregate`], and only this file and the
//! column builders of `wallets.rs` and `points.rs` tell the two apart.

use chrono::{DateTime, Utc};
use uuid::Uuid;
use wallet_core::{
    DomainEvent, PointAccount, PointLot, PointTransaction, Wallet, WalletError, WalletTransaction,
};

use crate::write::WriteColumns;

/// A wallet or a point account, as the store loads, changes and writes it.
pub(crate) trait Aggregate: Clone + Send + Sync + 'static {
    /// An entry of the aggregate's log.
    type Transaction: Send + Sync;
    /// What a change touches besides the aggregate's row (hold ids of a
    /// wallet, lot pictures of a point account).
    type Touched: Send + Sync;

    /// The table of the aggregate's rows, unique by `user_id`.
    const TABLE: &'static str;

    /// The error of a command on a user without this aggregate.
    const NOT_FOUND: WalletError;
    /// The error of a second aggregate of this kind for one user.
    const EXISTS: WalletError;
    fn user_id(&self) -> Uuid;
    fn version(&self) -> u64;
    fn created_at(&self) -> DateTime<Utc>;
    fn updated_at(&self) -> DateTime<Utc>;
    /// Whether a mutation left changes to write.
    fn is_changed(&self) -> bool;
    /// Takes the changes made since the last call (see [`Changes`]).
    fn take(&mut self) -> Changes<Self>;
    /// Adds the aggregate, as it is now, to the write statement's columns:
    /// loaded at `expected_version`, with the log entries and the touched
    /// parts of every command applied to it since.
    fn push_columns<'a>(
        &'a self,
        columns: &mut WriteColumns<'a>,
        expected_version: u64,
        transactions: &'a [Self::Transaction],
        touched: &'a [Self::Touched],
    ) -> Result<(), WalletError>;
}

/// The changes of an aggregate, in one shape for both kinds.
pub(crate) struct Changes<A: Aggregate> {
    pub transactions: Vec<A::Transaction>,
    pub touched: Vec<A::Touched>,
    pub events: Vec<DomainEvent>,
    /// The version the row must still have (0 for a new aggregate).
    pub expected_version: u64,
    /// Whether the aggregate is new: its row is inserted, not updated.
    pub created: bool,
}

/// Implements [`Aggregate`] for a core aggregate: both answer from fields
/// of the same names and take their changes the same way, so the impls
/// differ only in their types, table, errors, the name of their touched
/// parts and which columns they go to. `$after` runs on the aggregate
/// once its changes are taken.
macro_rules! aggregate {
    (
        $aggregate:ty,
        transaction: $transaction:ty,
        touched: $touched:ty = $touched_field:ident,
        table: $table:literal,
        not_found: $not_found:expr,
        exists: $exists:expr,
        columns: $columns:ident,
        after_take: |$me:ident, $changes:ident| $after:block
    ) => {
        impl Aggregate for $aggregate {
            type Transaction = $transaction;
            type Touched = $touched;

            const TABLE: &'static str = $table;
            const NOT_FOUND: WalletError = $not_found;
            const EXISTS: WalletError = $exists;

            fn user_id(&self) -> Uuid {
                <$aggregate>::user_id(self)
            }

            fn version(&self) -> u64 {
                <$aggregate>::version(self)
            }

            fn created_at(&self) -> DateTime<Utc> {
                <$aggregate>::created_at(self)
            }

            fn updated_at(&self) -> DateTime<Utc> {
                <$aggregate>::updated_at(self)
            }

            fn is_changed(&self) -> bool {
                !self.changes().is_empty()
            }

            fn take(&mut self) -> Changes<Self> {
                let $changes = self.take_changes();
                let $me = &mut *self;
                $after
                Changes {
                    transactions: $changes.transactions,
                    touched: $changes.$touched_field,
                    events: $changes.events,
                    expected_version: $changes.expected_version,
                    created: $changes.created,
                }
            }

            fn push_columns<'a>(
                &'a self,
                columns: &mut WriteColumns<'a>,
                expected_version: u64,
                transactions: &'a [$transaction],
                touched: &'a [$touched],
            ) -> Result<(), WalletError> {
                columns
                    .$columns
                    .push(self, expected_version, transactions, touched)
            }
        }
    };
}

aggregate!(
    Wallet,
    transaction: WalletTransaction,
    touched: Uuid = touched_holds,
    table: "wallets",
    not_found: WalletError::WalletNotFound,
    exists: WalletError::WalletExists,
    columns: wallets,
    after_take: |_wallet, changes| {}
);

// Taking a point account's changes also remembers every lot they touched:
// one that was spent, cancelled or expired has left the live set, and a
// later command of the same batch naming it must still hear
// `lot_not_pending`, as it would from a fresh load.
aggregate!(
    PointAccount,
    transaction: PointTransaction,
    touched: PointLot = touched_lots,
    table: "point_accounts",
    not_found: WalletError::PointAccountNotFound,
    exists: WalletError::PointAccountExists,
    columns: accounts,
    after_take: |account, changes| {
        for lot in &changes.touched_lots {
            account.remember_lot(lot.id);
        }
    }
);
