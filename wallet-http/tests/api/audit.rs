//! `wallet-http audit` as an operator runs it: nothing found on a ledger
//! the service wrote (exit 0), a damaged ledger reported in text and JSON
//! (exit 1), a database that does not answer (exit 2).

use serde_json::Value;

use crate::binary::binary;
use crate::helpers::TestApp;

async fn audit(database_url: &str, json: bool) -> std::process::Output {
    let mut command = binary();
    command.arg("audit").env("DATABASE_URL", database_url);
    if json {
        command.arg("--json");
    }
    command.output().await.expect("run the audit")
}

#[tokio::test]
async fn the_audit_finds_nothing_on_a_clean_ledger_and_reports_damage() {
    let app = TestApp::spawn().await;
    let database_url = app.database_url.clone().expect("a database");
    let (user, owner) = app.funded_user("42.10").await;
    app.post(
        &format!("/api/v1/wallets/{user}/withdraw"),
        &owner,
        serde_json::json!({"amount": "2.10", "currency": "USD"}),
    )
    .await
    .assert_status(200);

    let clean = audit(&database_url, false).await;
    let text = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{text}");
    assert!(text.contains("Nothing found."), "{text}");
    assert!(text.contains("USD: balances 40.00"), "{text}");

    let store = wallet_pg::PgStore::connect(&wallet_pg::testing::test_config(&database_url))
        .await
        .expect("connect");
    sqlx::query("UPDATE wallet_items SET balance = balance + 1")
        .execute(store.pool())
        .await
        .expect("damage the ledger");
    store.close().await;

    let damaged = audit(&database_url, false).await;
    let text = String::from_utf8_lossy(&damaged.stdout);
    assert_eq!(damaged.status.code(), Some(1), "{text}");
    assert!(text.contains("[item_totals]"), "{text}");
    assert!(text.contains("[currency_conservation]"), "{text}");

    let json = audit(&database_url, true).await;
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&json.stdout).expect("the report is JSON");
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["check"].as_str())
        .collect();
    assert_eq!(checks, ["item_totals", "currency_conservation"]);
    assert_eq!(report["figures"]["wallets"], 1);
    app.stop().await;
}

#[tokio::test]
async fn the_audit_without_a_database_cannot_run() {
    let missing = binary().arg("audit").output().await.expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("DATABASE_URL"));
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let down = audit(&format!("postgres://postgres@127.0.0.1:{port}/x"), false).await;
    assert_eq!(down.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot connect"));
}
