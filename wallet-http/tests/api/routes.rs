//! The success path of every route, with the shapes of the HTTP contract.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{balance, TestApp};

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    names.sort();
    names
}

const WALLET_FIELDS: &[&str] = &[
    "id",
    "userId",
    "status",
    "defaultCurrency",
    "balances",
    "version",
    "createdAt",
    "updatedAt",
];
const TRANSACTION_FIELDS: &[&str] = &[
    "id",
    "walletId",
    "type",
    "currency",
    "amount",
    "heldChange",
    "balanceAfter",
    "heldAfter",
    "description",
    "reference",
    "holdId",
    "createdAt",
    "transferId",
    "counterpartyUserId",
    "reversesTransactionId",
    "reversedAmount",
];
const HOLD_FIELDS: &[&str] = &[
    "id",
    "walletId",
    "currency",
    "originalAmount",
    "remainingAmount",
    "executedAmount",
    "releasedAmount",
    "status",
    "referenceType",
    "referenceId",
    "description",
    "expiresAt",
    "createdAt",
    "updatedAt",
];
const ACCOUNT_FIELDS: &[&str] = &[
    "id",
    "userId",
    "totalPoints",
    "availablePoints",
    "pendingPoints",
    "lifetimeEarned",
    "version",
];
const POINT_TRANSACTION_FIELDS: &[&str] = &[
    "id",
    "accountId",
    "type",
    "points",
    "balanceAfter",
    "source",
    "description",
    "lotId",
    "expiresAt",
    "createdAt",
];

#[tokio::test]
async fn wallet_routes_answer_with_the_contract_shapes() {
    let app = TestApp::spawn().await;
    let user = Uuid::now_v7();
    let owner = app.token(user, &[]);
    let service = app.service();
    let base = format!("/api/v1/wallets/{user}");

    let created = app.post("/api/v1/wallets", &owner, json!({})).await;
    let wallet = created.assert_status(201);
    assert_eq!(keys(wallet), sorted(WALLET_FIELDS));
    assert_eq!(wallet["userId"], user.to_string());
    assert_eq!(wallet["status"], "Active");
    assert_eq!(wallet["defaultCurrency"], "VND");
    assert_eq!(wallet["balances"], json!([]));

    app.post("/api/v1/wallets", &owner, json!({}))
        .await
        .assert_problem(409, "wallet_exists");

    let deposit = app
        .post(&format!("{base}/deposit"), &service, json!({"amount": "100.50", "currency": "usd", "description": "salary", "reference": "ref-1"}))
        .await;
    let body = deposit.assert_status(200);
    assert_eq!(keys(body), sorted(&["wallet", "transaction"]));
    assert_eq!(keys(&body["transaction"]), sorted(TRANSACTION_FIELDS));
    assert_eq!(body["transaction"]["type"], "Deposit");
    assert_eq!(body["transaction"]["amount"], "100.50");
    assert_eq!(body["transaction"]["heldChange"], "0.00");
    assert_eq!(body["transaction"]["currency"], "USD");
    assert_eq!(body["transaction"]["reference"], "ref-1");
    assert_eq!(
        body["wallet"]["balances"],
        json!([{"currency": "USD", "balance": "100.50", "held": "0.00", "available": "100.50"}])
    );

    // A JSON number is read exactly: 10.01 stays 10.01.
    let withdraw = app
        .post(
            &format!("{base}/withdraw"),
            &owner,
            json!({"amount": 10.01, "currency": "USD"}),
        )
        .await;
    let body = withdraw.assert_status(200);
    assert_eq!(body["transaction"]["amount"], "-10.01");
    assert_eq!(balance(&body["wallet"], "USD"), "90.49");

    let exchange = app
        .post(
            &format!("{base}/exchange"),
            &owner,
            json!({"amount": "1", "fromCurrency": "USD", "toCurrency": "VND"}),
        )
        .await;
    let body = exchange.assert_status(200);
    assert_eq!(
        keys(body),
        sorted(&["wallet", "fromAmount", "toAmount", "rate", "transactions"])
    );
    assert_eq!(body["fromAmount"], "1.00");
    assert_eq!(body["toAmount"], "25000");
    assert_eq!(body["rate"], "25000");
    assert_eq!(body["transactions"][0]["type"], "ExchangeOut");
    assert_eq!(body["transactions"][1]["type"], "ExchangeIn");
    let currencies: Vec<&str> = body["wallet"]["balances"]
        .as_array()
        .expect("balances")
        .iter()
        .filter_map(|b| b["currency"].as_str())
        .collect();
    assert_eq!(
        currencies,
        vec!["USD", "VND"],
        "balances are ordered by code"
    );

    let got = app.get(&base, &owner).await;
    assert_eq!(balance(got.assert_status(200), "USD"), "89.49");
    assert_eq!(balance(&got.body, "VND"), "25000");

    // Transactions, newest first, walked page by page.
    let first = app
        .get(&format!("{base}/transactions?limit=2"), &owner)
        .await;
    let page = first.assert_status(200);
    assert_eq!(keys(page), sorted(&["items", "nextCursor"]));
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["items"][0]["type"], "ExchangeIn");
    let cursor = page["nextCursor"].as_str().expect("a next page").to_owned();
    let second = app
        .get(
            &format!("{base}/transactions?limit=2&cursor={cursor}"),
            &owner,
        )
        .await;
    let page = second.assert_status(200);
    let types: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["type"].as_str())
        .collect();
    assert_eq!(types, vec!["Withdraw", "Deposit"]);
    assert_eq!(page["nextCursor"], Value::Null);
    let filtered = app
        .get(
            &format!("{base}/transactions?currency=VND&type=ExchangeIn"),
            &owner,
        )
        .await;
    assert_eq!(
        filtered.assert_status(200)["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Holds.
    let reference_id = Uuid::now_v7();
    let hold = app
        .post(
            &format!("{base}/holds"),
            &owner,
            json!({"amount": "20", "currency": "USD", "referenceType": "Order", "referenceId": reference_id, "description": "order 7"}),
        )
        .await;
    let body = hold.assert_status(201);
    assert_eq!(keys(body), sorted(HOLD_FIELDS));
    assert_eq!(body["originalAmount"], "20.00");
    assert_eq!(body["status"], "Active");
    let hold_id = body["id"].as_str().expect("hold id").to_owned();
    let wallet = app.get(&base, &owner).await;
    let usd = &wallet.body["balances"][0];
    assert_eq!(
        (usd["held"].as_str(), usd["available"].as_str()),
        (Some("20.00"), Some("69.49"))
    );

    let list = app
        .get(&format!("{base}/holds?status=Active"), &owner)
        .await;
    assert_eq!(list.assert_status(200)["items"][0]["id"], hold_id.as_str());
    let one = app.get(&format!("{base}/holds/{hold_id}"), &owner).await;
    assert_eq!(
        one.assert_status(200)["referenceId"],
        reference_id.to_string()
    );

    let executed = app
        .post(
            &format!("{base}/holds/{hold_id}/execute"),
            &service,
            json!({"amount": "5", "reference": "capture-1"}),
        )
        .await;
    let body = executed.assert_status(200);
    assert_eq!(
        (
            body["executedAmount"].as_str(),
            body["remainingAmount"].as_str()
        ),
        (Some("5.00"), Some("15.00"))
    );
    let released = app
        .post(
            &format!("{base}/holds/{hold_id}/release"),
            &service,
            json!({"amount": 5}),
        )
        .await;
    assert_eq!(released.assert_status(200)["releasedAmount"], "5.00");
    let cancelled = app
        .send(
            reqwest::Method::POST,
            &format!("{base}/holds/{hold_id}/cancel"),
            Some(&service),
            &[],
            None,
        )
        .await;
    let body = cancelled.assert_status(200);
    assert_eq!(body["status"], "Cancelled");
    assert_eq!(body["remainingAmount"], "0.00");

    // A second hold executed in full with an empty body.
    let hold = app
        .post(&format!("{base}/holds"), &owner, json!({"amount": "3.50", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7()}))
        .await;
    let hold_id = hold.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let executed = app
        .send(
            reqwest::Method::POST,
            &format!("{base}/holds/{hold_id}/execute"),
            Some(&service),
            &[],
            None,
        )
        .await;
    assert_eq!(executed.assert_status(200)["status"], "Executed");
    let wallet = app.get(&base, &owner).await;
    assert_eq!(
        balance(&wallet.body, "USD"),
        "80.99",
        "100.50 - 10.01 - 1 - 5 - 3.50"
    );
    app.stop().await;
}

#[tokio::test]
async fn point_routes_answer_with_the_contract_shapes() {
    let app = TestApp::spawn().await;
    let user = Uuid::now_v7();
    let owner = app.token(user, &[]);
    let service = app.service();
    let base = format!("/api/v1/wallets/{user}/points");

    let created = app
        .send(reqwest::Method::POST, &base, Some(&owner), &[], None)
        .await;
    let account = created.assert_status(201);
    assert_eq!(keys(account), sorted(ACCOUNT_FIELDS));
    assert_eq!(account["totalPoints"], 0);
    app.post(&base, &owner, json!({}))
        .await
        .assert_problem(409, "point_account_exists");

    let earned = app
        .post(
            &format!("{base}/earn"),
            &service,
            json!({"points": 100, "source": "order-1", "description": "welcome"}),
        )
        .await;
    let body = earned.assert_status(200);
    assert_eq!(keys(body), sorted(&["account", "transaction", "lotId"]));
    assert_eq!(keys(&body["transaction"]), sorted(POINT_TRANSACTION_FIELDS));
    assert_eq!(body["transaction"]["type"], "Earn");
    assert_eq!(body["transaction"]["points"], 100);
    assert_eq!(body["account"]["availablePoints"], 100);

    let pending = app
        .post(
            &format!("{base}/earn"),
            &service,
            json!({"points": 40, "source": "order-2", "pending": true}),
        )
        .await;
    let body = pending.assert_status(200);
    assert_eq!(body["account"]["pendingPoints"], 40);
    let lot = body["lotId"].as_str().expect("lot id").to_owned();
    let confirmed = app
        .send(
            reqwest::Method::POST,
            &format!("{base}/lots/{lot}/confirm"),
            Some(&service),
            &[],
            None,
        )
        .await;
    let body = confirmed.assert_status(200);
    assert_eq!(body["transaction"]["type"], "PendingConfirmed");
    assert_eq!(body["account"]["availablePoints"], 140);

    let pending = app
        .post(
            &format!("{base}/earn"),
            &service,
            json!({"points": 7, "source": "order-3", "pending": true}),
        )
        .await;
    let lot = pending.body["lotId"].as_str().expect("lot id").to_owned();
    let cancelled = app
        .send(
            reqwest::Method::POST,
            &format!("{base}/lots/{lot}/cancel"),
            Some(&service),
            &[],
            None,
        )
        .await;
    let body = cancelled.assert_status(200);
    assert_eq!(body["transaction"]["type"], "PendingCancelled");
    assert_eq!(body["account"]["pendingPoints"], 0);

    let spent = app
        .post(
            &format!("{base}/spend"),
            &owner,
            json!({"points": 30, "source": "checkout"}),
        )
        .await;
    let body = spent.assert_status(200);
    assert_eq!(body["transaction"]["points"], -30);
    assert_eq!(body["account"]["availablePoints"], 110);

    let adjusted = app
        .post(
            &format!("{base}/adjust"),
            &app.admin(),
            json!({"points": -10, "source": "correction"}),
        )
        .await;
    assert_eq!(
        adjusted.assert_status(200)["account"]["availablePoints"],
        100
    );

    let got = app.get(&base, &owner).await;
    let body = got.assert_status(200);
    assert_eq!(
        (
            body["totalPoints"].as_i64(),
            body["lifetimeEarned"].as_i64()
        ),
        (Some(100), Some(140))
    );

    let history = app
        .get(&format!("{base}/transactions?limit=3"), &owner)
        .await;
    let page = history.assert_status(200);
    assert_eq!(page["items"][0]["type"], "Adjust");
    let cursor = page["nextCursor"].as_str().expect("more pages").to_owned();
    let rest = app
        .get(
            &format!("{base}/transactions?limit=50&cursor={cursor}"),
            &owner,
        )
        .await;
    let total = 3 + rest.assert_status(200)["items"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        total, 7,
        "earn, earn pending, confirm, earn pending, cancel, spend, adjust"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_answer_with_the_contract_shapes() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let (user, owner) = app.funded_user("12.00").await;
    let base = format!("/api/v1/wallets/{user}");

    let frozen = app
        .post(
            &format!("{base}/freeze"),
            &admin,
            json!({"reason": "review"}),
        )
        .await;
    assert_eq!(frozen.assert_status(200)["status"], "Frozen");
    app.post(
        &format!("{base}/withdraw"),
        &owner,
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "wallet_frozen");
    let unfrozen = app
        .send(
            reqwest::Method::POST,
            &format!("{base}/unfreeze"),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(unfrozen.assert_status(200)["status"], "Active");

    let listed = app
        .get("/api/v1/wallets?status=Active&limit=10", &admin)
        .await;
    let page = listed.assert_status(200);
    assert!(page["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|w| w["userId"] == user.to_string()));

    let statistics = app.get("/api/v1/wallets/statistics", &admin).await;
    let body = statistics.assert_status(200);
    assert_eq!(
        keys(body),
        sorted(&[
            "from",
            "to",
            "wallets",
            "currencies",
            "transactions",
            "points"
        ])
    );
    assert_eq!(
        keys(&body["wallets"]),
        sorted(&["Active", "Frozen", "Closed"])
    );
    assert_eq!(body["wallets"]["Active"], 1);
    assert_eq!(body["currencies"][0]["currency"], "USD");
    assert_eq!(body["currencies"][0]["balance"], "12.00");
    assert_eq!(body["transactions"][0]["type"], "Deposit");
    assert_eq!(body["transactions"][0]["volume"], "12.00");
    assert_eq!(
        keys(&body["points"]),
        sorted(&["available", "pending", "earned", "spent", "expired"])
    );
    let window = app
        .get(
            "/api/v1/wallets/statistics?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
            &admin,
        )
        .await;
    assert_eq!(window.assert_status(200)["transactions"], json!([]));

    let events = app.get("/api/v1/wallets/events?limit=2", &admin).await;
    let body = events.assert_status(200);
    assert_eq!(keys(body), sorted(&["items", "nextAfter"]));
    let event = &body["items"][0];
    assert_eq!(
        keys(event),
        sorted(&[
            "sequence",
            "id",
            "type",
            "aggregateId",
            "userId",
            "version",
            "occurredAt",
            "data"
        ])
    );
    assert_eq!(event["type"], "WalletCreated");
    let next_after = body["nextAfter"].as_u64().expect("nextAfter");
    assert_eq!(Some(next_after), body["items"][1]["sequence"].as_u64());
    let rest = app
        .get(
            &format!("/api/v1/wallets/events?after={next_after}"),
            &admin,
        )
        .await;
    let body = rest.assert_status(200);
    assert_eq!(body["items"][0]["type"], "WalletFrozen");
    assert_eq!(body["items"][1]["type"], "WalletUnfrozen");
    let last = body["nextAfter"].as_u64().expect("nextAfter");
    let none = app
        .get(&format!("/api/v1/wallets/events?after={last}"), &admin)
        .await;
    assert_eq!(
        none.assert_status(200),
        &json!({"items": [], "nextAfter": last})
    );

    app.delete(&base, &admin)
        .await
        .assert_problem(422, "wallet_not_empty");
    app.post(
        &format!("{base}/withdraw"),
        &owner,
        json!({"amount": "12", "currency": "USD"}),
    )
    .await
    .assert_status(200);
    let closed = app.delete(&base, &admin).await;
    assert_eq!(closed.assert_status(200)["status"], "Closed");
    let read = app.get(&base, &owner).await;
    assert_eq!(
        read.assert_status(200)["status"],
        "Closed",
        "a closed wallet can be read"
    );
    app.post("/api/v1/wallets", &owner, json!({}))
        .await
        .assert_problem(409, "wallet_exists");
    app.post(
        &format!("{base}/deposit"),
        &admin,
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "wallet_closed");
    app.stop().await;
}

#[tokio::test]
async fn create_wallet_for_another_user_and_with_a_default_currency() {
    let app = TestApp::spawn().await;
    let user = Uuid::now_v7();
    let created = app
        .post(
            "/api/v1/wallets",
            &app.service(),
            json!({"userId": user, "defaultCurrency": "ppoint"}),
        )
        .await;
    let body = created.assert_status(201);
    assert_eq!(body["userId"], user.to_string());
    assert_eq!(body["defaultCurrency"], "PPOINT");
    app.stop().await;
}

#[tokio::test]
async fn overdue_holds_are_expired_by_the_background_sweep() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let hold = app
        .post(
            &format!("/api/v1/wallets/{user}/holds"),
            &owner,
            json!({"amount": "4", "currency": "USD", "referenceType": "Order", "referenceId": Uuid::now_v7(), "expiresAt": expires_at}),
        )
        .await;
    let hold_id = hold.assert_status(201)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/wallets/{user}/holds/{hold_id}");
    let expired = crate::helpers::eventually(std::time::Duration::from_secs(10), || async {
        app.get(&path, &owner).await.body["status"] == "Expired"
    })
    .await;
    assert!(expired, "the sweep expires the hold without any command");
    let wallet = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    assert_eq!(wallet.body["balances"][0]["held"], "0.00");
    app.stop().await;
}
