//! The OpenAPI 3.1 document, generated from the route table (paths and
//! operations) and from the DTO types (schemas).

use serde_json::{json, Map, Value};
use utoipa::OpenApi;
use wallet_core::CurrencyTable;

use crate::app::REQUEST_ID_LENGTH_MAX;
use crate::constraints::{self, reference};
use crate::dto::*;
use crate::problem::{ProblemDocument, PROBLEM_CODES};
use crate::spec::{RouteSpec, Success};

#[derive(OpenApi)]
#[openapi(components(schemas(
    BalanceDto,
    WalletDto,
    TransactionDto,
    HoldDto,
    MoneyMovementDto,
    TransferDto,
    ReversalDto,
    BalancesAtDto,
    ExchangeDto,
    PointAccountDto,
    PointTransactionDto,
    PointsResultDto,
    EventDto,
    EventsDto,
    WalletCountsDto,
    CurrencyTotalsDto,
    TransactionTotalsDto,
    PointTotalsDto,
    StatisticsDto,
    StatusDto,
    CheckDto,
    HealthDto,
    ProblemDocument,
    CreateWalletRequest,
    MoneyRequest,
    ExchangeRequest,
    CreateHoldRequest,
    ExecuteHoldRequest,
    PayeeRequest,
    TransferRequest,
    ReverseRequest,
    ReleaseHoldRequest,
    FreezeRequest,
    EarnRequest,
    SpendRequest,
    AdjustRequest,
)))]
struct Schemas;

const DESCRIPTION: &str = "\
A wallet and loyalty-points ledger. Money amounts are decimal strings \
(requests also accept JSON numbers, read exactly); points are integers. \
Every `/api/v1` route needs `Authorization: Bearer <JWT>`. Every state-changing \
`POST` accepts `Idempotency-Key` (1 to 255 printable ASCII characters): a repeat \
returns the first response with `Idempotent-Replayed: true`. Errors are RFC 7807 \
problem documents (`application/problem+json`) with a stable `code`. Currency codes \
and status or type filters are case-insensitive. An empty optional text \
(`\"description\": \"\"`) is the same as an absent one.";

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": { "schema": reference("Problem") } }
    })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn success_response(success: &Success, replayable: bool) -> (String, Value) {
    let mut headers = Map::new();
    headers.insert(
        "X-Request-Id".into(),
        json!({ "description": "The caller's request id when it is acceptable, else a new one.", "required": true, "schema": constraints::request_id_schema() }),
    );
    if replayable {
        headers.insert(
            "Idempotent-Replayed".into(),
            json!({ "description": "`true` when this is the stored response of an earlier request with the same key.", "schema": { "type": "string", "enum": ["true"] } }),
        );
    }
    let content = match success {
        Success::Schema(_, schema) => json_content(reference(schema)),
        Success::Page(schema) => json_content(json!({
            "type": "object",
            "required": ["items", "nextCursor"],
            "properties": {
                "items": { "type": "array", "items": reference(schema) },
                "nextCursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page." }
            }
        })),
        Success::Text => json!({ "text/plain": { "schema": { "type": "string" } } }),
        Success::Html => json!({ "text/html": { "schema": { "type": "string" } } }),
        Success::Document => json_content(json!({ "type": "object" })),
    };
    let status = success.status();
    let description = status.canonical_reason().unwrap_or("OK");
    (
        status.as_str().to_owned(),
        json!({ "description": description, "headers": headers, "content": content }),
    )
}

fn operation(spec: &RouteSpec) -> Value {
    let mut parameters: Vec<Value> = spec
        .path_params()
        .into_iter()
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": { "type": "string", "format": "uuid" }
            })
        })
        .collect();
    for query in &spec.query {
        parameters.push(json!({
            "name": query.name, "in": "query", "required": false,
            "description": query.description, "schema": query.schema.schema()
        }));
    }
    if spec.is_command() {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "Makes the request safe to retry: 1 to 255 printable ASCII characters (not beginning or ending with a space, which HTTP would drop), scoped to the user in the path.",
            "schema": constraints::idempotency_key_schema()
        }));
    }
    parameters.push(json!({
        "name": "X-Request-Id", "in": "header", "required": false,
        "description": format!("Echoed back when it is 1 to {REQUEST_ID_LENGTH_MAX} letters, digits and `-_.:`; any other value, or none, is replaced by a new id (never refused)."),
        "schema": { "type": "string" }
    }));

    let mut responses = Map::new();
    let (status, success) = success_response(&spec.success, spec.is_command());
    responses.insert(status, success);
    if spec.access.is_some() {
        responses.insert("400".into(), problem_response("Invalid input: validation_error, invalid_amount, unsupported_currency, same_currency."));
        responses.insert(
            "401".into(),
            problem_response("Missing or invalid token: unauthorized."),
        );
        responses.insert(
            "403".into(),
            problem_response("The caller may not do this: forbidden."),
        );
        if !spec.path_params().is_empty() {
            responses.insert(
                "404".into(),
                problem_response(
                    "wallet_not_found, hold_not_found, point_account_not_found, lot_not_found, transaction_not_found.",
                ),
            );
        }
        if spec.is_command() {
            responses.insert("409".into(), problem_response("wallet_exists, point_account_exists, concurrency_conflict, idempotency_key_in_flight."));
            responses.insert(
                "413".into(),
                problem_response("The body is over 64 KiB: payload_too_large."),
            );
            responses.insert("422".into(), problem_response("A business rule refused the command (insufficient_funds, wallet_frozen, ...; see the codes in the description)."));
        }
        responses.insert(
            "503".into(),
            problem_response("The store is down or overloaded: unavailable (with Retry-After)."),
        );
    } else if matches!(spec.operation_id, "ready" | "health") {
        let schema = if spec.operation_id == "ready" {
            "Status"
        } else {
            "Health"
        };
        responses.insert(
            "503".into(),
            json!({ "description": "The store does not answer.", "content": json_content(reference(schema)) }),
        );
    }

    let mut operation = json!({
        "operationId": spec.operation_id,
        "summary": spec.summary,
        "description": format!("Who may call: {}", spec.who()),
        "tags": [spec.tag],
        "parameters": parameters,
        "responses": responses,
    });
    if spec.access.is_some() {
        operation["security"] = json!([{ "bearer": [] }]);
    } else {
        operation["security"] = json!([]);
    }
    if let Some(body) = spec.body {
        // Routes whose fields are all optional also take an empty body.
        let optional = matches!(
            body,
            "CreateWalletRequest" | "ExecuteHoldRequest" | "ReleaseHoldRequest"
        );
        operation["requestBody"] = json!({
            "required": !optional,
            "content": json_content(reference(body))
        });
    }
    operation
}

/// The document for the given routes, with the constraints of the given
/// currency table.
pub fn document(specs: &[RouteSpec], currencies: &CurrencyTable) -> Value {
    let mut document = serde_json::to_value(Schemas::openapi()).unwrap_or_else(|_| json!({}));
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        schemas.extend(constraints::components(currencies));
        constraints::price_by_currency(schemas, currencies);
        constraints::pattern_response_decimals(schemas);
    }
    let codes: Vec<String> = PROBLEM_CODES
        .iter()
        .map(|(status, code)| format!("- `{code}` ({status})"))
        .collect();
    document["openapi"] = json!("3.1.0");
    document["info"] = json!({
        "title": "Wallet ledger API",
        "version": crate::VERSION,
        "description": format!("{DESCRIPTION}\n\nProblem codes:\n\n{}", codes.join("\n")),
        "license": { "name": "MIT OR Apache-2.0" }
    });
    let mut paths = Map::new();
    for spec in specs {
        let item = paths
            .entry(spec.path.to_owned())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_ascii_lowercase()] = operation(spec);
    }
    document["paths"] = Value::Object(paths);
    document["components"]["securitySchemes"] = json!({
        "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
    });
    document["tags"] = json!([
        { "name": "Wallets" }, { "name": "Holds" }, { "name": "Points" },
        { "name": "Admin" }, { "name": "Operations" }
    ]);
    document
}
