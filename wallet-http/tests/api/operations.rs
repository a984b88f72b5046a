//! Health, metrics, request ids, the reference page, unknown routes, and
//! the errors only a failing store produces.

use std::collections::BTreeSet;

use serde_json::json;
use uuid::Uuid;
use wallet_core::WalletError;

use crate::helpers::{fast_background, FlakyStore, Idp, TestApp, AUDIENCE};

#[tokio::test]
async fn health_routes_answer_without_a_token() {
    let app = TestApp::spawn().await;
    let live = app
        .send(reqwest::Method::GET, "/health/live", None, &[], None)
        .await;
    assert_eq!(live.assert_status(200), &json!({"status": "Healthy"}));
    let ready = app
        .send(reqwest::Method::GET, "/health/ready", None, &[], None)
        .await;
    assert_eq!(ready.assert_status(200)["status"], "Healthy");
    let health = app
        .send(reqwest::Method::GET, "/health", None, &[], None)
        .await;
    let body = health.assert_status(200);
    assert_eq!(body["status"], "Healthy");
    assert_eq!(body["checks"]["store"]["status"], "Healthy");
    assert!(
        body["checks"].get("replica").is_none(),
        "no replica, no replica check: {body}"
    );
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    app.stop().await;
}

#[tokio::test]
async fn a_failing_store_is_503_with_retry_after_and_never_leaks_its_error() {
    let store = FlakyStore::default();
    let app = TestApp::spawn_with(
        store.clone(),
        Idp::start().await,
        Some(AUDIENCE.into()),
        fast_background(),
    )
    .await;
    let (user, owner) = app.funded_user("5").await;
    store.fail_with(Some(WalletError::Unavailable(
        "connection refused to postgres://secret@db".into(),
    )));

    let ready = app
        .send(reqwest::Method::GET, "/health/ready", None, &[], None)
        .await;
    assert_eq!(ready.assert_status(503)["status"], "Unhealthy");
    let health = app
        .send(reqwest::Method::GET, "/health", None, &[], None)
        .await;
    let body = health.assert_status(503);
    assert_eq!(body["status"], "Unhealthy");
    assert_eq!(body["checks"]["store"]["status"], "Unhealthy");
    assert_eq!(
        app.send(reqwest::Method::GET, "/health/live", None, &[], None)
            .await
            .status,
        200
    );

    let read = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    read.assert_problem(503, "unavailable");
    assert!(read.header("retry-after").is_some());
    assert!(!read.text.contains("secret"));
    let write = app
        .post(
            &format!("/api/v1/wallets/{user}/withdraw"),
            &owner,
            json!({"amount": "1", "currency": "USD"}),
        )
        .await;
    write.assert_problem(503, "unavailable");

    // Conflicts that outlast the retries, and a key still in flight.
    store.fail_with(Some(WalletError::ConcurrencyConflict));
    app.post(
        &format!("/api/v1/wallets/{user}/withdraw"),
        &owner,
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(409, "concurrency_conflict");
    store.fail_with(Some(WalletError::IdempotencyKeyInFlight));
    app.post_keyed(
        &format!("/api/v1/wallets/{user}/withdraw"),
        &owner,
        "k",
        json!({"amount": "1", "currency": "USD"}),
    )
    .await
    .assert_problem(409, "idempotency_key_in_flight");

    // An internal fault is a generic 500: logged, not returned.
    store.fail_with(Some(WalletError::Internal(
        "SELECT * FROM wallets broke".into(),
    )));
    let fault = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    fault.assert_problem(500, "internal_error");
    assert!(!fault.text.contains("SELECT"));

    store.fail_with(None);
    app.get(&format!("/api/v1/wallets/{user}"), &owner)
        .await
        .assert_status(200);
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = TestApp::spawn().await;
    let echoed = app
        .send(
            reqwest::Method::GET,
            "/health/live",
            None,
            &[("x-request-id", "trace-abc-123")],
            None,
        )
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-abc-123"));
    let made = app
        .send(reqwest::Method::GET, "/health/live", None, &[], None)
        .await;
    let id = made.header("x-request-id").expect("an id");
    assert!(Uuid::try_parse(id).is_ok(), "a new UUID: {id}");
    // A hostile id is replaced, not echoed.
    let hostile = app
        .send(
            reqwest::Method::GET,
            "/health/live",
            None,
            &[("x-request-id", "a b<script>")],
            None,
        )
        .await;
    assert_ne!(hostile.header("x-request-id"), Some("a b<script>"));
    let missing = app
        .send(
            reqwest::Method::GET,
            "/nowhere",
            None,
            &[("x-request-id", "r-404")],
            None,
        )
        .await;
    assert_eq!(missing.header("x-request-id"), Some("r-404"));
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problem_documents() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    for path in [
        "/nowhere",
        "/api/v1",
        "/api/v2/wallets",
        "/api/v1/wallets/x/y/z/w",
    ] {
        app.get(path, &admin).await.assert_problem(404, "not_found");
    }
    let wrong = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/wallets",
            Some(&admin),
            &[],
            None,
        )
        .await;
    wrong.assert_problem(405, "method_not_allowed");
    assert!(wrong.header("allow").is_some());
    let wrong = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/wallets/{}", Uuid::now_v7()),
            Some(&admin),
            &[],
            None,
        )
        .await;
    wrong.assert_problem(405, "method_not_allowed");
    app.stop().await;
}

/// The value of an unlabelled sample in a Prometheus text document.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_report_the_batching_writer_and_its_counts_move() {
    let store = wallet_pg::testing::fresh_batched_store().await;
    let app = TestApp::spawn_with(
        store,
        Idp::start().await,
        Some(AUDIENCE.to_owned()),
        fast_background(),
    )
    .await;
    let read = || async {
        app.send(reqwest::Method::GET, "/metrics", None, &[], None)
            .await
            .text
    };
    let before = read().await;
    for name in [
        "wallet_batch_size_count",
        "wallet_batch_stale_total",
        "wallet_batch_fallback_total",
    ] {
        assert!(sample(&before, name).is_some(), "no {name} in:\n{before}");
    }
    assert!(
        before.contains("# TYPE wallet_batch_size histogram"),
        "{before}"
    );
    // The funding deposit is one batch at least.
    let _ = app.funded_user("10").await;
    let after = read().await;
    let batches = |text: &str| sample(text, "wallet_batch_size_count").unwrap_or(0);
    assert!(
        batches(&after) > batches(&before),
        "before:\n{before}\nafter:\n{after}"
    );
    assert_eq!(
        sample(&after, "wallet_batch_size_bucket{le=\"+Inf\"}"),
        Some(batches(&after))
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_transactions_and_errors() {
    let app = TestApp::spawn().await;
    let (user, owner) = app.funded_user("10").await;
    app.post(
        &format!("/api/v1/wallets/{user}/withdraw"),
        &owner,
        json!({"amount": "100", "currency": "USD"}),
    )
    .await
    .assert_problem(422, "insufficient_funds");
    // A made-up method must not become a label value of its own.
    let odd = reqwest::Method::from_bytes(b"XYZZY").expect("a method");
    app.send(odd, "/health", None, &[], None).await;
    let metrics = app
        .send(reqwest::Method::GET, "/metrics", None, &[], None)
        .await;
    assert!(!metrics.text.contains("XYZZY"), "{}", metrics.text);
    assert!(
        metrics.text.contains("method=\"OTHER\""),
        "{}",
        metrics.text
    );
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let text = metrics.text;
    for needle in [
        "http_requests_total{method=\"POST\",route=\"/api/v1/wallets/{userId}/deposit\",status=\"200\"} 1",
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/wallets\",status=\"201\"",
        "wallet_transactions_total{currency=\"USD\",type=\"Deposit\"} 1",
        "wallet_errors_total{code=\"insufficient_funds\"} 1",
        // Three command requests were read and executed; the refused one
        // was not answered with a result.
        "wallet_http_stage_seconds_count{stage=\"read\"} 3",
        "wallet_http_stage_seconds_count{stage=\"execute\"} 3",
        "wallet_http_stage_seconds_count{stage=\"answer\"} 2",
    ] {
        assert!(text.contains(needle), "metrics lack `{needle}`:\n{text}");
    }
    app.stop().await;
}

/// The addresses a page's `src` and `href` attributes name.
fn page_references(html: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| html.split(attribute).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_reference_page_works_offline() {
    let app = TestApp::spawn().await;
    let page = app
        .send(reqwest::Method::GET, "/docs", None, &[], None)
        .await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(!page.text.contains("https://"), "no outside resources");
    // Swagger UI: every file the page loads is served by the service itself,
    // under the page's base address.
    assert!(
        page.text.contains("<base href=\"/docs/\">"),
        "{}",
        page.text
    );
    let files = page_references(&page.text);
    let files: Vec<&String> = files.iter().filter(|f| !f.starts_with("/docs/")).collect();
    assert!(
        files.iter().any(|f| f.ends_with("swagger-ui-bundle.js")),
        "{files:?}"
    );
    for file in files {
        assert!(
            !file.contains("//") && !file.starts_with('/'),
            "{file} is not one of the page's own files"
        );
        let name = file.trim_start_matches("./");
        let reply = app
            .send(
                reqwest::Method::GET,
                &format!("/docs/{name}"),
                None,
                &[],
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{name}");
        assert!(!reply.text.is_empty(), "{name}");
    }
    // The page reads this service's document and keeps the token a reader
    // pastes into "Authorize".
    let initializer = app
        .send(
            reqwest::Method::GET,
            "/docs/swagger-initializer.js",
            None,
            &[],
            None,
        )
        .await;
    assert!(initializer.text.contains("openapi.json"));
    assert!(initializer.text.contains("\"persistAuthorization\": true"));
    app.stop().await;
}

/// Every route of the HTTP contract, as `METHOD path`.
const CONTRACT: &[&str] = &[
    "POST /api/v1/wallets",
    "GET /api/v1/wallets",
    "GET /api/v1/wallets/statistics",
    "GET /api/v1/wallets/events",
    "GET /api/v1/wallets/{userId}",
    "DELETE /api/v1/wallets/{userId}",
    "POST /api/v1/wallets/{userId}/deposit",
    "POST /api/v1/wallets/{userId}/withdraw",
    "POST /api/v1/wallets/{userId}/exchange",
    "POST /api/v1/wallets/{userId}/transfers",
    "GET /api/v1/wallets/{userId}/transactions/{transactionId}",
    "POST /api/v1/wallets/{userId}/transactions/{transactionId}/reverse",
    "GET /api/v1/wallets/{userId}/balances",
    "GET /api/v1/wallets/{userId}/transactions",
    "POST /api/v1/wallets/{userId}/holds",
    "GET /api/v1/wallets/{userId}/holds",
    "GET /api/v1/wallets/{userId}/holds/{holdId}",
    "POST /api/v1/wallets/{userId}/holds/{holdId}/execute",
    "POST /api/v1/wallets/{userId}/holds/{holdId}/release",
    "POST /api/v1/wallets/{userId}/holds/{holdId}/cancel",
    "POST /api/v1/wallets/{userId}/freeze",
    "POST /api/v1/wallets/{userId}/unfreeze",
    "POST /api/v1/wallets/{userId}/points",
    "GET /api/v1/wallets/{userId}/points",
    "POST /api/v1/wallets/{userId}/points/earn",
    "POST /api/v1/wallets/{userId}/points/spend",
    "POST /api/v1/wallets/{userId}/points/adjust",
    "POST /api/v1/wallets/{userId}/points/lots/{lotId}/confirm",
    "POST /api/v1/wallets/{userId}/points/lots/{lotId}/cancel",
    "GET /api/v1/wallets/{userId}/points/transactions",
    "GET /health/live",
    "GET /health/ready",
    "GET /health",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let app = TestApp::spawn().await;
    let document = app
        .send(reqwest::Method::GET, "/openapi.json", None, &[], None)
        .await;
    let document = document.assert_status(200).clone();
    assert!(document["openapi"].as_str().unwrap_or("").starts_with("3."));

    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let table: BTreeSet<String> = wallet_http::routes::table::<wallet_core::InMemoryStore>()
        .iter()
        .map(|route| format!("{} {}", route.spec.method, route.spec.path))
        .collect();
    let contract: BTreeSet<String> = CONTRACT.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(documented, table, "the document is the route table");
    assert_eq!(documented, contract, "the route table is the HTTP contract");

    // Each documented route is served (an API route asks for a token; an
    // operations route answers), and each other method of its path is 405.
    let all_methods = [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PUT,
    ];
    let paths: BTreeSet<&str> = CONTRACT
        .iter()
        .filter_map(|s| s.split_once(' ').map(|(_, p)| p))
        .collect();
    for path in paths {
        let concrete = path
            .replace("{userId}", &Uuid::now_v7().to_string())
            .replace("{holdId}", &Uuid::now_v7().to_string())
            .replace("{lotId}", &Uuid::now_v7().to_string());
        for method in &all_methods {
            let reply = app.send(method.clone(), &concrete, None, &[], None).await;
            let key = format!("{method} {path}");
            if documented.contains(&key) {
                if path.starts_with("/api/") {
                    reply.assert_problem(401, "unauthorized");
                } else {
                    assert_eq!(reply.status, 200, "{key}: {}", reply.text);
                }
            } else {
                reply.assert_problem(405, "method_not_allowed");
            }
        }
    }

    // Parameters carry the contract's names, operations their schemas.
    let execute = &document["paths"]["/api/v1/wallets/{userId}/holds/{holdId}/execute"]["post"];
    let names: Vec<&str> = execute["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.starts_with(&["userId", "holdId"]), "{names:?}");
    assert!(names.contains(&"Idempotency-Key"));
    assert_eq!(
        execute["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Hold"
    );
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in [
        "Wallet",
        "Transaction",
        "Hold",
        "PointAccount",
        "PointTransaction",
        "Problem",
        "Statistics",
        "Event",
        "MoneyRequest",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let wallet_fields: BTreeSet<&String> = schemas["Wallet"]["properties"]
        .as_object()
        .expect("props")
        .keys()
        .collect();
    assert!(wallet_fields.contains(&"defaultCurrency".to_owned()));
    app.stop().await;
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_503() {
    let store = FlakyStore::default();
    let app = TestApp::spawn_with_timeout(
        store.clone(),
        Idp::start().await,
        Some(AUDIENCE.into()),
        fast_background(),
        std::time::Duration::from_secs(1),
    )
    .await;
    let (user, owner) = app.funded_user("1").await;
    store.delay_reads(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let slow = app.get(&format!("/api/v1/wallets/{user}"), &owner).await;
    slow.assert_problem(503, "unavailable");
    assert!(slow.header("retry-after").is_some());
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "answered at the timeout"
    );
    store.delay_reads(std::time::Duration::ZERO);
    app.get(&format!("/api/v1/wallets/{user}"), &owner)
        .await
        .assert_status(200);
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let store = FlakyStore::default();
    let app = TestApp::spawn_with(
        store.clone(),
        Idp::start().await,
        Some(AUDIENCE.into()),
        fast_background(),
    )
    .await;
    let (user, owner) = app.funded_user("1").await;
    store.delay_reads(std::time::Duration::from_millis(1500));
    let request = app
        .client
        .get(format!("{}/api/v1/wallets/{user}", app.url))
        .bearer_auth(&owner)
        .send();
    let in_flight = tokio::spawn(request);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let url = app.url.clone();
    app.stop().await;
    let response = in_flight.await.expect("the task").expect("an answer");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the request in flight was answered"
    );
    assert!(
        reqwest::get(format!("{url}/health/live")).await.is_err(),
        "no new connections after shutdown"
    );
}
