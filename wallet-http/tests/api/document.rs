//! What the OpenAPI document promises about requests, checked against the
//! service: an empty optional text is absent, and the document's
//! constraints come from the running configuration.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn an_empty_optional_text_is_the_same_as_an_absent_one() {
    let app = TestApp::spawn().await;
    let service = app.service();
    let admin = app.admin();
    let (user, _) = app.funded_user("10").await;
    let wallet = format!("/api/v1/wallets/{user}");

    let deposit = app
        .post(
            &format!("{wallet}/deposit"),
            &service,
            json!({"amount": "1", "currency": "USD", "description": "", "reference": ""}),
        )
        .await;
    let transaction = &deposit.assert_status(200)["transaction"];
    assert_eq!(transaction["description"], Value::Null);
    assert_eq!(transaction["reference"], Value::Null);

    let withdraw = app
        .post(
            &format!("{wallet}/withdraw"),
            &service,
            json!({"amount": "1", "currency": "USD", "description": "", "reference": "r"}),
        )
        .await;
    let transaction = &withdraw.assert_status(200)["transaction"];
    assert_eq!(transaction["description"], Value::Null);
    assert_eq!(transaction["reference"], "r");

    let hold = app
        .post(
            &format!("{wallet}/holds"),
            &service,
            json!({"amount": "2", "currency": "USD", "referenceType": "Order",
                   "referenceId": Uuid::now_v7(), "description": ""}),
        )
        .await;
    let hold = hold.assert_status(201);
    assert_eq!(hold["description"], Value::Null);
    let executed = app
        .post(
            &format!(
                "{wallet}/holds/{}/execute",
                hold["id"].as_str().expect("id")
            ),
            &service,
            json!({"amount": "1", "reference": ""}),
        )
        .await;
    assert_eq!(executed.assert_status(200)["executedAmount"], "1.00");
    let transactions = app.get(&format!("{wallet}/transactions"), &service).await;
    let newest = &transactions.assert_status(200)["items"][0];
    assert_eq!(newest["type"], "HoldExecute");
    assert_eq!(newest["reference"], Value::Null);

    let points = format!("{wallet}/points");
    app.post(&points, &service, json!({}))
        .await
        .assert_status(201);
    for (route, token, body) in [
        (
            "earn",
            &service,
            json!({"points": 5, "source": "s", "description": ""}),
        ),
        (
            "spend",
            &service,
            json!({"points": 1, "source": "s", "description": ""}),
        ),
        (
            "adjust",
            &admin,
            json!({"points": 1, "source": "s", "description": ""}),
        ),
    ] {
        let reply = app.post(&format!("{points}/{route}"), token, body).await;
        assert_eq!(
            reply.assert_status(200)["transaction"]["description"],
            Value::Null,
            "{route}"
        );
    }

    // A text that is there but blank is still refused: only the empty
    // string stands for absent.
    app.post(
        &format!("{wallet}/deposit"),
        &service,
        json!({"amount": "1", "currency": "USD", "description": "  "}),
    )
    .await
    .assert_problem(400, "validation_error");
    // A required text may not be empty.
    app.post(
        &format!("{points}/earn"),
        &service,
        json!({"points": 5, "source": ""}),
    )
    .await
    .assert_problem(400, "validation_error");
    app.stop().await;
}

#[tokio::test]
async fn the_document_states_the_running_currency_table_and_the_amount_grammar() {
    let app = TestApp::spawn().await;
    let document = app
        .send(reqwest::Method::GET, "/openapi.json", None, &[], None)
        .await;
    let schemas = document.assert_status(200)["components"]["schemas"].clone();
    let currency = schemas["Currency"]["description"].as_str().expect("text");
    for code in ["VND", "USD", "PPOINT"] {
        assert!(currency.contains(code), "{currency}");
    }
    // One variant per configured currency, each with its own decimals.
    let variants = schemas["MoneyRequest"]["oneOf"]
        .as_array()
        .expect("variants");
    assert_eq!(variants.len(), 3);
    let pattern_of = |code: &str| -> String {
        variants
            .iter()
            .find(|v| {
                v["properties"]["currency"]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&format!("one of {code} ")))
            })
            .and_then(|v| v["properties"]["amount"]["anyOf"][0]["pattern"].as_str())
            .expect("a variant for the code")
            .to_owned()
    };
    assert_eq!(
        pattern_of("USD"),
        wallet_http::constraints::amount_pattern(2)
    );
    assert_eq!(
        pattern_of("VND"),
        wallet_http::constraints::amount_pattern(0)
    );

    // What the grammar refuses, the service refuses; what it takes, it takes.
    let service = app.service();
    let (user, _) = app.funded_user("0").await;
    let deposit = format!("/api/v1/wallets/{user}/deposit");
    for refused in ["+5", "007", ".5", "5.", "1.0000000000000", " 5"] {
        app.post(
            &deposit,
            &service,
            json!({"amount": refused, "currency": "USD"}),
        )
        .await
        .assert_problem(400, "invalid_amount");
    }
    for taken in ["5", "0.5", "1.500", "10.000000000000"] {
        app.post(
            &deposit,
            &service,
            json!({"amount": taken, "currency": " usd "}),
        )
        .await
        .assert_status(200);
    }
    app.stop().await;
}
