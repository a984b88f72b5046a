//! Transfers and hold payouts over HTTP: the success shapes, every error
//! code of the new rules, the permission rows and idempotency.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{balance, TestApp};

fn transfers(user: Uuid) -> String {
    format!("/api/v1/wallets/{user}/transfers")
}

/// The service's metrics count `expected` USD transactions of each type.
async fn assert_metrics(app: &TestApp, expected: &[(&str, u32)]) {
    let metrics = app
        .send(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    for (kind, count) in expected {
        let needle =
            format!("wallet_transactions_total{{currency=\"USD\",type=\"{kind}\"}} {count}");
        assert!(
            metrics.text.contains(&needle),
            "metrics lack `{needle}`:\n{}",
            metrics.text
        );
    }
}

async fn wallet(app: &TestApp, user: Uuid) -> Value {
    app.get(&format!("/api/v1/wallets/{user}"), &app.admin())
        .await
        .assert_status(200)
        .clone()
}

/// A hold of `amount` USD on `user`'s wallet, made by its owner.
async fn hold(app: &TestApp, user: Uuid, token: &str, amount: &str) -> String {
    let body = json!({"amount": amount, "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7()});
    app.post(&format!("/api/v1/wallets/{user}/holds"), token, body)
        .await
        .assert_status(201)["id"]
        .as_str()
        .expect("a hold id")
        .to_owned()
}

#[tokio::test]
async fn a_transfer_moves_money_and_both_legs_name_each_other() {
    let app = TestApp::spawn().await;
    let (payer, owner) = app.funded_user("100").await;
    let (payee, _) = app.funded_user("0").await;
    let reply = app
        .post(&transfers(payer), &owner, json!({"toUserId": payee, "amount": "30.25", "currency": "USD", "description": "rent", "reference": "r-1"}))
        .await;
    let body = reply.assert_status(200);
    let transfer_id = body["transferId"]
        .as_str()
        .expect("a transfer id")
        .to_owned();
    assert_eq!(body["transaction"]["type"], "TransferOut");
    assert_eq!(body["transaction"]["amount"], "-30.25");
    assert_eq!(body["transaction"]["transferId"], transfer_id);
    assert_eq!(body["transaction"]["counterpartyUserId"], payee.to_string());
    assert_eq!(balance(&body["wallet"], "USD"), "69.75");
    assert_eq!(balance(&wallet(&app, payee).await, "USD"), "30.25");

    let history = app
        .get(
            &format!("/api/v1/wallets/{payee}/transactions?type=TransferIn"),
            &app.admin(),
        )
        .await;
    let items = history.assert_status(200)["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1));
    assert_eq!(items[0]["amount"], "30.25");
    assert_eq!(items[0]["transferId"], transfer_id);
    assert_eq!(items[0]["counterpartyUserId"], payer.to_string());

    // A back-end service may move a user's money too.
    app.post(
        &transfers(payer),
        &app.service(),
        json!({"toUserId": payee, "amount": "1", "currency": "USD"}),
    )
    .await
    .assert_status(200);
    // Both legs of both transfers are counted.
    assert_metrics(&app, &[("TransferOut", 2), ("TransferIn", 2)]).await;
}

#[tokio::test]
async fn transfer_errors_follow_the_check_order() {
    let app = TestApp::spawn().await;
    let (payer, owner) = app.funded_user("10").await;
    let (payee, _) = app.funded_user("0").await;
    let cases = [
        (
            json!({"toUserId": payer, "amount": "1", "currency": "USD"}),
            400,
            "same_wallet",
        ),
        (
            json!({"toUserId": payee, "amount": "0", "currency": "USD"}),
            400,
            "invalid_amount",
        ),
        (
            json!({"toUserId": payee, "amount": "1.001", "currency": "USD"}),
            400,
            "invalid_amount",
        ),
        (
            json!({"toUserId": payee, "amount": "1", "currency": "XXX"}),
            400,
            "unsupported_currency",
        ),
        (
            json!({"toUserId": payee, "amount": "1"}),
            400,
            "validation_error",
        ),
        (
            json!({"toUserId": "nope", "amount": "1", "currency": "USD"}),
            400,
            "validation_error",
        ),
        (
            json!({"toUserId": payee, "amount": "1", "currency": "USD", "extra": 1}),
            400,
            "validation_error",
        ),
        (
            json!({"toUserId": Uuid::now_v7(), "amount": "1", "currency": "USD"}),
            422,
            "counterparty_not_found",
        ),
        (
            json!({"toUserId": payee, "amount": "11", "currency": "USD"}),
            422,
            "insufficient_funds",
        ),
    ];
    for (body, status, code) in cases {
        app.post(&transfers(payer), &owner, body)
            .await
            .assert_problem(status, code);
    }
    // Another user may not spend from the wallet.
    let stranger = app.token(Uuid::now_v7(), &[]);
    app.post(
        &transfers(payer),
        &stranger,
        json!({"toUserId": payee, "amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(403, "forbidden");
    // A payer without a wallet is wallet_not_found.
    let lonely = Uuid::now_v7();
    app.post(
        &transfers(lonely),
        &app.service(),
        json!({"toUserId": payee, "amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(404, "wallet_not_found");

    // A frozen payee receives; a frozen payer may not send.
    app.post(
        &format!("/api/v1/wallets/{payee}/freeze"),
        &app.admin(),
        json!({"reason": "review"}),
    )
    .await
    .assert_status(200);
    app.post(
        &transfers(payer),
        &owner,
        json!({"toUserId": payee, "amount": "2", "currency": "USD"}),
    )
    .await
    .assert_status(200);
    assert_eq!(balance(&wallet(&app, payee).await, "USD"), "2.00");

    // A closed payee is refused.
    let (closed, _) = app.funded_user("0").await;
    app.delete(&format!("/api/v1/wallets/{closed}"), &app.admin())
        .await
        .assert_status(200);
    app.post(
        &transfers(payer),
        &owner,
        json!({"toUserId": closed, "amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "counterparty_closed");
    assert_eq!(balance(&wallet(&app, payer).await, "USD"), "8.00");
}

#[tokio::test]
async fn a_marketplace_payout_pays_the_seller_and_the_fee_wallet() {
    let app = TestApp::spawn().await;
    let (buyer, owner) = app.funded_user("50").await;
    let (seller, _) = app.funded_user("0").await;
    let (fee, _) = app.funded_user("0").await;
    let hold_id = hold(&app, buyer, &owner, "20").await;
    let execute = format!("/api/v1/wallets/{buyer}/holds/{hold_id}/execute");
    let payees = json!([{"userId": seller, "amount": "18"}, {"userId": fee, "amount": "2"}]);

    // The owner may not settle its own hold, with or without payees.
    app.post(&execute, &owner, json!({"payees": payees}))
        .await
        .assert_problem(403, "forbidden");
    let refused = [
        (json!({"payees": []}), 400, "validation_error"),
        (
            json!({"amount": "19", "payees": payees}),
            400,
            "validation_error",
        ),
        (
            json!({"payees": [{"userId": seller, "amount": "1"}, {"userId": seller, "amount": "1"}]}),
            400,
            "validation_error",
        ),
        (
            json!({"payees": [{"userId": buyer, "amount": "1"}]}),
            400,
            "same_wallet",
        ),
        (
            json!({"payees": [{"userId": seller, "amount": "-1"}]}),
            400,
            "invalid_amount",
        ),
        (
            json!({"payees": [{"userId": seller, "amount": "21"}]}),
            422,
            "amount_exceeds_hold",
        ),
        (
            json!({"payees": [{"userId": Uuid::now_v7(), "amount": "1"}]}),
            422,
            "counterparty_not_found",
        ),
    ];
    for (body, status, code) in refused {
        app.post(&execute, &app.service(), body)
            .await
            .assert_problem(status, code);
    }
    let seventeen: Vec<Value> = (0..17)
        .map(|_| json!({"userId": Uuid::now_v7(), "amount": "1"}))
        .collect();
    app.post(&execute, &app.service(), json!({"payees": seventeen}))
        .await
        .assert_problem(400, "validation_error");

    let reply = app
        .post_keyed(
            &execute,
            &app.service(),
            "delivered-42",
            json!({"payees": payees, "reference": "order-42"}),
        )
        .await;
    let body = reply.assert_status(200);
    assert_eq!(body["status"], "Executed");
    assert_eq!(body["executedAmount"], "20.00");
    assert_eq!(balance(&wallet(&app, buyer).await, "USD"), "30.00");
    assert_eq!(balance(&wallet(&app, seller).await, "USD"), "18.00");
    assert_eq!(balance(&wallet(&app, fee).await, "USD"), "2.00");
    assert_metrics(&app, &[("HoldExecute", 1), ("TransferIn", 2)]).await;

    // The same delivery again replays; nothing moves twice.
    let again = app
        .post_keyed(
            &execute,
            &app.service(),
            "delivered-42",
            json!({"payees": payees, "reference": "order-42"}),
        )
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(balance(&wallet(&app, seller).await, "USD"), "18.00");
}

#[tokio::test]
async fn a_transfer_replays_under_its_key_and_refuses_the_key_on_another_body() {
    let app = TestApp::spawn().await;
    let (payer, owner) = app.funded_user("10").await;
    let (payee, _) = app.funded_user("0").await;
    let body = json!({"toUserId": payee, "amount": "4", "currency": "USD"});
    let first = app
        .post_keyed(&transfers(payer), &owner, "t-1", body.clone())
        .await;
    let first_body = first.assert_status(200).clone();
    let again = app.post_keyed(&transfers(payer), &owner, "t-1", body).await;
    assert_eq!(again.assert_status(200), &first_body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    app.post_keyed(
        &transfers(payer),
        &owner,
        "t-1",
        json!({"toUserId": payee, "amount": "5", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    assert_eq!(balance(&wallet(&app, payee).await, "USD"), "4.00");
}

#[tokio::test]
async fn the_document_bounds_the_payees_by_the_core_limit() {
    let app = TestApp::spawn().await;
    let document = app
        .send(reqwest::Method::GET, "/openapi.json", None, &[], None)
        .await;
    let schemas = &document.assert_status(200)["components"]["schemas"];
    let payees = &schemas["ExecuteHoldRequest"]["properties"]["payees"];
    let text = payees.to_string();
    let limit = wallet_core::PAYEES_MAX.to_string();
    assert!(text.contains(&format!("\"maxItems\":{limit}")), "{text}");
    assert!(text.contains("\"minItems\":1"), "{text}");
    // A transfer's amount has its currency's decimals: one variant per
    // configured currency, each requiring the payee.
    let variants = schemas["TransferRequest"]["oneOf"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!variants.is_empty(), "{}", schemas["TransferRequest"]);
    for variant in variants {
        assert!(variant["required"].to_string().contains("toUserId"));
    }
}
