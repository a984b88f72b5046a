//! A stand-in OpenID provider for the tests that run the service: discovery
//! and a JWK set it can change, and signed test tokens (the keys are the
//! fixtures under `tests/fixtures`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const RSA_A_PEM: &[u8] = include_bytes!("../fixtures/rsa-a.pem");
pub const RSA_B_PEM: &[u8] = include_bytes!("../fixtures/rsa-b.pem");
pub const RSA_A_PUBLIC_PEM: &[u8] = include_bytes!("../fixtures/rsa-a.pub.pem");
pub const EC_A_PEM: &[u8] = include_bytes!("../fixtures/ec-a.pem");
const JWKS: &str = include_str!("../fixtures/jwks.json");

/// A stand-in OpenID provider: discovery and a JWK set it can change.
pub struct Idp {
    pub url: String,
    keys: Mutex<Vec<Value>>,
    /// How many times the key set was read.
    pub jwks_reads: AtomicUsize,
    _server: JoinHandle<()>,
}

fn fixture_key(kid: &str) -> Value {
    let all: Value = serde_json::from_str(JWKS).expect("fixtures/jwks.json is JSON");
    all[kid].clone()
}

impl Idp {
    /// Serves `rsa-a` and `ec-a`.
    pub async fn start() -> Arc<Idp> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the identity provider");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let idp = Arc::new_cyclic(|weak: &std::sync::Weak<Idp>| {
            let weak = weak.clone();
            let router = Router::new()
                .route(
                    "/.well-known/openid-configuration",
                    get(|State(idp): State<std::sync::Weak<Idp>>| async move {
                        let url = idp.upgrade().map(|i| i.url.clone()).unwrap_or_default();
                        Json(json!({ "issuer": url, "jwks_uri": format!("{url}/jwks") }))
                    }),
                )
                .route(
                    "/jwks",
                    get(|State(idp): State<std::sync::Weak<Idp>>| async move {
                        let keys = match idp.upgrade() {
                            Some(idp) => {
                                idp.jwks_reads.fetch_add(1, Ordering::SeqCst);
                                idp.keys.lock().expect("keys lock").clone()
                            }
                            None => Vec::new(),
                        };
                        Json(json!({ "keys": keys }))
                    }),
                )
                .with_state(weak);
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            Idp {
                url: url.clone(),
                keys: Mutex::new(vec![fixture_key("rsa-a"), fixture_key("ec-a")]),
                jwks_reads: AtomicUsize::new(0),
                _server: server,
            }
        });
        idp
    }

    /// Rotates the RSA key: serves `rsa-b` (and `ec-a`) from now on.
    pub fn rotate(&self) {
        *self.keys.lock().expect("keys lock") = vec![fixture_key("rsa-b"), fixture_key("ec-a")];
    }

    pub fn reads(&self) -> usize {
        self.jwks_reads.load(Ordering::SeqCst)
    }
}

/// The claims of a test token; change fields to break it on purpose.
#[derive(Debug, Clone)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Option<String>,
    pub exp: i64,
    pub nbf: i64,
    pub roles: Value,
}

impl Claims {
    pub fn new(idp: &Idp, sub: Uuid, roles: &[&str]) -> Self {
        let now = Utc::now().timestamp();
        Claims {
            iss: idp.url.clone(),
            sub: sub.to_string(),
            aud: Some(AUDIENCE.to_owned()),
            exp: now + 600,
            nbf: now - 10,
            roles: json!(roles),
        }
    }

    pub fn json(&self) -> Value {
        let mut claims = json!({
            "iss": self.iss, "sub": self.sub, "exp": self.exp, "nbf": self.nbf,
            "iat": self.nbf, "roles": self.roles,
        });
        if let Some(aud) = &self.aud {
            claims["aud"] = json!(aud);
        }
        claims
    }

    /// Signed RS256 with `rsa-a`.
    pub fn sign(&self) -> String {
        self.sign_with(Algorithm::RS256, "rsa-a", RSA_A_PEM)
    }

    pub fn sign_with(&self, algorithm: Algorithm, kid: &str, pem: &[u8]) -> String {
        let key = match algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem).expect("EC fixture"),
            Algorithm::HS256 => EncodingKey::from_secret(pem),
            _ => EncodingKey::from_rsa_pem(pem).expect("RSA fixture"),
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        encode(&header, &self.json(), &key).expect("sign a test token")
    }
}

/// The audience the test service requires.
pub const AUDIENCE: &str = "wallet-api";
