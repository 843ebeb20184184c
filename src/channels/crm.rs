//! CRM notes: Follow Up Boss when `FUB_API` is set, the log otherwise (dry run).
//!
//! Owns: the FUB REST calls — find the person by phone (`GET /v1/people?phone=…`), then
//! `POST /v1/notes` with `personId`, `subject`, `body` — with HTTP Basic auth, the API key
//! as the user and an empty password, and the mapping of failures onto [`CrmError`].
//! Must not: create people in the CRM (leads enter FUB through the office's lead sources;
//! a phone FUB does not know is reported, not invented), retry (a note is best effort; its
//! text also went to the alert channels), or log the API key.

use std::time::Duration;

use actors::brain::context::{CrmError, CrmNotes};
use actors::ports::LeadId;
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::config::Secret;

pub struct FollowUpBoss {
    http: reqwest::Client,
    base: String,
    api_key: Secret,
    /// Names us to FUB (`X-System`, `FUB_SYSTEM`), with the registered system's key
    /// (`X-System-Key`, `FUB_SYSTEM_KEY`) when we have one.
    system: String,
    system_key: Option<Secret>,
}

impl FollowUpBoss {
    pub fn new(base_url: &str, api_key: Secret, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            base: base_url.trim_end_matches('/').to_string(),
            api_key,
            system: "lead-agent".into(),
            system_key: None,
        })
    }

    /// The registered system's name and key (`FUB_SYSTEM`, `FUB_SYSTEM_KEY`).
    pub fn with_system(mut self, system: String, key: Option<Secret>) -> Self {
        self.system = system;
        self.system_key = key;
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(self.api_key.expose(), Some(""))
            .header("X-System", &self.system);
        match &self.system_key {
            Some(key) => r.header("X-System-Key", key.expose()),
            None => r,
        }
    }

    async fn person_id(&self, lead: &LeadId) -> Result<i64, CrmError> {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("phone", lead.as_str())
            .append_pair("limit", "1")
            .append_pair("fields", "id")
            .finish();
        let response = self
            .request(reqwest::Method::GET, &format!("/v1/people?{query}"))
            .send()
            .await
            .map_err(|e| CrmError(format!("Follow Up Boss unreachable: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(CrmError(format!(
                "Follow Up Boss people search answered {status}"
            )));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| CrmError(format!("unreadable people search: {e}")))?;
        body["people"]
            .as_array()
            .and_then(|p| p.first())
            .and_then(|p| p["id"].as_i64())
            .ok_or_else(|| CrmError(format!("no Follow Up Boss person with phone {lead}")))
    }
}

#[async_trait]
impl CrmNotes for FollowUpBoss {
    fn name(&self) -> &str {
        "followupboss"
    }

    async fn add_note(&self, lead: &LeadId, subject: &str, body: &str) -> Result<(), CrmError> {
        let person = self.person_id(lead).await?;
        let response = self
            .request(reqwest::Method::POST, "/v1/notes")
            .json(&json!({
                "personId": person,
                "subject": subject,
                "body": body,
                "isHtml": false,
            }))
            .send()
            .await
            .map_err(|e| CrmError(format!("Follow Up Boss unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = super::error_excerpt(response).await;
            Err(CrmError(format!(
                "Follow Up Boss refused the note ({status}): {text}"
            )))
        }
    }
}

/// No CRM configured: the note is logged (its text also reached the alert channels).
pub struct DryRunCrm;

#[async_trait]
impl CrmNotes for DryRunCrm {
    fn name(&self) -> &str {
        "dry-run"
    }

    async fn add_note(&self, lead: &LeadId, subject: &str, body: &str) -> Result<(), CrmError> {
        tracing::info!(lead = %lead.log(), subject, body, "CRM note (dry run: FUB_API is not set)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use testkit::fake_fub::FakeFub;

    use super::*;

    #[tokio::test]
    async fn a_note_is_posted_to_the_person_found_by_phone_with_basic_auth() {
        let fake = FakeFub::start("+13125550100").await;
        let fub =
            FollowUpBoss::new(&fake.url, Secret::new("fubkey"), Duration::from_secs(5)).unwrap();
        fub.add_note(
            &LeadId::new("+13125550100"),
            "Tour requested",
            "Lakeview Sat 11",
        )
        .await
        .unwrap();
        let seen = fake.requests();
        assert_eq!(seen.len(), 2);
        // "fubkey:" in base64: the key is the user, the password empty.
        assert_eq!(seen[1].1, "Basic ZnVia2V5Og==");
        assert_eq!(seen[1].2["personId"], 42);
        assert_eq!(seen[1].2["subject"], "Tour requested");
        assert_eq!(seen[1].2["body"], "Lakeview Sat 11");
    }

    #[tokio::test]
    async fn an_unknown_phone_is_an_error_and_no_note_is_posted() {
        let fake = FakeFub::start("+13125550100").await;
        let fub = FollowUpBoss::new(&fake.url, Secret::new("k"), Duration::from_secs(5)).unwrap();
        let err = fub
            .add_note(&LeadId::new("+19995550000"), "s", "b")
            .await
            .unwrap_err();
        assert!(err.0.contains("no Follow Up Boss person"), "{err}");
        assert!(fake.requests().iter().all(|(kind, _, _)| kind != "note"));
    }
}
