//! What each route is: method, path (with the parameter names of the HTTP
//! contract), who may call it, its query parameters, body and success
//! response with its status.
//!
//! This is the one place a route's permission and success status are
//! written. The router (`routes`), the permission gate (`gate`) and the
//! OpenAPI document (`openapi`) all read them from here, and this module
//! depends on none of them.

use axum::http::{Method, StatusCode};
use uuid::Uuid;
use wallet_core::access::{ROLES_ADMIN, ROLE_SERVICE};
use wallet_core::{Access, Actor};

use crate::constraints::QuerySchema;

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    pub schema: QuerySchema,
    pub description: &'static str,
}

/// What a successful response carries.
#[derive(Debug, Clone)]
pub enum Success {
    /// A JSON document of a named schema, with its status.
    Schema(StatusCode, &'static str),
    /// A page (`items`, `nextCursor`) of a named schema.
    Page(&'static str),
    /// Plain text (Prometheus metrics).
    Text,
    /// An HTML page.
    Html,
    /// The OpenAPI document itself.
    Document,
}

impl Success {
    /// The status of a successful answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Success::Schema(status, _) => *status,
            Success::Page(_) | Success::Text | Success::Html | Success::Document => StatusCode::OK,
        }
    }
}

/// Whose wallet a route acts on, which is what its permission is checked
/// against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The user of the `{userId}` path parameter.
    Path,
    /// The user the command names in its body (creating a wallet, where the
    /// caller may name another user), known only once the body is read.
    Command,
    /// No one user: the admin routes over every wallet.
    Nobody,
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// `None`: no token needed.
    pub access: Option<Access>,
    pub query: Vec<QueryParam>,
    /// The request body's schema, if the route reads a body.
    pub body: Option<&'static str>,
    pub success: Success,
}

impl RouteSpec {
    fn new(
        method: Method,
        path: &'static str,
        operation_id: &'static str,
        summary: &'static str,
        tag: &'static str,
    ) -> Self {
        RouteSpec {
            method,
            path,
            operation_id,
            summary,
            tag,
            access: None,
            query: Vec::new(),
            body: None,
            success: Success::Schema(StatusCode::OK, "Wallet"),
        }
    }

    fn access(mut self, access: Access) -> Self {
        self.access = Some(access);
        self
    }

    fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    fn query(mut self, params: &[QueryParam]) -> Self {
        self.query = params.to_vec();
        self
    }

    fn ok(mut self, success: Success) -> Self {
        self.success = success;
        self
    }

    /// Whether the route changes state (and so takes `Idempotency-Key`).
    pub fn is_command(&self) -> bool {
        self.access.is_some() && self.method != Method::GET
    }

    /// Whose wallet the route acts on: the `{userId}` of its path, else the
    /// user its command names, else no one.
    pub fn owner(&self) -> Owner {
        if self.path_params().contains(&"userId") {
            Owner::Path
        } else if self.is_command() {
            Owner::Command
        } else {
            Owner::Nobody
        }
    }

    /// The path parameters, in order (`userId`, `holdId`, `lotId`).
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    /// Who may call the route, in words, read from the core's permission
    /// table so that the document cannot say otherwise.
    pub fn who(&self) -> String {
        let Some(access) = self.access else {
            return "Anyone; no token needed.".to_owned();
        };
        let owner = Uuid::nil();
        let owner_named = match self.owner() {
            Owner::Path | Owner::Command => Some(owner),
            Owner::Nobody => None,
        };
        let caller = |user_id: Uuid, role: Option<&str>| Actor {
            user_id,
            roles: role.iter().map(|r| (*r).to_owned()).collect(),
        };
        let mut callers = vec![("The owner (sub == userId)", caller(owner, None))];
        callers.push((ROLE_SERVICE, caller(Uuid::max(), Some(ROLE_SERVICE))));
        for role in ROLES_ADMIN {
            callers.push((role, caller(Uuid::max(), Some(role))));
        }
        let allowed: Vec<&str> = callers
            .iter()
            .filter(|(_, actor)| actor.authorize(access, owner_named).is_ok())
            .map(|(name, _)| *name)
            .collect();
        format!("{}.", allowed.join(", "))
    }
}

const LIMIT: QueryParam = QueryParam {
    name: "limit",
    schema: QuerySchema::PageLimit,
    description: "Page size, 1 to 200 (default 50).",
};
const SEQUENCE_CURSOR: QueryParam = QueryParam {
    name: "cursor",
    schema: QuerySchema::SequenceCursor,
    description: "The `nextCursor` of the previous page.",
};
const POSITION_CURSOR: QueryParam = QueryParam {
    name: "cursor",
    schema: QuerySchema::PositionCursor,
    description: "The `nextCursor` of the previous page.",
};
const CURRENCY: QueryParam = QueryParam {
    name: "currency",
    schema: QuerySchema::Currency,
    description: "Only this currency.",
};
const TRANSACTION_TYPE: QueryParam = QueryParam {
    name: "type",
    schema: QuerySchema::TransactionType,
    description: "Only transactions of this type.",
};
const HOLD_STATUS: QueryParam = QueryParam {
    name: "status",
    schema: QuerySchema::HoldStatus,
    description: "Only holds of this status.",
};
const WALLET_STATUS: QueryParam = QueryParam {
    name: "status",
    schema: QuerySchema::WalletStatus,
    description: "Only wallets of this status.",
};
const FROM: QueryParam = QueryParam {
    name: "from",
    schema: QuerySchema::DateTime,
    description: "Start of the window (RFC 3339); default 24 hours before `to`.",
};
const TO: QueryParam = QueryParam {
    name: "to",
    schema: QuerySchema::DateTime,
    description: "End of the window (RFC 3339); default now.",
};
const AT: QueryParam = QueryParam {
    name: "at",
    schema: QuerySchema::DateTime,
    description: "The point in time (RFC 3339); default now.",
};
const AFTER: QueryParam = QueryParam {
    name: "after",
    schema: QuerySchema::Sequence,
    description: "The last sequence seen (`nextAfter`); absent: from the beginning.",
};
const EVENTS_LIMIT: QueryParam = QueryParam {
    name: "limit",
    schema: QuerySchema::EventsLimit,
    description: "At most this many events, 1 to 1000 (default 100).",
};

/// The description of every route.
pub mod routes {
    use super::*;

    const WALLETS: &str = "Wallets";
    const HOLDS: &str = "Holds";
    const POINTS: &str = "Points";
    const ADMIN: &str = "Admin";
    const OPERATIONS: &str = "Operations";

    pub fn create_wallet() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets",
            "createWallet",
            "Create a wallet",
            WALLETS,
        )
        .access(Access::Create)
        .body("CreateWalletRequest")
        .ok(Success::Schema(StatusCode::CREATED, "Wallet"))
    }
    pub fn list_wallets() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets",
            "listWallets",
            "List wallets",
            ADMIN,
        )
        .access(Access::Admin)
        .query(&[WALLET_STATUS, LIMIT, POSITION_CURSOR])
        .ok(Success::Page("Wallet"))
    }
    pub fn statistics() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/statistics",
            "statistics",
            "Statistics",
            ADMIN,
        )
        .access(Access::Admin)
        .query(&[FROM, TO])
        .ok(Success::Schema(StatusCode::OK, "Statistics"))
    }
    pub fn events() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/events",
            "events",
            "Read the event outbox",
            ADMIN,
        )
        .access(Access::Admin)
        .query(&[AFTER, EVENTS_LIMIT])
        .ok(Success::Schema(StatusCode::OK, "Events"))
    }
    pub fn get_wallet() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}",
            "getWallet",
            "Get a wallet",
            WALLETS,
        )
        .access(Access::Read)
    }
    pub fn close_wallet() -> RouteSpec {
        RouteSpec::new(
            Method::DELETE,
            "/api/v1/wallets/{userId}",
            "closeWallet",
            "Close a wallet",
            ADMIN,
        )
        .access(Access::Admin)
    }
    pub fn deposit() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/deposit",
            "deposit",
            "Deposit money",
            WALLETS,
        )
        .access(Access::Deposit)
        .body("MoneyRequest")
        .ok(Success::Schema(StatusCode::OK, "MoneyMovement"))
    }
    pub fn withdraw() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/withdraw",
            "withdraw",
            "Withdraw money",
            WALLETS,
        )
        .access(Access::Spend)
        .body("MoneyRequest")
        .ok(Success::Schema(StatusCode::OK, "MoneyMovement"))
    }
    pub fn exchange() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/exchange",
            "exchange",
            "Exchange between currencies",
            WALLETS,
        )
        .access(Access::Spend)
        .body("ExchangeRequest")
        .ok(Success::Schema(StatusCode::OK, "Exchange"))
    }
    pub fn transfer() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/transfers",
            "transfer",
            "Transfer money to another user's wallet",
            WALLETS,
        )
        .access(Access::Transfer)
        .body("TransferRequest")
        .ok(Success::Schema(StatusCode::OK, "Transfer"))
    }
    pub fn transactions() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/transactions",
            "listTransactions",
            "List a wallet's transactions",
            WALLETS,
        )
        .access(Access::Read)
        .query(&[LIMIT, SEQUENCE_CURSOR, CURRENCY, TRANSACTION_TYPE])
        .ok(Success::Page("Transaction"))
    }
    pub fn get_transaction() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/transactions/{transactionId}",
            "getTransaction",
            "Get one transaction of a wallet",
            WALLETS,
        )
        .access(Access::Read)
        .ok(Success::Schema(StatusCode::OK, "Transaction"))
    }
    pub fn reverse_transaction() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/transactions/{transactionId}/reverse",
            "reverseTransaction",
            "Reverse a transaction (refund, charge-back, correction)",
            WALLETS,
        )
        .access(Access::Settle)
        .body("ReverseRequest")
        .ok(Success::Schema(StatusCode::OK, "Reversal"))
    }
    pub fn balances_at() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/balances",
            "balancesAt",
            "A wallet's balances at a point in time",
            WALLETS,
        )
        .access(Access::Read)
        .query(&[AT])
        .ok(Success::Schema(StatusCode::OK, "BalancesAt"))
    }
    pub fn create_hold() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/holds",
            "createHold",
            "Hold money in escrow",
            HOLDS,
        )
        .access(Access::Spend)
        .body("CreateHoldRequest")
        .ok(Success::Schema(StatusCode::CREATED, "Hold"))
    }
    pub fn list_holds() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/holds",
            "listHolds",
            "List a wallet's holds",
            HOLDS,
        )
        .access(Access::Read)
        .query(&[HOLD_STATUS, LIMIT, POSITION_CURSOR])
        .ok(Success::Page("Hold"))
    }
    pub fn get_hold() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/holds/{holdId}",
            "getHold",
            "Get a hold",
            HOLDS,
        )
        .access(Access::Read)
        .ok(Success::Schema(StatusCode::OK, "Hold"))
    }
    pub fn execute_hold() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/holds/{holdId}/execute",
            "executeHold",
            "Execute a hold",
            HOLDS,
        )
        .access(Access::Settle)
        .body("ExecuteHoldRequest")
        .ok(Success::Schema(StatusCode::OK, "Hold"))
    }
    pub fn release_hold() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/holds/{holdId}/release",
            "releaseHold",
            "Release a hold",
            HOLDS,
        )
        .access(Access::Settle)
        .body("ReleaseHoldRequest")
        .ok(Success::Schema(StatusCode::OK, "Hold"))
    }
    pub fn cancel_hold() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/holds/{holdId}/cancel",
            "cancelHold",
            "Cancel a hold",
            HOLDS,
        )
        .access(Access::Settle)
        .ok(Success::Schema(StatusCode::OK, "Hold"))
    }
    pub fn freeze() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/freeze",
            "freezeWallet",
            "Freeze a wallet",
            ADMIN,
        )
        .access(Access::Admin)
        .body("FreezeRequest")
    }
    pub fn unfreeze() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/unfreeze",
            "unfreezeWallet",
            "Unfreeze a wallet",
            ADMIN,
        )
        .access(Access::Admin)
    }
    pub fn create_point_account() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points",
            "createPointAccount",
            "Create a point account",
            POINTS,
        )
        .access(Access::Create)
        .ok(Success::Schema(StatusCode::CREATED, "PointAccount"))
    }
    pub fn get_point_account() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/points",
            "getPointAccount",
            "Get a point account",
            POINTS,
        )
        .access(Access::Read)
        .ok(Success::Schema(StatusCode::OK, "PointAccount"))
    }
    pub fn earn_points() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points/earn",
            "earnPoints",
            "Earn points",
            POINTS,
        )
        .access(Access::Settle)
        .body("EarnRequest")
        .ok(Success::Schema(StatusCode::OK, "PointsResult"))
    }
    pub fn spend_points() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points/spend",
            "spendPoints",
            "Spend points",
            POINTS,
        )
        .access(Access::Spend)
        .body("SpendRequest")
        .ok(Success::Schema(StatusCode::OK, "PointsResult"))
    }
    pub fn adjust_points() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points/adjust",
            "adjustPoints",
            "Adjust points",
            ADMIN,
        )
        .access(Access::Admin)
        .body("AdjustRequest")
        .ok(Success::Schema(StatusCode::OK, "PointsResult"))
    }
    pub fn confirm_pending() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points/lots/{lotId}/confirm",
            "confirmPendingPoints",
            "Confirm pending points",
            POINTS,
        )
        .access(Access::Settle)
        .ok(Success::Schema(StatusCode::OK, "PointsResult"))
    }
    pub fn cancel_pending() -> RouteSpec {
        RouteSpec::new(
            Method::POST,
            "/api/v1/wallets/{userId}/points/lots/{lotId}/cancel",
            "cancelPendingPoints",
            "Cancel pending points",
            POINTS,
        )
        .access(Access::Settle)
        .ok(Success::Schema(StatusCode::OK, "PointsResult"))
    }
    pub fn point_transactions() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/api/v1/wallets/{userId}/points/transactions",
            "listPointTransactions",
            "List point transactions",
            POINTS,
        )
        .access(Access::Read)
        .query(&[LIMIT, SEQUENCE_CURSOR])
        .ok(Success::Page("PointTransaction"))
    }
    pub fn live() -> RouteSpec {
        RouteSpec::new(Method::GET, "/health/live", "live", "Liveness", OPERATIONS)
            .ok(Success::Schema(StatusCode::OK, "Status"))
    }
    pub fn ready() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/health/ready",
            "ready",
            "Readiness: 503 when the store does not answer",
            OPERATIONS,
        )
        .ok(Success::Schema(StatusCode::OK, "Status"))
    }
    pub fn health() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/health",
            "health",
            "Health with its checks",
            OPERATIONS,
        )
        .ok(Success::Schema(StatusCode::OK, "Health"))
    }
    pub fn metrics() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/metrics",
            "metrics",
            "Prometheus metrics",
            OPERATIONS,
        )
        .ok(Success::Text)
    }
    pub fn openapi() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/openapi.json",
            "openapi",
            "This document",
            OPERATIONS,
        )
        .ok(Success::Document)
    }
    pub fn docs() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/docs",
            "docs",
            "The API reference page",
            OPERATIONS,
        )
        .ok(Success::Html)
    }
}
