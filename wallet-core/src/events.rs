//! Domain events, raised by the aggregates and stored atomically with the
//! state change (the outbox).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kinds::{ReleaseCause, TransactionType};
use crate::money::CurrencyCode;

/// One event: its id, the aggregate it belongs to and that aggregate's
/// version after the command, the user, the time, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainEvent {
    pub id: Uuid,
    pub aggregate_id: Uuid,
    pub aggregate_version: u64,
    pub user_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub data: EventData,
}

impl DomainEvent {
    /// The event's type name, such as `EscrowHeld`.
    pub fn event_type(&self) -> &'static str {
        self.data.type_name()
    }
}

/// An event as the outbox returns it: with its place in the total order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// Position in the outbox: strictly increasing in the order readers see.
    pub sequence: u64,
    pub event: DomainEvent,
}

/// An event as the outside sees it: the object of the admin feed
/// (`GET /api/v1/wallets/events`) and the body of a message the relay
/// publishes, written once here so the two never differ. `data` is the
/// event's own fields in camelCase, without the `type` tag, which is a
/// field of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// Position in the outbox.
    pub sequence: u64,
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub user_id: Uuid,
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl From<&StoredEvent> for FeedEvent {
    fn from(stored: &StoredEvent) -> Self {
        let event = &stored.event;
        // `EventData` is plain data (ids, decimals as strings, integers,
        // times), which always serialises; `Null` only keeps this total.
        let mut data = serde_json::to_value(&event.data).unwrap_or(serde_json::Value::Null);
        if let Some(object) = data.as_object_mut() {
            object.remove("type");
        }
        FeedEvent {
            sequence: stored.sequence,
            id: event.id,
            event_type: event.event_type().to_owned(),
            aggregate_id: event.aggregate_id,
            user_id: event.user_id,
            version: event.aggregate_version,
            occurred_at: event.occurred_at,
            data,
        }
    }
}

/// What happened. Serialised with a `type` tag and the fields in camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum EventData {
    WalletCreated {
        wallet_id: Uuid,
        default_currency: CurrencyCode,
    },
    PointAccountCreated {
        account_id: Uuid,
    },
    /// Deposit, withdraw or hold execute.
    WalletBalanceChanged {
        transaction_id: Uuid,
        transaction_type: TransactionType,
        currency: CurrencyCode,
        amount: Decimal,
        balance_after: Decimal,
    },
    WalletExchanged {
        from_currency: CurrencyCode,
        to_currency: CurrencyCode,
        from_amount: Decimal,
        to_amount: Decimal,
        rate: Decimal,
    },
    EscrowHeld {
        hold_id: Uuid,
        currency: CurrencyCode,
        amount: Decimal,
        reference_type: String,
        reference_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    /// A hold executed; with payees, the money went to their wallets
    /// (each raises [`EventData::TransferReceived`]) under `transfer_id`.
    EscrowExecuted {
        hold_id: Uuid,
        currency: CurrencyCode,
        amount: Decimal,
        remaining: Decimal,
        /// Absent when the execution pays out of the ledger, so that the
        /// event of a plain execution keeps its shape.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer_id: Option<Uuid>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        payees: Vec<PayeeShare>,
    },
    /// Release, cancel or expiry, told apart by `cause`.
    EscrowReleased {
        hold_id: Uuid,
        currency: CurrencyCode,
        amount: Decimal,
        remaining: Decimal,
        cause: ReleaseCause,
    },
    WalletFrozen {
        reason: String,
    },
    /// The payer's side of a transfer.
    TransferSent {
        transaction_id: Uuid,
        transfer_id: Uuid,
        counterparty_user_id: Uuid,
        currency: CurrencyCode,
        amount: Decimal,
        balance_after: Decimal,
    },
    /// A payee's side of a transfer or of a hold payout (then with the
    /// payer's hold id).
    TransferReceived {
        transaction_id: Uuid,
        transfer_id: Uuid,
        counterparty_user_id: Uuid,
        currency: CurrencyCode,
        amount: Decimal,
        balance_after: Decimal,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_id: Option<Uuid>,
    },
    /// A wallet changed by a reversal: one per wallet it changes, the
    /// two of a reversal between wallets sharing `transfer_id`.
    TransactionReversed {
        /// The `Reversal` row on this wallet.
        transaction_id: Uuid,
        /// This wallet's own leg of the original.
        reverses_transaction_id: Uuid,
        /// Null on a reversal of one wallet, like the counterparty.
        transfer_id: Option<Uuid>,
        counterparty_user_id: Option<Uuid>,
        currency: CurrencyCode,
        /// The signed change of this wallet's balance.
        amount: Decimal,
        balance_after: Decimal,
        reason: String,
    },
    WalletUnfrozen {},
    WalletClosed {},
    PointsEarned {
        lot_id: Uuid,
        points: i64,
        pending: bool,
        expires_at: Option<DateTime<Utc>>,
    },
    PointsSpent {
        points: i64,
    },
    PointsAdjusted {
        delta: i64,
    },
    PointsExpired {
        lot_id: Uuid,
        points: i64,
        pending: bool,
    },
    PendingPointsConfirmed {
        lot_id: Uuid,
        points: i64,
    },
    PendingPointsCancelled {
        lot_id: Uuid,
        points: i64,
    },
}

/// One payee of a hold payout, as the payer's `EscrowExecuted` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayeeShare {
    pub user_id: Uuid,
    pub amount: Decimal,
}

impl EventData {
    /// The variant's name, the event's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventData::WalletCreated { .. } => "WalletCreated",
            EventData::PointAccountCreated { .. } => "PointAccountCreated",
            EventData::WalletBalanceChanged { .. } => "WalletBalanceChanged",
            EventData::WalletExchanged { .. } => "WalletExchanged",
            EventData::EscrowHeld { .. } => "EscrowHeld",
            EventData::EscrowExecuted { .. } => "EscrowExecuted",
            EventData::EscrowReleased { .. } => "EscrowReleased",
            EventData::WalletFrozen { .. } => "WalletFrozen",
            EventData::TransferSent { .. } => "TransferSent",
            EventData::TransferReceived { .. } => "TransferReceived",
            EventData::TransactionReversed { .. } => "TransactionReversed",
            EventData::WalletUnfrozen { .. } => "WalletUnfrozen",
            EventData::WalletClosed { .. } => "WalletClosed",
            EventData::PointsEarned { .. } => "PointsEarned",
            EventData::PointsSpent { .. } => "PointsSpent",
            EventData::PointsAdjusted { .. } => "PointsAdjusted",
            EventData::PointsExpired { .. } => "PointsExpired",
            EventData::PendingPointsConfirmed { .. } => "PendingPointsConfirmed",
            EventData::PendingPointsCancelled { .. } => "PendingPointsCancelled",
        }
    }
}
