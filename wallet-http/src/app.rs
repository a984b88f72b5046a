//! The application: shared state, the caller and body extractors, and the
//! layer every request passes through (request id, tracing span, timeout,
//! metrics, problem documents). The router that serves the route table is
//! [`crate::routes::router`]; this module knows nothing of the routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;
use wallet_core::{Actor, WalletService};

use crate::auth::{bearer_token, TokenVerifier};
use crate::backend::Backend;
use crate::metrics::Metrics;
use crate::problem::{Problem, ProblemCode, PROBLEM_CONTENT_TYPE};

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest request id taken from a caller, in characters.
pub const REQUEST_ID_LENGTH_MAX: usize = 128;

/// Knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// How long a request may take before it is answered with 503.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
pub struct AppState<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    service: WalletService<S>,
    verifier: Arc<dyn TokenVerifier>,
    metrics: Metrics,
    options: HttpOptions,
    /// The event relay, once started (never, without `WALLET_NATS_URL`).
    relay: std::sync::OnceLock<crate::relay::RelayMonitor>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Backend> AppState<S> {
    /// The state of one application instance.
    pub fn new(
        service: WalletService<S>,
        verifier: Arc<dyn TokenVerifier>,
        metrics: Metrics,
        options: HttpOptions,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                service,
                verifier,
                metrics,
                options,
                relay: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The application service.
    pub fn service(&self) -> &WalletService<S> {
        &self.inner.service
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The event relay, when it runs.
    pub fn relay(&self) -> Option<&crate::relay::RelayMonitor> {
        self.inner.relay.get()
    }

    /// Records the started relay; a second one is ignored (one per process).
    pub fn set_relay(&self, monitor: crate::relay::RelayMonitor) {
        let _ = self.inner.relay.set(monitor);
    }
}

/// The authenticated caller.
pub struct Caller(pub Actor);

impl<S: Backend> FromRequestParts<AppState<S>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        let actor = state.inner.verifier.verify(token).await?;
        Ok(Caller(actor))
    }
}

/// A request body of at most [`crate::BODY_LIMIT_BYTES`], read whole.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::payload_too_large(crate::BODY_LIMIT_BYTES)
                } else {
                    Problem::validation("the request body could not be read")
                }
            })
    }
}

/// When the request arrived, as the layer around every request saw it: the
/// start of a command's `read` stage (`wallet_http_stage_seconds`).
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub Instant);

/// The layer around every request: request id, span, timeout, metrics,
/// and problem documents for whatever error left the router without one.
pub(crate) async fn observe<S: Backend>(
    State(state): State<AppState<S>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    request.extensions_mut().insert(RequestStarted(started));
    let request_id = request_id_of(&request);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let timeout = state.inner.options.request_timeout;
    let outcome = tokio::time::timeout(timeout, next.run(request))
        .instrument(span.clone())
        .await;
    let mut response = match outcome {
        Ok(response) => as_problem(response),
        Err(_) => {
            let _entered = span.enter();
            tracing::warn!(timeout_seconds = timeout.as_secs(), "request timed out");
            Problem::unavailable("the request took too long; retry later").into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let _entered = span.enter();
    record(state.metrics(), &method, &route, &response, started);
    response
}

/// The caller's request id when it is acceptable, else a new one.
fn request_id_of(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| acceptable_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// The method as a metrics label. Only the standard methods become label
/// values: any other text would let a client grow the metrics without bound.
fn method_label(method: &Method) -> String {
    match *method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::HEAD
        | Method::OPTIONS => method.as_str().to_owned(),
        _ => "OTHER".to_owned(),
    }
}

/// An error answer that is not JSON (one of the framework's own
/// rejections) replaced by the problem document of its status, keeping
/// its `Allow` header.
fn as_problem(response: Response) -> Response {
    if response.status().as_u16() < 400 || is_json(&response) {
        return response;
    }
    let mut problem = Problem::from_status(response.status()).into_response();
    for (name, value) in response.headers().iter() {
        if name == header::ALLOW {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

/// Counts the answer in the metrics and logs it (inside the request's span).
fn record(metrics: &Metrics, method: &str, route: &str, response: &Response, started: Instant) {
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    metrics.observe_request(method, route, status, seconds);
    if let Some(ProblemCode(code)) = response.extensions().get::<ProblemCode>() {
        metrics.observe_error(code);
    }
    let duration_ms = (seconds * 1000.0).round() as u64;
    if status >= 500 {
        tracing::warn!(status, duration_ms, "request answered");
    } else {
        tracing::info!(status, duration_ms, "request answered");
    }
}

fn acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= REQUEST_ID_LENGTH_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json") || ct.starts_with(PROBLEM_CONTENT_TYPE)
        })
}
