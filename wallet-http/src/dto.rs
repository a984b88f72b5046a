//! The JSON shapes of the HTTP contract, and their mapping from the types
//! of the core. Amounts go out as decimal strings, points as integers,
//! field names in camelCase. Internal fields (sequence numbers,
//! idempotency keys, freeze reasons) stay inside.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::ToSchema;
use uuid::Uuid;
use wallet_core::events::{FeedEvent, StoredEvent};
use wallet_core::query::{BalancesAt, Statistics};
use wallet_core::{
    Exchange, Hold, Page, PointAccountView, PointTransaction, WalletItem, WalletTransaction,
    WalletView,
};

// ---- constrained fields ------------------------------------------------------

// The named schemas below are made by `constraints::components` from the
// core's limits and the running currency table; the fields here only point
// at them, so that each constraint is stated once.

fn named(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// A named schema, or `null` (which the field reads as absent).
fn named_or_null(name: &str) -> RefOr<Schema> {
    let null = ObjectBuilder::new().schema_type(Type::Null);
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(Ref::from_schema_name(name))
            .item(null)
            .build(),
    ))
}

fn currency() -> RefOr<Schema> {
    named("Currency")
}
fn currency_or_null() -> RefOr<Schema> {
    named_or_null("Currency")
}
fn amount() -> RefOr<Schema> {
    named("Amount")
}
fn amount_or_null() -> RefOr<Schema> {
    named_or_null("Amount")
}
fn description() -> RefOr<Schema> {
    named("Description")
}
fn reference() -> RefOr<Schema> {
    named("Reference")
}
fn reason() -> RefOr<Schema> {
    named("Reason")
}
fn source() -> RefOr<Schema> {
    named("Source")
}
fn reference_type() -> RefOr<Schema> {
    named("ReferenceType")
}
fn points() -> RefOr<Schema> {
    named("Points")
}
fn points_adjustment() -> RefOr<Schema> {
    named("PointsAdjustment")
}
fn wallet_status() -> RefOr<Schema> {
    named("WalletStatus")
}
fn hold_status() -> RefOr<Schema> {
    named("HoldStatus")
}
fn transaction_type() -> RefOr<Schema> {
    named("TransactionType")
}
fn point_transaction_type() -> RefOr<Schema> {
    named("PointTransactionType")
}

// ---- responses -------------------------------------------------------------

/// One currency of a wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Balance)]
pub struct BalanceDto {
    #[schema(schema_with = currency)]
    pub currency: String,
    #[schema(example = "10.00")]
    pub balance: String,
    #[schema(example = "2.00")]
    pub held: String,
    #[schema(example = "8.00")]
    pub available: String,
}

impl From<&WalletItem> for BalanceDto {
    fn from(item: &WalletItem) -> Self {
        BalanceDto {
            currency: item.currency.to_string(),
            balance: item.balance.to_string(),
            held: item.held.to_string(),
            available: item.available().to_string(),
        }
    }
}

/// A wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Wallet)]
pub struct WalletDto {
    pub id: Uuid,
    pub user_id: Uuid,
    #[schema(schema_with = wallet_status)]
    pub status: String,
    #[schema(schema_with = currency)]
    pub default_currency: String,
    /// Every currency the wallet has touched, ordered by code.
    pub balances: Vec<BalanceDto>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&WalletView> for WalletDto {
    fn from(view: &WalletView) -> Self {
        let mut balances: Vec<BalanceDto> = view.balances.iter().map(BalanceDto::from).collect();
        balances.sort_by(|a, b| a.currency.cmp(&b.currency));
        WalletDto {
            id: view.id,
            user_id: view.user_id,
            status: view.status.to_string(),
            default_currency: view.default_currency.to_string(),
            balances,
            version: view.version,
            created_at: view.created_at,
            updated_at: view.updated_at,
        }
    }
}

/// One line of a wallet's audit trail.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Transaction)]
pub struct TransactionDto {
    pub id: Uuid,
    pub wallet_id: Uuid,
    #[serde(rename = "type")]
    #[schema(schema_with = transaction_type)]
    pub transaction_type: String,
    #[schema(schema_with = currency)]
    pub currency: String,
    /// Signed change of the balance.
    #[schema(example = "10.00")]
    pub amount: String,
    /// Signed change of the held amount.
    #[schema(example = "0.00")]
    pub held_change: String,
    pub balance_after: String,
    pub held_after: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(required = true)]
    pub reference: Option<String>,
    #[schema(required = true)]
    pub hold_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The transfer or payout this row is a leg of (null otherwise).
    #[schema(required = true)]
    pub transfer_id: Option<Uuid>,
    /// The user of the other wallet of a transfer leg (null otherwise, and
    /// on a payout's `HoldExecute`, which may pay many).
    #[schema(required = true)]
    pub counterparty_user_id: Option<Uuid>,
    /// On a `Reversal`: this wallet's own leg of the transaction reversed
    /// (null otherwise).
    #[schema(required = true)]
    pub reverses_transaction_id: Option<Uuid>,
    /// On a reversible transaction (`Deposit`, `Withdraw`, `HoldExecute`
    /// without payees, `TransferIn`, `TransferOut`): the sum of its
    /// reversals so far, `"0"` included; null on the other types.
    #[schema(required = true, example = "0.00")]
    pub reversed_amount: Option<String>,
}

/// `value` with at least `scale` decimals (`0` in USD is `0.00`).
fn at_scale(value: rust_decimal::Decimal, scale: u32) -> String {
    let mut value = value;
    if value.scale() < scale {
        value.rescale(scale);
    }
    value.to_string()
}

impl From<&WalletTransaction> for TransactionDto {
    fn from(t: &WalletTransaction) -> Self {
        // The balances after carry the currency's scale; the changes are
        // shown in the same scale.
        let scale = t.balance_after.scale().max(t.held_after.scale());
        TransactionDto {
            id: t.id,
            wallet_id: t.wallet_id,
            transaction_type: t.transaction_type.to_string(),
            currency: t.currency.to_string(),
            amount: at_scale(t.amount, scale),
            held_change: at_scale(t.held_change, scale),
            balance_after: t.balance_after.to_string(),
            held_after: t.held_after.to_string(),
            description: t.description.clone(),
            reference: t.reference.clone(),
            hold_id: t.hold_id,
            created_at: t.created_at,
            transfer_id: t.transfer_id,
            counterparty_user_id: t.counterparty_user_id,
            reverses_transaction_id: t.reverses_transaction_id,
            reversed_amount: t.reversed_amount.map(|total| at_scale(total, scale)),
        }
    }
}

/// An escrow hold.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Hold)]
pub struct HoldDto {
    pub id: Uuid,
    pub wallet_id: Uuid,
    #[schema(schema_with = currency)]
    pub currency: String,
    pub original_amount: String,
    pub remaining_amount: String,
    pub executed_amount: String,
    pub released_amount: String,
    #[schema(schema_with = hold_status)]
    pub status: String,
    pub reference_type: String,
    pub reference_id: Uuid,
    #[schema(required = true)]
    pub description: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Hold> for HoldDto {
    fn from(h: &Hold) -> Self {
        HoldDto {
            id: h.id,
            wallet_id: h.wallet_id,
            currency: h.currency.to_string(),
            original_amount: h.original_amount.to_string(),
            remaining_amount: h.remaining_amount.to_string(),
            executed_amount: h.executed_amount.to_string(),
            released_amount: h.released_amount.to_string(),
            status: h.status.to_string(),
            reference_type: h.reference_type.clone(),
            reference_id: h.reference_id,
            description: h.description.clone(),
            expires_at: h.expires_at,
            created_at: h.created_at,
            updated_at: h.updated_at,
        }
    }
}

/// A deposit or withdrawal.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = MoneyMovement)]
pub struct MoneyMovementDto {
    pub wallet: WalletDto,
    pub transaction: TransactionDto,
}

/// A transfer, as the payer sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Transfer)]
pub struct TransferDto {
    /// The payer's wallet after the transfer.
    pub wallet: WalletDto,
    /// The payer's `TransferOut`.
    pub transaction: TransactionDto,
    /// Shared by both legs of the transfer.
    pub transfer_id: Uuid,
}

/// A reversal, as the wallet of the request sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reversal)]
pub struct ReversalDto {
    /// The wallet of the request, after the reversal.
    pub wallet: WalletDto,
    /// The `Reversal` rows: this wallet's first, then the other wallet's
    /// when the money moved between two.
    #[schema(min_items = 1, max_items = 2)]
    pub transactions: Vec<TransactionDto>,
    /// The original's reversed amount after this reversal (both legs of a
    /// transfer share it).
    #[schema(example = "10.00")]
    pub reversed_amount: String,
}

impl ReversalDto {
    pub fn new(
        wallet: &WalletView,
        transactions: &[WalletTransaction],
        reversed_amount: rust_decimal::Decimal,
    ) -> Self {
        ReversalDto {
            wallet: wallet.into(),
            transactions: transactions.iter().map(Into::into).collect(),
            reversed_amount: reversed_amount.to_string(),
        }
    }
}

/// A wallet's balances at a point in time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BalancesAt)]
pub struct BalancesAtDto {
    /// The time asked about (now when none was given).
    pub at: DateTime<Utc>,
    /// Per currency with a transaction by then, ordered by code.
    pub balances: Vec<BalanceDto>,
}

impl From<&BalancesAt> for BalancesAtDto {
    fn from(at: &BalancesAt) -> Self {
        BalancesAtDto {
            at: at.at,
            balances: at.balances.iter().map(BalanceDto::from).collect(),
        }
    }
}

/// An exchange between two currencies of one wallet.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Exchange)]
pub struct ExchangeDto {
    pub wallet: WalletDto,
    #[schema(example = "1.00")]
    pub from_amount: String,
    #[schema(example = "25000")]
    pub to_amount: String,
    /// `base(from) / base(to)`, a decimal string.
    #[schema(example = "25000")]
    pub rate: String,
    /// The `ExchangeOut` leg, then the `ExchangeIn` leg.
    pub transactions: Vec<TransactionDto>,
}

impl ExchangeDto {
    /// The exchange as the contract shows it.
    pub fn new(wallet: &WalletView, exchange: &Exchange) -> Self {
        ExchangeDto {
            wallet: wallet.into(),
            from_amount: exchange.from_amount.to_string(),
            to_amount: exchange.to_amount.to_string(),
            rate: exchange.rate.to_string(),
            transactions: exchange.transactions.iter().map(Into::into).collect(),
        }
    }
}

/// A point account.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PointAccount)]
pub struct PointAccountDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub total_points: i64,
    pub available_points: i64,
    pub pending_points: i64,
    pub lifetime_earned: i64,
    pub version: u64,
}

impl From<&PointAccountView> for PointAccountDto {
    fn from(a: &PointAccountView) -> Self {
        PointAccountDto {
            id: a.id,
            user_id: a.user_id,
            total_points: a.total_points,
            available_points: a.available_points,
            pending_points: a.pending_points,
            lifetime_earned: a.lifetime_earned,
            version: a.version,
        }
    }
}

/// One line of a point account's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PointTransaction)]
pub struct PointTransactionDto {
    pub id: Uuid,
    pub account_id: Uuid,
    #[serde(rename = "type")]
    #[schema(schema_with = point_transaction_type)]
    pub transaction_type: String,
    /// Signed change.
    pub points: i64,
    /// Available points after the transaction.
    pub balance_after: i64,
    pub source: String,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(required = true)]
    pub lot_id: Option<Uuid>,
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&PointTransaction> for PointTransactionDto {
    fn from(t: &PointTransaction) -> Self {
        PointTransactionDto {
            id: t.id,
            account_id: t.account_id,
            transaction_type: t.transaction_type.to_string(),
            points: t.points,
            balance_after: t.balance_after,
            source: t.source.clone(),
            description: t.description.clone(),
            lot_id: t.lot_id,
            expires_at: t.expires_at,
            created_at: t.created_at,
        }
    }
}

/// The result of a point command.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PointsResult)]
pub struct PointsResultDto {
    pub account: PointAccountDto,
    pub transaction: PointTransactionDto,
    /// The lot the command made or named (earn, confirm, cancel, positive
    /// adjust).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot_id: Option<Uuid>,
}

/// A page of items, newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageDto<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> PageDto<T> {
    /// Maps a page of the core.
    pub fn map<'a, U>(page: &'a Page<U>, f: impl Fn(&'a U) -> T) -> Self {
        PageDto {
            items: page.items.iter().map(f).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

/// One outbox event.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event)]
pub struct EventDto {
    /// Position in the outbox.
    pub sequence: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(example = "WalletCreated")]
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub user_id: Uuid,
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    /// The event's own fields, in camelCase.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&StoredEvent> for EventDto {
    /// The shape is [`FeedEvent`]'s, which the event relay publishes too;
    /// this type only adds the schema. The destructuring makes a new field
    /// there a compile error here.
    fn from(stored: &StoredEvent) -> Self {
        let FeedEvent {
            sequence,
            id,
            event_type,
            aggregate_id,
            user_id,
            version,
            occurred_at,
            data,
        } = FeedEvent::from(stored);
        EventDto {
            sequence,
            id,
            event_type,
            aggregate_id,
            user_id,
            version,
            occurred_at,
            data,
        }
    }
}

/// A read of the outbox.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Events)]
pub struct EventsDto {
    pub items: Vec<EventDto>,
    /// Pass as `after` next time.
    pub next_after: u64,
}

/// Wallet counts per status.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = WalletCounts)]
pub struct WalletCountsDto {
    pub active: u64,
    pub frozen: u64,
    pub closed: u64,
}

/// Totals of one currency, all time.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CurrencyTotals)]
pub struct CurrencyTotalsDto {
    #[schema(schema_with = currency)]
    pub currency: String,
    pub balance: String,
    pub held: String,
    /// Wallets that have touched the currency.
    pub wallets: u64,
}

/// Count and volume of one transaction type in one currency.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = TransactionTotals)]
pub struct TransactionTotalsDto {
    #[serde(rename = "type")]
    #[schema(schema_with = transaction_type)]
    pub transaction_type: String,
    #[schema(schema_with = currency)]
    pub currency: String,
    pub count: u64,
    /// Sum of absolute amounts.
    pub volume: String,
}

/// Point totals: available and pending now, flows within the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = PointTotals)]
pub struct PointTotalsDto {
    pub available: i64,
    pub pending: i64,
    pub earned: i64,
    pub spent: i64,
    pub expired: i64,
}

/// The admin statistics.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Statistics)]
pub struct StatisticsDto {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub wallets: WalletCountsDto,
    pub currencies: Vec<CurrencyTotalsDto>,
    pub transactions: Vec<TransactionTotalsDto>,
    pub points: PointTotalsDto,
}

impl From<&Statistics> for StatisticsDto {
    fn from(s: &Statistics) -> Self {
        let count =
            |status: wallet_core::WalletStatus| s.wallets.get(&status).copied().unwrap_or(0);
        StatisticsDto {
            from: s.from,
            to: s.to,
            wallets: WalletCountsDto {
                active: count(wallet_core::WalletStatus::Active),
                frozen: count(wallet_core::WalletStatus::Frozen),
                closed: count(wallet_core::WalletStatus::Closed),
            },
            currencies: s
                .currencies
                .iter()
                .map(|c| CurrencyTotalsDto {
                    currency: c.currency.to_string(),
                    balance: c.balance.to_string(),
                    held: c.held.to_string(),
                    wallets: c.wallets,
                })
                .collect(),
            transactions: s
                .transactions
                .iter()
                .map(|t| TransactionTotalsDto {
                    transaction_type: t.transaction_type.to_string(),
                    currency: t.currency.to_string(),
                    count: t.count,
                    volume: t.volume.to_string(),
                })
                .collect(),
            points: PointTotalsDto {
                available: s.points.available,
                pending: s.points.pending,
                earned: s.points.earned,
                spent: s.points.spent,
                expired: s.points.expired,
            },
        }
    }
}

/// `GET /health/live` and `/health/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusDto {
    /// `Healthy` or `Unhealthy`.
    #[schema(example = "Healthy")]
    pub status: String,
}

/// One check of `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Check)]
pub struct CheckDto {
    #[schema(example = "Healthy")]
    pub status: String,
    /// What the check found.
    pub detail: String,
    /// The `relay` check only: events in the outbox past its position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_events: Option<u64>,
    /// The `replica` check only: at most how old the read replica's data
    /// is, in seconds (0 when it has replayed everything the primary
    /// wrote); absent when it cannot be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 0.25)]
    pub lag_seconds: Option<f64>,
    /// The `replica` check only: bytes of write-ahead log the primary has
    /// written that the read replica has not replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Health)]
pub struct HealthDto {
    #[schema(example = "Healthy")]
    pub status: String,
    pub checks: std::collections::BTreeMap<String, CheckDto>,
    #[schema(example = "0.1.0")]
    pub version: String,
}

// ---- requests --------------------------------------------------------------

/// `POST /api/v1/wallets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWalletRequest {
    /// Defaults to the caller (`sub`).
    pub user_id: Option<Uuid>,
    /// Defaults to VND.
    #[schema(schema_with = currency_or_null)]
    pub default_currency: Option<String>,
}

/// Deposit or withdraw.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoneyRequest {
    #[schema(schema_with = amount)]
    pub amount: Box<RawValue>,
    #[schema(schema_with = currency)]
    pub currency: String,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = reference)]
    pub reference: Option<String>,
}

/// Transfer money to another user's wallet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransferRequest {
    /// The payee; not the payer (`same_wallet`).
    pub to_user_id: Uuid,
    #[schema(schema_with = amount)]
    pub amount: Box<RawValue>,
    #[schema(schema_with = currency)]
    pub currency: String,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = reference)]
    pub reference: Option<String>,
}

/// One payee of a hold payout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Payee)]
pub struct PayeeRequest {
    /// The payee; distinct from the other payees and from the payer.
    pub user_id: Uuid,
    /// In the hold's currency.
    #[schema(schema_with = amount)]
    pub amount: Box<RawValue>,
}

/// Exchange.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExchangeRequest {
    /// Amount of `fromCurrency` to exchange.
    #[schema(schema_with = amount)]
    pub amount: Box<RawValue>,
    #[schema(schema_with = currency)]
    pub from_currency: String,
    #[schema(schema_with = currency)]
    pub to_currency: String,
}

/// Create a hold.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateHoldRequest {
    #[schema(schema_with = amount)]
    pub amount: Box<RawValue>,
    #[schema(schema_with = currency)]
    pub currency: String,
    /// Such as `Order`.
    #[schema(schema_with = reference_type)]
    pub reference_type: String,
    pub reference_id: Uuid,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    /// Default: the configured default lifetime from now.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Execute a hold, in whole or in part.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteHoldRequest {
    /// Default: all that remains, or the payees' sum (which it must
    /// equal when both are given).
    #[schema(schema_with = amount_or_null)]
    pub amount: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = reference)]
    pub reference: Option<String>,
    /// Pays the executed money to these wallets instead of out of the
    /// ledger: 1 to 16 distinct users, none of them the payer.
    #[schema(min_items = 1, max_items = 16)]
    pub payees: Option<Vec<PayeeRequest>>,
}

/// Release a hold, in whole or in part.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseHoldRequest {
    /// Default: all that remains.
    #[schema(schema_with = amount_or_null)]
    pub amount: Option<Box<RawValue>>,
}

/// Reverse a transaction, in whole or in part.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReverseRequest {
    /// In the transaction's currency; default: all that is left to
    /// reverse.
    #[schema(schema_with = amount_or_null)]
    pub amount: Option<Box<RawValue>>,
    /// Why (a refund, a charge-back, a correction): the description of
    /// the `Reversal` rows.
    #[schema(schema_with = reason)]
    pub reason: String,
}

/// Freeze a wallet.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FreezeRequest {
    #[schema(schema_with = reason)]
    pub reason: String,
}

/// Earn points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EarnRequest {
    #[schema(schema_with = points)]
    pub points: i64,
    #[schema(schema_with = source)]
    pub source: String,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Pending points wait for confirm or cancel.
    #[serde(default)]
    pub pending: bool,
}

/// Spend points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpendRequest {
    #[schema(schema_with = points)]
    pub points: i64,
    #[schema(schema_with = source)]
    pub source: String,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
}

/// Adjust points (admin).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustRequest {
    #[schema(schema_with = points_adjustment)]
    pub points: i64,
    #[schema(schema_with = source)]
    pub source: String,
    #[serde(default, deserialize_with = "crate::input::optional_text")]
    #[schema(schema_with = description)]
    pub description: Option<String>,
}
