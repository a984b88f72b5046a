//! RFC 7807 problem documents: the one shape of every error response.
//!
//! [`Problem::from`] on a [`WalletError`] is the one place where the codes
//! of the core meet HTTP status codes (the table of the HTTP contract).
//! Unexpected errors are logged here and answered with a generic detail, so
//! no response ever carries a stack trace, SQL or a connection string.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wallet_core::WalletError;

/// The media type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";
/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u64 = 1;
/// The longest `detail` text returned, in characters.
const DETAIL_LENGTH_MAX: usize = 300;

/// An error response body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// A URI reference naming the kind of problem (relative to the service).
    #[schema(example = "/docs#problem-insufficient_funds")]
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the kind of problem.
    #[schema(example = "Insufficient funds")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The stable machine-readable code.
    #[schema(example = "insufficient_funds")]
    pub code: String,
}

/// The code a response carried, kept as a response extension so that the
/// metrics layer can count errors by code.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// An error on its way to becoming a response.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
}

impl Problem {
    /// A problem with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        let mut detail: String = detail.into();
        if detail.chars().count() > DETAIL_LENGTH_MAX {
            detail = detail.chars().take(DETAIL_LENGTH_MAX).collect::<String>() + "...";
        }
        Problem {
            status,
            code,
            detail,
        }
    }

    /// 400 `validation_error`.
    pub fn validation(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "validation_error", detail)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 404 `not_found`, for paths the service does not serve.
    pub fn not_found() -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no resource at this path",
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit_bytes} bytes"),
        )
    }

    /// 503 `unavailable`, with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    /// 500, with a generic detail: the cause is logged, never returned.
    pub fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred; it has been logged",
        )
    }

    /// A problem for a status that carries no code of its own (a bare
    /// rejection from the framework).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Problem::not_found(),
            StatusCode::METHOD_NOT_ALLOWED => Problem::new(
                status,
                "method_not_allowed",
                "this path does not accept this method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => Problem::payload_too_large(crate::BODY_LIMIT_BYTES),
            StatusCode::UNAUTHORIZED => Problem::unauthorized("missing or invalid token"),
            StatusCode::FORBIDDEN => Problem::new(status, "forbidden", "not allowed"),
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::GATEWAY_TIMEOUT => Problem::unavailable("the service is busy; retry"),
            status if status.is_server_error() => Problem::internal(),
            status => Problem::new(status, "validation_error", "the request was not understood"),
        }
    }

    /// The body of the response.
    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            problem_type: format!("/docs#problem-{}", self.code),
            title: title_of(self.code).to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
        }
    }
}

impl From<WalletError> for Problem {
    fn from(error: WalletError) -> Self {
        let status = status_of(&error);
        let detail = match &error {
            WalletError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                return Problem::internal();
            }
            WalletError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "store unavailable");
                "the store is unavailable or overloaded; retry later".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(status, error.code(), detail)
    }
}

/// The status of each error of the core: the table of the HTTP contract.
pub fn status_of(error: &WalletError) -> StatusCode {
    use WalletError as E;
    match error {
        E::Validation(_)
        | E::InvalidAmount(_)
        | E::UnsupportedCurrency(_)
        | E::SameCurrency
        | E::SameWallet => StatusCode::BAD_REQUEST,
        E::Forbidden => StatusCode::FORBIDDEN,
        E::WalletNotFound
        | E::HoldNotFound
        | E::PointAccountNotFound
        | E::LotNotFound
        | E::TransactionNotFound => StatusCode::NOT_FOUND,
        E::WalletExists
        | E::PointAccountExists
        | E::ConcurrencyConflict
        | E::IdempotencyKeyInFlight => StatusCode::CONFLICT,
        E::InsufficientFunds
        | E::InsufficientPoints
        | E::WalletFrozen
        | E::WalletClosed
        | E::WalletNotFrozen
        | E::WalletNotEmpty
        | E::HoldNotActive
        | E::AmountExceedsHold
        | E::AmountTooSmall
        | E::BalanceLimitExceeded
        | E::LotNotPending
        | E::IdempotencyKeyReused
        // The contract answers a missing payee with 422, not 404: the
        // route's own wallet exists, the request names a wrong other one.
        | E::CounterpartyNotFound
        | E::CounterpartyClosed
        | E::NotReversible
        | E::ReversalExceedsOriginal => StatusCode::UNPROCESSABLE_ENTITY,
        E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The title of each code.
pub fn title_of(code: &str) -> &'static str {
    match code {
        "validation_error" => "Invalid request",
        "invalid_amount" => "Invalid amount",
        "unsupported_currency" => "Unsupported currency",
        "same_currency" => "Same currency",
        "same_wallet" => "Same wallet",
        "counterparty_not_found" => "Counterparty not found",
        "counterparty_closed" => "Counterparty closed",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "wallet_not_found" => "Wallet not found",
        "hold_not_found" => "Hold not found",
        "point_account_not_found" => "Point account not found",
        "lot_not_found" => "Point lot not found",
        "transaction_not_found" => "Transaction not found",
        "not_reversible" => "Not reversible",
        "reversal_exceeds_original" => "Reversal exceeds original",
        "not_found" => "Not found",
        "method_not_allowed" => "Method not allowed",
        "wallet_exists" => "Wallet exists",
        "point_account_exists" => "Point account exists",
        "concurrency_conflict" => "Concurrent modification",
        "idempotency_key_in_flight" => "Idempotency key in flight",
        "payload_too_large" => "Payload too large",
        "insufficient_funds" => "Insufficient funds",
        "insufficient_points" => "Insufficient points",
        "wallet_frozen" => "Wallet frozen",
        "wallet_closed" => "Wallet closed",
        "wallet_not_frozen" => "Wallet not frozen",
        "wallet_not_empty" => "Wallet not empty",
        "hold_not_active" => "Hold not active",
        "amount_exceeds_hold" => "Amount exceeds hold",
        "amount_too_small" => "Amount too small",
        "balance_limit_exceeded" => "Balance limit exceeded",
        "lot_not_pending" => "Point lot not pending",
        "idempotency_key_reused" => "Idempotency key reused",
        "unavailable" => "Service unavailable",
        _ => "Internal error",
    }
}

/// Every code a response may carry, with its status, for the reference page.
pub const PROBLEM_CODES: &[(u16, &str)] = &[
    (400, "validation_error"),
    (400, "invalid_amount"),
    (400, "unsupported_currency"),
    (400, "same_currency"),
    (400, "same_wallet"),
    (401, "unauthorized"),
    (403, "forbidden"),
    (404, "wallet_not_found"),
    (404, "hold_not_found"),
    (404, "point_account_not_found"),
    (404, "lot_not_found"),
    (404, "transaction_not_found"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (409, "wallet_exists"),
    (409, "point_account_exists"),
    (409, "concurrency_conflict"),
    (409, "idempotency_key_in_flight"),
    (413, "payload_too_large"),
    (422, "insufficient_funds"),
    (422, "insufficient_points"),
    (422, "wallet_frozen"),
    (422, "wallet_closed"),
    (422, "wallet_not_frozen"),
    (422, "wallet_not_empty"),
    (422, "hold_not_active"),
    (422, "amount_exceeds_hold"),
    (422, "amount_too_small"),
    (422, "balance_limit_exceeded"),
    (422, "lot_not_pending"),
    (422, "idempotency_key_reused"),
    (422, "counterparty_not_found"),
    (422, "counterparty_closed"),
    (422, "not_reversible"),
    (422, "reversal_exceeds_original"),
    (500, "internal_error"),
    (503, "unavailable"),
];

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.document()).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(ProblemCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_core_has_the_status_of_the_contract() {
        let cases = [
            (WalletError::Validation("x".into()), 400),
            (WalletError::InvalidAmount("x".into()), 400),
            (WalletError::UnsupportedCurrency("x".into()), 400),
            (WalletError::SameCurrency, 400),
            (WalletError::Forbidden, 403),
            (WalletError::WalletNotFound, 404),
            (WalletError::HoldNotFound, 404),
            (WalletError::PointAccountNotFound, 404),
            (WalletError::LotNotFound, 404),
            (WalletError::WalletExists, 409),
            (WalletError::PointAccountExists, 409),
            (WalletError::ConcurrencyConflict, 409),
            (WalletError::IdempotencyKeyInFlight, 409),
            (WalletError::InsufficientFunds, 422),
            (WalletError::InsufficientPoints, 422),
            (WalletError::WalletFrozen, 422),
            (WalletError::WalletClosed, 422),
            (WalletError::WalletNotFrozen, 422),
            (WalletError::WalletNotEmpty, 422),
            (WalletError::HoldNotActive, 422),
            (WalletError::AmountExceedsHold, 422),
            (WalletError::AmountTooSmall, 422),
            (WalletError::BalanceLimitExceeded, 422),
            (WalletError::LotNotPending, 422),
            (WalletError::IdempotencyKeyReused, 422),
            (WalletError::Unavailable("db".into()), 503),
            (WalletError::Internal("bug".into()), 500),
        ];
        for (error, status) in cases {
            let code = error.code();
            let problem = Problem::from(error);
            assert_eq!(problem.status.as_u16(), status, "{code}");
            assert!(
                PROBLEM_CODES.contains(&(status, code)),
                "{code} is listed with {status}"
            );
            if code != "internal_error" {
                assert_ne!(title_of(code), "Internal error", "{code} has a title");
            }
        }
    }

    #[test]
    fn internal_and_unavailable_details_are_not_returned() {
        let internal = Problem::from(WalletError::Internal("SELECT secret".into()));
        assert!(!internal.detail.contains("SELECT"));
        let down = Problem::from(WalletError::Unavailable("postgres://u:p@h".into()));
        assert!(!down.detail.contains("postgres://"));
    }
}
