//! Bad input on every route: always a 4xx problem document, never a 5xx.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{Reply, TestApp};

#[track_caller]
fn assert_client_error(reply: &Reply, context: &str) {
    assert!(
        (400..500).contains(&reply.status),
        "{context}: expected 4xx, got {}: {}",
        reply.status,
        reply.text
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{context}: {}",
        reply.text
    );
    assert!(reply.body["code"].is_string(), "{context}: {}", reply.text);
    let text = reply.text.to_lowercase();
    for leak in [
        "select ",
        "insert ",
        "postgres",
        "panicked",
        "stack backtrace",
        "sqlx",
    ] {
        assert!(
            !text.contains(leak),
            "{context} leaks `{leak}`: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn malformed_bodies_on_every_route_are_400() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (user, _) = app.funded_user("10").await;
    let hold = Uuid::now_v7();
    let lot = Uuid::now_v7();
    let w = format!("/api/v1/wallets/{user}");
    let posts = [
        "/api/v1/wallets".to_owned(),
        format!("{w}/deposit"),
        format!("{w}/withdraw"),
        format!("{w}/exchange"),
        format!("{w}/holds"),
        format!("{w}/holds/{hold}/execute"),
        format!("{w}/holds/{hold}/release"),
        format!("{w}/holds/{hold}/cancel"),
        format!("{w}/freeze"),
        format!("{w}/unfreeze"),
        format!("{w}/points"),
        format!("{w}/points/earn"),
        format!("{w}/points/spend"),
        format!("{w}/points/adjust"),
        format!("{w}/points/lots/{lot}/confirm"),
        format!("{w}/points/lots/{lot}/cancel"),
    ];
    let bodies = [
        "{",
        "not json",
        "[]",
        "null",
        "\"text\"",
        "{\"unknownField\": 1}",
        "{\"amount\": {}, \"currency\": 1}",
        "{\"points\": \"ten\", \"source\": []}",
        "{\"amount\": \"1\", \"currency\": \"USD\", \"amount\": \"2\"}",
        "\u{0}\u{1}",
    ];
    for path in &posts {
        for body in bodies {
            let reply = app.post_raw(path, &admin, body).await;
            assert_client_error(&reply, &format!("POST {path} {body:?}"));
            assert_eq!(reply.status, 400, "POST {path} {body:?}: {}", reply.text);
        }
        let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(70 * 1024));
        let reply = app.post_raw(path, &admin, &huge).await;
        reply.assert_problem(413, "payload_too_large");
    }
    // The DELETE route takes no body.
    let reply = app
        .send(
            reqwest::Method::DELETE,
            &w,
            Some(&admin),
            &[],
            Some("{\"x\": 1}".into()),
        )
        .await;
    reply.assert_problem(400, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn bad_amounts_currencies_and_points_are_named_precisely() {
    let app = TestApp::spawn().await;
    let service = app.service();
    let admin = app.admin();
    let (user, _) = app.funded_user("10").await;
    let deposit = format!("/api/v1/wallets/{user}/deposit");
    let amounts: Vec<Value> = vec![
        json!("ten"),
        json!("NaN"),
        json!("1e30"),
        json!("Infinity"),
        json!(""),
        json!("0"),
        json!(0),
        json!("-1"),
        json!(-5),
        json!("0.001"),
        json!(0.001),
        json!("1000000000000000.01"),
        json!("10000000000000000"),
        serde_json::from_str("1e30").expect("a number"),
        serde_json::from_str("123456789012345678901234567890").expect("a number"),
    ];
    for amount in amounts {
        let reply = app
            .post(
                &deposit,
                &service,
                json!({"amount": amount, "currency": "USD"}),
            )
            .await;
        reply.assert_problem(400, "invalid_amount");
    }
    for amount in [json!(true), json!(null), json!([1]), json!({"value": 1})] {
        let reply = app
            .post(
                &deposit,
                &service,
                json!({"amount": amount, "currency": "USD"}),
            )
            .await;
        reply.assert_problem(400, "validation_error");
    }
    app.post(&deposit, &service, json!({"currency": "USD"}))
        .await
        .assert_problem(400, "validation_error");
    for currency in ["XYZ", "", "US-D", "ABCDEFGHIJKLMNOP"] {
        app.post(
            &deposit,
            &service,
            json!({"amount": "1", "currency": currency}),
        )
        .await
        .assert_problem(400, "unsupported_currency");
    }
    app.post(
        &format!("/api/v1/wallets/{user}/exchange"),
        &service,
        json!({"amount": "1", "fromCurrency": "USD", "toCurrency": "usd"}),
    )
    .await
    .assert_problem(400, "same_currency");
    app.post(
        &format!("/api/v1/wallets/{user}/exchange"),
        &service,
        json!({"amount": "1", "fromCurrency": "USD", "toCurrency": "EUR"}),
    )
    .await
    .assert_problem(400, "unsupported_currency");
    app.post(
        "/api/v1/wallets",
        &admin,
        json!({"userId": Uuid::now_v7(), "defaultCurrency": "EUR"}),
    )
    .await
    .assert_problem(400, "unsupported_currency");
    app.post("/api/v1/wallets", &admin, json!({"userId": "not-a-uuid"}))
        .await
        .assert_problem(400, "validation_error");

    // Text limits.
    app.post(
        &deposit,
        &service,
        json!({"amount": "1", "currency": "USD", "description": "d".repeat(501)}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.post(
        &deposit,
        &service,
        json!({"amount": "1", "currency": "USD", "reference": "r".repeat(256)}),
    )
    .await
    .assert_problem(400, "validation_error");

    // Holds: expiry in the past or too far ahead, bad reference id.
    let holds = format!("/api/v1/wallets/{user}/holds");
    let hold = |expires: Value| json!({"amount": "1", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7(), "expiresAt": expires});
    for expires in [
        json!("2000-01-01T00:00:00Z"),
        json!("2999-01-01T00:00:00Z"),
        json!("tomorrow"),
        json!(5),
    ] {
        app.post(&holds, &service, hold(expires))
            .await
            .assert_problem(400, "validation_error");
    }
    app.post(
        &holds,
        &service,
        json!({"amount": "1", "currency": "USD", "referenceType": "Order", "referenceId": "x"}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.post(&holds, &service, json!({"amount": "1", "currency": "USD", "referenceType": "t".repeat(101), "referenceId": Uuid::now_v7()}))
        .await
        .assert_problem(400, "validation_error");

    // Points.
    let points = format!("/api/v1/wallets/{user}/points");
    app.post(&points, &service, json!({}))
        .await
        .assert_status(201);
    for value in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("10"),
        json!(1_000_000_000_001i64),
        json!(1e3),
        serde_json::from_str::<Value>("99999999999999999999").expect("n"),
    ] {
        app.post(
            &format!("{points}/earn"),
            &service,
            json!({"points": value, "source": "s"}),
        )
        .await
        .assert_problem(400, "validation_error");
        app.post(
            &format!("{points}/spend"),
            &service,
            json!({"points": value, "source": "s"}),
        )
        .await
        .assert_problem(400, "validation_error");
    }
    app.post(
        &format!("{points}/adjust"),
        &admin,
        json!({"points": 0, "source": "s"}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.post(
        &format!("{points}/earn"),
        &service,
        json!({"points": 5, "source": "s", "expiresAt": "2001-01-01T00:00:00Z"}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.post(
        &format!("{points}/earn"),
        &service,
        json!({"points": 5, "source": " "}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn bad_path_ids_cursors_limits_and_filters_are_400() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (user, _) = app.funded_user("10").await;
    let w = format!("/api/v1/wallets/{user}");
    for path in [
        "/api/v1/wallets/not-a-uuid".to_owned(),
        "/api/v1/wallets/123/transactions".to_owned(),
        format!("{w}/holds/nope"),
        format!("{w}/holds/{}x", Uuid::now_v7()),
        "/api/v1/wallets/%00%ff/points".to_owned(),
    ] {
        let reply = app.get(&path, &admin).await;
        reply.assert_problem(400, "validation_error");
    }
    app.post(&format!("{w}/points/lots/xyz/confirm"), &admin, json!({}))
        .await
        .assert_problem(400, "validation_error");
    for query in [
        "limit=0",
        "limit=201",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=99999999999999999999",
        "cursor=garbage",
        "cursor=",
        "cursor=p1.zz",
        "type=Bogus",
        "currency=EUR",
        "limit=1&limit=2",
    ] {
        let reply = app.get(&format!("{w}/transactions?{query}"), &admin).await;
        assert_client_error(&reply, query);
    }
    for query in ["status=Gone", "cursor=s1", "limit=1000"] {
        assert_client_error(&app.get(&format!("{w}/holds?{query}"), &admin).await, query);
        assert_client_error(
            &app.get(&format!("/api/v1/wallets?{query}"), &admin).await,
            query,
        );
    }
    for query in [
        "from=yesterday",
        "to=2020-13-01T00:00:00Z",
        "from=2021-01-02T00:00:00Z&to=2021-01-01T00:00:00Z",
    ] {
        app.get(&format!("/api/v1/wallets/statistics?{query}"), &admin)
            .await
            .assert_problem(400, "validation_error");
    }
    for query in ["after=-1", "after=x", "limit=0", "limit=1001"] {
        app.get(&format!("/api/v1/wallets/events?{query}"), &admin)
            .await
            .assert_problem(400, "validation_error");
    }
    assert_client_error(
        &app.get(&format!("{w}/points/transactions?cursor=zzz"), &admin)
            .await,
        "points cursor",
    );
    app.stop().await;
}
