//! The service on a real read replica: a throwaway primary cluster and a
//! streaming hot standby of it (`pg_basebackup -R`), both of the test's
//! own. What a caller sees while the replica lags: a command's answer is
//! current, a read shows the replica's older state, `/health` has a
//! `replica` check with the lag (`Degraded` past the limit) and `/metrics`
//! the lag gauges; after the replay resumes the reads catch up. With the
//! replica gone, commands still work, reads are 503 and `/health` says so.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use wallet_pg::testing::cluster::Cluster;
use wallet_pg::{PgConfig, PgStore};

use crate::helpers::{eventually, fast_background, Idp, TestApp, AUDIENCE};

/// The lag limit of the test's service (`WALLET_REPLICA_LAG_MAX`).
const LAG_LIMIT: Duration = Duration::from_millis(300);
/// How long the standby may take to catch up when not paused.
const CATCH_UP_MAX: Duration = Duration::from_secs(60);

async fn health(app: &TestApp) -> (u16, Value) {
    let reply = app
        .send(reqwest::Method::GET, "/health", None, &[], None)
        .await;
    (reply.status, reply.body)
}

/// Deposits `usd` into the wallet at `wallet` and answers its new balance.
async fn deposit(app: &TestApp, wallet: &str, usd: &str) -> Value {
    app.post(
        &format!("{wallet}/deposit"),
        &app.service(),
        json!({ "amount": usd, "currency": "USD" }),
    )
    .await
    .assert_status(200)["wallet"]["balances"][0]["balance"]
        .clone()
}

async fn usd_read(app: &TestApp, path: &str, token: &str) -> Value {
    app.get(path, token).await.assert_status(200)["balances"][0]["balance"].clone()
}

async fn scrape(app: &TestApp) -> String {
    app.send(reqwest::Method::GET, "/metrics", None, &[], None)
        .await
        .text
}

/// The value of an unlabelled sample in a Prometheus text document.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn on_standby(standby: &Cluster, statement: &str) {
    let mut connection = PgConnection::connect(&standby.url())
        .await
        .expect("a connection to the standby");
    sqlx::query(statement)
        .execute(&mut connection)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
    let _ = connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_replica_lags_commands_answer_current_state_and_health_reports_the_lag() {
    let (primary, standby) = Cluster::replicated("http").await;
    let mut config = PgConfig::new(primary.url());
    config.read_url = Some(standby.url());
    config.replica_lag_max = LAG_LIMIT;
    // A stopped replica is noticed within this.
    config.acquire_timeout = Duration::from_secs(2);
    let store = PgStore::connect(&config).await.expect("connect");
    store.migrate().await.expect("migrate");
    let app = TestApp::spawn_with(
        store.clone(),
        Idp::start().await,
        Some(AUDIENCE.to_owned()),
        fast_background(),
    )
    .await;
    // The standby has the schema once it has replayed the migrations.
    assert!(
        eventually(CATCH_UP_MAX, || async {
            health(&app).await.1["checks"]["replica"]["lagBytes"] == json!(0)
        })
        .await,
        "the standby never caught up with the migrations"
    );
    let (user, token) = app.funded_user("10").await;
    let wallet = format!("/api/v1/wallets/{user}");
    assert!(
        eventually(CATCH_UP_MAX, || async {
            app.get(&wallet, &token).await.body["balances"][0]["balance"] == json!("10.00")
        })
        .await,
        "the deposit never reached the standby"
    );
    // Caught up: healthy, no lag. (Polled: the server's own background
    // records, such as a checkpoint's, are behind for a moment too.)
    assert!(
        eventually(CATCH_UP_MAX, || async {
            let (code, body) = health(&app).await;
            let replica = &body["checks"]["replica"];
            code == 200
                && body["status"] == "Healthy"
                && replica["status"] == "Healthy"
                && replica["lagSeconds"] == json!(0.0)
        })
        .await,
        "a caught-up replica was never reported healthy"
    );

    // The standby stops replaying.
    on_standby(&standby, "SELECT pg_wal_replay_pause()").await;
    assert!(
        eventually(CATCH_UP_MAX, || async {
            matches!(store.replica_lag().await, Some(Ok(lag)) if lag.paused)
        })
        .await,
        "the replay never paused"
    );
    assert_eq!(
        deposit(&app, &wallet, "5").await,
        "15.00",
        "a command's answer is the primary's current state"
    );
    assert_eq!(
        usd_read(&app, &wallet, &token).await,
        "10.00",
        "a read is the replica's older state"
    );
    tokio::time::sleep(LAG_LIMIT * 2).await;
    let (code, body) = health(&app).await;
    assert_eq!(
        code, 200,
        "a lagging replica does not make the service unready"
    );
    assert_eq!(body["status"], "Degraded", "{body}");
    let replica = &body["checks"]["replica"];
    assert_eq!(replica["status"], "Degraded", "{body}");
    assert!(
        replica["lagSeconds"]
            .as_f64()
            .is_some_and(|seconds| seconds > LAG_LIMIT.as_secs_f64()),
        "{body}"
    );
    assert!(
        replica["lagBytes"].as_u64().is_some_and(|b| b > 0),
        "{body}"
    );
    assert!(
        replica["detail"]
            .as_str()
            .is_some_and(|d| d.contains("paused")),
        "{body}"
    );
    let metrics = scrape(&app).await;
    assert_eq!(
        sample(&metrics, "wallet_replica_up"),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "wallet_replica_lag_seconds").is_some_and(|s| s > 0.0),
        "{metrics}"
    );
    assert!(
        sample(&metrics, "wallet_replica_lag_bytes").is_some_and(|b| b > 0.0),
        "{metrics}"
    );

    // The replay resumes: the read catches up, the check is healthy again.
    on_standby(&standby, "SELECT pg_wal_replay_resume()").await;
    assert!(
        eventually(CATCH_UP_MAX, || async {
            app.get(&wallet, &token).await.body["balances"][0]["balance"] == json!("15.00")
        })
        .await,
        "the read never caught up"
    );
    assert!(
        eventually(CATCH_UP_MAX, || async {
            let (_, body) = health(&app).await;
            body["status"] == "Healthy" && body["checks"]["replica"]["lagBytes"] == json!(0)
        })
        .await,
        "the check never became healthy again"
    );

    // The replica goes away: commands still work, reads do not, and the
    // check says so without making the service unready.
    standby.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    assert_eq!(deposit(&app, &wallet, "1").await, "16.00");
    app.get(&wallet, &token)
        .await
        .assert_problem(503, "unavailable");
    let (code, body) = health(&app).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "Degraded", "{body}");
    assert_eq!(body["checks"]["replica"]["status"], "Unhealthy", "{body}");
    assert_eq!(body["checks"]["store"]["status"], "Healthy", "{body}");
    let metrics = scrape(&app).await;
    assert_eq!(
        sample(&metrics, "wallet_replica_up"),
        Some(0.0),
        "{metrics}"
    );
    app.stop().await;
    store.close().await;
    drop(standby);
    drop(primary);
}
