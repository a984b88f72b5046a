//! The event relay in the service: off without `WALLET_NATS_URL`; with it,
//! every event of the feed reaches the stream once, `/health` and
//! `/metrics` report it, and a broker outage under load reaches no caller.
//! Each test starts its own `nats-server` (never the machine's) and fails
//! when it cannot.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wallet_http::relay::RelaySettings;
use wallet_relay::nats::testing::{stream_messages, stream_names, NatsServer};

use crate::helpers::{eventually, fast_background, Idp, TestApp, AUDIENCE};

/// The longest any test here may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a wait for the relay may take.
const RELAY_WAIT: Duration = Duration::from_secs(30);
/// The stream the tests' relays use.
const STREAM: &str = "WALLET_EVENTS";

async fn bounded(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("the test ran out of time");
}

/// The service on a fresh database, relaying to `server`.
async fn spawn_relaying(server: &NatsServer) -> TestApp {
    let store = wallet_pg::testing::fresh_store().await;
    let mut background = fast_background();
    background.relay =
        RelaySettings::parse(Some(&server.url()), "wallet.events", STREAM).expect("relay settings");
    TestApp::spawn_with(
        store,
        Idp::start().await,
        Some(AUDIENCE.to_owned()),
        background,
    )
    .await
}

/// A few commands through the API, each of which must succeed.
async fn commands(app: &TestApp, wallets: usize) {
    for _ in 0..wallets {
        let (user, _) = app.funded_user("10.00").await;
        app.post(
            &format!("/api/v1/wallets/{user}/withdraw"),
            &app.service(),
            json!({ "amount": "1.00", "currency": "USD" }),
        )
        .await
        .assert_status(200);
    }
}

/// The whole admin feed, page by page.
async fn feed(app: &TestApp) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = 0;
    loop {
        let reply = app
            .get(
                &format!("/api/v1/wallets/events?after={after}&limit=1000"),
                &app.admin(),
            )
            .await;
        let page = reply.assert_status(200).clone();
        let batch = page["items"].as_array().cloned().unwrap_or_default();
        if batch.is_empty() {
            return items;
        }
        after = page["nextAfter"].as_u64().expect("nextAfter");
        items.extend(batch);
    }
}

async fn health(app: &TestApp) -> (u16, Value) {
    let reply = app
        .send(reqwest::Method::GET, "/health", None, &[], None)
        .await;
    (reply.status, reply.body)
}

async fn metric(app: &TestApp, name: &str) -> Option<u64> {
    let reply = app
        .send(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    reply
        .text
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

/// Waits until `/health` reports the relay with `status` (and, when
/// given, `lag` events of lag).
async fn wait_for_relay(app: &TestApp, status: &str, lag: Option<u64>) {
    let reached = eventually(RELAY_WAIT, || async {
        let (_, body) = health(app).await;
        let check = &body["checks"]["relay"];
        check["status"] == status && lag.is_none_or(|lag| check["lagEvents"] == lag)
    })
    .await;
    assert!(
        reached,
        "the relay never reported {status}: {:?}",
        health(app).await
    );
}

/// The stream holds exactly the feed: each event once, in order, with the
/// feed's object as its body.
async fn assert_stream_is_the_feed(server: &NatsServer, app: &TestApp) {
    let events = feed(app).await;
    let messages = stream_messages(&server.url(), STREAM).await;
    assert_eq!(messages.len(), events.len(), "every event once");
    for (message, event) in messages.iter().zip(&events) {
        let body: Value = serde_json::from_slice(&message.payload).expect("a JSON body");
        assert_eq!(&body, event);
        let event_type = event["type"].as_str().expect("type");
        assert_eq!(message.subject, format!("wallet.events.{event_type}"));
        assert_eq!(message.message_id.as_deref(), event["id"].as_str());
        assert_eq!(
            message.wallet_sequence,
            event["sequence"].as_u64().map(|s| s.to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_nats_url_nothing_is_published() {
    bounded(async {
        let server = NatsServer::start().await;
        let app = TestApp::spawn().await;
        commands(&app, 2).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, body) = health(&app).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "Healthy");
        assert!(body["checks"].get("relay").is_none(), "{body}");
        assert_eq!(metric(&app, "wallet_relay_published_total").await, None);
        assert!(stream_names(&server.url()).await.is_empty());
        app.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_stream_and_a_broker_outage_only_degrades_health() {
    bounded(async {
        let mut server = NatsServer::start().await;
        let app = Arc::new(spawn_relaying(&server).await);
        commands(&app, 3).await;
        wait_for_relay(&app, "Healthy", Some(0)).await;
        let (status, body) = health(&app).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Healthy")));

        // The broker dies under load: every command still succeeds (the
        // requests assert their statuses), and health says Degraded, with 200.
        let load = {
            let app = Arc::clone(&app);
            tokio::spawn(async move { commands(&app, 6).await })
        };
        server.kill();
        wait_for_relay(&app, "Degraded", None).await;
        let (status, body) = health(&app).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("Degraded")));
        assert!(
            !body["checks"]["relay"]["detail"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{body}"
        );
        load.await
            .expect("every command succeeded while the broker was down");
        commands(&app, 1).await;
        server.restart().await;
        wait_for_relay(&app, "Healthy", Some(0)).await;
        assert_stream_is_the_feed(&server, &app).await;
        let events = feed(&app).await.len() as u64;
        assert!(metric(&app, "wallet_relay_published_total").await >= Some(events));
        assert_eq!(metric(&app, "wallet_relay_lag_events").await, Some(0));
        let app = Arc::into_inner(app).expect("the load is over");
        app.stop().await;
    })
    .await;
}

/// The service as a process of its own on `database_url`, relaying to
/// `server`, and the app that talks to it.
async fn spawn_process(
    idp: &Arc<Idp>,
    database_url: &str,
    server: &NatsServer,
) -> (tokio::process::Child, TestApp) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = crate::binary::binary()
        .env("DATABASE_URL", database_url)
        .env("JWT_AUTHORITY", &idp.url)
        .env("JWT_AUDIENCE", AUDIENCE)
        .env("WALLET_BIND", format!("127.0.0.1:{port}"))
        .env("WALLET_NATS_URL", server.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the service");
    let app = TestApp::at(format!("http://127.0.0.1:{port}"), Arc::clone(idp));
    let live = eventually(RELAY_WAIT, || async {
        reqwest::get(format!("{}/health/live", app.url))
            .await
            .is_ok_and(|reply| reply.status().is_success())
    })
    .await;
    assert!(live, "the service process did not start");
    (child, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_processes_one_relays_and_the_other_takes_over_when_it_is_killed() {
    bounded(async {
        let server = NatsServer::start().await;
        let (_store, database_url) = wallet_pg::testing::fresh_store_with_url().await;
        let idp = Idp::start().await;
        let (mut first, first_app) = spawn_process(&idp, &database_url, &server).await;
        wait_for_relay(&first_app, "Healthy", None).await;
        let (mut second, second_app) = spawn_process(&idp, &database_url, &server).await;
        wait_for_relay(&second_app, "Standby", None).await;
        commands(&first_app, 2).await;
        commands(&second_app, 2).await;
        wait_for_relay(&first_app, "Healthy", Some(0)).await;
        assert_eq!(
            metric(&second_app, "wallet_relay_published_total").await,
            Some(0),
            "a standby publishes nothing"
        );
        first.kill().await.expect("kill the relaying process");
        let killed = tokio::time::Instant::now();
        commands(&second_app, 2).await;
        wait_for_relay(&second_app, "Healthy", Some(0)).await;
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the takeover took {:?}",
            killed.elapsed()
        );
        assert_stream_is_the_feed(&server, &second_app).await;
        second.kill().await.expect("kill the second process");
    })
    .await;
}
