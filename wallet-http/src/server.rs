//! Running the service: logging, the store, the verifier, background work,
//! and serving until SIGTERM or Ctrl-C.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wallet_core::{InMemoryStore, Policy, WalletService};

use crate::app::{AppState, HttpOptions};
use crate::auth::{JwtVerifier, TokenVerifier};
use crate::backend::Backend;
use crate::config::{AuthMode, CliCommand, Config, LogFormat};
use crate::dev::DevIssuer;
use crate::metrics::Metrics;
use crate::routes::router;

/// How often old idempotency records are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// What the background tasks do and how often.
#[derive(Debug, Clone)]
pub struct BackgroundOptions {
    pub sweep_interval: Duration,
    pub purge_interval: Duration,
    /// The event relay, started with the server when set.
    pub relay: Option<crate::relay::RelaySettings>,
}

impl Default for BackgroundOptions {
    fn default() -> Self {
        BackgroundOptions {
            sweep_interval: Duration::from_secs(5),
            purge_interval: PURGE_INTERVAL,
            relay: None,
        }
    }
}

/// Sets up logging: JSON or human-readable lines, filtered by `filter`.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    if result.is_err() {
        // A subscriber is already installed (in tests): keep it.
    }
}

/// Serves the application on `listener` until `shutdown` completes, then
/// lets requests in flight finish. Runs the expiry sweep, the idempotency
/// purge and (when configured) the event relay alongside; the relay stops
/// last, after its batch in flight is acknowledged.
pub async fn serve<S: Backend>(
    listener: TcpListener,
    state: AppState<S>,
    background: BackgroundOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let relay =
        crate::relay::start(&state, background.relay.as_ref()).map_err(std::io::Error::other)?;
    let (stop_sender, stop) = watch::channel(false);
    let sweeper = tokio::spawn(sweep_loop(
        state.clone(),
        background.sweep_interval,
        stop.clone(),
    ));
    let purger = tokio::spawn(purge_loop(
        state.clone(),
        background.purge_interval,
        stop.clone(),
    ));
    let app = router(state);
    // Answers are small and go out at once: no waiting on Nagle's
    // algorithm for the peer's acknowledgement.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await;
    let _ = stop_sender.send(true);
    let _ = sweeper.await;
    let _ = purger.await;
    if let Some(relay) = relay {
        relay.stop().await;
    }
    result
}

/// Expires overdue holds and point lots every `interval`. Several instances
/// may sweep at once: each aggregate is expired in its own unit of work.
async fn sweep_loop<S: Backend>(
    state: AppState<S>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        match state
            .service()
            .sweep_expired(wallet_core::service::SWEEP_BATCH_MAX)
            .await
        {
            Ok(report) => {
                state.metrics().observe_sweep(true);
                if report.wallets + report.point_accounts + report.failures > 0 {
                    tracing::info!(
                        wallets = report.wallets,
                        point_accounts = report.point_accounts,
                        failures = report.failures,
                        "expired overdue holds and point lots"
                    );
                }
            }
            Err(error) => {
                state.metrics().observe_sweep(false);
                tracing::warn!(error = %error, "expiry sweep failed; retrying next interval");
            }
        }
    }
}

/// Deletes idempotency records older than the policy's retention, every
/// `interval`.
async fn purge_loop<S: Backend>(
    state: AppState<S>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        match state.service().purge_idempotency_records().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged old idempotency records"),
            Err(error) => tracing::warn!(error = %error, "idempotency purge failed"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// Runs the command line: serve, or migrate and exit.
pub async fn run(config: Config) -> Result<(), String> {
    init_logging(&config.log_filter, config.log_format);
    match (&config.database, config.command) {
        (Some(database), CliCommand::Migrate) => {
            let store = crate::pg::connect(database).await?;
            crate::pg::migrate(&store).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        (None, CliCommand::Migrate) => Err("`migrate` needs DATABASE_URL".into()),
        (_, CliCommand::Audit { .. }) => Err("`audit` runs through `audit::run`".into()),
        (Some(database), CliCommand::Serve) => {
            let store = crate::pg::connect(database).await?;
            if config.migrate {
                crate::pg::migrate(&store).await?;
                tracing::info!("migrations applied");
            }
            if !config.migrate {
                tracing::info!(
                    "migrations are not applied at start; run `wallet-http migrate` or set WALLET_MIGRATE=true when the schema changes"
                );
            }
            serve_with(store, &config).await
        }
        (None, CliCommand::Serve) => {
            tracing::warn!(
                "DATABASE_URL is not set: using an in-memory store; nothing is kept when the process ends"
            );
            serve_with(InMemoryStore::new(), &config).await
        }
    }
}

async fn serve_with<S: Backend>(store: S, config: &Config) -> Result<(), String> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let address: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let verifier: Arc<dyn TokenVerifier> = match &config.auth {
        AuthMode::Provider {
            authority,
            audience,
        } => {
            let verifier = JwtVerifier::discover(authority, audience.clone())?;
            verifier.warm_up().await;
            Arc::new(verifier)
        }
        AuthMode::NotNeeded => return Err("no way to authenticate callers is configured".into()),
        AuthMode::Development => {
            let issuer = DevIssuer::generate()?;
            let banner = issuer.banner(&format!("http://{address}"))?;
            println!("{banner}");
            Arc::new(issuer.verifier())
        }
    };
    let state = application(
        store,
        config.policy.clone(),
        verifier,
        config.request_timeout,
    )
    .map_err(|e| format!("cannot set up metrics: {e}"))?;
    tracing::info!(address = %address, store = state.service().store().kind(), "listening");
    let background = BackgroundOptions {
        sweep_interval: config.sweep_interval,
        purge_interval: PURGE_INTERVAL,
        relay: config.relay.clone(),
    };
    serve(listener, state, background, shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// The state of an application over `store`.
pub fn application<S: Backend>(
    store: S,
    policy: Policy,
    verifier: Arc<dyn TokenVerifier>,
    request_timeout: Duration,
) -> Result<AppState<S>, prometheus::Error> {
    Ok(AppState::new(
        WalletService::new(store, policy),
        verifier,
        Metrics::new()?,
        HttpOptions { request_timeout },
    ))
}
