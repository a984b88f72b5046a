//! Bearer tokens: every way a token can be wrong is 401, and key rotation
//! at the identity provider is picked up without hammering it.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::json;
use uuid::Uuid;
use wallet_core::InMemoryStore;

use crate::helpers::{
    fast_background, Claims, Idp, TestApp, EC_A_PEM, RSA_A_PEM, RSA_A_PUBLIC_PEM, RSA_B_PEM,
};

/// A request that a valid token for `user` passes (the wallet does not
/// exist, so it ends in 404 after authentication and authorisation).
async fn probe(app: &TestApp, user: Uuid, token: Option<&str>) -> crate::helpers::Reply {
    app.send(
        reqwest::Method::GET,
        &format!("/api/v1/wallets/{user}"),
        token,
        &[],
        None,
    )
    .await
}

async fn app_on_memory() -> TestApp {
    let idp = Idp::start().await;
    TestApp::spawn_with(
        InMemoryStore::new(),
        idp,
        Some(crate::helpers::AUDIENCE.to_owned()),
        fast_background(),
    )
    .await
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_are_accepted() {
    let app = TestApp::spawn().await;
    let user = Uuid::now_v7();
    let claims = Claims::new(&app.idp, user, &[]);
    probe(&app, user, Some(&claims.sign()))
        .await
        .assert_problem(404, "wallet_not_found");
    let es256 = claims.sign_with(Algorithm::ES256, "ec-a", EC_A_PEM);
    probe(&app, user, Some(&es256))
        .await
        .assert_problem(404, "wallet_not_found");
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = app_on_memory().await;
    let user = Uuid::now_v7();
    let good = Claims::new(&app.idp, user, &[]);

    let missing = probe(&app, user, None).await;
    missing.assert_problem(401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    let basic = app
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/wallets/{user}"),
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    basic.assert_problem(401, "unauthorized");
    probe(&app, user, Some("not.a.token"))
        .await
        .assert_problem(401, "unauthorized");
    probe(&app, user, Some("garbage"))
        .await
        .assert_problem(401, "unauthorized");

    let mut expired = good.clone();
    expired.exp = chrono::Utc::now().timestamp() - 600;
    let reply = probe(&app, user, Some(&expired.sign())).await;
    reply.assert_problem(401, "unauthorized");
    assert!(reply.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("expired"));

    let mut early = good.clone();
    early.nbf = chrono::Utc::now().timestamp() + 600;
    let reply = probe(&app, user, Some(&early.sign())).await;
    reply.assert_problem(401, "unauthorized");
    assert!(reply.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("not yet valid"));

    let mut issuer = good.clone();
    issuer.iss = "https://someone-else.example".into();
    probe(&app, user, Some(&issuer.sign()))
        .await
        .assert_problem(401, "unauthorized");

    let mut audience = good.clone();
    audience.aud = Some("another-api".into());
    probe(&app, user, Some(&audience.sign()))
        .await
        .assert_problem(401, "unauthorized");
    let mut no_audience = good.clone();
    no_audience.aud = None;
    probe(&app, user, Some(&no_audience.sign()))
        .await
        .assert_problem(401, "unauthorized");

    // Signed with another key, but naming the served one.
    let forged = good.sign_with(Algorithm::RS256, "rsa-a", RSA_B_PEM);
    let reply = probe(&app, user, Some(&forged)).await;
    reply.assert_problem(401, "unauthorized");
    assert!(reply.body["detail"]
        .as_str()
        .unwrap_or("")
        .contains("signature"));

    // A valid signature with one byte of the payload changed.
    let token = good.sign();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).expect("payload");
    let roles_at = String::from_utf8_lossy(&payload)
        .find("roles")
        .expect("roles claim");
    payload[roles_at] = b'R';
    parts[1] = URL_SAFE_NO_PAD.encode(&payload);
    probe(&app, user, Some(&parts.join(".")))
        .await
        .assert_problem(401, "unauthorized");

    // alg none, with and without a signature.
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": "rsa-a"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(good.json().to_string());
    probe(&app, user, Some(&format!("{header}.{payload}.")))
        .await
        .assert_problem(401, "unauthorized");
    probe(&app, user, Some(&format!("{header}.{payload}.c2ln")))
        .await
        .assert_problem(401, "unauthorized");

    // HS256 with the public key as the shared secret.
    let confused = good.sign_with(Algorithm::HS256, "rsa-a", RSA_A_PUBLIC_PEM);
    probe(&app, user, Some(&confused))
        .await
        .assert_problem(401, "unauthorized");

    // ES256 header on the RSA key's id: algorithm and key type disagree.
    let mismatched = good.sign_with(Algorithm::ES256, "rsa-a", EC_A_PEM);
    probe(&app, user, Some(&mismatched))
        .await
        .assert_problem(401, "unauthorized");
    // RS384 is not accepted even with a served RSA key.
    let rs384 = good.sign_with(Algorithm::RS384, "rsa-a", RSA_A_PEM);
    probe(&app, user, Some(&rs384))
        .await
        .assert_problem(401, "unauthorized");

    let mut not_uuid = good.clone();
    not_uuid.sub = "alice".into();
    let reply = probe(&app, user, Some(&not_uuid.sign())).await;
    reply.assert_problem(401, "unauthorized");
    assert!(reply.body["detail"].as_str().unwrap_or("").contains("UUID"));

    // And the good token still works after all that.
    probe(&app, user, Some(&good.sign()))
        .await
        .assert_problem(404, "wallet_not_found");
    app.stop().await;
}

#[tokio::test]
async fn roles_come_from_roles_or_role_and_are_case_sensitive() {
    let app = app_on_memory().await;
    let admin_route = "/api/v1/wallets/statistics";
    let get = |token: String| {
        let app = &app;
        async move {
            app.send(reqwest::Method::GET, admin_route, Some(&token), &[], None)
                .await
        }
    };
    let caller = Uuid::now_v7();
    let mut claims = Claims::new(&app.idp, caller, &["Admin"]);
    get(claims.sign()).await.assert_status(200);
    claims.roles = json!(["SuperAdmin"]);
    get(claims.sign()).await.assert_status(200);
    claims.roles = json!(["admin"]);
    get(claims.sign()).await.assert_problem(403, "forbidden");

    let mut single = claims.json();
    single.as_object_mut().expect("claims").remove("roles");
    single["role"] = json!("Admin");
    let sign = |value: serde_json::Value| {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("rsa-a".into());
        jsonwebtoken::encode(
            &header,
            &value,
            &jsonwebtoken::EncodingKey::from_rsa_pem(RSA_A_PEM).expect("key"),
        )
        .expect("token")
    };
    get(sign(single.clone())).await.assert_status(200);
    single["role"] = json!(["Service", "Admin"]);
    get(sign(single.clone())).await.assert_status(200);
    single["role"] = json!("Service");
    get(sign(single)).await.assert_problem(403, "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn unknown_keys_are_reread_at_most_every_five_seconds_and_rotation_is_picked_up() {
    let app = app_on_memory().await;
    let user = Uuid::now_v7();
    let claims = Claims::new(&app.idp, user, &[]);
    probe(&app, user, Some(&claims.sign()))
        .await
        .assert_problem(404, "wallet_not_found");
    let reads_before = app.idp.reads();
    assert!(reads_before >= 1);

    // A token signed with the next key, before the provider serves it.
    let next = claims.sign_with(Algorithm::RS256, "rsa-b", RSA_B_PEM);
    for _ in 0..5 {
        probe(&app, user, Some(&next))
            .await
            .assert_problem(401, "unauthorized");
    }
    let reads_after_unknown = app.idp.reads();
    assert!(
        reads_after_unknown <= reads_before + 1,
        "unknown kids within 5 s cause at most one read ({reads_before} -> {reads_after_unknown})"
    );

    app.idp.rotate();
    // Within the interval the new key is not fetched yet...
    let accepted = crate::helpers::eventually(Duration::from_secs(12), || async {
        probe(&app, user, Some(&next)).await.status == 404
    })
    .await;
    assert!(
        accepted,
        "the rotated key is picked up once the interval has passed"
    );
    assert!(
        app.idp.reads() <= reads_after_unknown + 3,
        "polling for 5 s reads the key set only about once per 5 s, not per request"
    );
    // ...and the retired key is refused from then on.
    probe(&app, user, Some(&claims.sign()))
        .await
        .assert_problem(401, "unauthorized");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_identity_provider_is_503_not_401() {
    let idp = Idp::start().await;
    let mut claims = Claims::new(&idp, Uuid::now_v7(), &[]);
    // A provider address where nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let dead_url = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    let verifier = wallet_http::JwtVerifier::discover(&dead_url, None).expect("verifier");
    let state = wallet_http::application(
        InMemoryStore::new(),
        wallet_core::Policy::default(),
        std::sync::Arc::new(verifier),
        Duration::from_secs(30),
    )
    .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(wallet_http::serve(
        listener,
        state,
        fast_background(),
        std::future::pending(),
    ));
    claims.iss = dead_url;
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/wallets/{}", claims.sub))
        .bearer_auth(claims.sign())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    server.abort();
}
