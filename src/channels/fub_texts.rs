//! Follow Up Boss's text log: records an SMS sent or received elsewhere on a person's
//! timeline (`POST /v1/textMessages` with `personId`, `message`, `toNumber`, `fromNumber`,
//! `isIncoming`; no SMS is sent by FUB). Restricted to registered systems: every request
//! carries `X-System` and `X-System-Key` (`FUB_SYSTEM`, `FUB_SYSTEM_KEY`) beside the API key
//! (HTTP Basic, the key as the user). The person is found by phone at `FUB_API_BASE`
//! (`GET /v1/people?phone=…`); the text is posted at `FUB_TEXTING_SERVICE` when set, else
//! at `FUB_API_BASE`.
//!
//! Owns: those two calls and the mapping of failures onto [`FubTextError`]
//! (`is_retryable()`: transport errors, timeouts, 408, 429 and 5xx are; 400/401/403/404/422
//! are not).
//! Must not: retry (the drain in `crate::crm_text_log` does, with the project's backoff),
//! create people (a phone FUB does not know is [`FubTextError::NoPerson`]), or log the keys.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Secret;

/// A person FUB found by phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FubPerson {
    pub id: i64,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FubTextError {
    #[error("no Follow Up Boss person with this phone")]
    NoPerson,
    #[error("Follow Up Boss unreachable: {0}")]
    Transport(String),
    #[error("Follow Up Boss answered {status}: {message}")]
    Status { status: u16, message: String },
}

impl FubTextError {
    pub fn is_retryable(&self) -> bool {
        match self {
            FubTextError::NoPerson => false,
            FubTextError::Transport(_) => true,
            FubTextError::Status { status, .. } => matches!(status, 408 | 429) || *status >= 500,
        }
    }
}

/// One text to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEntry<'a> {
    pub message: &'a str,
    pub to_number: &'a str,
    pub from_number: &'a str,
    pub is_incoming: bool,
}

pub struct FubTexts {
    http: reqwest::Client,
    api_base: String,
    texting_base: String,
    api_key: Secret,
    system: String,
    system_key: Option<Secret>,
}

impl FubTexts {
    pub fn new(
        api_base: &str,
        texting_base: Option<&str>,
        api_key: Secret,
        system: String,
        system_key: Option<Secret>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let api_base = api_base.trim_end_matches('/').to_string();
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            texting_base: texting_base
                .map(|b| b.trim_end_matches('/').to_string())
                .unwrap_or_else(|| api_base.clone()),
            api_base,
            api_key,
            system,
            system_key,
        })
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .request(method, url)
            .basic_auth(self.api_key.expose(), Some(""))
            .header("X-System", &self.system);
        if let Some(key) = &self.system_key {
            r = r.header("X-System-Key", key.expose());
        }
        r
    }

    async fn check(response: reqwest::Response) -> Result<reqwest::Response, FubTextError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = super::error_excerpt(response).await;
        Err(FubTextError::Status {
            status: status.as_u16(),
            message,
        })
    }

    /// The FUB person with `phone`: its id, and its name when FUB has one.
    pub async fn person(&self, phone: &str) -> Result<FubPerson, FubTextError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("phone", phone)
            .append_pair("limit", "1")
            .append_pair("fields", "id,name")
            .finish();
        let response = self
            .request(
                reqwest::Method::GET,
                format!("{}/v1/people?{query}", self.api_base),
            )
            .send()
            .await
            .map_err(|e| FubTextError::Transport(e.to_string()))?;
        let body: Value = Self::check(response)
            .await?
            .json()
            .await
            .map_err(|e| FubTextError::Transport(format!("unreadable people search: {e}")))?;
        let person = body["people"]
            .as_array()
            .and_then(|p| p.first())
            .ok_or(FubTextError::NoPerson)?;
        let id = person["id"].as_i64().ok_or(FubTextError::NoPerson)?;
        let name = person["name"]
            .as_str()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        Ok(FubPerson { id, name })
    }

    /// Records one text on person `person`'s timeline.
    pub async fn log_text(&self, person: i64, text: &TextEntry<'_>) -> Result<(), FubTextError> {
        let response = self
            .request(
                reqwest::Method::POST,
                format!("{}/v1/textMessages", self.texting_base),
            )
            .json(&json!({
                "personId": person,
                "message": text.message,
                "toNumber": text.to_number,
                "fromNumber": text.from_number,
                "isIncoming": text.is_incoming,
            }))
            .send()
            .await
            .map_err(|e| FubTextError::Transport(e.to_string()))?;
        Self::check(response).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use testkit::fake_fub::FakeFub;

    use super::*;

    #[tokio::test]
    async fn a_text_is_posted_with_the_registered_system_headers() {
        let fake = FakeFub::start("+13125550100").await;
        let fub = FubTexts::new(
            &fake.url,
            None,
            Secret::new("fubkey"),
            "lead-agent".into(),
            Some(Secret::new("syskey")),
            Duration::from_secs(5),
        )
        .unwrap();
        let person = fub.person("+13125550100").await.unwrap();
        assert_eq!(person.name.as_deref(), Some(testkit::fake_fub::PERSON_NAME));
        fub.log_text(
            person.id,
            &TextEntry {
                message: "hi",
                to_number: "+13125550000",
                from_number: "+13125550100",
                is_incoming: true,
            },
        )
        .await
        .unwrap();
        let texts = fake.text_messages();
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].system, "lead-agent");
        assert_eq!(texts[0].system_key, "syskey");
        assert_eq!(texts[0].authorization, "Basic ZnVia2V5Og==");
        assert_eq!(texts[0].body["personId"], 42);
        assert_eq!(texts[0].body["isIncoming"], true);
        assert_eq!(
            fub.person("+19995550000").await,
            Err(FubTextError::NoPerson)
        );
    }

    #[test]
    fn failures_say_whether_to_retry() {
        let status = |status| FubTextError::Status {
            status,
            message: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(FubTextError::Transport("refused".into()).is_retryable());
        assert!(!FubTextError::NoPerson.is_retryable());
    }
}
