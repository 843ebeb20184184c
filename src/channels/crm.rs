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

/// Names us to FUB (its `X-System` header identifies the integration).
const SYSTEM_NAME: &str = "lead-agent";

pub struct FollowUpBoss {
    http: reqwest::Client,
    base: String,
    api_key: Secret,
}

impl FollowUpBoss {
    pub fn new(base_url: &str, api_key: Secret, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            base: base_url.trim_end_matches('/').to_string(),
            api_key,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(self.api_key.expose(), Some(""))
            .header("X-System", SYSTEM_NAME)
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
            let text: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
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
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

    async fn fake_fub(known_phone: &'static str) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/v1/people",
                get(
                    move |State(seen): State<Seen>,
                     headers: HeaderMap,
                     Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        let known_phone: &'static str = known_phone;
                        let auth = headers["authorization"].to_str().unwrap().to_string();
                        seen.lock().unwrap().push(("people".into(), auth, json!(q)));
                        let people = if q.get("phone").map(String::as_str) == Some(known_phone) {
                            json!([{"id": 42}])
                        } else {
                            json!([])
                        };
                        axum::Json(json!({"people": people}))
                    },
                ),
            )
            .route(
                "/v1/notes",
                post(
                    |State(seen): State<Seen>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                        let auth = headers["authorization"].to_str().unwrap().to_string();
                        seen.lock().unwrap().push(("note".into(), auth, body));
                        (axum::http::StatusCode::CREATED, axum::Json(json!({"id": 7})))
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    #[tokio::test]
    async fn a_note_is_posted_to_the_person_found_by_phone_with_basic_auth() {
        let (url, seen) = fake_fub("+13125550100").await;
        let fub = FollowUpBoss::new(&url, Secret::new("fubkey"), Duration::from_secs(5)).unwrap();
        fub.add_note(
            &LeadId::new("+13125550100"),
            "Tour requested",
            "Lakeview Sat 11",
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        // "fubkey:" in base64: the key is the user, the password empty.
        assert_eq!(seen[1].1, "Basic ZnVia2V5Og==");
        assert_eq!(seen[1].2["personId"], 42);
        assert_eq!(seen[1].2["subject"], "Tour requested");
        assert_eq!(seen[1].2["body"], "Lakeview Sat 11");
    }

    #[tokio::test]
    async fn an_unknown_phone_is_an_error_and_no_note_is_posted() {
        let (url, seen) = fake_fub("+13125550100").await;
        let fub = FollowUpBoss::new(&url, Secret::new("k"), Duration::from_secs(5)).unwrap();
        let err = fub
            .add_note(&LeadId::new("+19995550000"), "s", "b")
            .await
            .unwrap_err();
        assert!(err.0.contains("no Follow Up Boss person"), "{err}");
        assert!(
            seen.lock()
                .unwrap()
                .iter()
                .all(|(kind, _, _)| kind != "note")
        );
    }
}
