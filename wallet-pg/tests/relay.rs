//! The relay's lease under contention in PostgreSQL: of many instances
//! asking at once, exactly one is granted it, and only it moves the
//! position.

use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;
use wallet_core::{LeaseOutcome, PositionUpdate, RelayName, RelayStore};

/// How many instances ask for the lease at once.
const CONTENDERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_takers_exactly_one_holds_the_lease() {
    let store = wallet_pg::testing::fresh_store().await;
    let relay = RelayName::parse("WALLET_EVENTS").expect("name");
    let now = Utc::now();
    let lease = chrono::Duration::from_std(Duration::from_secs(10)).expect("duration");
    let owners: Vec<Uuid> = (0..CONTENDERS).map(|_| Uuid::now_v7()).collect();
    let outcomes = futures::future::join_all(owners.iter().map(|owner| {
        let store = store.clone();
        let relay = relay.clone();
        let owner = *owner;
        tokio::spawn(async move { store.take_relay_lease(&relay, owner, now, lease).await })
    }))
    .await;
    let mut holders = Vec::new();
    for (owner, outcome) in owners.iter().zip(outcomes) {
        match outcome.expect("task").expect("take the lease") {
            LeaseOutcome::Held { lease, position } => {
                assert_eq!((lease.owner, position), (*owner, 0));
                holders.push(*owner);
            }
            LeaseOutcome::Refused { holder } => assert_ne!(holder.owner, *owner),
        }
    }
    assert_eq!(holders.len(), 1, "exactly one holder: {holders:?}");
    for owner in &owners {
        let update = store
            .advance_relay_position(&relay, *owner, 0, now)
            .await
            .expect("advance");
        let expected = if *owner == holders[0] {
            PositionUpdate::Moved
        } else {
            PositionUpdate::LeaseNotHeld
        };
        assert_eq!(update, expected);
    }
}
