//! The relay loop over the in-memory store and sink: order, once, failures,
//! standby and takeover, stop. Every test is bounded in time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{all_events, bounded, expected_message, load, wait_until};
use wallet_core::{InMemoryStore, ManualClock, Policy, RelayStore, StoredEvent, WalletService};
use wallet_relay::{start_on_system_clock, InMemorySink, RelayConfig, RelayHandle, RelayHealth};

fn config() -> RelayConfig {
    common::config("TEST_EVENTS")
}

fn service() -> WalletService<InMemoryStore> {
    WalletService::new(InMemoryStore::new(), Policy::default())
}

/// Waits until the sink holds every event of the outbox.
async fn wait_delivered(sink: &InMemorySink, events: usize) {
    wait_until("every event is delivered", || {
        sink.messages().len() >= events
    })
    .await;
}

/// Every event of the outbox is in the sink once, in sequence order, with
/// the feed's body on the right subject.
fn assert_delivered_once(sink: &InMemorySink, events: &[StoredEvent]) {
    let messages = sink.messages();
    assert_eq!(messages.len(), events.len(), "every event once");
    for (message, event) in messages.iter().zip(events) {
        assert_eq!(message, &expected_message(event));
    }
}

fn start(service: &WalletService<InMemoryStore>, sink: &Arc<InMemorySink>) -> RelayHandle {
    start_relay(service, sink, config())
}

fn start_relay(
    service: &WalletService<InMemoryStore>,
    sink: &Arc<InMemorySink>,
    config: RelayConfig,
) -> RelayHandle {
    start_on_system_clock(Arc::clone(service.store()), Arc::clone(sink), config).expect("start")
}

#[tokio::test]
async fn every_event_reaches_the_sink_once_in_order() {
    bounded(async {
        let service = service();
        load(&service, 3, 10).await;
        let sink = Arc::new(InMemorySink::new());
        let relay = start(&service, &sink);
        // Events written while it runs follow the backlog.
        load(&service, 2, 5).await;
        let events = all_events(&service).await;
        wait_delivered(&sink, events.len()).await;
        wait_until("the relay reports no lag", || {
            let status = relay.status();
            status.health == RelayHealth::Healthy && status.lag_events == 0
        })
        .await;
        assert_eq!(relay.published_total(), events.len() as u64);
        relay.stop().await;
        assert_delivered_once(&sink, &events);
        let state = service
            .store()
            .relay_state(&config().name)
            .await
            .expect("state");
        assert_eq!(
            state.position,
            events.len() as u64,
            "the position is stored"
        );
        assert_eq!(state.lease, None, "a stopped relay releases its lease");
    })
    .await;
}

#[tokio::test]
async fn lost_acknowledgements_are_published_again_and_dropped_as_repeats() {
    bounded(async {
        let service = service();
        load(&service, 2, 10).await;
        let sink = Arc::new(InMemorySink::new());
        sink.lose_next_acknowledgements();
        let relay = start(&service, &sink);
        let events = all_events(&service).await;
        wait_delivered(&sink, events.len()).await;
        wait_until("the relay is healthy", || {
            relay.status().health == RelayHealth::Healthy
        })
        .await;
        relay.stop().await;
        assert_delivered_once(&sink, &events);
        assert!(
            sink.publishes() > events.len() as u64,
            "the batch whose acknowledgements were lost went out twice"
        );
    })
    .await;
}

#[tokio::test]
async fn a_broker_outage_degrades_the_relay_and_it_resumes() {
    bounded(async {
        let service = service();
        let sink = Arc::new(InMemorySink::new());
        sink.set_down(true);
        let relay = start(&service, &sink);
        load(&service, 2, 3).await;
        wait_until("the relay is degraded", || {
            let status = relay.status();
            status.health == RelayHealth::Degraded && status.detail.contains("unreachable")
        })
        .await;
        // Commands are not affected while the broker is down.
        load(&service, 1, 3).await;
        let events = all_events(&service).await;
        assert!(sink.messages().is_empty());
        sink.set_down(false);
        wait_delivered(&sink, events.len()).await;
        wait_until("the relay is healthy with no lag", || {
            let status = relay.status();
            status.health == RelayHealth::Healthy && status.lag_events == 0
        })
        .await;
        relay.stop().await;
        assert_delivered_once(&sink, &events);
    })
    .await;
}

#[tokio::test]
async fn one_instance_relays_and_another_takes_over_when_it_dies() {
    bounded(async {
        let service = service();
        load(&service, 2, 10).await;
        let sink = Arc::new(InMemorySink::new());
        let first = start(&service, &sink);
        wait_until("the first relay holds the lease", || {
            first.status().health == RelayHealth::Healthy
        })
        .await;
        let second = start(&service, &sink);
        wait_until("the second relay stands by", || {
            second.status().health == RelayHealth::Standby
        })
        .await;
        assert_eq!(second.published_total(), 0);
        first.abort();
        load(&service, 1, 10).await;
        let events = all_events(&service).await;
        let died = tokio::time::Instant::now();
        wait_delivered(&sink, events.len()).await;
        assert!(
            died.elapsed() < Duration::from_secs(30),
            "the takeover took {:?}",
            died.elapsed()
        );
        assert_eq!(second.status().health, RelayHealth::Healthy);
        second.stop().await;
        assert_delivered_once(&sink, &events);
    })
    .await;
}

#[tokio::test]
async fn a_stopped_relay_hands_its_lease_over_at_once() {
    bounded(async {
        let service = service();
        let sink = Arc::new(InMemorySink::new());
        let mut slow_standby = config();
        // A standby that asks rarely still finds the lease free on its
        // next ask, long before the stopped holder's lease would expire.
        slow_standby.standby_poll = Duration::from_millis(500);
        let first = start(&service, &sink);
        wait_until("the first relay is healthy", || {
            first.status().health == RelayHealth::Healthy
        })
        .await;
        let second = start_relay(&service, &sink, slow_standby);
        wait_until("the second relay stands by", || {
            second.status().health == RelayHealth::Standby
        })
        .await;
        first.stop().await;
        let stopped = tokio::time::Instant::now();
        wait_until("the second relay takes over", || {
            second.status().health == RelayHealth::Healthy
        })
        .await;
        assert!(stopped.elapsed() < Duration::from_secs(2));
        load(&service, 1, 2).await;
        let events = all_events(&service).await;
        wait_delivered(&sink, events.len()).await;
        second.stop().await;
        assert_delivered_once(&sink, &events);
    })
    .await;
}

#[tokio::test]
async fn a_stop_waits_for_the_acknowledgements_in_flight() {
    bounded(async {
        let service = service();
        load(&service, 1, 5).await;
        let sink = Arc::new(InMemorySink::new());
        sink.delay_acknowledgements(Duration::from_millis(500));
        let relay = start(&service, &sink);
        wait_until("a batch is in flight", || !sink.messages().is_empty()).await;
        let in_flight = sink.messages().len();
        relay.stop().await;
        let state = service
            .store()
            .relay_state(&config().name)
            .await
            .expect("state");
        assert_eq!(
            state.position,
            sink.messages()[in_flight - 1].sequence,
            "the batch in flight was acknowledged and recorded before the stop ended"
        );
        assert_eq!(state.lease, None);
    })
    .await;
}

/// A relay whose lease expired unseen (its clock stood still, as in a long
/// pause) while a successor relayed, takes the lease again from the stored
/// position: it does not publish what the successor already delivered.
#[tokio::test]
async fn a_relay_whose_lease_expired_unseen_resumes_from_the_stored_position() {
    bounded(async {
        let service = service();
        load(&service, 1, 3).await;
        let paused_clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let paused_sink = Arc::new(InMemorySink::new());
        let paused = wallet_relay::start(
            Arc::clone(service.store()),
            Arc::clone(&paused_sink),
            config(),
            paused_clock.clone(),
        )
        .expect("start");
        let first = all_events(&service).await;
        wait_delivered(&paused_sink, first.len()).await;
        paused_sink.set_down(true);
        // Its clock stands still, so it never renews; the store's lease
        // runs out in real time and a successor takes over.
        let successor_sink = Arc::new(InMemorySink::new());
        let successor = start(&service, &successor_sink);
        load(&service, 1, 3).await;
        let second = all_events(&service).await;
        wait_until("the successor relays", || {
            successor.status().health == RelayHealth::Healthy
                && successor_sink.messages().last().map(|m| m.sequence)
                    == second.last().map(|e| e.sequence)
        })
        .await;
        successor.stop().await;
        paused_clock.set(chrono::Utc::now());
        paused_sink.set_down(false);
        load(&service, 1, 3).await;
        let third = all_events(&service).await;
        wait_delivered(&paused_sink, first.len() + third.len() - second.len()).await;
        paused.stop().await;
        let sequences: Vec<u64> = paused_sink.messages().iter().map(|m| m.sequence).collect();
        let expected: Vec<u64> = first
            .iter()
            .chain(&third[second.len()..])
            .map(|e| e.sequence)
            .collect();
        assert_eq!(
            sequences, expected,
            "nothing the successor delivered went out again"
        );
        assert_eq!(paused_sink.publishes(), expected.len() as u64);
    })
    .await;
}

#[test]
fn limits_are_checked() {
    let mut bad = config();
    bad.batch_size = 0;
    assert!(bad.validate().is_err());
    let mut bad = config();
    bad.backoff_max = Duration::from_secs(6);
    assert!(bad.validate().is_err());
    let mut bad = config();
    bad.lease_duration = Duration::from_secs(21);
    assert!(bad.validate().is_err());
    assert!(config().validate().is_ok());
}
