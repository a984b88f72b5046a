//! What the relay's test binaries share: a load of commands, bounded
//! waits, and the expected message of an event.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_core::{Command, CurrencyCode, FeedEvent, RelayName, Store, StoredEvent, WalletService};
use wallet_relay::{Message, RelayConfig};

/// The longest any test may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a wait for a condition may take.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most events one read of the feed returns.
const FEED_PAGE: i64 = 1000;

/// Runs a test, failing it when it takes longer than [`TEST_TIMEOUT`].
pub async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test ran out of time");
}

/// A relay configuration with short pauses, for tests.
pub fn config(name: &str) -> RelayConfig {
    let mut config = RelayConfig::new(RelayName::parse(name).expect("relay name"));
    config.batch_size = 7;
    config.lease_duration = Duration::from_secs(4);
    config.idle_poll = Duration::from_millis(10);
    config.standby_poll = Duration::from_millis(100);
    config.backoff_min = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(200);
    config
}

/// Makes `wallets` wallets with `deposits` deposits each; every command
/// must succeed.
pub async fn load<S: Store>(service: &WalletService<S>, wallets: u32, deposits: u32) {
    let usd = CurrencyCode::parse("USD").expect("currency");
    for _ in 0..wallets {
        let user_id = Uuid::now_v7();
        let create = Command::CreateWallet {
            user_id,
            default_currency: None,
        };
        service.execute(create, None).await.expect("create");
        for cents in 1..=deposits {
            let deposit = Command::Deposit {
                user_id,
                amount: Decimal::new(i64::from(cents), 2),
                currency: usd,
                description: None,
                reference: None,
            };
            service.execute(deposit, None).await.expect("deposit");
        }
    }
}

/// The whole feed, as the admin route walks it.
pub async fn all_events<S: Store>(service: &WalletService<S>) -> Vec<StoredEvent> {
    let mut events = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = service
            .events(after, Some(FEED_PAGE))
            .await
            .expect("events");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
        after = Some(next);
    }
}

/// Polls `condition` until it holds, failing after [`WAIT_TIMEOUT`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT_TIMEOUT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// The message the relay must publish for `event` under the default prefix.
pub fn expected_message(event: &StoredEvent) -> Message {
    Message {
        subject: format!("wallet.events.{}", event.event.event_type()),
        id: event.event.id,
        sequence: event.sequence,
        body: serde_json::to_vec(&FeedEvent::from(event)).expect("encode"),
    }
}
