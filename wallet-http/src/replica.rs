//! The read replica as the service reports it: the `replica` check of
//! `GET /health` and its metrics, from one measurement of the store
//! ([`Backend::replica_lag`], wallet-pg's `PgStore::replica_lag`) per
//! request. Without `DATABASE_READ_URL` there is no check and no metric.
//!
//! The check is `Healthy` while the replica's data is at most
//! `WALLET_REPLICA_LAG_MAX` old (5 s by default), `Degraded` when it is
//! older, when its age cannot be told, or when the read database is not a
//! standby, and `Unhealthy` when the replica does not answer. Either of the
//! last two makes the overall status `Degraded` (HTTP 200): commands never
//! use the replica, so they go on working, and another instance on the
//! same replica would fare no better.

use wallet_core::WalletError;
use wallet_pg::ReplicaLag;

use crate::dto::CheckDto;

/// The name of the check in `GET /health`.
pub const REPLICA_CHECK: &str = "replica";
/// The check's statuses.
pub const HEALTHY: &str = "Healthy";
pub const DEGRADED: &str = "Degraded";
pub const UNHEALTHY: &str = "Unhealthy";

/// Milliseconds in a second, for the lag in seconds with three decimals.
const MILLIS_PER_SECOND: f64 = 1000.0;

/// The lag in seconds, to the millisecond.
fn seconds(lag: &ReplicaLag) -> Option<f64> {
    lag.delay
        .map(|delay| delay.as_millis() as f64 / MILLIS_PER_SECOND)
}

/// The `replica` check of one measurement.
pub fn check(measured: &Result<ReplicaLag, WalletError>) -> CheckDto {
    match measured {
        Ok(lag) => CheckDto {
            status: if lag.lagging() { DEGRADED } else { HEALTHY }.to_owned(),
            detail: lag.describe(),
            lag_events: None,
            lag_seconds: seconds(lag),
            lag_bytes: lag.bytes,
        },
        Err(error) => {
            tracing::warn!(error = %error, "the read replica does not answer");
            CheckDto {
                status: UNHEALTHY.to_owned(),
                detail: "the read replica does not answer; queries fail until it does, \
                         commands are not affected"
                    .to_owned(),
                lag_events: None,
                lag_seconds: None,
                lag_bytes: None,
            }
        }
    }
}

/// The replica's metrics in the Prometheus text format:
/// `wallet_replica_up`, and when measured `wallet_replica_lag_seconds` and
/// `wallet_replica_lag_bytes`.
pub fn render(measured: &Result<ReplicaLag, WalletError>) -> String {
    let mut text = String::from(
        "# HELP wallet_replica_up Whether the read replica answered the lag measurement\n\
         # TYPE wallet_replica_up gauge\n",
    );
    let lag = measured.as_ref().ok();
    text.push_str(&format!("wallet_replica_up {}\n", u8::from(lag.is_some())));
    if let Some(seconds) = lag.and_then(seconds) {
        text.push_str(&format!(
            "# HELP wallet_replica_lag_seconds At most how old the read replica's data is \
             (0 when it has replayed everything)\n\
             # TYPE wallet_replica_lag_seconds gauge\n\
             wallet_replica_lag_seconds {seconds}\n"
        ));
    }
    if let Some(bytes) = lag.and_then(|lag| lag.bytes) {
        text.push_str(&format!(
            "# HELP wallet_replica_lag_bytes Write-ahead log bytes the primary wrote that the \
             read replica has not replayed\n\
             # TYPE wallet_replica_lag_bytes gauge\n\
             wallet_replica_lag_bytes {bytes}\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lag(bytes: u64, delay_ms: Option<u64>) -> ReplicaLag {
        ReplicaLag {
            standby: true,
            paused: false,
            bytes: Some(bytes),
            delay: delay_ms.map(Duration::from_millis),
            limit: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_check_is_healthy_within_the_limit_degraded_past_it_and_unhealthy_without_an_answer() {
        let caught_up = check(&Ok(lag(0, Some(0))));
        assert_eq!(caught_up.status, HEALTHY);
        assert_eq!(
            (caught_up.lag_seconds, caught_up.lag_bytes),
            (Some(0.0), Some(0))
        );
        let behind = check(&Ok(lag(4096, Some(7_250))));
        assert_eq!(behind.status, DEGRADED);
        assert_eq!(
            (behind.lag_seconds, behind.lag_bytes),
            (Some(7.25), Some(4096))
        );
        let unknown = check(&Ok(lag(10, None)));
        assert_eq!(
            (unknown.status.as_str(), unknown.lag_seconds),
            (DEGRADED, None)
        );
        let down = check(&Err(WalletError::Unavailable("gone".into())));
        assert_eq!(down.status, UNHEALTHY);
        assert!(!down.detail.contains("gone"), "the cause is only logged");
    }

    #[test]
    fn the_metrics_carry_what_was_measured() {
        let text = render(&Ok(lag(4096, Some(1_500))));
        assert!(text.contains("wallet_replica_up 1\n"), "{text}");
        assert!(text.contains("wallet_replica_lag_seconds 1.5\n"), "{text}");
        assert!(text.contains("wallet_replica_lag_bytes 4096\n"), "{text}");
        let down = render(&Err(WalletError::Unavailable("gone".into())));
        assert!(down.contains("wallet_replica_up 0\n"), "{down}");
        assert!(!down.contains("wallet_replica_lag_seconds"), "{down}");
    }
}
