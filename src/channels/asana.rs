//! The ticket system behind the SLA engine's staff nags: Asana's REST API when
//! `ASANA_ACCESS_TOKEN` is set ([`AsanaClient`]), the log otherwise ([`DryRunTickets`]).
//!
//! Owns: the wire format of a comment (a story on a task: `POST {base}/tasks/{gid}/stories`
//! with `{"data":{"text":…}}` and a bearer token) and the mapping of Asana's answers onto
//! [`TicketError`]'s classes: 429, 5xx and transport failures are retried by the next sweep;
//! any other refusal is permanent.
//! Must not: retry by itself (the sweep owns that), decide which tickets are real (the
//! `dry-run` rule is the engine's), or log the token.

use std::time::Duration;

use actors::sla::{TicketError, TicketSystem};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::config::Secret;

pub struct AsanaClient {
    http: reqwest::Client,
    base: url::Url,
    token: Secret,
}

impl AsanaClient {
    /// `base`: Asana's API root, `https://app.asana.com/api/1.0` (`ASANA_API_BASE`).
    pub fn new(base: &str, token: Secret, timeout: Duration) -> anyhow::Result<Self> {
        let base = url::Url::parse(base.trim_end_matches('/'))
            .map_err(|e| anyhow::anyhow!("ASANA_API_BASE is not a URL: {e}"))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("ASANA_API_BASE cannot be a base URL");
        }
        Ok(Self {
            http: super::http_client(timeout)?,
            base,
            token,
        })
    }

    fn stories_url(&self, task_gid: &str) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base can be a base")
            .pop_if_empty()
            .extend(["tasks", task_gid, "stories"]);
        url
    }
}

/// Asana task gids are decimal numbers; anything else cannot name a task, and is refused
/// before it reaches the network (or a path).
fn valid_gid(gid: &str) -> bool {
    !gid.is_empty() && gid.len() <= 64 && gid.bytes().all(|b| b.is_ascii_digit())
}

/// The first `errors[].message` of an Asana error body, or the body's start.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[async_trait]
impl TicketSystem for AsanaClient {
    fn name(&self) -> &str {
        "asana"
    }

    async fn add_comment(&self, ticket_id: &str, text: &str) -> Result<(), TicketError> {
        if !valid_gid(ticket_id) {
            return Err(TicketError::Permanent {
                status: 0,
                message: format!("{ticket_id:?} is not an Asana task gid (digits only)"),
            });
        }
        let response = self
            .http
            .post(self.stories_url(ticket_id))
            .bearer_auth(self.token.expose())
            .json(&json!({ "data": { "text": text } }))
            .send()
            .await
            .map_err(|e| TicketError::Retryable(format!("Asana unreachable: {e}")))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let message = error_message(&body);
        if status == 429 || status >= 500 {
            Err(TicketError::Retryable(format!("Asana {status}: {message}")))
        } else {
            Err(TicketError::Permanent { status, message })
        }
    }
}

/// The embedded default: nags are logged, no ticket is touched.
#[derive(Default)]
pub struct DryRunTickets;

#[async_trait]
impl TicketSystem for DryRunTickets {
    fn name(&self) -> &str {
        "dry-run"
    }

    async fn add_comment(&self, ticket_id: &str, text: &str) -> Result<(), TicketError> {
        tracing::info!(
            ticket = ticket_id,
            text,
            "dry-run ticket comment (ASANA_ACCESS_TOKEN is not set)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use testkit::fake_asana::FakeAsana;

    use super::*;

    fn client(base: &str) -> AsanaClient {
        AsanaClient::new(base, Secret::new("asana-pat"), Duration::from_secs(5)).unwrap()
    }

    #[tokio::test]
    async fn a_comment_is_a_story_posted_to_the_task_with_the_bearer_token() {
        let asana = FakeAsana::start().await;
        client(&format!("{}/", asana.url))
            .add_comment("1209876543210", "OVERDUE (30h): doc review")
            .await
            .unwrap();
        let calls = asana.requests();
        assert_eq!(calls.len(), 1);
        let (task, auth, body) = &calls[0];
        assert_eq!(task, "1209876543210");
        assert_eq!(auth, "Bearer asana-pat");
        assert_eq!(
            body,
            &json!({"data": {"text": "OVERDUE (30h): doc review"}})
        );
    }

    #[tokio::test]
    async fn rate_limits_and_server_errors_are_retryable_refusals_are_not() {
        let asana = FakeAsana::start().await;
        asana.answer_next(vec![
            (429, r#"{"errors":[{"message":"Rate limit"}]}"#.into()),
            (503, "unavailable".into()),
            (
                404,
                r#"{"errors":[{"message":"task: Unknown object: 1"}]}"#.into(),
            ),
            (401, r#"{"errors":[{"message":"Not Authorized"}]}"#.into()),
        ]);
        let c = client(&asana.url);
        let e = c.add_comment("1", "x").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        let e = c.add_comment("1", "x").await.unwrap_err();
        assert!(e.is_retryable(), "{e}");
        assert_eq!(
            c.add_comment("1", "x").await.unwrap_err(),
            TicketError::Permanent {
                status: 404,
                message: "task: Unknown object: 1".into()
            }
        );
        let e = c.add_comment("1", "x").await.unwrap_err();
        assert!(!e.is_retryable() && e.to_string().contains("Not Authorized"));
        assert!(!e.to_string().contains("asana-pat"));
    }

    #[tokio::test]
    async fn an_unreachable_asana_is_retryable_and_a_bad_gid_never_leaves_the_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/api/1.0", listener.local_addr().unwrap());
        drop(listener);
        assert!(
            client(&dead)
                .add_comment("12", "x")
                .await
                .unwrap_err()
                .is_retryable()
        );

        let asana = FakeAsana::start().await;
        for bad in ["", "12/../34", "abc", "dry-run-1"] {
            let e = client(&asana.url).add_comment(bad, "x").await.unwrap_err();
            assert!(!e.is_retryable(), "{bad}: {e}");
        }
        assert!(asana.requests().is_empty());
    }
}
