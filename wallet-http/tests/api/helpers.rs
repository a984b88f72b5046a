//! Spawning the service on 127.0.0.1:0 against a fresh PostgreSQL database
//! (or a store that can be made to fail), with a stand-in identity provider
//! that serves discovery and a key set and can rotate its keys.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;
use wallet_core::{
    Aggregate, AggregateStore, Applied, Create, HoldStatus, InMemoryStore, LedgerReader, Page,
    PageRequest, PointAccountView, PointTransaction, Policy, SetUpdate, StoredEvent,
    TransactionFilter, Update, WalletError, WalletStatus, WalletStore, WalletTransaction,
    WalletView,
};
use wallet_core::{Hold, IdempotencyStore, Statistics};
use wallet_core::{LeaseOutcome, PositionUpdate, RelayName, RelayState, RelayStore};
use wallet_http::{Backend, BackgroundOptions, JwtVerifier};

pub use crate::idp::{Claims, Idp, AUDIENCE, EC_A_PEM, RSA_A_PEM, RSA_A_PUBLIC_PEM, RSA_B_PEM};

// ---- a store that can be made to fail -------------------------------------------

/// The in-memory store, with a switch that makes every call fail.
#[derive(Default, Clone)]
pub struct FlakyStore {
    inner: Arc<InMemoryStore>,
    failure: Arc<Mutex<Option<WalletError>>>,
    /// How long a wallet read takes.
    read_delay: Arc<Mutex<Duration>>,
}

impl FlakyStore {
    pub fn fail_with(&self, error: Option<WalletError>) {
        *self.failure.lock().expect("failure lock") = error;
    }

    pub fn delay_reads(&self, delay: Duration) {
        *self.read_delay.lock().expect("delay lock") = delay;
    }

    fn check(&self) -> Result<(), WalletError> {
        match self.failure.lock().expect("failure lock").clone() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl<A: Aggregate> AggregateStore<A> for FlakyStore
where
    InMemoryStore: AggregateStore<A>,
{
    async fn create(&self, unit: Create<A>) -> Result<Applied, WalletError> {
        self.check()?;
        self.inner.create(unit).await
    }
    async fn update(&self, unit: Update<A>) -> Result<Applied, WalletError> {
        self.check()?;
        self.inner.update(unit).await
    }
    async fn users_with_overdue(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>, WalletError> {
        self.check()?;
        AggregateStore::<A>::users_with_overdue(&*self.inner, now, limit).await
    }
}

impl WalletStore for FlakyStore {
    async fn update_wallets(&self, unit: SetUpdate) -> Result<Applied, WalletError> {
        self.check()?;
        self.inner.update_wallets(unit).await
    }
    async fn transaction_legs(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Vec<WalletTransaction>, WalletError> {
        self.check()?;
        self.inner.transaction_legs(user_id, transaction_id).await
    }
}

impl LedgerReader for FlakyStore {
    async fn wallet(&self, user_id: Uuid) -> Result<Option<WalletView>, WalletError> {
        let delay = *self.read_delay.lock().expect("delay lock");
        tokio::time::sleep(delay).await;
        self.check()?;
        self.inner.wallet(user_id).await
    }
    async fn transactions(
        &self,
        user_id: Uuid,
        filter: TransactionFilter,
        page: PageRequest,
    ) -> Result<Page<WalletTransaction>, WalletError> {
        self.check()?;
        self.inner.transactions(user_id, filter, page).await
    }
    async fn holds(
        &self,
        user_id: Uuid,
        status: Option<HoldStatus>,
        page: PageRequest,
    ) -> Result<Page<Hold>, WalletError> {
        self.check()?;
        self.inner.holds(user_id, status, page).await
    }
    async fn hold(&self, user_id: Uuid, hold_id: Uuid) -> Result<Option<Hold>, WalletError> {
        self.check()?;
        self.inner.hold(user_id, hold_id).await
    }
    async fn transaction(
        &self,
        user_id: Uuid,
        transaction_id: Uuid,
    ) -> Result<Option<WalletTransaction>, WalletError> {
        self.check()?;
        self.inner.transaction(user_id, transaction_id).await
    }
    async fn balances_at(
        &self,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<Vec<wallet_core::WalletItem>, WalletError> {
        self.check()?;
        self.inner.balances_at(user_id, at).await
    }
    async fn point_account(&self, user_id: Uuid) -> Result<Option<PointAccountView>, WalletError> {
        self.check()?;
        self.inner.point_account(user_id).await
    }
    async fn point_transactions(
        &self,
        user_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<PointTransaction>, WalletError> {
        self.check()?;
        self.inner.point_transactions(user_id, page).await
    }
    async fn wallets(
        &self,
        status: Option<WalletStatus>,
        page: PageRequest,
    ) -> Result<Page<WalletView>, WalletError> {
        self.check()?;
        self.inner.wallets(status, page).await
    }
    async fn statistics(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Statistics, WalletError> {
        self.check()?;
        self.inner.statistics(from, to).await
    }
    async fn events(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, WalletError> {
        self.check()?;
        self.inner.events(after, limit).await
    }
    async fn ping(&self) -> Result<(), WalletError> {
        self.check()?;
        self.inner.ping().await
    }
}

impl IdempotencyStore for FlakyStore {
    async fn purge_idempotency_records(
        &self,
        older_than: DateTime<Utc>,
    ) -> Result<u64, WalletError> {
        self.check()?;
        self.inner.purge_idempotency_records(older_than).await
    }
}

impl Backend for FlakyStore {
    fn kind(&self) -> &'static str {
        "flaky-memory"
    }
}

// ---- the service under test --------------------------------------------------------

/// A running service.
pub struct TestApp {
    pub url: String,
    pub idp: Arc<Idp>,
    pub client: reqwest::Client,
    pub database_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type; body: {}",
            self.text
        );
        assert_eq!(self.body["code"], code, "code; body: {}", self.text);
        assert_eq!(
            self.body["status"], status,
            "status field; body: {}",
            self.text
        );
        for field in ["type", "title", "detail"] {
            assert!(self.body[field].is_string(), "{field} in {}", self.text);
        }
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        &self.body
    }
}

impl TestApp {
    /// The service on a fresh PostgreSQL database.
    pub async fn spawn() -> TestApp {
        let (store, url) = wallet_pg::testing::fresh_store_with_url().await;
        let idp = Idp::start().await;
        let mut app =
            TestApp::spawn_with(store, idp, Some(AUDIENCE.to_owned()), fast_background()).await;
        app.database_url = Some(url);
        app
    }

    /// The service on the given store, trusting `idp`.
    pub async fn spawn_with<S: Backend>(
        store: S,
        idp: Arc<Idp>,
        audience: Option<String>,
        background: BackgroundOptions,
    ) -> TestApp {
        TestApp::spawn_with_timeout(store, idp, audience, background, Duration::from_secs(30)).await
    }

    /// The service with a request timeout of its own.
    pub async fn spawn_with_timeout<S: Backend>(
        store: S,
        idp: Arc<Idp>,
        audience: Option<String>,
        background: BackgroundOptions,
        request_timeout: Duration,
    ) -> TestApp {
        let verifier = JwtVerifier::discover(&idp.url, audience).expect("a verifier");
        let state = wallet_http::application(
            store,
            Policy::default(),
            Arc::new(verifier),
            request_timeout,
        )
        .expect("the application state");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the service");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(wallet_http::serve(listener, state, background, async {
            let _ = stopped.await;
        }));
        TestApp {
            url,
            idp,
            client: reqwest::Client::new(),
            database_url: None,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// A service already running at `url` (another process), trusting `idp`.
    pub fn at(url: String, idp: Arc<Idp>) -> TestApp {
        TestApp {
            url,
            idp,
            client: reqwest::Client::new(),
            database_url: None,
            stop: None,
            server: None,
        }
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task")
                .expect("the server stops cleanly");
        }
    }

    /// A token for `user` with `roles`.
    pub fn token(&self, user: Uuid, roles: &[&str]) -> String {
        Claims::new(&self.idp, user, roles).sign()
    }

    pub fn admin(&self) -> String {
        self.token(Uuid::now_v7(), &["Admin"])
    }

    pub fn service(&self) -> String {
        self.token(Uuid::now_v7(), &["Service"])
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{}", self.url, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            headers.contains_key("x-request-id"),
            "every response carries X-Request-Id"
        );
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(reqwest::Method::GET, path, Some(token), &[], None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(token),
            &[],
            Some(body.to_string()),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, token: &str, body: &str) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(token),
            &[],
            Some(body.to_owned()),
        )
        .await
    }

    pub async fn post_keyed(&self, path: &str, token: &str, key: &str, body: Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(token),
            &[("idempotency-key", key)],
            Some(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, Some(token), &[], None)
            .await
    }

    /// A new user with a wallet (default currency USD) holding `usd` dollars.
    pub async fn funded_user(&self, usd: &str) -> (Uuid, String) {
        let user = Uuid::now_v7();
        let token = self.token(user, &[]);
        self.post(
            "/api/v1/wallets",
            &token,
            json!({ "defaultCurrency": "USD" }),
        )
        .await
        .assert_status(201);
        if usd != "0" {
            self.post(
                &format!("/api/v1/wallets/{user}/deposit"),
                &self.service(),
                json!({ "amount": usd, "currency": "USD" }),
            )
            .await
            .assert_status(200);
        }
        (user, token)
    }
}

/// Sweeps often, so expiry tests are quick.
pub fn fast_background() -> BackgroundOptions {
    BackgroundOptions {
        sweep_interval: Duration::from_millis(200),
        ..BackgroundOptions::default()
    }
}

/// Polls `check` until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The balance of `currency` in a wallet document, as text.
pub fn balance(wallet: &Value, currency: &str) -> String {
    wallet["balances"]
        .as_array()
        .and_then(|items| items.iter().find(|b| b["currency"] == currency))
        .and_then(|b| b["balance"].as_str())
        .unwrap_or("none")
        .to_owned()
}

/// The relay's position and lease are the inner store's, failing with the rest.
impl RelayStore for FlakyStore {
    async fn relay_state(&self, relay: &RelayName) -> Result<RelayState, WalletError> {
        self.check()?;
        self.inner.relay_state(relay).await
    }
    async fn take_relay_lease(
        &self,
        relay: &RelayName,
        owner: Uuid,
        now: DateTime<Utc>,
        duration: chrono::Duration,
    ) -> Result<LeaseOutcome, WalletError> {
        self.check()?;
        self.inner
            .take_relay_lease(relay, owner, now, duration)
            .await
    }
    async fn release_relay_lease(&self, relay: &RelayName, owner: Uuid) -> Result<(), WalletError> {
        self.check()?;
        self.inner.release_relay_lease(relay, owner).await
    }
    async fn advance_relay_position(
        &self,
        relay: &RelayName,
        owner: Uuid,
        to: u64,
        now: DateTime<Utc>,
    ) -> Result<PositionUpdate, WalletError> {
        self.check()?;
        self.inner
            .advance_relay_position(relay, owner, to, now)
            .await
    }
    async fn relay_lag(&self, relay: &RelayName) -> Result<u64, WalletError> {
        self.check()?;
        self.inner.relay_lag(relay).await
    }
}
