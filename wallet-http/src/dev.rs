//! Development mode: the service signs its own tokens with a key made at
//! start-up, verifies them with the same key, and prints ready-to-use ones.
//! Only ever enabled by the explicit `--dev` flag on a loopback address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{JwtVerifier, KeyRing, VerificationKey};

/// The issuer of development tokens.
pub const DEV_ISSUER: &str = "wallet-http-dev";
/// How long a development token is valid, in seconds.
pub const DEV_TOKEN_LIFETIME_SECONDS: u64 = 12 * 60 * 60;
/// The user of the printed user token.
pub const DEV_USER_ID: Uuid = Uuid::from_u128(0x0191_0000_0000_7000_8000_0000_0000_0001);

/// A signing key made at start-up, and the tokens it signs.
pub struct DevIssuer {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    iss: &'a str,
    sub: String,
    roles: Vec<String>,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl DevIssuer {
    /// Makes a new ES256 key pair.
    pub fn generate() -> Result<Self, String> {
        let random = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random)
            .map_err(|_| "cannot generate a development signing key".to_owned())?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
                .map_err(|_| "cannot read the development signing key".to_owned())?;
        // An uncompressed P-256 point: 0x04, then 32 bytes of x, 32 of y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err("unexpected public key size".to_owned());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let decoding = DecodingKey::from_ec_components(&x, &y)
            .map_err(|_| "cannot build the development verification key".to_owned())?;
        Ok(DevIssuer {
            kid: format!("dev-{}", Uuid::new_v4().simple()),
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding,
        })
    }

    /// A verifier that accepts the tokens of this issuer.
    pub fn verifier(&self) -> JwtVerifier {
        let ring = KeyRing::new(vec![VerificationKey {
            kid: Some(self.kid.clone()),
            algorithm: Algorithm::ES256,
            key: self.decoding.clone(),
        }]);
        JwtVerifier::with_keys(DEV_ISSUER, None, ring)
    }

    /// A token for `user_id` with `roles`, valid for
    /// [`DEV_TOKEN_LIFETIME_SECONDS`].
    pub fn token(&self, user_id: Uuid, roles: &[&str]) -> Result<String, String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = DevClaims {
            iss: DEV_ISSUER,
            sub: user_id.to_string(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iat: now,
            nbf: now,
            exp: now + DEV_TOKEN_LIFETIME_SECONDS,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.encoding).map_err(|e| format!("cannot sign a token: {e}"))
    }

    /// The text printed at start-up: tokens to paste and a request to try.
    pub fn banner(&self, base_url: &str) -> Result<String, String> {
        let admin = self.token(Uuid::now_v7(), &["Admin"])?;
        let service = self.token(Uuid::now_v7(), &["Service"])?;
        let user = self.token(DEV_USER_ID, &[])?;
        Ok(format!(
            "\n\
             Development mode: tokens are signed with a key made at start-up and\n\
             stop working when the process ends. Paste these lines into a shell:\n\n\
             export WALLET_URL={base_url}\n\
             export ADMIN_TOKEN={admin}\n\
             export SERVICE_TOKEN={service}\n\
             export USER_ID={DEV_USER_ID}\n\
             export USER_TOKEN={user}\n\n\
             Then try:\n\n\
             curl -s -X POST \"$WALLET_URL/api/v1/wallets\" -H \"Authorization: Bearer $USER_TOKEN\" \\\n  \
               -H 'Content-Type: application/json' -d '{{\"defaultCurrency\": \"USD\"}}'\n\n\
             The API reference is at {base_url}/docs: click Authorize and paste one\n\
             of the tokens above (without `Bearer`) to try every route from the browser.\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenVerifier;

    #[tokio::test]
    async fn dev_tokens_verify_with_the_dev_key_only() {
        let issuer = DevIssuer::generate().expect("a key");
        let token = issuer.token(DEV_USER_ID, &["Admin"]).expect("a token");
        let actor = issuer.verifier().verify(&token).await.expect("valid");
        assert_eq!(actor.user_id, DEV_USER_ID);
        assert_eq!(actor.roles, vec!["Admin".to_owned()]);
        let other = DevIssuer::generate().expect("a key");
        assert!(other.verifier().verify(&token).await.is_err());
    }
}
