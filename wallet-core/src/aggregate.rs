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

/// Implements [`Aggregate`] for an aggregate (called `$noun` in the docs)
/// with its `id`, `user_id`, `version`, `transaction_count`, `created_at`,
/// `updated_at` and `changes` fields, gives it public accessors of the
/// same names for the first six, and the two steps every change starts
/// with (`begin_change`, `raise`). Used beside each aggregate, so that this
/// module imports neither and the fields stay private.
macro_rules! aggregate {
    (
        $aggregate:ty,
        $noun:literal,
        $transaction:ty,
        $touched:ty,
        $not_found:expr,
        $exists:expr
    ) => {
        impl $aggregate {
            #[doc = concat!("The ", $noun, "'s id.")]
            pub fn id(&self) -> Uuid {
                self.id
            }

            #[doc = concat!("The user the ", $noun, " belongs to.")]
            pub fn user_id(&self) -> Uuid {
                self.user_id
            }

            #[doc = concat!("Bumped by one by every command that changes the ", $noun, ".")]
            pub fn version(&self) -> u64 {
                self.version
            }

            #[doc = concat!("How many transactions the ", $noun, "'s log has.")]
            pub fn transaction_count(&self) -> u64 {
                self.transaction_count
            }

            #[doc = concat!("When the ", $noun, " was opened.")]
            pub fn created_at(&self) -> DateTime<Utc> {
                self.created_at
            }

            #[doc = concat!("When a command last changed the ", $noun, ".")]
            pub fn updated_at(&self) -> DateTime<Utc> {
                self.updated_at
            }

            /// Bumps the version once per command (the first change of a
            /// clean aggregate) and stamps `updated_at`.
            fn begin_change(&mut self, ctx: &$crate::context::Ctx<'_>) {
                if self.changes.transactions.is_empty() && self.changes.events.is_empty() {
                    self.version += 1;
                }
                self.updated_at = ctx.now;
            }

            /// Records the event `data` of the current command.
            fn raise(&mut self, ctx: &$crate::context::Ctx<'_>, data: $crate::events::EventData) {
                self.begin_change(ctx);
                self.changes.events.push($crate::events::DomainEvent {
                    id: ctx.new_id(),
                    aggregate_id: self.id,
                    aggregate_version: self.version,
                    user_id: self.user_id,
                    occurred_at: ctx.now,
                    data,
                });
            }
        }

        impl $crate::aggregate::Aggregate for $aggregate {
            type Transaction = $transaction;
            type Touched = $touched;
            const NOT_FOUND: $crate::error::WalletError = $not_found;
            const EXISTS: $crate::error::WalletError = $exists;

            fn user_id(&self) -> Uuid {
                self.user_id
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn created_at(&self) -> DateTime<Utc> {
                self.created_at
            }
            fn updated_at(&self) -> DateTime<Utc> {
                self.updated_at
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
