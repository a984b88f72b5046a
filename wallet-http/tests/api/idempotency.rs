//! Idempotency keys: replays, reuse with other parameters, concurrency.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::{balance, TestApp};

#[tokio::test]
async fn a_replay_returns_the_first_status_and_body() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    let path = format!("/api/v1/wallets/{user}/withdraw");

    let first = app
        .post_keyed(
            &path,
            &owner,
            "withdraw-1",
            json!({"amount": "2.50", "currency": "USD"}),
        )
        .await;
    first.assert_status(200);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same amount written another way is the same command.
    let again = app
        .post_keyed(
            &path,
            &owner,
            "withdraw-1",
            json!({"amount": 2.5, "currency": "usd"}),
        )
        .await;
    again.assert_status(200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text, "the identical body");
    let wallet = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    assert_eq!(balance(&wallet.body, "USD"), "7.50", "it took effect once");

    // 201 is replayed as 201.
    let other = Uuid::now_v7();
    let token = app.token(other, &[]);
    let created = app
        .post_keyed("/api/v1/wallets", &token, "create", json!({}))
        .await;
    created.assert_status(201);
    let replayed = app
        .post_keyed("/api/v1/wallets", &token, "create", json!({}))
        .await;
    replayed.assert_status(201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.text, created.text);
    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_with_other_parameters_or_on_another_command_is_422() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    let base = format!("/api/v1/wallets/{user}");
    app.post_keyed(
        &format!("{base}/withdraw"),
        &owner,
        "k",
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_status(200);
    app.post_keyed(
        &format!("{base}/withdraw"),
        &owner,
        "k",
        json!({"amount": "2", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    app.post_keyed(
        &format!("{base}/deposit"),
        &app.service(),
        "k",
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    // A failed command is not recorded: its key can be used again.
    app.post_keyed(
        &format!("{base}/withdraw"),
        &owner,
        "f",
        json!({"amount": "1000", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "insufficient_funds");
    app.post_keyed(
        &format!("{base}/withdraw"),
        &owner,
        "f",
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_status(200);
    // Keys are scoped to the user in the path.
    let (second, second_token) = app.funded_user("10").await;
    let reply = app
        .post_keyed(
            &format!("/api/v1/wallets/{second}/withdraw"),
            &second_token,
            "k",
            json!({"amount": "2", "currency": "USD"}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.header("idempotent-replayed"), None);
    app.stop().await;
}

#[tokio::test]
async fn invalid_keys_are_400() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    let path = format!("/api/v1/wallets/{user}/withdraw");
    let body = json!({"amount": "1", "currency": "USD"});
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "tab\tkey"] {
        app.post_keyed(&path, &owner, key, body.clone())
            .await
            .assert_problem(400, "validation_error");
    }
    let non_ascii = app
        .client
        .post(format!("{}{path}", app.url))
        .bearer_auth(&owner)
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"cl\xc3\xa9").expect("bytes"),
        )
        .json(&body)
        .send()
        .await
        .expect("answer");
    assert_eq!(non_ascii.status().as_u16(), 400);
    app.post_keyed(&path, &owner, &"k".repeat(255), body)
        .await
        .assert_status(200);
    app.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_take_effect_once() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("100").await;
    let path = format!("/api/v1/wallets/{user}/withdraw");
    let body = json!({"amount": "7", "currency": "USD"});
    let requests = (0..20).map(|_| app.post_keyed(&path, &owner, "same-key", body.clone()));
    let replies = futures::future::join_all(requests).await;
    let mut bodies = Vec::new();
    for reply in &replies {
        match reply.status {
            200 => bodies.push(reply.text.clone()),
            409 => reply.assert_problem(409, "idempotency_key_in_flight"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(!bodies.is_empty());
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "every success is the same response"
    );
    let fresh = replies
        .iter()
        .filter(|r| r.status == 200 && r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request ran the command");
    let wallet = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    assert_eq!(balance(&wallet.body, "USD"), "93.00");
    let history = app
        .get(&format!("/api/v1/wallets/{user}/transactions"), &owner)
        .await;
    assert_eq!(
        history.body["items"].as_array().map(Vec::len),
        Some(2),
        "deposit and one withdrawal"
    );
    app.stop().await;
}
