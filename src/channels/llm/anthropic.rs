//! Anthropic Messages API client (`POST {base}/v1/messages`).
//!
//! Owns: the request shape (system prompt, alternating user/assistant turns, an opaque
//! per-lead `metadata.user_id`), reading the text and token usage back, and mapping HTTP
//! failures onto [`ModelError`] classes (REFERENCE.md: 429 rate limit with retry-after, 529
//! overloaded, 5xx server, 400/401/403/404/413 rejected).
//! Must not: retry (the pool decides), send the lead's phone number (the id is a hash), or
//! log the API key.

use std::time::Duration;

use actors::ports::{ChatModel, Completion, ModelError, Prompt, Role};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::config::Secret;

pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct AnthropicClient {
    http: reqwest::Client,
    url: String,
    api_key: Secret,
    model: String,
    system: String,
    max_tokens: u32,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: Vec<Message>,
    metadata: Metadata,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct Message {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct Metadata {
    user_id: String,
}

#[derive(Deserialize)]
struct Response {
    content: Vec<ContentBlock>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

impl AnthropicClient {
    pub fn new(
        base_url: &str,
        api_key: Secret,
        model: String,
        system: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            api_key,
            model,
            system,
            max_tokens: 400,
        })
    }
}

/// The Messages API wants turns alternating user/assistant and starting with the user:
/// consecutive lines of one side are joined, and a window that opens on our own line gets
/// a short user placeholder before it.
fn to_messages(prompt: &Prompt) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for line in &prompt.lines {
        let role = match line.role {
            Role::Lead => "user",
            Role::Agent => "assistant",
        };
        match out.last_mut() {
            Some(last) if last.role == role => {
                last.content.push('\n');
                last.content.push_str(&line.text);
            }
            _ => out.push(Message {
                role,
                content: line.text.clone(),
            }),
        }
    }
    if out.first().is_some_and(|m| m.role == "assistant") {
        out.insert(
            0,
            Message {
                role: "user",
                content: "(earlier conversation omitted)".into(),
            },
        );
    }
    out
}

/// An opaque, stable id for the lead: Anthropic asks for no personal data in metadata.
pub fn opaque_lead_id(phone: &str) -> String {
    let digest = Sha1::digest(phone.as_bytes());
    let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("lead-{hex}")
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms / 1000.0);
    let secs = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    ms.or(secs)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[async_trait]
impl ChatModel for AnthropicClient {
    fn name(&self) -> &str {
        "anthropic"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        let request = Request {
            model: &self.model,
            max_tokens: self.max_tokens,
            system: &self.system,
            messages: to_messages(prompt),
            metadata: Metadata {
                user_id: opaque_lead_id(prompt.lead.as_str()),
            },
        };
        let response = self
            .http
            .post(&self.url)
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&request)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ModelError::Timeout
                } else {
                    ModelError::Transport(e.to_string())
                }
            })?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let after = retry_after(response.headers());
            let message = response.text().await.unwrap_or_default();
            let message: String = message.chars().take(300).collect();
            return Err(match status {
                429 => ModelError::RateLimited { retry_after: after },
                529 => ModelError::Overloaded,
                408 | 409 | 500..=599 => ModelError::Server { status },
                _ => ModelError::Rejected { status, message },
            });
        }
        let body: Response = response
            .json()
            .await
            .map_err(|e| ModelError::BadResponse(e.to_string()))?;
        let text: String = body
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join("");
        if text.trim().is_empty() {
            return Err(ModelError::BadResponse("no text in the reply".into()));
        }
        Ok(Completion {
            text,
            provider: "anthropic".into(),
            input_tokens: body.usage.input_tokens,
            output_tokens: body.usage.output_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use actors::ports::{ChatLine, LeadId};

    use super::*;

    fn line(role: Role, text: &str) -> ChatLine {
        ChatLine {
            role,
            text: text.into(),
        }
    }

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let prompt = Prompt {
            lead: LeadId::new("+1"),
            lines: vec![
                line(Role::Agent, "Hi! How many bedrooms?"),
                line(Role::Lead, "2"),
                line(Role::Lead, "and a dog"),
            ],
            new_messages: 2,
            now: chrono::Utc::now(),
        };
        let m = to_messages(&prompt);
        let roles: Vec<_> = m.iter().map(|m| m.role).collect();
        assert_eq!(roles, vec!["user", "assistant", "user"]);
        assert_eq!(m[2].content, "2\nand a dog");
    }

    #[test]
    fn the_lead_id_sent_is_stable_and_not_the_phone_number() {
        let a = opaque_lead_id("+13125550100");
        assert_eq!(a, opaque_lead_id("+13125550100"));
        assert!(!a.contains("3125550100"));
        assert_ne!(a, opaque_lead_id("+13125550101"));
    }
}
