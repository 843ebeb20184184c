//! Twilio: the webhook signature check, the REST client that sends replies, and the form of
//! a message SID ([`new_message_sid`]) for the messages we post as Twilio does.
//!
//! Owns: `X-Twilio-Signature` (HMAC-SHA1 over the configured URL plus the sorted form
//! parameters, both port forms, constant-time compare — REFERENCE.md) and the mapping of
//! Twilio's answers onto [`SmsError`]'s classes: never processed (retry), refused for good
//! (record), unknown (in-doubt, never resent).
//! Must not: retry by itself (the lead actor owns the retry policy), or log the auth token.

use std::time::Duration;

use actors::ports::{LeadId, ListedMessage, ProviderStatus, SentSms, SmsError, SmsSender};
use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Deserialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::{Secret, TwilioSender, TwilioSettings};

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio computes for `url` and the form `params`.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then by value: a name with several values appends each, values sorted.
    sorted.sort();
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// True if `signature` matches `url` as given or in its other port form (Twilio's own
/// validators accept both `https://h/p` and `https://h:443/p`).
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let given = signature.as_bytes();
    let mut ok = false;
    for candidate in url_port_forms(url) {
        let expected = compute_signature(auth_token, &candidate, params);
        // No early exit: both forms are always computed and compared in constant time.
        ok |= bool::from(expected.as_bytes().ct_eq(given));
    }
    ok
}

/// `url` with the default port removed and with it added, in that order.
pub fn url_port_forms(url: &str) -> [String; 2] {
    let Some((scheme, rest)) = url.split_once("://") else {
        return [url.to_string(), url.to_string()];
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return [url.to_string(), url.to_string()],
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port is after the last ':' unless that ':' is inside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    match port {
        Some(p) if p == default_port => [format!("{scheme}://{host}{tail}"), url.to_string()],
        Some(_) => [url.to_string(), url.to_string()],
        None => [
            url.to_string(),
            format!("{scheme}://{host}:{default_port}{tail}"),
        ],
    }
}

/// A fresh message SID in Twilio's form (`SM` and 32 hex digits), for the messages we post
/// as Twilio does: the dev helper, the synthetic SMS of `verify` and the watch, the bench.
pub fn new_message_sid() -> String {
    let mut rng = rand::rng();
    let hex: String = (0..32)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("SM{hex}")
}

/// Sends replies through `POST /2010-04-01/Accounts/{sid}/Messages.json`.
pub struct TwilioClient {
    http: reqwest::Client,
    messages_url: String,
    account_sid: String,
    auth_token: Secret,
    sender: TwilioSender,
}

#[derive(Deserialize)]
struct MessageCreated {
    sid: String,
}

#[derive(Deserialize)]
struct TwilioErrorBody {
    code: Option<i64>,
    message: Option<String>,
}

impl TwilioClient {
    pub fn new(
        settings: &TwilioSettings,
        api_base: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            messages_url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                api_base.trim_end_matches('/'),
                settings.account_sid
            ),
            account_sid: settings.account_sid.clone(),
            auth_token: settings.auth_token.clone(),
            sender: settings.sender.clone(),
        })
    }
}

#[async_trait]
impl SmsSender for TwilioClient {
    async fn send_sms(&self, to: &LeadId, body: &str) -> Result<SentSms, SmsError> {
        let mut form = vec![("To", to.as_str()), ("Body", body)];
        match &self.sender {
            TwilioSender::MessagingService(sid) => form.push(("MessagingServiceSid", sid)),
            TwilioSender::From(from) => form.push(("From", from)),
        }
        let response = self
            .http
            .post(&self.messages_url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(classify_transport_error)?;
        let status = response.status();
        if status.is_success() {
            let created: MessageCreated = response.json().await.map_err(|e| {
                // Accepted, but we cannot read the sid: it went out, and we must not resend.
                SmsError::Unknown(format!("unreadable success response: {e}"))
            })?;
            return Ok(SentSms {
                provider_sid: created.sid,
            });
        }
        let body: Option<TwilioErrorBody> = response.json().await.ok();
        let code = body.as_ref().and_then(|b| b.code);
        let message = body
            .and_then(|b| b.message)
            .unwrap_or_else(|| status.to_string());
        // 429 (20429) is never processed; Twilio documents 5xx as not processed either.
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SmsError::Retryable(format!("{status}: {message}")))
        } else {
            Err(SmsError::Permanent { code, message })
        }
    }

    /// `GET …/Messages.json?To=…`, newest first, following `next_page_uri` until a page
    /// holds only messages created before `since`. No `DateSent` filter: Twilio filters on
    /// the sending date, and a message it accepted but has not sent yet (queued behind
    /// others, or scheduled) has none — exactly the message that must be found. The window
    /// is applied here on `date_created`, and inbound messages are left out.
    async fn find_sent(
        &self,
        to: &LeadId,
        since: DateTime<Utc>,
    ) -> Result<Vec<ListedMessage>, SmsError> {
        let mut url = reqwest::Url::parse(&self.messages_url)
            .map_err(|e| SmsError::Retryable(format!("bad Messages URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("To", to.as_str())
            .append_pair("PageSize", &LIST_PAGE_SIZE.to_string());
        let mut found = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let response = self
                .http
                .get(url.clone())
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .send()
                .await
                .map_err(|e| SmsError::Retryable(format!("list messages: {e}")))?;
            if !response.status().is_success() {
                return Err(SmsError::Retryable(format!(
                    "list messages: {}",
                    response.status()
                )));
            }
            let page: MessagePage = response
                .json()
                .await
                .map_err(|e| SmsError::Retryable(format!("list messages: {e}")))?;
            let mut reached_older = !page.messages.is_empty();
            for m in page.messages {
                // An unreadable date is inside every window: never ruled out by it.
                let created_at = m
                    .date_created
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                    .map(|d| d.with_timezone(&Utc));
                let in_window = created_at.is_none_or(|t| t >= since);
                reached_older &= !in_window;
                if in_window && m.direction.starts_with("outbound") {
                    found.push(ListedMessage {
                        provider_sid: m.sid,
                        body: m.body,
                        status: ProviderStatus::parse(&m.status),
                        created_at,
                    });
                }
            }
            match page.next_page_uri {
                Some(next) if !reached_older => {
                    url = reqwest::Url::parse(&format!("{}{next}", self.api_root()))
                        .map_err(|e| SmsError::Retryable(format!("next page: {e}")))?
                }
                _ => return Ok(found),
            }
        }
        // The window goes on past the pages read: too much history to rule anything out.
        Err(SmsError::Retryable(
            "message history too long to read back to the reply's creation".into(),
        ))
    }
}

#[derive(Deserialize)]
struct MessagePage {
    #[serde(default)]
    messages: Vec<ListedMessageJson>,
    next_page_uri: Option<String>,
}

#[derive(Deserialize)]
struct ListedMessageJson {
    sid: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    status: String,
    /// RFC 2822, as Twilio writes it: `Tue, 03 Nov 2026 12:00:00 +0000`.
    date_created: Option<String>,
}

/// Messages per page of the list; a lead's messages over the window fit in one.
const LIST_PAGE_SIZE: usize = 100;

/// Pages of the Messages list read when resolving an in-doubt reply: a lead's messages
/// since one reply fit in the first page many times over.
const MAX_LIST_PAGES: usize = 5;

impl TwilioClient {
    fn api_root(&self) -> &str {
        self.messages_url
            .split("/2010-04-01/")
            .next()
            .unwrap_or(&self.messages_url)
    }
}

fn classify_transport_error(e: reqwest::Error) -> SmsError {
    if e.is_connect() || e.is_builder() {
        // The request never left: safe to try again.
        SmsError::Retryable(format!("connect: {e}"))
    } else {
        // Timed out or broke after the request was sent: Twilio may have accepted it.
        SmsError::Unknown(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn the_documented_example_signature_is_reproduced() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature("12345", url, &reference_params()),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert_eq!(
            compute_signature(
                "12345",
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                &reference_params()
            ),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
    }

    #[test]
    fn both_port_forms_verify_and_a_wrong_signature_does_not() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let p = reference_params();
        assert!(verify_signature(
            "12345",
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(verify_signature(
            "12345",
            url,
            &p,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(!verify_signature(
            "12345",
            url,
            &p,
            "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!verify_signature(
            "54321",
            url,
            &p,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn port_forms_cover_default_explicit_and_custom_ports() {
        assert_eq!(
            url_port_forms("https://a.com:443/x?y=1"),
            [
                "https://a.com/x?y=1".to_string(),
                "https://a.com:443/x?y=1".to_string()
            ]
        );
        assert_eq!(
            url_port_forms("http://a.com/x"),
            [
                "http://a.com/x".to_string(),
                "http://a.com:80/x".to_string()
            ]
        );
        assert_eq!(
            url_port_forms("http://127.0.0.1:5012/twilio/sms"),
            [
                "http://127.0.0.1:5012/twilio/sms".to_string(),
                "http://127.0.0.1:5012/twilio/sms".to_string()
            ]
        );
        assert_eq!(url_port_forms("https://[::1]/x")[1], "https://[::1]:443/x");
    }

    #[test]
    fn repeated_names_sign_each_value_in_sorted_order() {
        let a = vec![
            ("MediaUrl".to_string(), "b".to_string()),
            ("MediaUrl".to_string(), "a".to_string()),
        ];
        let b = vec![
            ("MediaUrl".to_string(), "a".to_string()),
            ("MediaUrl".to_string(), "b".to_string()),
        ];
        assert_eq!(
            compute_signature("t", "https://x/y", &a),
            compute_signature("t", "https://x/y", &b)
        );
    }
}
