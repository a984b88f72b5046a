//! The route table, the router that serves it, and the handlers.
//!
//! Every route is one entry of [`table`]: its description ([`RouteSpec`]:
//! path, declared access, success status), from which the OpenAPI document
//! is generated, and its handler, which the router serves behind the
//! permission gate of [`crate::gate`]. A handler only reads the request:
//! a command route's handler builds the command ([`BuildCommand`]) and the
//! one command endpoint ([`command`]) runs it and answers with the route's
//! declared status; a query route's handler runs its query. No handler
//! checks who is calling.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{Extension, Json, Router};
use rust_decimal::Decimal;
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;
use wallet_core::{
    Actor, Command, CommandOutput, CurrencyCode, HoldStatus, PageRequest, Payee, TransactionFilter,
    TransactionType, WalletError, WalletStatus,
};

use crate::app::{observe, AppState, Body, RequestStarted};
use crate::backend::Backend;
use crate::dto::*;
use crate::gate::{self, Permitted};
use crate::input::{self, json_body, NoFields, PathIds};
use crate::problem::Problem;
use crate::spec::RouteSpec;

/// The header marking a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A route: what the document says, and what serves it.
pub struct Route<S> {
    pub spec: RouteSpec,
    pub handler: MethodRouter<AppState<S>>,
    /// How a command route builds its command; `None` for the other routes.
    pub build: Option<BuildCommand>,
}

/// What a command route's handler reads: the caller (already through the
/// gate), the ids of the path and the body.
pub struct CommandInput<'a> {
    pub actor: &'a Actor,
    pub ids: PathIds,
    pub body: &'a Bytes,
    /// The gate's check of the route's access against a user the body
    /// names ([`Permitted::confirm`]), for the one route whose user is in
    /// its body: it runs it as soon as it knows the user, so that a caller
    /// who may not act on that user learns nothing from the rest of the
    /// body.
    pub confirm: &'a (dyn Fn(uuid::Uuid) -> Result<(), Problem> + Sync),
}

/// Turns the request of a command route into its command.
pub type BuildCommand = fn(&CommandInput<'_>) -> Result<Command, Problem>;

fn method_filter(method: &Method) -> MethodFilter {
    if method == Method::POST {
        MethodFilter::POST
    } else if method == Method::DELETE {
        MethodFilter::DELETE
    } else {
        MethodFilter::GET
    }
}

/// A query or operations route.
fn route<S, H, T>(spec: RouteSpec, handler: H) -> Route<S>
where
    S: Backend,
    H: Handler<T, AppState<S>>,
    T: 'static,
{
    Route {
        handler: on(method_filter(&spec.method), handler),
        spec,
        build: None,
    }
}

/// A command route: `build` reads the request, and the command endpoint
/// runs the command and answers with the route's declared status.
fn command<S: Backend>(spec: RouteSpec, build: BuildCommand) -> Route<S> {
    let status = spec.success.status();
    let endpoint = move |State(state): State<AppState<S>>,
                         started: Option<Extension<RequestStarted>>,
                         permitted: Permitted,
                         ids: PathIds,
                         headers: HeaderMap,
                         Body(body): Body| async move {
        let confirm = |user_id| permitted.confirm(user_id);
        let input = CommandInput {
            actor: permitted.actor(),
            ids,
            body: &body,
            confirm: &confirm,
        };
        let command = build(&input)?;
        permitted.confirm(command.user_id())?;
        if let Some(Extension(RequestStarted(started))) = started {
            state
                .metrics()
                .stages()
                .read
                .observe(seconds_since(started));
        }
        run(&state, &headers, command, status).await
    };
    Route {
        handler: on(method_filter(&spec.method), endpoint),
        spec,
        build: Some(build),
    }
}

/// Every route the service serves.
pub fn table<S: Backend>() -> Vec<Route<S>> {
    use crate::spec::routes as r;
    vec![
        command(r::create_wallet(), create_wallet),
        route(r::list_wallets(), list_wallets::<S>),
        route(r::statistics(), statistics::<S>),
        route(r::events(), events::<S>),
        route(r::get_wallet(), get_wallet::<S>),
        command(r::close_wallet(), close_wallet),
        command(r::deposit(), deposit),
        command(r::withdraw(), withdraw),
        command(r::exchange(), exchange),
        command(r::transfer(), transfer),
        route(r::transactions(), transactions::<S>),
        route(r::get_transaction(), get_transaction::<S>),
        command(r::reverse_transaction(), reverse_transaction),
        route(r::balances_at(), balances_at::<S>),
        command(r::create_hold(), create_hold),
        route(r::list_holds(), list_holds::<S>),
        route(r::get_hold(), get_hold::<S>),
        command(r::execute_hold(), execute_hold),
        command(r::release_hold(), release_hold),
        command(r::cancel_hold(), cancel_hold),
        command(r::freeze(), freeze),
        command(r::unfreeze(), unfreeze),
        command(r::create_point_account(), create_point_account),
        route(r::get_point_account(), get_point_account::<S>),
        command(r::earn_points(), earn_points),
        command(r::spend_points(), spend_points),
        command(r::adjust_points(), adjust_points),
        command(r::confirm_pending(), confirm_pending),
        command(r::cancel_pending(), cancel_pending),
        route(r::point_transactions(), point_transactions::<S>),
        route(r::live(), live),
        route(r::ready(), ready::<S>),
        route(r::health(), health::<S>),
        route(r::metrics(), metrics::<S>),
        route(r::openapi(), openapi),
        route(r::docs(), docs),
    ]
}

/// The OpenAPI document, serialised once when the router is built.
#[derive(Clone)]
struct Document(Bytes);

/// The router of the whole service: every route of the table behind its
/// gate, the files of the reference page, and the layer around every
/// request.
pub fn router<S: Backend>(state: AppState<S>) -> Router {
    let table = table::<S>();
    let specs: Vec<RouteSpec> = table.iter().map(|route| route.spec.clone()).collect();
    let currencies = &state.service().policy().currencies;
    let document =
        serde_json::to_vec(&crate::openapi::document(&specs, currencies)).unwrap_or_default();
    let mut router = Router::new();
    for route in table {
        let handler = gate::guard(route.handler, &route.spec, &state);
        router = router.route(route.spec.path, handler);
    }
    router
        .route(crate::docs::FILES_PATH, get(crate::docs::page_file))
        .fallback(|| async { Problem::not_found() })
        .layer(Extension(Document(Bytes::from(document))))
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a handler panicked");
                Problem::internal().into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe::<S>))
        .with_state(state)
}

// ---- commands ----------------------------------------------------------------

/// Runs a command and answers with `status` and its result, or replays the
/// first answer of its idempotency key.
async fn run<S: Backend>(
    state: &AppState<S>,
    headers: &HeaderMap,
    command: Command,
    status: StatusCode,
) -> Result<Response, Problem> {
    let key = input::idempotency_key(headers)?;
    let stages = state.metrics().stages();
    let started = Instant::now();
    let executed = state.service().execute(command.clone(), key).await;
    stages.execute.observe(seconds_since(started));
    let applied = executed?;
    let started = Instant::now();
    if !applied.replayed {
        state.metrics().observe_command(&command, &applied.output);
    }
    let mut response = render(status, &applied.output);
    if applied.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    stages.answer.observe(seconds_since(started));
    Ok(response)
}

fn seconds_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

/// The response of a command's result.
fn render(status: StatusCode, output: &CommandOutput) -> Response {
    match output {
        CommandOutput::Wallet { wallet } => (status, Json(WalletDto::from(wallet))).into_response(),
        CommandOutput::Transaction {
            wallet,
            transaction,
        } => (
            status,
            Json(MoneyMovementDto {
                wallet: wallet.into(),
                transaction: transaction.into(),
            }),
        )
            .into_response(),
        CommandOutput::Exchange { wallet, exchange } => {
            (status, Json(ExchangeDto::new(wallet, exchange))).into_response()
        }
        CommandOutput::Hold { hold } => (status, Json(HoldDto::from(hold))).into_response(),
        CommandOutput::Transfer {
            wallet,
            transaction,
            transfer_id,
        } => (
            status,
            Json(TransferDto {
                wallet: wallet.into(),
                transaction: transaction.into(),
                transfer_id: *transfer_id,
            }),
        )
            .into_response(),
        CommandOutput::Reversal {
            wallet,
            transactions,
            reversed_amount,
        } => (
            status,
            Json(ReversalDto::new(wallet, transactions, *reversed_amount)),
        )
            .into_response(),
        CommandOutput::PointAccount { account } => {
            (status, Json(PointAccountDto::from(account))).into_response()
        }
        CommandOutput::Points {
            account,
            transaction,
            lot_id,
        } => (
            status,
            Json(PointsResultDto {
                account: account.into(),
                transaction: transaction.into(),
                lot_id: *lot_id,
            }),
        )
            .into_response(),
    }
}

fn currency(text: &str) -> Result<CurrencyCode, Problem> {
    CurrencyCode::parse(text).map_err(Problem::from)
}

fn create_wallet(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: CreateWalletRequest = json_body(input.body)?;
    let user_id = request.user_id.unwrap_or(input.actor.user_id);
    (input.confirm)(user_id)?;
    let default_currency = request
        .default_currency
        .as_deref()
        .map(currency)
        .transpose()?;
    Ok(Command::CreateWallet {
        user_id,
        default_currency,
    })
}

/// The fields of a deposit or a withdrawal, read.
struct Movement {
    amount: Decimal,
    currency: CurrencyCode,
    description: Option<String>,
    reference: Option<String>,
}

impl Movement {
    fn read(input: &CommandInput<'_>) -> Result<Movement, Problem> {
        let request: MoneyRequest = json_body(input.body)?;
        Ok(Movement {
            amount: input::amount("amount", &request.amount)?,
            currency: currency(&request.currency)?,
            description: request.description,
            reference: request.reference,
        })
    }
}

fn deposit(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let movement = Movement::read(input)?;
    Ok(Command::Deposit {
        user_id: input.ids.user_id,
        amount: movement.amount,
        currency: movement.currency,
        description: movement.description,
        reference: movement.reference,
    })
}

fn withdraw(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let movement = Movement::read(input)?;
    Ok(Command::Withdraw {
        user_id: input.ids.user_id,
        amount: movement.amount,
        currency: movement.currency,
        description: movement.description,
        reference: movement.reference,
    })
}

fn exchange(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: ExchangeRequest = json_body(input.body)?;
    Ok(Command::Exchange {
        user_id: input.ids.user_id,
        amount: input::amount("amount", &request.amount)?,
        from_currency: currency(&request.from_currency)?,
        to_currency: currency(&request.to_currency)?,
    })
}

fn create_hold(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: CreateHoldRequest = json_body(input.body)?;
    Ok(Command::CreateHold {
        user_id: input.ids.user_id,
        amount: input::amount("amount", &request.amount)?,
        currency: currency(&request.currency)?,
        reference_type: request.reference_type,
        reference_id: request.reference_id,
        description: request.description,
        expires_at: request.expires_at,
    })
}

fn execute_hold(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: ExecuteHoldRequest = json_body(input.body)?;
    let payees = request
        .payees
        .map(|payees| {
            payees
                .iter()
                .map(|payee| {
                    Ok(Payee {
                        user_id: payee.user_id,
                        amount: input::amount("payees.amount", &payee.amount)?,
                    })
                })
                .collect::<Result<Vec<Payee>, WalletError>>()
        })
        .transpose()?;
    Ok(Command::ExecuteHold {
        user_id: input.ids.user_id,
        hold_id: input.ids.hold_id,
        amount: input::optional_amount("amount", request.amount.as_deref())?,
        reference: request.reference,
        payees,
    })
}

fn transfer(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: TransferRequest = json_body(input.body)?;
    Ok(Command::Transfer {
        user_id: input.ids.user_id,
        to_user_id: request.to_user_id,
        amount: input::amount("amount", &request.amount)?,
        currency: currency(&request.currency)?,
        description: request.description,
        reference: request.reference,
    })
}

fn reverse_transaction(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: ReverseRequest = json_body(input.body)?;
    Ok(Command::ReverseTransaction {
        user_id: input.ids.user_id,
        transaction_id: input.ids.transaction_id,
        amount: input::optional_amount("amount", request.amount.as_deref())?,
        reason: request.reason,
    })
}

fn release_hold(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: ReleaseHoldRequest = json_body(input.body)?;
    Ok(Command::ReleaseHold {
        user_id: input.ids.user_id,
        hold_id: input.ids.hold_id,
        amount: input::optional_amount("amount", request.amount.as_deref())?,
    })
}

/// A command of a route that takes no body (`{}` or nothing): it is made of
/// the ids of the path alone.
fn bodyless(input: &CommandInput<'_>, command: fn(PathIds) -> Command) -> Result<Command, Problem> {
    let _: NoFields = json_body(input.body)?;
    Ok(command(input.ids))
}

fn cancel_hold(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::CancelHold {
        user_id: ids.user_id,
        hold_id: ids.hold_id,
    })
}

fn freeze(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: FreezeRequest = json_body(input.body)?;
    Ok(Command::FreezeWallet {
        user_id: input.ids.user_id,
        reason: request.reason,
    })
}

fn unfreeze(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::UnfreezeWallet {
        user_id: ids.user_id,
    })
}

fn close_wallet(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::CloseWallet {
        user_id: ids.user_id,
    })
}

fn create_point_account(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::CreatePointAccount {
        user_id: ids.user_id,
    })
}

fn earn_points(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: EarnRequest = json_body(input.body)?;
    Ok(Command::EarnPoints {
        user_id: input.ids.user_id,
        points: request.points,
        source: request.source,
        description: request.description,
        expires_at: request.expires_at,
        pending: request.pending,
    })
}

fn spend_points(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: SpendRequest = json_body(input.body)?;
    Ok(Command::SpendPoints {
        user_id: input.ids.user_id,
        points: request.points,
        source: request.source,
        description: request.description,
    })
}

fn adjust_points(input: &CommandInput<'_>) -> Result<Command, Problem> {
    let request: AdjustRequest = json_body(input.body)?;
    Ok(Command::AdjustPoints {
        user_id: input.ids.user_id,
        delta: request.points,
        source: request.source,
        description: request.description,
    })
}

fn confirm_pending(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::ConfirmPendingPoints {
        user_id: ids.user_id,
        lot_id: ids.lot_id,
    })
}

fn cancel_pending(input: &CommandInput<'_>) -> Result<Command, Problem> {
    bodyless(input, |ids| Command::CancelPendingPoints {
        user_id: ids.user_id,
        lot_id: ids.lot_id,
    })
}

// ---- queries -------------------------------------------------------------------

/// Query parameters of the paged reads; each route reads the ones it has.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
    currency: Option<String>,
    #[serde(rename = "type")]
    transaction_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    at: Option<String>,
}

impl PageQuery {
    fn parse(raw: Option<String>) -> Result<Self, Problem> {
        input::query(raw.as_deref())
    }

    fn page(&self) -> Result<PageRequest, WalletError> {
        PageRequest::parse(
            input::integer("limit", self.limit.as_deref())?,
            self.cursor.as_deref(),
        )
    }
}

fn status_filter<T: std::str::FromStr<Err = WalletError>>(
    text: Option<&str>,
) -> Result<Option<T>, WalletError> {
    text.map(str::parse).transpose()
}

async fn get_wallet<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
) -> Result<Json<WalletDto>, Problem> {
    let wallet = state.service().wallet(ids.user_id).await?;
    Ok(Json((&wallet).into()))
}

async fn transactions<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<TransactionDto>>, Problem> {
    let query = PageQuery::parse(raw)?;
    let filter = TransactionFilter {
        currency: query.currency.as_deref().map(currency).transpose()?,
        transaction_type: status_filter::<TransactionType>(query.transaction_type.as_deref())?,
    };
    let page = state
        .service()
        .transactions(ids.user_id, filter, query.page()?)
        .await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn get_transaction<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
) -> Result<Json<TransactionDto>, Problem> {
    let transaction = state
        .service()
        .transaction(ids.user_id, ids.transaction_id)
        .await?;
    Ok(Json((&transaction).into()))
}

async fn balances_at<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<BalancesAtDto>, Problem> {
    let query = PageQuery::parse(raw)?;
    let at = input::time("at", query.at.as_deref())?;
    let balances = state.service().balances_at(ids.user_id, at).await?;
    Ok(Json((&balances).into()))
}

async fn list_holds<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<HoldDto>>, Problem> {
    let query = PageQuery::parse(raw)?;
    let status = status_filter::<HoldStatus>(query.status.as_deref())?;
    let page = state
        .service()
        .holds(ids.user_id, status, query.page()?)
        .await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn get_hold<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
) -> Result<Json<HoldDto>, Problem> {
    let hold = state.service().hold(ids.user_id, ids.hold_id).await?;
    Ok(Json((&hold).into()))
}

async fn get_point_account<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
) -> Result<Json<PointAccountDto>, Problem> {
    let account = state.service().point_account(ids.user_id).await?;
    Ok(Json((&account).into()))
}

async fn point_transactions<S: Backend>(
    State(state): State<AppState<S>>,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<PointTransactionDto>>, Problem> {
    let query = PageQuery::parse(raw)?;
    let page = state
        .service()
        .point_transactions(ids.user_id, query.page()?)
        .await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn list_wallets<S: Backend>(
    State(state): State<AppState<S>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<WalletDto>>, Problem> {
    let query = PageQuery::parse(raw)?;
    let status = status_filter::<WalletStatus>(query.status.as_deref())?;
    let page = state.service().wallets(status, query.page()?).await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn statistics<S: Backend>(
    State(state): State<AppState<S>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatisticsDto>, Problem> {
    let query = PageQuery::parse(raw)?;
    let from = input::time("from", query.from.as_deref())?;
    let to = input::time("to", query.to.as_deref())?;
    let statistics = state.service().statistics(from, to).await?;
    Ok(Json((&statistics).into()))
}

async fn events<S: Backend>(
    State(state): State<AppState<S>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventsDto>, Problem> {
    let query = PageQuery::parse(raw)?;
    let after = input::integer("after", query.after.as_deref())?;
    let after = match after {
        None => None,
        Some(n) => Some(
            u64::try_from(n)
                .map_err(|_| WalletError::Validation("after must not be negative".into()))?,
        ),
    };
    let limit = input::integer("limit", query.limit.as_deref())?;
    let (events, next_after) = state.service().events(after, limit).await?;
    Ok(Json(EventsDto {
        items: events.iter().map(Into::into).collect(),
        next_after,
    }))
}

// ---- operations ------------------------------------------------------------------

const HEALTHY: &str = "Healthy";
const UNHEALTHY: &str = "Unhealthy";
const DEGRADED: &str = "Degraded";
/// The name of the store's check in `GET /health`.
const STORE_CHECK: &str = "store";

async fn live() -> Json<StatusDto> {
    Json(StatusDto {
        status: HEALTHY.to_owned(),
    })
}

async fn ready<S: Backend>(State(state): State<AppState<S>>) -> Response {
    match state.service().ready().await {
        Ok(()) => Json(StatusDto {
            status: HEALTHY.to_owned(),
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(StatusDto {
                    status: UNHEALTHY.to_owned(),
                }),
            )
                .into_response()
        }
    }
}

async fn health<S: Backend>(State(state): State<AppState<S>>) -> Response {
    let store = state.service().store();
    let (status, detail) = match state.service().ready().await {
        Ok(()) => (HEALTHY, format!("the {} store answers", store.kind())),
        Err(error) => {
            tracing::warn!(error = %error, "unhealthy: the store does not answer");
            (
                UNHEALTHY,
                format!("the {} store does not answer", store.kind()),
            )
        }
    };
    let mut checks = std::collections::BTreeMap::new();
    checks.insert(
        STORE_CHECK.to_owned(),
        CheckDto {
            status: status.to_owned(),
            detail,
            lag_events: None,
            lag_seconds: None,
            lag_bytes: None,
        },
    );
    if let Some(check) = crate::relay::health_check(&state) {
        checks.insert(crate::relay::RELAY_CHECK.to_owned(), check);
    }
    if let Some(measured) = store.replica_lag().await {
        checks.insert(
            crate::replica::REPLICA_CHECK.to_owned(),
            crate::replica::check(&measured),
        );
    }
    let code = if status == HEALTHY {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthDto {
        status: overall(status, &checks).to_owned(),
        checks,
        version: crate::VERSION.to_owned(),
    };
    (code, Json(body)).into_response()
}

/// The overall status: the store's when it is not healthy (the only one
/// that makes `/health` 503), else `Degraded` when any other check is
/// degraded or unhealthy (the relay, the replica: commands still work),
/// else healthy. A relay on standby is fine.
fn overall<'a>(
    store_status: &'a str,
    checks: &std::collections::BTreeMap<String, CheckDto>,
) -> &'a str {
    let impaired = checks.iter().any(|(name, check)| {
        name != STORE_CHECK && [DEGRADED, UNHEALTHY].contains(&check.status.as_str())
    });
    if store_status == HEALTHY && impaired {
        DEGRADED
    } else {
        store_status
    }
}

async fn metrics<S: Backend>(State(state): State<AppState<S>>) -> Response {
    let store = state.service().store();
    let mut text = state.metrics().render_with(store.batch_stats());
    if let Some(measured) = store.replica_lag().await {
        text.push_str(&crate::replica::render(&measured));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn openapi(Extension(Document(document)): Extension<Document>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document,
    )
        .into_response()
}

async fn docs() -> Response {
    crate::docs::page()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use uuid::Uuid;
    use wallet_core::{access_of, InMemoryStore};

    use crate::spec::{Owner, Success};

    /// A body the route of `operation_id` accepts.
    fn valid_body(operation_id: &str) -> Value {
        let money = json!({"amount": "1", "currency": "USD"});
        let points = json!({"points": 5, "source": "order"});
        match operation_id {
            "deposit" | "withdraw" => money,
            "exchange" => json!({"amount": "1", "fromCurrency": "USD", "toCurrency": "EUR"}),
            "createHold" => json!({
                "amount": "1", "currency": "USD",
                "referenceType": "Order", "referenceId": Uuid::from_u128(9)
            }),
            "freezeWallet" | "reverseTransaction" => json!({"reason": "review"}),
            "transfer" => json!({"toUserId": Uuid::from_u128(5), "amount": "1", "currency": "USD"}),
            "earnPoints" | "spendPoints" | "adjustPoints" => points,
            _ => json!({}),
        }
    }

    fn commands() -> Vec<(RouteSpec, BuildCommand)> {
        table::<InMemoryStore>()
            .into_iter()
            .filter_map(|route| route.build.map(|build| (route.spec, build)))
            .collect()
    }

    #[test]
    fn every_command_route_declares_the_access_the_core_gives_its_command() {
        let actor = Actor {
            user_id: Uuid::from_u128(1),
            roles: Vec::new(),
        };
        let ids = PathIds {
            user_id: Uuid::from_u128(2),
            hold_id: Uuid::from_u128(3),
            lot_id: Uuid::from_u128(4),
            transaction_id: Uuid::from_u128(6),
        };
        let mut built = std::collections::HashSet::new();
        let commands = commands();
        let routes = commands.len();
        for (spec, build) in commands {
            let body = Bytes::from(valid_body(spec.operation_id).to_string());
            let input = CommandInput {
                actor: &actor,
                ids,
                body: &body,
                confirm: &|_| Ok(()),
            };
            let command = build(&input)
                .unwrap_or_else(|problem| panic!("{}: {problem:?}", spec.operation_id));
            assert_eq!(
                spec.access,
                Some(access_of(&command)),
                "{}",
                spec.operation_id
            );
            // The command acts on the user the gate checked: the path's, or
            // for a route with no user in its path, the one it names.
            let expected_user = match spec.owner() {
                Owner::Path => ids.user_id,
                Owner::Command => actor.user_id,
                Owner::Nobody => panic!("{}: a command acts on a user", spec.operation_id),
            };
            assert_eq!(command.user_id(), expected_user, "{}", spec.operation_id);
            built.insert(std::mem::discriminant(&command));
        }
        // The core has 19 commands, and each has exactly one route.
        assert_eq!((routes, built.len()), (19, 19));
    }

    #[test]
    fn only_command_routes_build_commands_and_each_declares_its_status_once() {
        for route in table::<InMemoryStore>() {
            let spec = &route.spec;
            assert_eq!(
                route.build.is_some(),
                spec.is_command(),
                "{}",
                spec.operation_id
            );
            let creates = spec.operation_id.starts_with("create");
            let status = spec.success.status();
            assert_eq!(
                status == StatusCode::CREATED,
                creates && spec.is_command(),
                "{}: {status}",
                spec.operation_id
            );
            if let Success::Page(_) = spec.success {
                assert_eq!(status, StatusCode::OK);
            }
        }
    }

    #[test]
    fn the_document_asks_for_the_bearer_token_exactly_where_the_gate_does() {
        let specs: Vec<RouteSpec> = table::<InMemoryStore>()
            .into_iter()
            .map(|route| route.spec)
            .collect();
        let document = crate::openapi::document(&specs, &wallet_core::CurrencyTable::default());
        let scheme = &document["components"]["securitySchemes"]["bearer"];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "bearer");
        for spec in &specs {
            let method = spec.method.as_str().to_ascii_lowercase();
            let operation = &document["paths"][spec.path][method.as_str()];
            let security = operation["security"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let expected = if spec.access.is_some() {
                vec![json!({"bearer": []})]
            } else {
                Vec::new()
            };
            assert_eq!(security, expected, "{}", spec.operation_id);
        }
    }

    #[test]
    fn the_owner_of_a_route_is_its_path_user_else_its_command_user_else_nobody() {
        use crate::spec::routes as r;
        assert_eq!(r::deposit().owner(), Owner::Path);
        assert_eq!(r::get_hold().owner(), Owner::Path);
        assert_eq!(r::create_wallet().owner(), Owner::Command);
        assert_eq!(r::list_wallets().owner(), Owner::Nobody);
        assert_eq!(r::events().owner(), Owner::Nobody);
    }
}
