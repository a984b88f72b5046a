//! What each route is, for the OpenAPI document: method, path (with the
//! parameter names of the HTTP contract), who may call it, its query
//! parameters, body and success response.

use axum::http::Method;
use wallet_core::Access;

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
    /// A JSON document of a named schema.
    Schema(u16, &'static str),
    /// A page (`items`, `nextCursor`) of a named schema.
    Page(&'static str),
    /// Plain text (Prometheus metrics).
    Text,
    /// An HTML page.
    Html,
    /// The OpenAPI document itself.
    Document,
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
            success: Success::Schema(200, "Wallet"),
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

    /// The path parameters, in order (`userId`, `holdId`, `lotId`).
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }

    /// Who may call the route, in words.
    pub fn who(&self) -> &'static str {
        match self.access {
            None => "Anyone; no token needed.",
            Some(Access::Read) => "The owner (sub == userId), Service, Admin, SuperAdmin.",
            Some(Access::Create) => "The owner (sub == userId), Service, Admin, SuperAdmin.",
            Some(Access::Spend) => "The owner (sub == userId), Service, Admin, SuperAdmin.",
            Some(Access::Deposit) => "Service, Admin, SuperAdmin.",
            Some(Access::Settle) => "Service, Admin, SuperAdmin.",
            Some(Access::Admin) => "Admin, SuperAdmin.",
        }
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
        .ok(Success::Schema(201, "Wallet"))
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
        .ok(Success::Schema(200, "Statistics"))
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
        .ok(Success::Schema(200, "Events"))
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
        .ok(Success::Schema(200, "MoneyMovement"))
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
        .ok(Success::Schema(200, "MoneyMovement"))
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
        .ok(Success::Schema(200, "Exchange"))
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
        .ok(Success::Schema(201, "Hold"))
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
        .ok(Success::Schema(200, "Hold"))
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
        .ok(Success::Schema(200, "Hold"))
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
        .ok(Success::Schema(200, "Hold"))
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
        .ok(Success::Schema(200, "Hold"))
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
        .ok(Success::Schema(201, "PointAccount"))
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
        .ok(Success::Schema(200, "PointAccount"))
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
        .ok(Success::Schema(200, "PointsResult"))
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
        .ok(Success::Schema(200, "PointsResult"))
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
        .ok(Success::Schema(200, "PointsResult"))
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
        .ok(Success::Schema(200, "PointsResult"))
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
        .ok(Success::Schema(200, "PointsResult"))
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
            .ok(Success::Schema(200, "Status"))
    }
    pub fn ready() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/health/ready",
            "ready",
            "Readiness: 503 when the store does not answer",
            OPERATIONS,
        )
        .ok(Success::Schema(200, "Status"))
    }
    pub fn health() -> RouteSpec {
        RouteSpec::new(
            Method::GET,
            "/health",
            "health",
            "Health with its checks",
            OPERATIONS,
        )
        .ok(Success::Schema(200, "Health"))
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
