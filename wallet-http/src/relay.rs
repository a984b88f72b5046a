//! The event relay as the service runs it: its settings
//! (`WALLET_NATS_URL`, `WALLET_NATS_SUBJECT_PREFIX`, `WALLET_NATS_STREAM`),
//! its start with the server and stop with graceful shutdown, its `relay`
//! check of `GET /health` and its two metrics.
//!
//! Only `WALLET_NATS_URL` turns the relay on; without it nothing here runs
//! and the health document and metrics are as before. The relay itself
//! lives in `wallet-relay`; this module only wires it in, so the routes and
//! the metrics each need one call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::watch;
use wallet_core::RelayName;
use wallet_relay::nats::{NatsConfig, NatsSink, DUPLICATE_WINDOW_MIN, STREAM_DEFAULT};
use wallet_relay::{RelayConfig, RelayHandle, RelayStatus, SubjectPrefix, SUBJECT_PREFIX_DEFAULT};

use crate::app::AppState;
use crate::backend::Backend;
use crate::dto::CheckDto;

/// The name of the check in `GET /health`.
pub const RELAY_CHECK: &str = "relay";
/// The default of `WALLET_NATS_SUBJECT_PREFIX`.
pub const SUBJECT_PREFIX_SETTING_DEFAULT: &str = SUBJECT_PREFIX_DEFAULT;
/// The default of `WALLET_NATS_STREAM`.
pub const STREAM_SETTING_DEFAULT: &str = STREAM_DEFAULT;

/// The relay's settings after validation.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub nats: NatsConfig,
}

impl RelaySettings {
    /// The settings when `url` is given and not blank, checked; `None`
    /// (the relay off) otherwise, whatever the other two say.
    pub fn parse(
        url: Option<&str>,
        subject_prefix: &str,
        stream: &str,
    ) -> Result<Option<Self>, String> {
        let Some(url) = url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(None);
        };
        let subject_prefix = SubjectPrefix::parse(subject_prefix.trim())
            .map_err(|error| format!("WALLET_NATS_SUBJECT_PREFIX: {error}"))?;
        let stream = RelayName::parse(stream.trim())
            .map_err(|error| format!("WALLET_NATS_STREAM: {error}"))?;
        let nats = NatsConfig {
            url: url.to_owned(),
            stream,
            subject_prefix,
            duplicate_window: DUPLICATE_WINDOW_MIN,
        };
        nats.validate()
            .map_err(|error| format!("WALLET_NATS_URL: {error}"))?;
        Ok(Some(RelaySettings { nats }))
    }
}

/// What the routes and the metrics read of a running relay.
#[derive(Clone)]
pub struct RelayMonitor {
    status: watch::Receiver<RelayStatus>,
    published: Arc<AtomicU64>,
}

impl RelayMonitor {
    fn of(handle: &RelayHandle) -> Self {
        RelayMonitor {
            status: handle.watch(),
            published: handle.published_counter(),
        }
    }

    /// The relay's latest status.
    pub fn status(&self) -> RelayStatus {
        self.status.borrow().clone()
    }
}

/// Starts the relay when configured: over the service's store, publishing
/// to NATS, visible in `/health` and `/metrics`. Stop it with
/// [`RelayHandle::stop`] after the server has stopped.
pub fn start<S: Backend>(
    state: &AppState<S>,
    settings: Option<&RelaySettings>,
) -> Result<Option<RelayHandle>, String> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let mut config = RelayConfig::new(settings.nats.stream.clone());
    config.subject_prefix = settings.nats.subject_prefix.clone();
    let sink = NatsSink::new(settings.nats.clone());
    let store = Arc::clone(state.service().store());
    let handle = wallet_relay::start_on_system_clock(store, sink, config)
        .map_err(|error| format!("cannot start the event relay: {error}"))?;
    let monitor = RelayMonitor::of(&handle);
    state
        .metrics()
        .register(Box::new(RelayCollector::new(monitor.clone())?))
        .map_err(|error| format!("cannot register the relay's metrics: {error}"))?;
    state.set_relay(monitor);
    tracing::info!(
        stream = %settings.nats.stream,
        subjects = %settings.nats.subject_prefix.wildcard(),
        "the event relay is on (WALLET_NATS_URL)"
    );
    Ok(Some(handle))
}

/// The `relay` check, when the relay runs.
pub fn health_check<S: Backend>(state: &AppState<S>) -> Option<CheckDto> {
    let status = state.relay()?.status();
    Some(CheckDto {
        status: status.health.as_str().to_owned(),
        detail: status.detail,
        lag_events: Some(status.lag_events),
        lag_seconds: None,
        lag_bytes: None,
    })
}

/// `wallet_relay_published_total` and `wallet_relay_lag_events`, read from
/// the relay when scraped.
struct RelayCollector {
    monitor: RelayMonitor,
    published: IntCounter,
    lag: IntGauge,
}

impl RelayCollector {
    fn new(monitor: RelayMonitor) -> Result<Self, String> {
        let published = IntCounter::new(
            "wallet_relay_published_total",
            "Events this process published to the broker and had acknowledged",
        );
        let lag = IntGauge::new(
            "wallet_relay_lag_events",
            "Events in the outbox past the relay's position",
        );
        match (published, lag) {
            (Ok(published), Ok(lag)) => Ok(RelayCollector {
                monitor,
                published,
                lag,
            }),
            (Err(error), _) | (_, Err(error)) => Err(error.to_string()),
        }
    }
}

impl Collector for RelayCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.published.desc();
        descs.extend(self.lag.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let total = self.monitor.published.load(Ordering::Relaxed);
        // The relay's counter only grows; the metric catches up with it.
        self.published
            .inc_by(total.saturating_sub(self.published.get()));
        let lag = self.monitor.status().lag_events;
        self.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
        let mut families = self.published.collect();
        families.extend(self.lag.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use wallet_core::{DomainEvent, EventData, FeedEvent, StoredEvent};

    use super::*;
    use crate::dto::EventDto;

    #[test]
    fn the_relay_is_on_only_with_a_url() {
        let off = RelaySettings::parse(None, "x", "Y").expect("no URL is fine");
        assert!(off.is_none());
        let blank = RelaySettings::parse(Some("  "), "x", "Y").expect("a blank URL is fine");
        assert!(blank.is_none());
        let on = RelaySettings::parse(
            Some("nats://127.0.0.1:4222"),
            SUBJECT_PREFIX_SETTING_DEFAULT,
            STREAM_SETTING_DEFAULT,
        )
        .expect("valid")
        .expect("on");
        assert_eq!(on.nats.stream.as_str(), "WALLET_EVENTS");
        assert_eq!(on.nats.subject_prefix.wildcard(), "wallet.events.>");
        for (prefix, stream) in [("a.>", "S"), ("a", "a.b"), ("", "S")] {
            assert!(
                RelaySettings::parse(Some("nats://127.0.0.1:4222"), prefix, stream).is_err(),
                "{prefix:?} {stream:?} were accepted"
            );
        }
    }

    #[test]
    fn the_feed_and_the_relay_send_the_same_event_object() {
        let event = StoredEvent {
            sequence: 7,
            event: DomainEvent {
                id: uuid::Uuid::from_u128(1),
                aggregate_id: uuid::Uuid::from_u128(2),
                aggregate_version: 3,
                user_id: uuid::Uuid::from_u128(4),
                occurred_at: chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap_or_default(),
                data: EventData::WalletFrozen {
                    reason: "review".into(),
                },
            },
        };
        let feed = serde_json::to_value(EventDto::from(&event)).expect("feed");
        let relayed = serde_json::to_value(FeedEvent::from(&event)).expect("relay");
        assert_eq!(feed, relayed);
        assert_eq!(feed["type"], "WalletFrozen");
        assert_eq!(feed["data"], serde_json::json!({"reason": "review"}));
    }
}
