//! Reversals, single transaction reads and balances at a point in time
//! over HTTP: the routes and their shapes, the error codes, who may
//! reverse (never the owner) and idempotency.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{balance, TestApp};

fn transactions(user: Uuid) -> String {
    format!("/api/v1/wallets/{user}/transactions")
}

fn reverse(user: Uuid, transaction: &str) -> String {
    format!("/api/v1/wallets/{user}/transactions/{transaction}/reverse")
}

/// The newest transaction of a wallet, as its history lists it.
async fn newest(app: &TestApp, user: Uuid) -> Value {
    app.get(&format!("{}?limit=1", transactions(user)), &app.admin())
        .await
        .assert_status(200)["items"][0]
        .clone()
}

fn id_of(transaction: &Value) -> String {
    transaction["id"].as_str().expect("an id").to_owned()
}

#[tokio::test]
async fn a_deposit_is_reversed_in_part_then_in_full_and_reads_show_the_total() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("100").await;
    let deposit = newest(&app, user).await;
    assert_eq!(deposit["type"], "Deposit");
    assert_eq!(deposit["reversedAmount"], "0.00");
    assert_eq!(deposit["reversesTransactionId"], Value::Null);
    let deposit_id = id_of(&deposit);

    // The owner may read it, but not reverse it.
    let single = format!("{}/{deposit_id}", transactions(user));
    assert_eq!(app.get(&single, &owner).await.assert_status(200), &deposit);
    app.post(
        &reverse(user, &deposit_id),
        &owner,
        json!({"reason": "refund"}),
    )
    .await
    .assert_problem(403, "forbidden");

    let reply = app
        .post(
            &reverse(user, &deposit_id),
            &app.service(),
            json!({"amount": "30", "reason": "partial refund"}),
        )
        .await;
    let body = reply.assert_status(200);
    assert_eq!(body["reversedAmount"], "30.00");
    assert_eq!(balance(&body["wallet"], "USD"), "70.00");
    let rows = body["transactions"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["type"], "Reversal");
    assert_eq!(rows[0]["amount"], "-30.00");
    assert_eq!(rows[0]["description"], "partial refund");
    assert_eq!(rows[0]["reversesTransactionId"], deposit_id.as_str());
    assert_eq!(rows[0]["reversedAmount"], Value::Null);
    let read = app.get(&single, &owner).await;
    assert_eq!(read.assert_status(200)["reversedAmount"], "30.00");

    let rest = app
        .post(
            &reverse(user, &deposit_id),
            &app.admin(),
            json!({"reason": "chargeback"}),
        )
        .await;
    assert_eq!(rest.assert_status(200)["reversedAmount"], "100.00");
    app.post(
        &reverse(user, &deposit_id),
        &app.admin(),
        json!({"reason": "again"}),
    )
    .await
    .assert_problem(422, "reversal_exceeds_original");
    let page = app.get(&transactions(user), &owner).await;
    let items = page.assert_status(200)["items"].clone();
    let listed = items
        .as_array()
        .and_then(|items| items.iter().find(|t| t["id"] == deposit_id.as_str()))
        .cloned()
        .expect("the deposit in the history");
    assert_eq!(listed["reversedAmount"], "100.00");

    let metrics = app
        .send(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    let needle = "wallet_transactions_total{currency=\"USD\",type=\"Reversal\"} 2";
    assert!(metrics.text.contains(needle), "{}", metrics.text);
    let statistics = app.get("/api/v1/wallets/statistics", &app.admin()).await;
    let rows = statistics.assert_status(200)["transactions"].clone();
    let reversals = rows
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["type"] == "Reversal"))
        .cloned()
        .expect("statistics count reversals");
    assert_eq!(
        (reversals["count"].clone(), reversals["volume"].clone()),
        (json!(2), json!("100.00"))
    );
}

#[tokio::test]
async fn a_transfer_is_reversed_through_the_payees_id_and_the_payer_is_refunded() {
    let app = TestApp::spawn().await;
    let (payer, owner) = app.funded_user("50").await;
    let (payee, _) = app.funded_user("0").await;
    let sent = app
        .post(
            &format!("/api/v1/wallets/{payer}/transfers"),
            &owner,
            json!({"toUserId": payee, "amount": "20", "currency": "USD"}),
        )
        .await;
    let out_id = id_of(&sent.assert_status(200)["transaction"]);
    let received_id = id_of(&newest(&app, payee).await);
    let body = app
        .post(
            &reverse(payee, &received_id),
            &app.service(),
            json!({"amount": 5, "reason": "return"}),
        )
        .await;
    let body = body.assert_status(200);
    assert_eq!(body["wallet"]["userId"], payee.to_string());
    assert_eq!(balance(&body["wallet"], "USD"), "15.00");
    let rows = body["transactions"].as_array().cloned().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["reversesTransactionId"], received_id.as_str());
    assert_eq!(rows[1]["reversesTransactionId"], out_id.as_str());
    assert_eq!(rows[0]["transferId"], rows[1]["transferId"]);
    assert_eq!(rows[0]["counterpartyUserId"], payer.to_string());
    // The other side shares the total.
    let payer_leg = app
        .get(&format!("{}/{out_id}", transactions(payer)), &owner)
        .await;
    assert_eq!(payer_leg.assert_status(200)["reversedAmount"], "5.00");
    app.post(
        &reverse(payer, &out_id),
        &app.service(),
        json!({"amount": "15.01", "reason": "too much"}),
    )
    .await
    .assert_problem(422, "reversal_exceeds_original");
    // Another wallet's transaction is not found from this wallet.
    app.get(&format!("{}/{out_id}", transactions(payee)), &app.admin())
        .await
        .assert_problem(404, "transaction_not_found");
    app.post(
        &reverse(payee, &out_id),
        &app.admin(),
        json!({"reason": "x"}),
    )
    .await
    .assert_problem(404, "transaction_not_found");
}

#[tokio::test]
async fn reversal_errors_and_idempotency() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    let deposit_id = id_of(&newest(&app, user).await);
    let unknown = Uuid::now_v7().to_string();
    let exchange = app
        .post(
            &format!("/api/v1/wallets/{user}/exchange"),
            &owner,
            json!({"amount": "1", "fromCurrency": "USD", "toCurrency": "VND"}),
        )
        .await;
    let exchanged = id_of(&exchange.assert_status(200)["transactions"][0]);
    let cases = [
        (
            deposit_id.as_str(),
            json!({"amount": "0", "reason": "r"}),
            400,
            "invalid_amount",
        ),
        (
            deposit_id.as_str(),
            json!({"amount": "1.001", "reason": "r"}),
            400,
            "invalid_amount",
        ),
        (
            deposit_id.as_str(),
            json!({"amount": "1"}),
            400,
            "validation_error",
        ),
        (
            deposit_id.as_str(),
            json!({"reason": " "}),
            400,
            "validation_error",
        ),
        (
            deposit_id.as_str(),
            json!({"reason": "r", "extra": 1}),
            400,
            "validation_error",
        ),
        (
            unknown.as_str(),
            json!({"reason": "r"}),
            404,
            "transaction_not_found",
        ),
        (
            exchanged.as_str(),
            json!({"reason": "r"}),
            422,
            "not_reversible",
        ),
        (
            deposit_id.as_str(),
            json!({"amount": "9.5", "reason": "r"}),
            422,
            "insufficient_funds",
        ),
    ];
    for (id, body, status, code) in cases {
        app.post(&reverse(user, id), &app.service(), body)
            .await
            .assert_problem(status, code);
    }
    app.post(
        &format!("/api/v1/wallets/{user}/transactions/not-a-uuid/reverse"),
        &app.service(),
        json!({"reason": "r"}),
    )
    .await
    .assert_problem(400, "validation_error");

    let body = json!({"amount": "2", "reason": "refund"});
    let first = app
        .post_keyed(
            &reverse(user, &deposit_id),
            &app.service(),
            "rv-1",
            body.clone(),
        )
        .await;
    let first = first.assert_status(200).clone();
    let again = app
        .post_keyed(
            &reverse(user, &deposit_id),
            &app.service(),
            "rv-1",
            json!({"amount": 2.00, "reason": "refund"}),
        )
        .await;
    assert_eq!(again.assert_status(200), &first);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    app.post_keyed(
        &reverse(user, &deposit_id),
        &app.service(),
        "rv-1",
        json!({"amount": "3", "reason": "refund"}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    let read = app
        .get(&format!("{}/{deposit_id}", transactions(user)), &owner)
        .await;
    assert_eq!(read.assert_status(200)["reversedAmount"], "2.00");
}

#[tokio::test]
async fn balances_at_a_time_read_the_log() {
    let app = TestApp::spawn().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (user, owner) = app.funded_user("100").await;
    let deposit = newest(&app, user).await;
    let at_deposit = deposit["createdAt"].as_str().expect("a time").to_owned();
    let held = app
        .post(
            &format!("/api/v1/wallets/{user}/holds"),
            &owner,
            json!({"amount": "40", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7()}),
        )
        .await;
    held.assert_status(201);
    let balances = |at: Option<&str>| {
        let query = at.map_or(String::new(), |at| {
            format!("?at={}", at.replace('+', "%2B"))
        });
        format!("/api/v1/wallets/{user}/balances{query}")
    };
    let early = app.get(&balances(Some(&before.to_rfc3339())), &owner).await;
    assert_eq!(early.assert_status(200)["balances"], json!([]));
    let then = app.get(&balances(Some(&at_deposit)), &owner).await;
    let then = then.assert_status(200);
    assert_eq!(
        then["balances"],
        json!([{"currency": "USD", "balance": "100.00", "held": "0.00", "available": "100.00"}])
    );
    let now = app.get(&balances(None), &app.service()).await;
    assert_eq!(
        now.assert_status(200)["balances"],
        json!([{"currency": "USD", "balance": "100.00", "held": "40.00", "available": "60.00"}])
    );
    app.get(&balances(Some("yesterday")), &owner)
        .await
        .assert_problem(400, "validation_error");
    let stranger = app.token(Uuid::now_v7(), &[]);
    app.get(&balances(None), &stranger)
        .await
        .assert_problem(403, "forbidden");
}
