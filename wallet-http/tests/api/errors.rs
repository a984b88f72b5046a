//! Every business-rule error code of the HTTP contract, through HTTP.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn business_rules_answer_with_their_codes() {
    let app = TestApp::spawn().await;
    let service = app.service();
    let admin = app.admin();
    let (user, owner) = app.funded_user("10").await;
    let w = format!("/api/v1/wallets/{user}");

    app.get(&format!("/api/v1/wallets/{}", Uuid::now_v7()), &admin)
        .await
        .assert_problem(404, "wallet_not_found");
    app.get(&format!("{w}/holds/{}", Uuid::now_v7()), &owner)
        .await
        .assert_problem(404, "hold_not_found");
    app.post(
        &format!("{w}/holds/{}/execute", Uuid::now_v7()),
        &service,
        json!({}),
    )
    .await
    .assert_problem(404, "hold_not_found");
    app.post(
        &format!("{w}/withdraw"),
        &owner,
        json!({"amount": "10.01", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "insufficient_funds");
    app.post(
        &format!("{w}/exchange"),
        &owner,
        json!({"amount": "1", "fromCurrency": "VND", "toCurrency": "USD"}),
    )
    .await
    .assert_problem(422, "insufficient_funds");
    app.post(
        &format!("{w}/deposit"),
        &service,
        json!({"amount": "100", "currency": "VND"}),
    )
    .await
    .assert_status(200);
    app.post(
        &format!("{w}/exchange"),
        &owner,
        json!({"amount": "100", "fromCurrency": "VND", "toCurrency": "USD"}),
    )
    .await
    .assert_problem(422, "amount_too_small");
    app.post(
        &format!("{w}/deposit"),
        &service,
        json!({"amount": "1000000000000000", "currency": "VND"}),
    )
    .await
    .assert_problem(422, "balance_limit_exceeded");

    let hold = app
        .post(&format!("{w}/holds"), &owner, json!({"amount": "4", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7()}))
        .await;
    let hold_id = hold.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.post(
        &format!("{w}/holds/{hold_id}/execute"),
        &service,
        json!({"amount": "4.01"}),
    )
    .await
    .assert_problem(422, "amount_exceeds_hold");
    app.post(&format!("{w}/holds/{hold_id}/cancel"), &service, json!({}))
        .await
        .assert_status(200);
    app.post(&format!("{w}/holds/{hold_id}/release"), &service, json!({}))
        .await
        .assert_problem(422, "hold_not_active");

    app.post(&format!("{w}/unfreeze"), &admin, json!({}))
        .await
        .assert_problem(422, "wallet_not_frozen");
    app.post(&format!("{w}/freeze"), &admin, json!({"reason": "check"}))
        .await
        .assert_status(200);
    app.post(&format!("{w}/freeze"), &admin, json!({"reason": "again"}))
        .await
        .assert_problem(422, "wallet_frozen");

    let points = format!("{w}/points");
    app.get(&points, &owner)
        .await
        .assert_problem(404, "point_account_not_found");
    app.post(
        &format!("{points}/earn"),
        &service,
        json!({"points": 1, "source": "s"}),
    )
    .await
    .assert_problem(404, "point_account_not_found");
    app.post(&points, &owner, json!({}))
        .await
        .assert_status(201);
    app.post(
        &format!("{points}/spend"),
        &owner,
        json!({"points": 1, "source": "s"}),
    )
    .await
    .assert_problem(422, "insufficient_points");
    app.post(
        &format!("{points}/adjust"),
        &admin,
        json!({"points": -1, "source": "s"}),
    )
    .await
    .assert_problem(422, "insufficient_points");
    app.post(
        &format!("{points}/lots/{}/confirm", Uuid::now_v7()),
        &service,
        json!({}),
    )
    .await
    .assert_problem(404, "lot_not_found");
    let earned = app
        .post(
            &format!("{points}/earn"),
            &service,
            json!({"points": 5, "source": "s"}),
        )
        .await;
    let lot = earned.assert_status(200)["lotId"]
        .as_str()
        .expect("lot")
        .to_owned();
    app.post(&format!("{points}/lots/{lot}/confirm"), &service, json!({}))
        .await
        .assert_problem(422, "lot_not_pending");
    app.stop().await;
}
