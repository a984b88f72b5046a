//! # wallet-core
//!
//! The pure, I/O-free domain of a wallet and loyalty ledger: exact money in
//! several currencies, wallets with escrow holds, loyalty point accounts
//! with expiring lots, an immutable audit trail, domain events, idempotent
//! commands, store traits (ports), an application service over any store,
//! and an in-memory store.
//!
//! A command is validated once ([`Command::validate`]) into a
//! [`ValidCommand`], which the service applies inside the store's unit of
//! work. Transfers and hold payouts move money between wallets in
//! one unit of work over all of them ([`transfer`], [`WalletSet`],
//! [`WalletStore::update_wallets`]), locked in user id order; so do
//! reversals ([`reversal`]), whose cap is read and raised in that unit of work. The store-contract suite and the invariant checker
//! (`wallet_core::testing`) come with the `testing` feature, for the tests
//! of stores and dependents.
//!
//! ```
//! use rust_decimal::Decimal;
//! use uuid::Uuid;
//! use wallet_core::{Command, CommandOutput, InMemoryStore, Policy, WalletService, CurrencyCode};
//!
//! # futures_executor(async {
//! let service = WalletService::new(InMemoryStore::new(), Policy::default());
//! let user_id = Uuid::now_v7();
//! service.execute(Command::CreateWallet { user_id, default_currency: None }, None).await?;
//! let usd = CurrencyCode::parse("usd")?;
//! let deposit = Command::Deposit {
//!     user_id, amount: Decimal::new(1050, 2), currency: usd, description: None, reference: None,
//! };
//! let applied = service.execute(deposit, None).await?;
//! let CommandOutput::Transaction { wallet, .. } = applied.output else { unreachable!() };
//! assert_eq!(wallet.balances[0].balance.to_string(), "10.50");
//! # Ok::<(), wallet_core::WalletError>(())
//! # });
//! # fn futures_executor<F: std::future::Future<Output = Result<(), wallet_core::WalletError>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f).unwrap();
//! # }
//! ```

pub mod access;
pub mod aggregate;
pub mod command;
pub mod context;
pub mod error;
pub mod events;
pub mod kinds;
pub mod memory;
pub mod money;
pub mod points;
pub mod query;
pub mod relay;
pub mod reversal;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transfer;
pub mod wallet;

pub use access::{access_of, Access, Actor};
pub use aggregate::{Aggregate, Changes, ChangesOf};
pub use command::{
    apply_to_point_account, apply_to_wallet, apply_to_wallets, AggregateCommand, Claim, Command,
    CommandOutput, IdempotencyKey, IdempotencyRecord, PointCommand, ValidCommand, WalletCommand,
    WalletsCommand,
};
pub use context::{
    Clock, Ctx, IdGenerator, ManualClock, Policy, SequentialIdGenerator, SystemClock,
    UuidV7Generator,
};
pub use error::WalletError;
pub use events::{DomainEvent, EventData, FeedEvent, PayeeShare, StoredEvent};
pub use memory::{InMemoryStore, StoredPointAccount, StoredWallet};
pub use money::{Currency, CurrencyCode, CurrencyTable, Money};
pub use points::{
    EarnRequest, LotState, PointAccount, PointAccountView, PointLot, PointTransaction,
    PointTransactionType,
};
pub use query::{BalancesAt, Cursor, Page, PageRequest, Statistics, TransactionFilter};
pub use relay::{LeaseOutcome, PositionUpdate, RelayLease, RelayName, RelayState};
pub use reversal::{ReversalPlan, ReversalRequest};
pub use service::{SweepReport, WalletService};
pub use store::{
    AggregateStore, Applied, Create, IdempotencyStore, LedgerReader, RelayStore, SetUpdate, Store,
    Update, WalletStore,
};
pub use transfer::{Payee, PayoutRequest, TransferRequest, WalletSet, PAYEES_MAX};
pub use wallet::{
    Exchange, Hold, HoldRequest, HoldStatus, ReleaseCause, ReversalTotal, TransactionType,
    TransferLink, Wallet, WalletItem, WalletStatus, WalletTransaction, WalletView,
};

/// Re-exported so embedders use the same decimal type.
pub use rust_decimal::Decimal;
/// Re-exported so embedders use the same id type.
pub use uuid::Uuid;
