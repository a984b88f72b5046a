//! Prometheus metrics, one registry per application instance.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use wallet_core::{Command, CommandOutput, PointTransaction, WalletTransaction};

/// Upper bounds of the request duration buckets, in seconds.
const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    transactions: IntCounterVec,
    point_transactions: IntCounterVec,
    errors: IntCounterVec,
    sweeps: IntCounter,
    sweep_failures: IntCounter,
}

impl Metrics {
    /// Adds metrics collected elsewhere (the event relay's) to the registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Registers every metric in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request",
            )
            .buckets(DURATION_BUCKETS_SECONDS.to_vec()),
            &["method", "route", "status"],
        )?;
        let transactions = IntCounterVec::new(
            Opts::new(
                "wallet_transactions_total",
                "Wallet transactions written by commands",
            ),
            &["type", "currency"],
        )?;
        let point_transactions = IntCounterVec::new(
            Opts::new(
                "wallet_point_transactions_total",
                "Point transactions written by commands",
            ),
            &["type"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("wallet_errors_total", "Error responses by problem code"),
            &["code"],
        )?;
        let sweeps = IntCounter::new("wallet_sweeps_total", "Expiry sweeps run")?;
        let sweep_failures =
            IntCounter::new("wallet_sweep_failures_total", "Expiry sweeps that failed")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(transactions.clone()))?;
        registry.register(Box::new(point_transactions.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(sweeps.clone()))?;
        registry.register(Box::new(sweep_failures.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            transactions,
            point_transactions,
            errors,
            sweeps,
            sweep_failures,
        })
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Counts one error response.
    pub fn observe_error(&self, code: &str) {
        self.errors.with_label_values(&[code]).inc();
    }

    /// Counts the transactions a command wrote (not on replays).
    pub fn observe_command(&self, command: &Command, output: &CommandOutput) {
        let wallet = |t: &WalletTransaction| {
            self.transactions
                .with_label_values(&[t.transaction_type.as_str(), t.currency.as_str()])
                .inc()
        };
        let points = |t: &PointTransaction| {
            self.point_transactions
                .with_label_values(&[t.transaction_type.as_str()])
                .inc()
        };
        match output {
            CommandOutput::Transaction { transaction, .. } => wallet(transaction),
            CommandOutput::Exchange { exchange, .. } => {
                exchange.transactions.iter().for_each(wallet)
            }
            CommandOutput::Hold { hold } => {
                let kind = match command {
                    Command::CreateHold { .. } => "Hold",
                    Command::ExecuteHold { .. } => "HoldExecute",
                    _ => "HoldRelease",
                };
                self.transactions
                    .with_label_values(&[kind, hold.currency.as_str()])
                    .inc();
            }
            CommandOutput::Points { transaction, .. } => points(transaction),
            CommandOutput::Wallet { .. } | CommandOutput::PointAccount { .. } => {}
        }
    }

    /// Counts one sweep.
    pub fn observe_sweep(&self, ok: bool) {
        self.sweeps.inc();
        if !ok {
            self.sweep_failures.inc();
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
