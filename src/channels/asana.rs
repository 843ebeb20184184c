//! The ticket system behind the SLA engine's staff nags: Asana's REST API when
//! `ASANA_ACCESS_TOKEN` is set ([`AsanaClient`]), the log otherwise ([`DryRunTickets`]).
//!
//! Owns: the wire format of a comment (a story on a task: `POST {base}/tasks/{gid}/stories`
//! with `{"data":{"text":…}}` and a bearer token), of a new SLA's task (`POST {base}/tasks`
//! with `{"data":{"name","notes","projects":[project],"memberships":[{"project","section"}]}}`,
//! answered `201 {"data":{"gid",…}}`), the `dry-run-…` ids given when no task is posted,
//! and the mapping of Asana's answers onto
//! [`TicketError`]'s classes: 429, 5xx and transport failures are retried by the next sweep;
//! any other refusal is permanent.
//! Must not: retry by itself (the sweep owns that), decide which tickets are real (the
//! `dry-run` rule is the engine's), or log the token.

use std::time::Duration;

use actors::sla::{DRY_RUN_TICKET_PREFIX, NewTask, TicketError, TicketSystem};
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::config::Secret;

pub struct AsanaClient {
    http: reqwest::Client,
    base: url::Url,
    token: Secret,
    /// `ASANA_PROJECT_GID`, `ASANA_SECTION_GID`; no project: tasks are dry runs.
    project: Option<String>,
    section: Option<String>,
}

/// The id of a task that was not posted: never commented on (the engine's `dry-run` rule).
pub fn dry_run_task_id(task: &NewTask) -> String {
    format!(
        "{DRY_RUN_TICKET_PREFIX}-{}-{}",
        task.kind.as_str(),
        chrono::Utc::now().timestamp_millis()
    )
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
            project: None,
            section: None,
        })
    }

    /// Where new SLA tasks are created. No project: they are dry runs (Asana needs a
    /// project or workspace for a task, and a workspace-only task would be seen by nobody).
    pub fn with_project(mut self, project: Option<String>, section: Option<String>) -> Self {
        self.project = project;
        self.section = section;
        self
    }

    fn tasks_url(&self) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new: the base can be a base")
            .pop_if_empty()
            .push("tasks");
        url
    }

    /// Posts and classifies: 2xx is the body, 429/5xx/transport retryable, else permanent.
    async fn post(&self, url: url::Url, body: &Value) -> Result<Value, TicketError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| TicketError::Retryable(format!("Asana unreachable: {e}")))?;
        let status = response.status().as_u16();
        let ok = response.status().is_success();
        let text = response.text().await.unwrap_or_default();
        if ok {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let message = error_message(&text);
        if status == 429 || status >= 500 {
            Err(TicketError::Retryable(format!("Asana {status}: {message}")))
        } else {
            Err(TicketError::Permanent { status, message })
        }
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
        self.post(
            self.stories_url(ticket_id),
            &json!({ "data": { "text": text } }),
        )
        .await
        .map(|_| ())
    }

    async fn create_task(&self, task: &NewTask) -> Result<String, TicketError> {
        let Some(project) = &self.project else {
            let id = dry_run_task_id(task);
            tracing::info!(ticket = %id, name = %task.name, "dry-run SLA task (ASANA_PROJECT_GID is not set)");
            return Ok(id);
        };
        let mut membership = json!({ "project": project });
        if let Some(section) = &self.section {
            membership["section"] = json!(section);
        }
        let body = json!({ "data": {
            "name": task.name,
            "notes": task.notes,
            "projects": [project],
            "memberships": [membership],
        }});
        let answer = self.post(self.tasks_url(), &body).await?;
        match answer["data"]["gid"].as_str() {
            Some(gid) if valid_gid(gid) => Ok(gid.to_string()),
            _ => Err(TicketError::Permanent {
                status: 201,
                message: "Asana created a task but answered no gid".into(),
            }),
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

    async fn create_task(&self, task: &NewTask) -> Result<String, TicketError> {
        let id = dry_run_task_id(task);
        tracing::info!(ticket = %id, name = %task.name, "dry-run SLA task (ASANA_ACCESS_TOKEN is not set)");
        Ok(id)
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
    async fn a_task_is_posted_to_the_project_and_section_and_its_gid_returned() {
        let asana = FakeAsana::start().await;
        let task = NewTask {
            lead: actors::ports::LeadId::new("+13125550140"),
            kind: actors::sla::SlaKind::DocReview,
            name: "Doc review: +13125550140".into(),
            notes: "Documents arrived".into(),
        };
        let c = client(&asana.url).with_project(Some("111".into()), Some("222".into()));
        let gid = c.create_task(&task).await.unwrap();
        let tasks = asana.tasks();
        assert_eq!(tasks.len(), 1);
        assert_eq!(gid, tasks[0].gid);
        assert_eq!(tasks[0].auth, "Bearer asana-pat");
        assert_eq!(
            tasks[0].body,
            json!({"data": {"name": "Doc review: +13125550140", "notes": "Documents arrived",
                "projects": ["111"], "memberships": [{"project": "111", "section": "222"}]}})
        );
        // No project: a dry-run id, nothing posted.
        let id = client(&asana.url).create_task(&task).await.unwrap();
        assert!(id.starts_with("dry-run-doc_review-"), "{id}");
        assert_eq!(asana.tasks().len(), 1);
        assert!(
            DryRunTickets
                .create_task(&task)
                .await
                .unwrap()
                .starts_with("dry-run-")
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
