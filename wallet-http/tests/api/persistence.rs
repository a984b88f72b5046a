//! The service over PostgreSQL keeps its data, and its idempotency records,
//! across a restart.

use serde_json::json;

use crate::helpers::{balance, fast_background, Idp, TestApp, AUDIENCE};

#[tokio::test]
async fn data_survives_a_restart_of_the_service() {
    let first = TestApp::spawn().await;
    let database_url = first.database_url.clone().expect("a database");
    let (user, owner) = first.funded_user("42.10").await;
    let withdraw = format!("/api/v1/wallets/{user}/withdraw");
    let body = json!({"amount": "0.10", "currency": "USD"});
    let original = first
        .post_keyed(&withdraw, &owner, "before-restart", body.clone())
        .await;
    original.assert_status(200);
    let idp = first.idp.clone();
    first.stop().await;

    let store = wallet_pg::PgStore::connect(&wallet_pg::testing::test_config(&database_url))
        .await
        .expect("reconnect to the same database");
    let second = TestApp::spawn_with(store, idp, Some(AUDIENCE.into()), fast_background()).await;
    let owner = second.token(user, &[]);
    let wallet = second.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    assert_eq!(balance(wallet.assert_status(200), "USD"), "42.00");
    let replay = second
        .post_keyed(&withdraw, &owner, "before-restart", body)
        .await;
    replay.assert_status(200);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.text, original.text);
    second.stop().await;
}

#[tokio::test]
async fn a_new_identity_provider_is_not_needed_to_restart() {
    // Guards the helper itself: a service on a fresh provider still starts.
    let app = TestApp::spawn_with(
        wallet_core::InMemoryStore::new(),
        Idp::start().await,
        None,
        fast_background(),
    )
    .await;
    let (user, owner) = app.funded_user("1").await;
    app.get(&format!("/api/v1/wallets/{user}"), &owner)
        .await
        .assert_status(200);
    app.stop().await;
}
