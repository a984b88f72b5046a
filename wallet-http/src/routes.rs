//! The route table and the handlers.
//!
//! Every route is one entry of [`table`]: its description (which the
//! OpenAPI document is generated from) and its handler (which the router
//! serves), so the two cannot drift apart.
//!
//! Handlers authorise before they load or parse anything: a caller who may
//! not see a wallet learns nothing about it, not even whether it exists.

use axum::extract::{RawQuery, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Json;
use serde::Deserialize;
use wallet_core::{
    access_of, Access, Actor, Command, CommandOutput, CurrencyCode, HoldStatus, PageRequest,
    TransactionFilter, TransactionType, WalletError, WalletStatus,
};

use crate::app::{AppState, Body, Caller};
use crate::backend::Backend;
use crate::dto::*;
use crate::input::{self, json_body, NoFields, PathIds};
use crate::problem::Problem;
use crate::spec::RouteSpec;

/// The header marking a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A route: what the document says, and what serves it.
pub struct Route<S> {
    pub spec: RouteSpec,
    pub handler: MethodRouter<AppState<S>>,
}

fn route<S, H, T>(spec: RouteSpec, handler: H) -> Route<S>
where
    S: Backend,
    H: Handler<T, AppState<S>>,
    T: 'static,
{
    let filter = if spec.method == Method::POST {
        MethodFilter::POST
    } else if spec.method == Method::DELETE {
        MethodFilter::DELETE
    } else {
        MethodFilter::GET
    };
    Route {
        spec,
        handler: on(filter, handler),
    }
}

/// Every route the service serves.
pub fn table<S: Backend>() -> Vec<Route<S>> {
    use crate::spec::routes as r;
    vec![
        route(r::create_wallet(), create_wallet::<S>),
        route(r::list_wallets(), list_wallets::<S>),
        route(r::statistics(), statistics::<S>),
        route(r::events(), events::<S>),
        route(r::get_wallet(), get_wallet::<S>),
        route(r::close_wallet(), close_wallet::<S>),
        route(r::deposit(), deposit::<S>),
        route(r::withdraw(), withdraw::<S>),
        route(r::exchange(), exchange::<S>),
        route(r::transactions(), transactions::<S>),
        route(r::create_hold(), create_hold::<S>),
        route(r::list_holds(), list_holds::<S>),
        route(r::get_hold(), get_hold::<S>),
        route(r::execute_hold(), execute_hold::<S>),
        route(r::release_hold(), release_hold::<S>),
        route(r::cancel_hold(), cancel_hold::<S>),
        route(r::freeze(), freeze::<S>),
        route(r::unfreeze(), unfreeze::<S>),
        route(r::create_point_account(), create_point_account::<S>),
        route(r::get_point_account(), get_point_account::<S>),
        route(r::earn_points(), earn_points::<S>),
        route(r::spend_points(), spend_points::<S>),
        route(r::adjust_points(), adjust_points::<S>),
        route(r::confirm_pending(), confirm_pending::<S>),
        route(r::cancel_pending(), cancel_pending::<S>),
        route(r::point_transactions(), point_transactions::<S>),
        route(r::live(), live),
        route(r::ready(), ready::<S>),
        route(r::health(), health::<S>),
        route(r::metrics(), metrics::<S>),
        route(r::openapi(), openapi::<S>),
        route(r::docs(), docs),
    ]
}

// ---- commands ----------------------------------------------------------------

/// Runs a command for `actor` and renders its result, or replays the first
/// result of its idempotency key.
async fn run<S: Backend>(
    state: &AppState<S>,
    actor: &Actor,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, Problem> {
    actor.authorize(access_of(&command), Some(command.user_id()))?;
    let key = input::idempotency_key(headers)?;
    let status = match &command {
        Command::CreateWallet { .. }
        | Command::CreateHold { .. }
        | Command::CreatePointAccount { .. } => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let applied = state.service().execute(command.clone(), key).await?;
    if !applied.replayed {
        state.metrics().observe_command(&command, &applied.output);
    }
    let mut response = render(status, &applied.output);
    if applied.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
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

async fn create_wallet<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    let request: CreateWalletRequest = json_body(&body)?;
    let user_id = request.user_id.unwrap_or(actor.user_id);
    actor.authorize(Access::Create, Some(user_id))?;
    let default_currency = request
        .default_currency
        .as_deref()
        .map(currency)
        .transpose()?;
    let command = Command::CreateWallet {
        user_id,
        default_currency,
    };
    run(&state, &actor, &headers, command).await
}

async fn deposit<S: Backend>(
    state: State<AppState<S>>,
    caller: Caller,
    ids: PathIds,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    money_movement(state, caller, ids, headers, body, Access::Deposit).await
}

async fn withdraw<S: Backend>(
    state: State<AppState<S>>,
    caller: Caller,
    ids: PathIds,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    money_movement(state, caller, ids, headers, body, Access::Spend).await
}

async fn money_movement<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
    access: Access,
) -> Result<Response, Problem> {
    actor.authorize(access, Some(ids.user_id))?;
    let request: MoneyRequest = json_body(&body)?;
    let amount = input::amount("amount", &request.amount)?;
    let currency = currency(&request.currency)?;
    let command = if access == Access::Deposit {
        Command::Deposit {
            user_id: ids.user_id,
            amount,
            currency,
            description: request.description,
            reference: request.reference,
        }
    } else {
        Command::Withdraw {
            user_id: ids.user_id,
            amount,
            currency,
            description: request.description,
            reference: request.reference,
        }
    };
    run(&state, &actor, &headers, command).await
}

async fn exchange<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Spend, Some(ids.user_id))?;
    let request: ExchangeRequest = json_body(&body)?;
    let command = Command::Exchange {
        user_id: ids.user_id,
        amount: input::amount("amount", &request.amount)?,
        from_currency: currency(&request.from_currency)?,
        to_currency: currency(&request.to_currency)?,
    };
    run(&state, &actor, &headers, command).await
}

async fn create_hold<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Spend, Some(ids.user_id))?;
    let request: CreateHoldRequest = json_body(&body)?;
    let command = Command::CreateHold {
        user_id: ids.user_id,
        amount: input::amount("amount", &request.amount)?,
        currency: currency(&request.currency)?,
        reference_type: request.reference_type,
        reference_id: request.reference_id,
        description: request.description,
        expires_at: request.expires_at,
    };
    run(&state, &actor, &headers, command).await
}

async fn execute_hold<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let request: ExecuteHoldRequest = json_body(&body)?;
    let command = Command::ExecuteHold {
        user_id: ids.user_id,
        hold_id: ids.hold_id,
        amount: input::optional_amount("amount", request.amount.as_deref())?,
        reference: request.reference,
    };
    run(&state, &actor, &headers, command).await
}

async fn release_hold<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let request: ReleaseHoldRequest = json_body(&body)?;
    let command = Command::ReleaseHold {
        user_id: ids.user_id,
        hold_id: ids.hold_id,
        amount: input::optional_amount("amount", request.amount.as_deref())?,
    };
    run(&state, &actor, &headers, command).await
}

async fn cancel_hold<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::CancelHold {
        user_id: ids.user_id,
        hold_id: ids.hold_id,
    };
    run(&state, &actor, &headers, command).await
}

async fn freeze<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Admin, Some(ids.user_id))?;
    let request: FreezeRequest = json_body(&body)?;
    let command = Command::FreezeWallet {
        user_id: ids.user_id,
        reason: request.reason,
    };
    run(&state, &actor, &headers, command).await
}

async fn unfreeze<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Admin, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::UnfreezeWallet {
        user_id: ids.user_id,
    };
    run(&state, &actor, &headers, command).await
}

async fn close_wallet<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Admin, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::CloseWallet {
        user_id: ids.user_id,
    };
    run(&state, &actor, &headers, command).await
}

async fn create_point_account<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Create, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::CreatePointAccount {
        user_id: ids.user_id,
    };
    run(&state, &actor, &headers, command).await
}

async fn earn_points<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let request: EarnRequest = json_body(&body)?;
    let command = Command::EarnPoints {
        user_id: ids.user_id,
        points: request.points,
        source: request.source,
        description: request.description,
        expires_at: request.expires_at,
        pending: request.pending,
    };
    run(&state, &actor, &headers, command).await
}

async fn spend_points<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Spend, Some(ids.user_id))?;
    let request: SpendRequest = json_body(&body)?;
    let command = Command::SpendPoints {
        user_id: ids.user_id,
        points: request.points,
        source: request.source,
        description: request.description,
    };
    run(&state, &actor, &headers, command).await
}

async fn adjust_points<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Admin, Some(ids.user_id))?;
    let request: AdjustRequest = json_body(&body)?;
    let command = Command::AdjustPoints {
        user_id: ids.user_id,
        delta: request.points,
        source: request.source,
        description: request.description,
    };
    run(&state, &actor, &headers, command).await
}

async fn confirm_pending<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::ConfirmPendingPoints {
        user_id: ids.user_id,
        lot_id: ids.lot_id,
    };
    run(&state, &actor, &headers, command).await
}

async fn cancel_pending<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    actor.authorize(Access::Settle, Some(ids.user_id))?;
    let _: NoFields = json_body(&body)?;
    let command = Command::CancelPendingPoints {
        user_id: ids.user_id,
        lot_id: ids.lot_id,
    };
    run(&state, &actor, &headers, command).await
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
    Caller(actor): Caller,
    ids: PathIds,
) -> Result<Json<WalletDto>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
    let wallet = state.service().wallet(ids.user_id).await?;
    Ok(Json((&wallet).into()))
}

async fn transactions<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<TransactionDto>>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
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

async fn list_holds<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<HoldDto>>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
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
    Caller(actor): Caller,
    ids: PathIds,
) -> Result<Json<HoldDto>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
    let hold = state.service().hold(ids.user_id, ids.hold_id).await?;
    Ok(Json((&hold).into()))
}

async fn get_point_account<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
) -> Result<Json<PointAccountDto>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
    let account = state.service().point_account(ids.user_id).await?;
    Ok(Json((&account).into()))
}

async fn point_transactions<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    ids: PathIds,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<PointTransactionDto>>, Problem> {
    actor.authorize(Access::Read, Some(ids.user_id))?;
    let query = PageQuery::parse(raw)?;
    let page = state
        .service()
        .point_transactions(ids.user_id, query.page()?)
        .await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn list_wallets<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageDto<WalletDto>>, Problem> {
    actor.authorize(Access::Admin, None)?;
    let query = PageQuery::parse(raw)?;
    let status = status_filter::<WalletStatus>(query.status.as_deref())?;
    let page = state.service().wallets(status, query.page()?).await?;
    Ok(Json(PageDto::map(&page, Into::into)))
}

async fn statistics<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatisticsDto>, Problem> {
    actor.authorize(Access::Admin, None)?;
    let query = PageQuery::parse(raw)?;
    let from = input::time("from", query.from.as_deref())?;
    let to = input::time("to", query.to.as_deref())?;
    let statistics = state.service().statistics(from, to).await?;
    Ok(Json((&statistics).into()))
}

async fn events<S: Backend>(
    State(state): State<AppState<S>>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventsDto>, Problem> {
    actor.authorize(Access::Admin, None)?;
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
        "store".to_owned(),
        CheckDto {
            status: status.to_owned(),
            detail,
            lag_events: None,
        },
    );
    let relay = crate::relay::health_check(&state);
    let overall = crate::relay::overall(status, HEALTHY, relay.as_ref());
    if let Some(check) = relay {
        checks.insert(crate::relay::RELAY_CHECK.to_owned(), check);
    }
    let code = if status == HEALTHY {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthDto {
        status: overall.to_owned(),
        checks,
        version: crate::VERSION.to_owned(),
    };
    (code, Json(body)).into_response()
}

async fn metrics<S: Backend>(State(state): State<AppState<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics().render(),
    )
        .into_response()
}

async fn openapi<S: Backend>(State(state): State<AppState<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi(),
    )
        .into_response()
}

async fn docs() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        crate::DOCS_HTML,
    )
        .into_response()
}
