//! The relay against a real `nats-server` (started per test on a free port
//! with its own store directory) and a real PostgreSQL store (a scratch
//! database per test, from `DATABASE_URL`). Both fail the test loudly when
//! they cannot run. Every test is bounded in time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream::StorageType};
use common::{all_events, bounded, expected_message, load, wait_until};
use wallet_core::{Policy, StoredEvent, WalletService};
use wallet_pg::PgStore;
use wallet_relay::nats::testing::{stream_messages, NatsServer};
use wallet_relay::nats::{NatsConfig, NatsSink, DUPLICATE_WINDOW_MIN, STREAM_DEFAULT};
use wallet_relay::{
    start_on_system_clock, EventSink, Message, Published, RelayHandle, RelayHealth, SinkError,
};

async fn service() -> WalletService<PgStore> {
    WalletService::new(wallet_pg::testing::fresh_store().await, Policy::default())
}

fn sink(server: &NatsServer) -> NatsSink {
    NatsSink::new(NatsConfig::new(server.url()))
}

fn start<K: EventSink>(service: &WalletService<PgStore>, sink: K) -> RelayHandle {
    start_on_system_clock(
        Arc::clone(service.store()),
        sink,
        common::config(STREAM_DEFAULT),
    )
    .expect("start the relay")
}

async fn context(server: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(server.url()).await.expect("connect");
    jetstream::new(client)
}

/// The stream's settings and state.
async fn stream_info(server: &NatsServer) -> jetstream::stream::Info {
    context(server)
        .await
        .get_stream(STREAM_DEFAULT)
        .await
        .expect("the stream exists")
        .get_info()
        .await
        .expect("stream info")
}

/// The stream holds every event once, in sequence order, on its subject,
/// with the feed's body and the two headers.
async fn assert_stream_holds_once(server: &NatsServer, events: &[StoredEvent]) {
    let messages = stream_messages(&server.url(), STREAM_DEFAULT).await;
    assert_eq!(
        messages.len(),
        events.len(),
        "every event once in the stream"
    );
    for (message, event) in messages.iter().zip(events) {
        let expected = expected_message(event);
        assert_eq!(message.subject, expected.subject);
        assert_eq!(message.payload, expected.body);
        assert_eq!(message.message_id, Some(expected.id.to_string()));
        assert_eq!(message.wallet_sequence, Some(expected.sequence.to_string()));
    }
}

/// Waits until the relay is healthy with nothing left in the outbox.
async fn wait_drained(relay: &RelayHandle) {
    wait_until("the relay is healthy and drained", || {
        let status = relay.status();
        status.health == RelayHealth::Healthy && status.lag_events == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_stream_once_in_order() {
    bounded(async {
        let server = NatsServer::start().await;
        let service = service().await;
        load(&service, 3, 10).await;
        let relay = start(&service, sink(&server));
        // Four writers commit while the relay reads.
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let service = service.clone();
                tokio::spawn(async move { load(&service, 2, 10).await })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        wait_drained(&relay).await;
        relay.stop().await;
        let events = all_events(&service).await;
        assert_eq!(events.len(), 3 * 11 + 4 * 2 * 11);
        assert_stream_holds_once(&server, &events).await;
        let info = stream_info(&server).await;
        assert_eq!(info.config.storage, StorageType::File);
        assert!(info.config.duplicate_window >= DUPLICATE_WINDOW_MIN);
        assert_eq!(info.config.subjects, ["wallet.events.>"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_is_left_as_it_is() {
    bounded(async {
        let server = NatsServer::start().await;
        let mut own = NatsConfig::new(server.url()).stream_config();
        own.duplicate_window = Duration::from_secs(600);
        own.max_messages = 1_000_000;
        context(&server)
            .await
            .create_stream(own.clone())
            .await
            .expect("create the stream");
        let service = service().await;
        load(&service, 1, 3).await;
        let relay = start(&service, sink(&server));
        wait_drained(&relay).await;
        relay.stop().await;
        let info = stream_info(&server).await;
        assert_eq!(info.config.duplicate_window, own.duplicate_window);
        assert_eq!(info.config.max_messages, own.max_messages);
        assert_stream_holds_once(&server, &all_events(&service).await).await;
    })
    .await;
}

/// A sink that publishes and then never returns, as a process killed after
/// the broker's acknowledgement and before the position is stored.
struct DiesAfterPublishing {
    inner: NatsSink,
    published: tokio::sync::watch::Sender<bool>,
}

impl EventSink for DiesAfterPublishing {
    async fn prepare(&self) -> Result<(), SinkError> {
        self.inner.prepare().await
    }

    async fn publish(&self, messages: &[Message]) -> Result<Published, SinkError> {
        self.inner.publish(messages).await?;
        self.published.send_replace(true);
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_before_storing_its_position_is_repeated_and_deduplicated() {
    bounded(async {
        let server = NatsServer::start().await;
        let service = service().await;
        load(&service, 1, 5).await;
        let (published, mut told) = tokio::sync::watch::channel(false);
        let dying = DiesAfterPublishing {
            inner: sink(&server),
            published,
        };
        let first = start(&service, dying);
        told.wait_for(|published| *published)
            .await
            .expect("the first batch is published");
        first.abort();
        let before = stream_messages(&server.url(), STREAM_DEFAULT).await.len();
        assert!(before > 0, "the first relay's batch is in the stream");
        load(&service, 1, 5).await;
        let second = start(&service, sink(&server));
        wait_drained(&second).await;
        assert!(
            second.published_total() as usize > all_events(&service).await.len() - before,
            "the successor published the first relay's batch again"
        );
        second.stop().await;
        assert_stream_holds_once(&server, &all_events(&service).await).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_and_restarted_mid_load_loses_nothing() {
    bounded(async {
        let mut server = NatsServer::start().await;
        let service = service().await;
        let relay = start(&service, sink(&server));
        let writer = {
            let service = service.clone();
            // Every command of the load must succeed: `load` fails the
            // test on any error.
            tokio::spawn(async move {
                for _ in 0..20 {
                    load(&service, 1, 10).await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        wait_until("some events are relayed", || relay.published_total() > 0).await;
        server.kill();
        wait_until("the relay is degraded", || {
            relay.status().health == RelayHealth::Degraded
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.restart().await;
        writer.await.expect("every command succeeded");
        wait_drained(&relay).await;
        relay.stop().await;
        assert_stream_holds_once(&server, &all_events(&service).await).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_instances_one_relays_and_the_other_takes_over() {
    bounded(async {
        let server = NatsServer::start().await;
        let service = service().await;
        load(&service, 2, 5).await;
        let first = start(&service, sink(&server));
        wait_drained(&first).await;
        let second = start(&service, sink(&server));
        wait_until("the second instance stands by", || {
            second.status().health == RelayHealth::Standby
        })
        .await;
        load(&service, 1, 5).await;
        wait_drained(&first).await;
        assert_eq!(second.published_total(), 0, "a standby publishes nothing");
        first.abort();
        let died = tokio::time::Instant::now();
        load(&service, 1, 5).await;
        wait_drained(&second).await;
        assert!(
            died.elapsed() < Duration::from_secs(30),
            "the takeover took {:?}",
            died.elapsed()
        );
        second.stop().await;
        assert_stream_holds_once(&server, &all_events(&service).await).await;
    })
    .await;
}
