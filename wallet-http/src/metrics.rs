//! Prometheus metrics, one registry per application instance.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use wallet_core::{Command, CommandOutput, PointTransaction, TransactionType, WalletTransaction};
use wallet_pg::batch::{BatchStats, BATCH_SIZE_BUCKETS, BATCH_STAGES};

/// Upper bounds of the request duration buckets, in seconds.
const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the command stage buckets, in seconds: most stages of
/// the service itself take microseconds.
const STAGE_BUCKETS_SECONDS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 1.0,
];

/// The stages of a command request in the service, timed by
/// `wallet_http_stage_seconds`: `read` (from the request's arrival to its
/// command built: the token, the path, the body), `execute` (the
/// application service: validation and the store) and `answer` (the
/// response rendered and counted). Each is one histogram resolved once,
/// so that timing a request costs a few clock reads and atomic adds.
#[derive(Clone)]
pub struct CommandStages {
    pub read: Histogram,
    pub execute: Histogram,
    pub answer: Histogram,
}

/// The service's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    stages: CommandStages,
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
        let stage_duration = HistogramVec::new(
            HistogramOpts::new(
                "wallet_http_stage_seconds",
                "Time a command request spent in each stage of the service",
            )
            .buckets(STAGE_BUCKETS_SECONDS.to_vec()),
            &["stage"],
        )?;
        let stages = CommandStages {
            read: stage_duration.get_metric_with_label_values(&["read"])?,
            execute: stage_duration.get_metric_with_label_values(&["execute"])?,
            answer: stage_duration.get_metric_with_label_values(&["answer"])?,
        };
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
        registry.register(Box::new(stage_duration))?;
        registry.register(Box::new(transactions.clone()))?;
        registry.register(Box::new(point_transactions.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(sweeps.clone()))?;
        registry.register(Box::new(sweep_failures.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            stages,
            transactions,
            point_transactions,
            errors,
            sweeps,
            sweep_failures,
        })
    }

    /// The stage timings of command requests.
    pub fn stages(&self) -> &CommandStages {
        &self.stages
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
            // One `Reversal` on each wallet the reversal changed.
            CommandOutput::Reversal { transactions, .. } => transactions.iter().for_each(wallet),
            CommandOutput::Exchange { exchange, .. } => {
                exchange.transactions.iter().for_each(wallet)
            }
            CommandOutput::Hold { hold } => {
                let count = |kind: &str| {
                    self.transactions
                        .with_label_values(&[kind, hold.currency.as_str()])
                        .inc()
                };
                if let Some(kind) = hold_transaction_type(command) {
                    count(kind);
                }
                // A payout also wrote one `TransferIn` on each payee.
                if let Command::ExecuteHold {
                    payees: Some(payees),
                    ..
                } = command
                {
                    payees
                        .iter()
                        .for_each(|_| count(TransactionType::TransferIn.as_str()));
                }
            }
            CommandOutput::Transfer { transaction, .. } => {
                // The payer's `TransferOut` and the payee's `TransferIn`.
                wallet(transaction);
                self.transactions
                    .with_label_values(&[
                        TransactionType::TransferIn.as_str(),
                        transaction.currency.as_str(),
                    ])
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

    /// [`Metrics::render`], followed by the batching writer's statistics
    /// when the store batches.
    pub fn render_with(&self, batches: Option<BatchStats>) -> String {
        let mut text = self.render();
        if let Some(stats) = batches {
            text.push_str(&render_batches(&stats));
        }
        text
    }
}

/// The batching writer's statistics in the Prometheus text format. The
/// store counts them itself (they are totals since it connected), so they
/// are written out from its snapshot rather than kept twice in the
/// registry.
pub fn render_batches(stats: &BatchStats) -> String {
    let mut text = String::from(
        "# HELP wallet_batch_size Commands per batch of the batching writer\n\
         # TYPE wallet_batch_size histogram\n",
    );
    let mut cumulative = 0u64;
    for (bound, count) in BATCH_SIZE_BUCKETS.iter().zip(stats.size_counts) {
        cumulative = cumulative.saturating_add(count);
        text.push_str(&format!(
            "wallet_batch_size_bucket{{le=\"{bound}\"}} {cumulative}\n"
        ));
    }
    text.push_str(&format!(
        "wallet_batch_size_bucket{{le=\"+Inf\"}} {}\n\
         wallet_batch_size_sum {}\n\
         wallet_batch_size_count {}\n",
        stats.batches, stats.commands, stats.batches
    ));
    for (name, help, value) in [
        (
            "wallet_batch_fallback_total",
            "Batches whose commands ran again one by one",
            stats.fallbacks,
        ),
        (
            "wallet_batch_failure_total",
            "Batches that failed as a whole",
            stats.failures,
        ),
        (
            "wallet_batch_stale_total",
            "Batches run again because a kept wallet was changed elsewhere",
            stats.stale,
        ),
        (
            "wallet_batch_chained_total",
            "Batches begun by the previous batch's commit",
            stats.chained,
        ),
        (
            "wallet_batch_kept_wallets_total",
            "Wallets a batch took from its writer's kept copies",
            stats.cached,
        ),
        (
            "wallet_batch_known_wallets_total",
            "Wallets a batch locked without loading, its writer's kept copy being current",
            stats.known,
        ),
        (
            "wallet_batch_statements_total",
            "Statements the batching writers sent to the database",
            stats.statements,
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    text.push_str(
        "# HELP wallet_batch_stage_seconds_total Time commands spent in each stage of the \
         batching writer, summed over commands\n\
         # TYPE wallet_batch_stage_seconds_total counter\n",
    );
    for (stage, nanos) in BATCH_STAGES.iter().zip(stats.stage_nanos) {
        // Nanoseconds to seconds; an f64 keeps them exact up to 104 days.
        let seconds = nanos as f64 / 1e9;
        text.push_str(&format!(
            "wallet_batch_stage_seconds_total{{stage=\"{stage}\"}} {seconds}\n"
        ));
    }
    text
}

/// The `type` label of the transaction a hold command writes, or `None` for
/// a command that writes no hold transaction. Every command is listed, so a
/// new one must be placed here.
fn hold_transaction_type(command: &Command) -> Option<&'static str> {
    match command {
        Command::CreateHold { .. } => Some("Hold"),
        Command::ExecuteHold { .. } => Some("HoldExecute"),
        Command::ReleaseHold { .. } | Command::CancelHold { .. } => Some("HoldRelease"),
        Command::CreateWallet { .. }
        | Command::Deposit { .. }
        | Command::Withdraw { .. }
        | Command::Exchange { .. }
        | Command::FreezeWallet { .. }
        | Command::UnfreezeWallet { .. }
        | Command::CloseWallet { .. }
        | Command::Transfer { .. }
        | Command::ReverseTransaction { .. }
        | Command::CreatePointAccount { .. }
        | Command::EarnPoints { .. }
        | Command::SpendPoints { .. }
        | Command::AdjustPoints { .. }
        | Command::ConfirmPendingPoints { .. }
        | Command::CancelPendingPoints { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_statistics_render_as_a_cumulative_histogram_and_counters() {
        let mut size_counts = [0; BATCH_SIZE_BUCKETS.len()];
        size_counts[0] = 3;
        size_counts[2] = 2;
        let stats = BatchStats {
            batches: 5,
            commands: 10,
            stale: 1,
            fallbacks: 2,
            known: 4,
            size_counts,
            stage_nanos: [1_500_000_000, 0, 0, 0, 0, 250_000, 0],
            ..BatchStats::default()
        };
        let text = Metrics::new().expect("metrics").render_with(Some(stats));
        for line in [
            "# TYPE wallet_batch_size histogram",
            "wallet_batch_size_bucket{le=\"1\"} 3",
            "wallet_batch_size_bucket{le=\"2\"} 3",
            "wallet_batch_size_bucket{le=\"4\"} 5",
            "wallet_batch_size_bucket{le=\"4096\"} 5",
            "wallet_batch_size_bucket{le=\"+Inf\"} 5",
            "wallet_batch_size_sum 10",
            "wallet_batch_size_count 5",
            "wallet_batch_stale_total 1",
            "wallet_batch_fallback_total 2",
            "wallet_batch_failure_total 0",
            "wallet_batch_known_wallets_total 4",
            "# TYPE wallet_batch_stage_seconds_total counter",
            "wallet_batch_stage_seconds_total{stage=\"queued\"} 1.5",
            "wallet_batch_stage_seconds_total{stage=\"begin\"} 0",
            "wallet_batch_stage_seconds_total{stage=\"commit\"} 0.00025",
            "wallet_batch_stage_seconds_total{stage=\"store\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        let unbatched = Metrics::new().expect("metrics").render_with(None);
        assert!(!unbatched.contains("wallet_batch"), "{unbatched}");
    }
}
