//! What wallets and point accounts have in common, so that the stores'
//! create and update units of work are written once for both: the
//! [`Aggregate`] trait and the one shape of their [`Changes`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::WalletError;
use crate::events::DomainEvent;

/// What a successful command changed in an aggregate, for the store to
/// persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<T, Touched> {
    /// New log entries, in order.
    pub transactions: Vec<T>,
    /// New events, in order.
    pub events: Vec<DomainEvent>,
    /// What was created or changed besides the aggregate's row, in the
    /// order first touched: a wallet's hold ids; a point account's lots, as
    /// pictures in the order taken (the last picture of a lot is its state
    /// now; a lot with nothing left and no longer pending has been spent,
    /// expired or cancelled).
    pub touched: Vec<Touched>,
    /// The version the store must find before writing (the loaded version).
    pub expected_version: u64,
    /// Whether the aggregate is new (to be inserted, not updated).
    pub created: bool,
}

impl<T, Touched> Default for Changes<T, Touched> {
    fn default() -> Self {
        Changes {
            transactions: Vec::new(),
            events: Vec::new(),
            touched: Vec::new(),
            expected_version: 0,
            created: false,
        }
    }
}

impl<T, Touched> Changes<T, Touched> {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.events.is_empty() && self.touched.is_empty()
    }
}

/// The changes of an aggregate of kind `A`.
pub type ChangesOf<A> = Changes<<A as Aggregate>::Transaction, <A as Aggregate>::Touched>;

/// A wallet or a point account, as a store loads, changes and saves it.
pub trait Aggregate: Clone + Send + Sync + 'static {
    /// An entry of the aggregate's log.
    type Transaction: Clone + Send + Sync;
    /// What a change touches besides the aggregate's row.
    type Touched: Clone + Send + Sync;
    /// The error of a command on a user without this aggregate.
    const NOT_FOUND: WalletError;
    /// The error of a second aggregate of this kind for one user.
    const EXISTS: WalletError;

    fn user_id(&self) -> Uuid;
    fn version(&self) -> u64;
    fn created_at(&self) -> DateTime<Utc>;
    fn updated_at(&self) -> DateTime<Utc>;
    /// The changes made since they were last taken.
    fn changes(&self) -> &ChangesOf<Self>;
    /// Takes the changes out, leaving the aggregate clean at its new
    /// version.
    fn take_changes(&mut self) -> ChangesOf<Self>;

    /// Whether a mutation left changes to persist.
    fn is_changed(&self) -> bool {
        !self.changes().is_empty()
    }
}

/// Implements [`Aggregate`] with the aggregate's own methods of the same
/// names and its `changes` and `version` fields (used beside each
/// aggregate, so that this module imports neither).
macro_rules! aggregate {
    ($aggregate:ty, $transaction:ty, $touched:ty, $not_found:expr, $exists:expr) => {
        impl $crate::aggregate::Aggregate for $aggregate {
            type Transaction = $transaction;
            type Touched = $touched;
            const NOT_FOUND: $crate::error::WalletError = $not_found;
            const EXISTS: $crate::error::WalletError = $exists;

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
            fn changes(&self) -> &$crate::aggregate::ChangesOf<Self> {
                &self.changes
            }
            fn take_changes(&mut self) -> $crate::aggregate::ChangesOf<Self> {
                let fresh = $crate::aggregate::Changes {
                    expected_version: self.version,
                    ..$crate::aggregate::Changes::default()
                };
                std::mem::replace(&mut self.changes, fresh)
            }
        }
    };
}
pub(crate) use aggregate;
