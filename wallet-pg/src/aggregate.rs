//! What the write path needs to know of an aggregate besides the core's
//! [`wallet_core::Aggregate`], so that the units of work of wallets and of
//! point accounts are written once, generically: the create
//! ([`crate::unit::create`]) and the batch state ([`crate::batch`]) work
//! on any [`Aggregate`], and only this file and the column builders of
//! `wallets.rs` and `points.rs` tell the two apart.

use wallet_core::{ChangesOf, PointAccount, Wallet, WalletError};

use crate::points::PointAccountColumns;
use crate::wallets::WalletColumns;
use crate::write::WriteColumns;

/// A wallet or a point account, as the store loads, changes and writes it.
pub(crate) trait Aggregate: wallet_core::Aggregate {
    /// The table of the aggregate's rows, unique by `user_id`.
    const TABLE: &'static str;

    /// The aggregate's part of the write statement.
    type Columns<'a>: AggregateColumns<'a, Self>
    where
        Self: 'a;

    /// Takes the changes made since the last call.
    fn take(&mut self) -> ChangesOf<Self>;

    /// The aggregate's part of the write statement's `columns`.
    fn columns<'c, 'a>(columns: &'c mut WriteColumns<'a>) -> &'c mut Self::Columns<'a>;
}

/// The part of the write statement that an aggregate's columns go to.
pub(crate) trait AggregateColumns<'a, A: wallet_core::Aggregate + 'a> {
    /// Adds the aggregate, as it is now: loaded at `expected_version`,
    /// with the log entries and the touched parts of every command applied
    /// to it since.
    fn push(
        &mut self,
        aggregate: &'a A,
        expected_version: u64,
        transactions: &'a [A::Transaction],
        touched: &'a [A::Touched],
    ) -> Result<(), WalletError>;
}

/// Implements [`Aggregate`]: the aggregate's table, the part of the write
/// statement its columns go to (a field of [`WriteColumns`] and its type),
/// and what happens to it once its changes are taken.
macro_rules! aggregate {
    (
        $aggregate:ty,
        $table:literal,
        $columns:ident: $columns_ty:ident,
        |$me:ident, $changes:ident| $after:block
    ) => {
        impl Aggregate for $aggregate {
            const TABLE: &'static str = $table;

            type Columns<'a> = $columns_ty<'a>;

            fn take(&mut self) -> ChangesOf<Self> {
                let $changes = wallet_core::Aggregate::take_changes(self);
                let $me = &mut *self;
                $after
                $changes
            }

            fn columns<'c, 'a>(columns: &'c mut WriteColumns<'a>) -> &'c mut Self::Columns<'a> {
                &mut columns.$columns
            }
        }
    };
}

aggregate!(Wallet, "wallets", wallets: WalletColumns, |_wallet, changes| {});

// Taking a point account's changes also remembers every lot they touched:
// one that was spent, cancelled or expired has left the live set, and a
// later command of the same batch naming it must still hear
// `lot_not_pending`, as it would from a fresh load.
aggregate!(
    PointAccount,
    "point_accounts",
    accounts: PointAccountColumns,
    |account, changes| {
        for lot in &changes.touched {
            account.remember_lot(lot.id);
        }
    }
);
