//! The operator's dialer (`HOMEEASY_DIALER_URL`, bearer `VOICE_AI_API_KEY`): implements the
//! actors' [`Dialer`] port — [`HttpDialer`] posts the hand-off, [`DryRunDialer`] logs it.
//!
//! Owns: the hand-off's wire format, written in README ("Dialer hand-off") because the
//! dialer is the operator's own service: `POST $HOMEEASY_DIALER_URL` with
//! `{"phone", "name", "summary", "lead_id", "client_id", "reason"}`, JSON, and
//! `Authorization: Bearer $VOICE_AI_API_KEY` when the key is set; any 2xx is accepted.
//! 429, 5xx and transport failures are retryable, anything else permanent.
//! Must not: retry by itself (`actors::dialer::DialerHandoff` does), or log the key.

use std::time::Duration;

use actors::dialer::{DialError, DialRequest, Dialer};
use async_trait::async_trait;
use serde_json::json;

use crate::config::Secret;

pub struct HttpDialer {
    http: reqwest::Client,
    url: url::Url,
    key: Option<Secret>,
}

impl HttpDialer {
    pub fn new(url: &str, key: Option<Secret>, timeout: Duration) -> anyhow::Result<Self> {
        let url = url::Url::parse(url.trim())
            .map_err(|e| anyhow::anyhow!("HOMEEASY_DIALER_URL is not a URL: {e}"))?;
        Ok(Self {
            http: super::http_client(timeout)?,
            url,
            key,
        })
    }
}

/// The JSON body of a hand-off. `lead_id` and `client_id` are both the lead's E.164 phone:
/// that is the lead's id here (and the seed's `client_id`).
pub fn handoff_body(r: &DialRequest) -> serde_json::Value {
    json!({
        "phone": r.lead.as_str(),
        "name": r.name,
        "summary": r.summary,
        "lead_id": r.lead.as_str(),
        "client_id": r.lead.as_str(),
        "reason": r.reason.as_str(),
    })
}

#[async_trait]
impl Dialer for HttpDialer {
    fn name(&self) -> &str {
        "dialer"
    }
    fn is_dry_run(&self) -> bool {
        false
    }
    async fn hand_off(&self, request: &DialRequest) -> Result<(), DialError> {
        let mut req = self
            .http
            .post(self.url.clone())
            .json(&handoff_body(request));
        if let Some(key) = &self.key {
            req = req.bearer_auth(key.expose());
        }
        let response = req
            .send()
            .await
            .map_err(|e| DialError::Retryable(format!("dialer unreachable: {e}")))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let message = super::error_excerpt(response).await;
        if status == 429 || status >= 500 {
            Err(DialError::Retryable(format!("dialer {status}: {message}")))
        } else {
            Err(DialError::Permanent { status, message })
        }
    }
}

/// `HOMEEASY_DIALER_URL` unset: the hand-off is logged (and recorded by the ledger).
pub struct DryRunDialer;

#[async_trait]
impl Dialer for DryRunDialer {
    fn name(&self) -> &str {
        "dry-run"
    }
    fn is_dry_run(&self) -> bool {
        true
    }
    async fn hand_off(&self, request: &DialRequest) -> Result<(), DialError> {
        tracing::info!(
            lead = %request.lead.log(),
            reason = request.reason.as_str(),
            summary = %actors::log_phone::scrub(&request.summary),
            "dry-run dialer hand-off (HOMEEASY_DIALER_URL is not set)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actors::dialer::DialReason;
    use actors::ports::LeadId;
    use testkit::fake_dialer::FakeDialer;

    use super::*;

    fn request() -> DialRequest {
        DialRequest {
            lead: LeadId::new("+13125550140"),
            name: None,
            summary: "Asked to be called".into(),
            reason: DialReason::AskedForCall,
        }
    }

    #[tokio::test]
    async fn a_hand_off_is_the_documented_json_with_the_bearer_key_and_failures_are_classed() {
        let dialer = FakeDialer::start().await;
        let d = HttpDialer::new(
            &dialer.url,
            Some(Secret::new("voice-key")),
            Duration::from_secs(5),
        )
        .unwrap();
        d.hand_off(&request()).await.unwrap();
        let calls = dialer.requests();
        assert_eq!(calls[0].0, "Bearer voice-key");
        assert_eq!(
            calls[0].1,
            json!({"phone": "+13125550140", "name": null, "summary": "Asked to be called",
                "lead_id": "+13125550140", "client_id": "+13125550140", "reason": "asked_for_call"})
        );
        dialer.answer_next(vec![503, 401]);
        assert!(d.hand_off(&request()).await.unwrap_err().is_retryable());
        let e = d.hand_off(&request()).await.unwrap_err();
        assert!(
            !e.is_retryable() && !e.to_string().contains("voice-key"),
            "{e}"
        );
    }
}
