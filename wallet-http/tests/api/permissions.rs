//! The permission table of the HTTP contract, route by route and caller by
//! caller.

use serde_json::json;
use uuid::Uuid;

use crate::helpers::TestApp;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Group {
    Read,
    Create,
    Deposit,
    Spend,
    Settle,
    Admin,
}

/// Whether each caller may use a group: owner, another user, Service,
/// Admin, SuperAdmin.
fn allowed(group: Group) -> [bool; 5] {
    match group {
        Group::Read | Group::Create | Group::Spend => [true, false, true, true, true],
        Group::Deposit | Group::Settle => [false, false, true, true, true],
        Group::Admin => [false, false, false, true, true],
    }
}

#[tokio::test]
async fn every_route_follows_the_permission_table() {
    let app = TestApp::spawn().await;
    // The owner's wallet exists for some routes and not for others: the
    // answer to a caller who may not act is 403 either way.
    let (user, owner) = app.funded_user("50").await;
    let hold = app
        .post(&format!("/api/v1/wallets/{user}/holds"), &owner, json!({"amount": "1", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7()}))
        .await;
    let hold_id = hold.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let lot_id = Uuid::now_v7();
    let other = app.token(Uuid::now_v7(), &[]);
    let callers = [
        owner.clone(),
        other,
        app.service(),
        app.admin(),
        app.token(Uuid::now_v7(), &["SuperAdmin"]),
    ];
    let w = format!("/api/v1/wallets/{user}");
    let routes: Vec<(reqwest::Method, String, Group)> = vec![
        (reqwest::Method::GET, w.clone(), Group::Read),
        (
            reqwest::Method::GET,
            format!("{w}/transactions"),
            Group::Read,
        ),
        (reqwest::Method::GET, format!("{w}/holds"), Group::Read),
        (
            reqwest::Method::GET,
            format!("{w}/holds/{hold_id}"),
            Group::Read,
        ),
        (reqwest::Method::GET, format!("{w}/points"), Group::Read),
        (
            reqwest::Method::GET,
            format!("{w}/points/transactions"),
            Group::Read,
        ),
        (reqwest::Method::POST, format!("{w}/points"), Group::Create),
        (
            reqwest::Method::POST,
            format!("{w}/deposit"),
            Group::Deposit,
        ),
        (reqwest::Method::POST, format!("{w}/withdraw"), Group::Spend),
        (reqwest::Method::POST, format!("{w}/exchange"), Group::Spend),
        // Transfers follow the same row of the table as spending.
        (
            reqwest::Method::POST,
            format!("{w}/transfers"),
            Group::Spend,
        ),
        (reqwest::Method::POST, format!("{w}/holds"), Group::Spend),
        (
            reqwest::Method::POST,
            format!("{w}/points/spend"),
            Group::Spend,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/holds/{hold_id}/execute"),
            Group::Settle,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/holds/{hold_id}/release"),
            Group::Settle,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/holds/{hold_id}/cancel"),
            Group::Settle,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/points/earn"),
            Group::Settle,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/points/lots/{lot_id}/confirm"),
            Group::Settle,
        ),
        (
            reqwest::Method::POST,
            format!("{w}/points/lots/{lot_id}/cancel"),
            Group::Settle,
        ),
        (reqwest::Method::POST, format!("{w}/freeze"), Group::Admin),
        (reqwest::Method::POST, format!("{w}/unfreeze"), Group::Admin),
        (reqwest::Method::DELETE, w.clone(), Group::Admin),
        (
            reqwest::Method::POST,
            format!("{w}/points/adjust"),
            Group::Admin,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/wallets".to_owned(),
            Group::Admin,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/wallets/statistics".to_owned(),
            Group::Admin,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/wallets/events".to_owned(),
            Group::Admin,
        ),
    ];
    for (method, path, group) in &routes {
        for (index, (token, may)) in callers.iter().zip(allowed(*group)).enumerate() {
            // Bodies that would fail validation: an allowed caller gets
            // past authorisation and stops at 400, so nothing changes.
            let body = if *method == reqwest::Method::POST {
                Some("{\"unexpected\": true}".to_owned())
            } else {
                None
            };
            let reply = app.send(method.clone(), path, Some(token), &[], body).await;
            if may {
                assert!(
                    reply.status != 401 && reply.status != 403,
                    "caller {index} may {method} {path} ({group:?}): {}",
                    reply.text
                );
            } else {
                assert_eq!(
                    reply.status, 403,
                    "caller {index} may not {method} {path}: {}",
                    reply.text
                );
                reply.assert_problem(403, "forbidden");
            }
        }
    }
    // Create wallet: the owner for itself, Service and Admin for anyone.
    let stranger = Uuid::now_v7();
    app.post("/api/v1/wallets", &owner, json!({"userId": stranger}))
        .await
        .assert_problem(403, "forbidden");
    app.post("/api/v1/wallets", &app.admin(), json!({"userId": stranger}))
        .await
        .assert_status(201);
    app.stop().await;
}

#[tokio::test]
async fn a_caller_who_may_not_see_a_wallet_gets_403_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let (user, _) = app.funded_user("1").await;
    let other = app.token(Uuid::now_v7(), &[]);
    let missing = Uuid::now_v7();
    for target in [user, missing] {
        app.get(&format!("/api/v1/wallets/{target}"), &other)
            .await
            .assert_problem(403, "forbidden");
        app.get(
            &format!("/api/v1/wallets/{target}/holds/{}", Uuid::now_v7()),
            &other,
        )
        .await
        .assert_problem(403, "forbidden");
    }
    // Service may look, and learns that one does not exist.
    app.get(&format!("/api/v1/wallets/{missing}"), &app.service())
        .await
        .assert_problem(404, "wallet_not_found");
    // A forbidden caller does not get to see a validation error either.
    app.post_raw(
        &format!("/api/v1/wallets/{user}/deposit"),
        &other,
        "{not json",
    )
    .await
    .assert_problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn the_permission_is_checked_before_the_body_is_read() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("1").await;
    let other = app.token(Uuid::now_v7(), &[]);
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(70 * 1024));
    let deposit = format!("/api/v1/wallets/{user}/deposit");
    // A caller who may not deposit is refused without its body being read;
    // one who may is told the body is too large.
    app.post_raw(&deposit, &owner, &huge)
        .await
        .assert_problem(403, "forbidden");
    app.post_raw(&deposit, &app.service(), &huge)
        .await
        .assert_problem(413, "payload_too_large");
    // The ids of the path are read first: one that is not a UUID is 400
    // for every caller, since no wallet can be named by it.
    app.post_raw(
        &format!("/api/v1/wallets/{user}/holds/not-a-uuid/execute"),
        &other,
        "{}",
    )
    .await
    .assert_problem(400, "validation_error");
    // Creating a wallet names its user in the body, so the check follows
    // the body: malformed is 400, another user's wallet 403.
    app.post_raw("/api/v1/wallets", &other, "{")
        .await
        .assert_problem(400, "validation_error");
    app.post("/api/v1/wallets", &other, json!({"userId": Uuid::now_v7()}))
        .await
        .assert_problem(403, "forbidden");
    // Once the body names the user, the permission comes before the rest
    // of it: a bad currency for another user's wallet is still 403, and
    // 400 only for a caller who may create that wallet.
    let bad_currency = json!({"userId": Uuid::now_v7(), "defaultCurrency": "NOPE!"});
    app.post("/api/v1/wallets", &other, bad_currency.clone())
        .await
        .assert_problem(403, "forbidden");
    app.post("/api/v1/wallets", &app.service(), bad_currency)
        .await
        .assert_problem(400, "unsupported_currency");
    app.stop().await;
}
