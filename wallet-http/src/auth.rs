//! Bearer tokens: who is calling.
//!
//! [`JwtVerifier`] checks a JWT against the signing keys of an OpenID
//! provider (found through `{authority}/.well-known/openid-configuration`)
//! or against a fixed key set (development mode, tests). Only RS256 and
//! ES256 are accepted, each only with a key of its own type, so an HMAC can
//! never be checked against a public key and `none` is never accepted.
//!
//! A token that passed every check is remembered (by the SHA-256 of its
//! text) for at most [`TOKEN_CACHE_TTL`], never past its `exp` (with the
//! same leeway) and only while the key set that verified it is the current
//! one: a client sending the same token again skips the signature check
//! (about 80 µs of CPU for ES256), which is most of what authentication
//! costs a request. At most [`TOKEN_CACHE_ENTRIES_MAX`] tokens are kept.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;
use wallet_core::Actor;

use crate::problem::Problem;

/// The shortest time between two reads of the provider's key set.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// How long one request to the provider may take.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// The longest token accepted, in bytes.
pub const TOKEN_LENGTH_MAX: usize = 16 * 1024;
/// The most keys kept from a key set.
pub const KEYS_MAX: usize = 32;
/// The most roles a token may carry.
pub const ROLES_MAX: usize = 64;
/// The longest a verified token is remembered (see the module docs).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(30);
/// The most verified tokens remembered at once.
pub const TOKEN_CACHE_ENTRIES_MAX: usize = 4096;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The token is malformed, badly signed, expired, for someone else...
    Invalid(String),
    /// The provider's keys could not be read, so the token could not be
    /// checked.
    KeysUnavailable(String),
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => Problem::unauthorized("a bearer token is required"),
            AuthError::Invalid(reason) => Problem::unauthorized(format!("invalid token: {reason}")),
            AuthError::KeysUnavailable(reason) => {
                tracing::warn!(reason = %reason, "the identity provider's keys are unavailable");
                Problem::unavailable("the identity provider cannot be reached; retry later")
            }
        }
    }
}

/// A boxed future, so that verifiers can be shared as trait objects.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Actor, AuthError>> + Send + 'a>>;

/// Turns a bearer token into the caller.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` and returns who it names.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;
}

/// A key that verifies signatures of exactly one algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// A set of verification keys.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: Vec<VerificationKey>,
}

/// One entry of a JWK set, as far as it matters here.
#[derive(Debug, Deserialize)]
struct JwkEntry {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeyRing {
    /// A ring of the given keys.
    pub fn new(keys: Vec<VerificationKey>) -> Self {
        KeyRing { keys }
    }

    /// The usable keys of a JWK set document (`{"keys": [...]}`). Keys of
    /// other types, curves, algorithms or uses are skipped.
    pub fn from_jwks(document: &serde_json::Value) -> Self {
        let entries = document
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let keys = entries
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<JwkEntry>(entry).ok())
            .filter_map(|entry| key_of(&entry))
            .take(KEYS_MAX)
            .collect();
        KeyRing { keys }
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may have signed a token with this header.
    fn candidates(&self, kid: Option<&str>, algorithm: Algorithm) -> Vec<&VerificationKey> {
        self.keys
            .iter()
            .filter(|key| key.algorithm == algorithm)
            .filter(|key| kid.is_none() || key.kid.as_deref() == kid)
            .collect()
    }
}

fn key_of(entry: &JwkEntry) -> Option<VerificationKey> {
    if entry.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return None;
    }
    let (algorithm, key) = match entry.kty.as_str() {
        "RSA" if matches!(entry.alg.as_deref(), None | Some("RS256")) => (
            Algorithm::RS256,
            DecodingKey::from_rsa_components(entry.n.as_deref()?, entry.e.as_deref()?).ok()?,
        ),
        "EC" if entry.crv.as_deref() == Some("P-256")
            && matches!(entry.alg.as_deref(), None | Some("ES256")) =>
        {
            (
                Algorithm::ES256,
                DecodingKey::from_ec_components(entry.x.as_deref()?, entry.y.as_deref()?).ok()?,
            )
        }
        _ => return None,
    };
    Some(VerificationKey {
        kid: entry.kid.clone(),
        algorithm,
        key,
    })
}

/// Where the keys come from.
enum KeySource {
    Fixed(Arc<KeyRing>),
    Provider(Provider),
}

/// An OpenID provider's key set, read on demand and cached.
struct Provider {
    discovery_url: String,
    client: reqwest::Client,
    ring: RwLock<Arc<KeyRing>>,
    /// When the key set was last read (whether or not that worked); held
    /// while reading so that concurrent requests share one read.
    last_read: tokio::sync::Mutex<Option<Instant>>,
    refresh_interval: Duration,
}

impl Provider {
    fn current(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reads the key set again unless it was read less than the refresh
    /// interval ago. Returns the error of this read, if it failed.
    async fn refresh(&self) -> Result<(), AuthError> {
        let mut last_read = self.last_read.lock().await;
        if last_read.is_some_and(|at| at.elapsed() < self.refresh_interval) {
            return Ok(());
        }
        *last_read = Some(Instant::now());
        let ring = self
            .read_key_set()
            .await
            .map_err(AuthError::KeysUnavailable)?;
        tracing::info!(keys = ring.len(), "read the identity provider's key set");
        match self.ring.write() {
            Ok(mut guard) => *guard = Arc::new(ring),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(ring),
        }
        Ok(())
    }

    async fn read_key_set(&self) -> Result<KeyRing, String> {
        let discovery: serde_json::Value = self.get_json(&self.discovery_url).await?;
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| "the discovery document has no jwks_uri".to_owned())?
            .to_owned();
        let jwks = self.get_json(&jwks_uri).await?;
        Ok(KeyRing::from_jwks(&jwks))
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

/// Verifies JWTs: signature, `iss`, `exp`, `nbf`, `aud` when configured,
/// and a UUID `sub`.
pub struct JwtVerifier {
    issuer: String,
    audience: Option<String>,
    keys: KeySource,
    verified: TokenCache,
}

impl JwtVerifier {
    /// A verifier reading its keys from the provider at `authority`, which
    /// is also the only accepted issuer.
    pub fn discover(authority: &str, audience: Option<String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            authority.trim_end_matches('/')
        );
        Ok(JwtVerifier {
            issuer: authority.to_owned(),
            audience,
            keys: KeySource::Provider(Provider {
                discovery_url,
                client,
                ring: RwLock::new(Arc::new(KeyRing::default())),
                last_read: tokio::sync::Mutex::new(None),
                refresh_interval: KEY_REFRESH_INTERVAL,
            }),
            verified: TokenCache::default(),
        })
    }

    /// A verifier with a fixed key set.
    pub fn with_keys(issuer: &str, audience: Option<String>, ring: KeyRing) -> Self {
        JwtVerifier {
            issuer: issuer.to_owned(),
            audience,
            keys: KeySource::Fixed(Arc::new(ring)),
            verified: TokenCache::default(),
        }
    }

    /// Changes the shortest time between two reads of the key set.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        if let KeySource::Provider(provider) = &mut self.keys {
            provider.refresh_interval = interval;
        }
        self
    }

    /// Reads the provider's key set now (at start-up), so the first request
    /// does not wait for it. A failure is only logged: the next token with
    /// an unknown key tries again.
    pub async fn warm_up(&self) {
        if let KeySource::Provider(provider) = &self.keys {
            if let Err(AuthError::KeysUnavailable(reason)) = provider.refresh().await {
                tracing::warn!(reason = %reason, "cannot read the identity provider's keys yet");
            }
        }
    }

    fn current(&self) -> Arc<KeyRing> {
        match &self.keys {
            KeySource::Fixed(ring) => Arc::clone(ring),
            KeySource::Provider(provider) => provider.current(),
        }
    }

    async fn check(&self, token: &str) -> Result<Actor, AuthError> {
        let invalid = |reason: &str| AuthError::Invalid(reason.to_owned());
        if token.len() > TOKEN_LENGTH_MAX {
            return Err(invalid("too long"));
        }
        let digest = TokenCache::digest(token);
        if let Some(actor) = self
            .verified
            .get(&digest, &self.current(), unix_now(), Instant::now())
        {
            return Ok(actor);
        }
        let header = decode_header(token).map_err(|_| invalid("malformed"))?;
        let algorithm = header.alg;
        if !matches!(algorithm, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid("the algorithm is not accepted (RS256 or ES256)"));
        }
        let kid = header.kid.as_deref();
        let mut ring = self.current();
        if ring.candidates(kid, algorithm).is_empty() {
            if let KeySource::Provider(provider) = &self.keys {
                let refreshed = provider.refresh().await;
                ring = self.current();
                if let Err(error) = refreshed {
                    if ring.is_empty() {
                        return Err(error);
                    }
                }
            }
        }
        let candidates = ring.candidates(kid, algorithm);
        if candidates.is_empty() {
            return Err(invalid("unknown signing key"));
        }
        let validation = self.validation(algorithm);
        let mut outcome = Err(invalid("bad signature"));
        for key in candidates {
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(error) => outcome = Err(AuthError::Invalid(describe(&error))),
            }
        }
        let claims = outcome?;
        let expires = claims.exp.as_ref().and_then(serde_json::Value::as_u64);
        let actor = actor_of(claims)?;
        if let Some(expires) = expires {
            self.verified
                .insert(digest, &actor, &ring, expires, Instant::now());
        }
        Ok(actor)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        validation
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(self.check(token))
    }
}

fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        ErrorKind::InvalidAlgorithm => "the algorithm does not match the key",
        _ => "malformed",
    }
    .to_owned()
}

/// The claims this service reads (the library checks the registered ones).
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Checked by the library; read here (when a whole number) to bound
    /// how long the token is remembered.
    exp: Option<serde_json::Value>,
    roles: Option<RoleClaim>,
    role: Option<RoleClaim>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RoleClaim {
    One(String),
    Many(Vec<String>),
}

impl RoleClaim {
    fn into_vec(self) -> Vec<String> {
        match self {
            RoleClaim::One(role) => vec![role],
            RoleClaim::Many(roles) => roles,
        }
    }
}

fn actor_of(claims: Claims) -> Result<Actor, AuthError> {
    let user_id = Uuid::try_parse(&claims.sub)
        .map_err(|_| AuthError::Invalid("sub is not a UUID".to_owned()))?;
    let mut roles: Vec<String> = claims.roles.map(RoleClaim::into_vec).unwrap_or_default();
    roles.extend(claims.role.map(RoleClaim::into_vec).unwrap_or_default());
    if roles.len() > ROLES_MAX {
        return Err(AuthError::Invalid("too many roles".to_owned()));
    }
    Ok(Actor { user_id, roles })
}

/// Seconds since the Unix epoch, as the token library counts them.
fn unix_now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Tokens that passed every check (see the module docs).
#[derive(Default)]
struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
}

struct Verified {
    actor: Actor,
    /// The key set that verified the token.
    ring: Arc<KeyRing>,
    /// The token's `exp`.
    expires: u64,
    /// When it stops being remembered.
    until: Instant,
}

impl TokenCache {
    fn digest(token: &str) -> [u8; 32] {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(
            ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
        );
        digest
    }

    /// The caller of a remembered token, if it is still to be trusted:
    /// verified by the current key set, not expired, not kept too long.
    fn get(
        &self,
        digest: &[u8; 32],
        current: &Arc<KeyRing>,
        now_unix: u64,
        now: Instant,
    ) -> Option<Actor> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(digest)?;
        if Arc::ptr_eq(&entry.ring, current)
            && now_unix <= entry.expires.saturating_add(LEEWAY_SECONDS)
            && now < entry.until
        {
            return Some(entry.actor.clone());
        }
        entries.remove(digest);
        None
    }

    fn insert(
        &self,
        digest: [u8; 32],
        actor: &Actor,
        ring: &Arc<KeyRing>,
        expires: u64,
        now: Instant,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TOKEN_CACHE_ENTRIES_MAX {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= TOKEN_CACHE_ENTRIES_MAX {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Verified {
                actor: actor.clone(),
                ring: Arc::clone(ring),
                expires,
                until: now + TOKEN_CACHE_TTL,
            },
        );
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let text = value
        .to_str()
        .map_err(|_| AuthError::Invalid("malformed Authorization header".to_owned()))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("expected `Bearer <token>`".to_owned()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid("expected `Bearer <token>`".to_owned()));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor() -> Actor {
        Actor {
            user_id: Uuid::from_u128(7),
            roles: vec!["User".to_owned()],
        }
    }

    #[test]
    fn a_remembered_token_is_trusted_only_while_its_key_set_exp_and_ttl_allow() {
        let cache = TokenCache::default();
        let ring = Arc::new(KeyRing::default());
        let digest = TokenCache::digest("a.b.c");
        let now = Instant::now();
        let exp = 1_000_000;
        assert_eq!(cache.get(&digest, &ring, exp - 10, now), None);
        cache.insert(digest, &actor(), &ring, exp, now);
        assert_eq!(cache.get(&digest, &ring, exp - 10, now), Some(actor()));
        // Another token is not this one.
        assert_eq!(
            cache.get(&TokenCache::digest("a.b.d"), &ring, exp - 10, now),
            None
        );
        // Within the leeway past exp, as the library allows; not beyond.
        assert_eq!(
            cache.get(&digest, &ring, exp + LEEWAY_SECONDS, now),
            Some(actor())
        );
        assert_eq!(
            cache.get(&digest, &ring, exp + LEEWAY_SECONDS + 1, now),
            None
        );
        // Forgotten once refused: the next check verifies it again.
        assert_eq!(cache.get(&digest, &ring, exp - 10, now), None);

        cache.insert(digest, &actor(), &ring, exp, now);
        assert_eq!(
            cache.get(&digest, &ring, exp - 10, now + TOKEN_CACHE_TTL),
            None
        );

        // Keys read again: what the old set verified is checked anew.
        cache.insert(digest, &actor(), &ring, exp, now);
        let reread = Arc::new(KeyRing::default());
        assert_eq!(cache.get(&digest, &reread, exp - 10, now), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::default();
        let ring = Arc::new(KeyRing::default());
        let now = Instant::now();
        for n in 0..TOKEN_CACHE_ENTRIES_MAX + 10 {
            cache.insert(
                TokenCache::digest(&n.to_string()),
                &actor(),
                &ring,
                u64::MAX / 2,
                now,
            );
        }
        let entries = cache.entries.lock().map(|e| e.len()).unwrap_or(usize::MAX);
        assert!(entries <= TOKEN_CACHE_ENTRIES_MAX, "{entries} tokens kept");
    }
}
