//! Google's OAuth 2.0 flow for service accounts ("Using OAuth 2.0 for Server to Server
//! Applications"): the service-account key file, the RS256-signed JWT assertion, its
//! exchange at the key's `token_uri` for an access token, and the token kept until shortly
//! before it expires.
//!
//! Owns: parsing the key file (`client_email`, `private_key` as PKCS#8 PEM, `token_uri`,
//! `private_key_id`), the assertion's claims (`iss` = the client email, `scope`, `aud` = the
//! token URI, `iat`, `exp` = `iat` + 3600, and `sub` = the delegated user when the account
//! acts for one by domain-wide delegation), the form post
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`) and the cache.
//! The signature is aws-lc-rs's RSASSA-PKCS1-v1_5 with SHA-256: the binary's one crypto
//! provider (rustls's), so no second one comes in for a JWT.
//! Must not: retry (the drain in `crate::doc_intake` decides), log or return the key or a
//! token in an error, or call the APIs the token is for (`super::gmail`, `super::drive`).

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;

use super::GoogleError;

/// Google's token endpoint, when the key file does not name one.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How long an assertion is valid: Google's maximum, one hour.
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// A cached token is renewed this long before Google says it expires, so that no request
/// goes out with a token that lapses on the way.
pub const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// A service account's key, parsed. `Debug` shows the email only.
pub struct ServiceAccount {
    pub client_email: String,
    pub token_uri: String,
    key_id: Option<String>,
    key: RsaKeyPair,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// Parses the JSON key file Google's console downloads. The error never quotes the
    /// file: it holds the private key.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let file: KeyFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a service-account key file (client_email, private_key): {:?} error at line {}",
                e.classify(),
                e.line()
            )
        })?;
        let der = pem_body(&file.private_key, "PRIVATE KEY")
            .ok_or("private_key is not a PEM \"PRIVATE KEY\" (PKCS#8) block")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("private_key is not an RSA PKCS#8 key: {e}"))?;
        let token_uri = file
            .token_uri
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        if url::Url::parse(&token_uri).is_err() {
            return Err("token_uri is not a URL".into());
        }
        Ok(Self {
            client_email: file.client_email,
            token_uri,
            key_id: file.private_key_id.filter(|k| !k.is_empty()),
            key,
        })
    }

    /// The signed assertion for `scope` at `iat` (seconds since the epoch), acting for
    /// `subject` when given (domain-wide delegation).
    pub fn assertion(&self, scope: &str, subject: Option<&str>, iat: i64) -> String {
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let mut claims = json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        if let Some(sub) = subject {
            claims["sub"] = json!(sub);
        }
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing with a parsed key and a buffer of the modulus' length");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The DER inside the first `-----BEGIN {label}-----` block of `pem` (the key file's
/// `private_key`, with `\n` already unescaped by the JSON parser).
fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// Access tokens for one account, scope and subject, each exchanged once and kept until
/// [`RENEW_BEFORE`] its expiry. One exchange at a time: callers waiting on a renewal get
/// its token.
pub struct TokenSource {
    http: reqwest::Client,
    account: ServiceAccount,
    scope: String,
    subject: Option<String>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    pub fn new(
        http: reqwest::Client,
        account: ServiceAccount,
        scope: &str,
        subject: Option<String>,
    ) -> Self {
        Self {
            http,
            account,
            scope: scope.to_string(),
            subject,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub fn client_email(&self) -> &str {
        &self.account.client_email
    }

    /// A valid access token: the cached one, or a new exchange.
    pub async fn token(&self) -> Result<String, GoogleError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let iat = chrono::Utc::now().timestamp();
        let assertion = self
            .account
            .assertion(&self.scope, self.subject.as_deref(), iat);
        let response = self
            .http
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| GoogleError::Transport(format!("token endpoint: {e}")))?;
        let response = super::check(response, "token endpoint").await?;
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| GoogleError::Decode(format!("token endpoint's answer: {e}")))?;
        // Google's tokens last an hour; without `expires_in`, assume the assertion's hour.
        let lifetime =
            Duration::from_secs(answer.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS as u64));
        *cached = Some(Cached {
            token: answer.access_token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        });
        Ok(answer.access_token)
    }
}

#[cfg(test)]
mod tests {
    use testkit::fake_google::{FakeGoogle, TestKey};

    use super::*;

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_carries_the_claims_google_asks_for_and_verifies_with_the_public_key() {
        let key = TestKey::generate();
        let account = ServiceAccount::from_json(
            &key.service_account_json("intake@p.iam.example", "https://t.example/token"),
        )
        .unwrap();
        let jwt = account.assertion(
            "https://www.googleapis.com/auth/gmail.readonly",
            Some("staff@bluelake.example"),
            1_700_000_000,
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "test-key-1");
        let claims = decode_part(parts[1]);
        assert_eq!(claims["iss"], "intake@p.iam.example");
        assert_eq!(claims["aud"], "https://t.example/token");
        assert_eq!(
            claims["scope"],
            "https://www.googleapis.com/auth/gmail.readonly"
        );
        assert_eq!(claims["sub"], "staff@bluelake.example");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_003_600);
        assert!(key.verifies(&jwt), "signed with the key's private half");
        let mut forged = jwt.clone();
        forged.replace_range(parts[0].len() + 2..parts[0].len() + 3, "x");
        assert!(!key.verifies(&forged));

        let no_sub = account.assertion("s", None, 1);
        assert!(decode_part(no_sub.split('.').nth(1).unwrap())["sub"].is_null());
    }

    #[test]
    fn a_bad_key_file_is_refused_without_quoting_it() {
        let e = ServiceAccount::from_json(
            "{\"client_email\": \"a\", \"private_key\": \"SECRETSTUFF\"}",
        )
        .unwrap_err();
        assert!(!e.contains("SECRETSTUFF"), "{e}");
        assert!(ServiceAccount::from_json("{}").is_err());
        assert!(ServiceAccount::from_json("not json").is_err());
        let key = TestKey::generate();
        let mut v: serde_json::Value =
            serde_json::from_str(&key.service_account_json("a@b", "https://t/token")).unwrap();
        v.as_object_mut().unwrap().remove("token_uri");
        let account = ServiceAccount::from_json(&v.to_string()).unwrap();
        assert_eq!(account.token_uri, DEFAULT_TOKEN_URI);
    }

    #[tokio::test]
    async fn a_token_is_exchanged_once_and_reused_until_it_nears_expiry() {
        let google = FakeGoogle::start().await;
        let account = ServiceAccount::from_json(&google.service_account_json("drive@p")).unwrap();
        let http = reqwest::Client::new();
        let source = TokenSource::new(
            http.clone(),
            account,
            "https://www.googleapis.com/auth/drive",
            None,
        );
        let first = source.token().await.unwrap();
        assert_eq!(source.token().await.unwrap(), first);
        assert_eq!(google.token_exchanges().len(), 1, "cached");
        let exchange = &google.token_exchanges()[0];
        assert_eq!(exchange.iss, "drive@p");
        assert_eq!(exchange.scope, "https://www.googleapis.com/auth/drive");
        assert_eq!(exchange.sub, None);

        // A token that lives less than RENEW_BEFORE is never reused.
        google.set_expires_in(30);
        let account = ServiceAccount::from_json(&google.service_account_json("drive@p")).unwrap();
        let short = TokenSource::new(http, account, "s", Some("staff@x".into()));
        short.token().await.unwrap();
        short.token().await.unwrap();
        assert_eq!(google.token_exchanges().len(), 3);
        assert_eq!(google.token_exchanges()[2].sub.as_deref(), Some("staff@x"));
    }

    #[tokio::test]
    async fn a_refused_exchange_says_whether_to_retry() {
        let google = FakeGoogle::start().await;
        let account = ServiceAccount::from_json(&google.service_account_json("a@p")).unwrap();
        let source = TokenSource::new(reqwest::Client::new(), account, "s", None);
        google.fail_token(Some(503));
        let e = source.token().await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        google.fail_token(Some(400));
        assert!(!source.token().await.unwrap_err().is_retryable());
        google.fail_token(None);
        assert!(source.token().await.is_ok());

        // A key the token endpoint does not know (signed by another key) is refused.
        let stranger = TestKey::generate();
        let account =
            ServiceAccount::from_json(&stranger.service_account_json("a@p", &google.token_url()))
                .unwrap();
        let e = TokenSource::new(reqwest::Client::new(), account, "s", None)
            .token()
            .await
            .unwrap_err();
        assert!(matches!(e, GoogleError::Status { status: 400, .. }), "{e}");
    }
}
