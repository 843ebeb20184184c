//! Anthropic Messages API client (`POST {base}/v1/messages`).
//!
//! Owns: the request shape (system prompt, alternating user/assistant turns, an opaque
//! per-lead `metadata.user_id`; for the brain also `tools` with `input_schema`,
//! `tool_choice`, assistant `tool_use` blocks and user `tool_result` blocks), reading text,
//! tool calls and token usage back, and mapping HTTP failures onto [`ModelError`] classes
//! (REFERENCE.md: 429 rate limit with retry-after — a 429 marked `x-should-retry: false`,
//! such as an exhausted spend limit, is a rejection — 529 overloaded, 5xx server,
//! 400/401/403/404/413 rejected).
//! Must not: retry (the pool decides), send the lead's phone number (the id is a hash), or
//! log the API key.

use std::time::Duration;

use actors::conversation::{AgentReply, AgentRequest, Block, Speaker, ToolCall};
use actors::ports::{ChatModel, Completion, ModelError, Prompt, Role};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::exchange;
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

    /// One Messages API call: a non-2xx is classified by the error-class policy (status,
    /// retry headers, body), a 2xx body that does not decode is `BadResponse`.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        request: &impl Serialize,
    ) -> Result<T, ModelError> {
        let request = self
            .http
            .post(&self.url)
            .header("x-api-key", self.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(request);
        exchange::send(request, classify).await
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

/// Maps a failed response onto the pool's error classes.
fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &str) -> ModelError {
    let message: String = body.chars().take(300).collect();
    let should_retry = headers
        .get("x-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("true"));
    match status {
        // Anthropic's own "do not retry" (a spend limit, not a rate): asking again is useless.
        429 if should_retry == Some(false) => ModelError::Rejected { status, message },
        429 => ModelError::RateLimited {
            retry_after: retry_after(headers),
        },
        529 => ModelError::Overloaded,
        408 | 409 | 500..=599 => ModelError::Server { status },
        _ => ModelError::Rejected { status, message },
    }
}

/// The Messages API body for one step of the brain's tool loop.
pub fn agent_request_body(
    model: &str,
    max_tokens: u32,
    request: &AgentRequest,
    user_id: &str,
) -> Value {
    let messages: Vec<Value> = request
        .turns
        .iter()
        .map(|turn| {
            let role = match turn.speaker {
                Speaker::User => "user",
                Speaker::Model => "assistant",
            };
            // Tool results must lead a user message's content.
            let mut blocks: Vec<&Block> = turn.blocks.iter().collect();
            blocks.sort_by_key(|b| !matches!(b, Block::ToolResult(_)));
            let content: Vec<Value> = blocks
                .into_iter()
                .filter_map(|b| match b {
                    // The API rejects empty text blocks.
                    Block::Text(t) if t.trim().is_empty() => None,
                    Block::Text(t) => Some(json!({"type": "text", "text": t})),
                    Block::ToolCall(c) => Some(json!({
                        "type": "tool_use", "id": c.id, "name": c.name, "input": c.input
                    })),
                    Block::ToolResult(r) => Some(json!({
                        "type": "tool_result", "tool_use_id": r.call_id,
                        "content": r.content, "is_error": r.is_error
                    })),
                })
                .collect();
            json!({"role": role, "content": content})
        })
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(
            |t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}),
        )
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "system": request.system,
        "messages": messages,
        "metadata": {"user_id": user_id},
    });
    // Tools stay declared on the last step (the transcript holds tool_use blocks, which
    // need their definitions); `none` makes the model answer in text.
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!({"type": if request.allow_tools { "auto" } else { "none" }});
    }
    body
}

#[derive(Deserialize)]
struct AgentResponse {
    content: Vec<Value>,
    #[serde(default)]
    usage: Usage,
}

/// Reads text and `tool_use` blocks; other block types (thinking…) are not for the lead.
fn parse_agent_response(body: AgentResponse) -> Result<AgentReply, ModelError> {
    let mut blocks = Vec::new();
    for b in body.content {
        match b["type"].as_str() {
            Some("text") => blocks.push(Block::Text(b["text"].as_str().unwrap_or("").to_string())),
            Some("tool_use") => {
                let (Some(id), Some(name)) = (b["id"].as_str(), b["name"].as_str()) else {
                    return Err(ModelError::BadResponse(
                        "tool_use without id or name".into(),
                    ));
                };
                blocks.push(Block::ToolCall(ToolCall {
                    id: id.to_string(),
                    name: name.to_string(),
                    input: b.get("input").cloned().unwrap_or(json!({})),
                    signature: None,
                }));
            }
            _ => {}
        }
    }
    Ok(AgentReply {
        blocks,
        provider: "anthropic".into(),
        input_tokens: body.usage.input_tokens,
        output_tokens: body.usage.output_tokens,
    })
}

#[async_trait]
impl ChatModel for AnthropicClient {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
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
        let body: Response = self.post(&request).await?;
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

    async fn converse(&self, request: &AgentRequest) -> Result<AgentReply, ModelError> {
        let body = agent_request_body(
            &self.model,
            self.max_tokens,
            request,
            &opaque_lead_id(request.prompt.lead.as_str()),
        );
        let body: AgentResponse = self.post(&body).await?;
        parse_agent_response(body)
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
    fn a_tool_step_has_the_documented_shape() {
        use actors::conversation::{ToolResult, ToolSpec, Turn};
        let request = AgentRequest {
            prompt: Prompt {
                lead: LeadId::new("+1"),
                lines: vec![],
                new_messages: 0,
                now: chrono::Utc::now(),
            },
            system: "be brief".into(),
            turns: vec![
                Turn::text(Speaker::User, "tour lakeview sat 11"),
                Turn {
                    speaker: Speaker::Model,
                    blocks: vec![
                        Block::Text(String::new()),
                        Block::ToolCall(ToolCall {
                            id: "toolu_1".into(),
                            name: "schedule_tour".into(),
                            input: json!({"building": "lakeview"}),
                            signature: None,
                        }),
                    ],
                },
                Turn {
                    speaker: Speaker::User,
                    blocks: vec![Block::ToolResult(ToolResult {
                        call_id: "toolu_1".into(),
                        name: "schedule_tour".into(),
                        content: "{}".into(),
                        is_error: true,
                    })],
                },
            ],
            tools: vec![ToolSpec {
                name: "schedule_tour",
                description: "book",
                parameters: json!({"type": "object", "properties": {}}),
            }],
            allow_tools: false,
        };
        let body = agent_request_body("claude-x", 400, &request, "lead-abc");
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(body["tool_choice"]["type"], "none");
        let assistant = &body["messages"][1];
        assert_eq!(assistant["role"], "assistant");
        assert_eq!(
            assistant["content"].as_array().unwrap().len(),
            1,
            "empty text dropped"
        );
        assert_eq!(assistant["content"][0]["type"], "tool_use");
        assert_eq!(assistant["content"][0]["id"], "toolu_1");
        let result = &body["messages"][2]["content"][0];
        assert_eq!(result["type"], "tool_result");
        assert_eq!(result["tool_use_id"], "toolu_1");
        assert_eq!(result["is_error"], true);
    }

    #[test]
    fn a_spend_limit_429_is_a_rejection_and_a_rate_limit_429_carries_its_retry_after() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            classify(429, &h, ""),
            ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        h.insert("x-should-retry", "false".parse().unwrap());
        assert!(matches!(
            classify(429, &h, ""),
            ModelError::Rejected { status: 429, .. }
        ));
        assert_eq!(classify(529, &h, ""), ModelError::Overloaded);
    }

    #[test]
    fn the_lead_id_sent_is_stable_and_not_the_phone_number() {
        let a = opaque_lead_id("+13125550100");
        assert_eq!(a, opaque_lead_id("+13125550100"));
        assert!(!a.contains("3125550100"));
        assert_ne!(a, opaque_lead_id("+13125550101"));
    }
}
