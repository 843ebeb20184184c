//! OpenAI Chat Completions client (`POST {base}/v1/chat/completions`, `Authorization:
//! Bearer`): a link of the model chain when `OPENAI_API_KEY` is set (`LLM_PROVIDERS` places
//! it).
//!
//! Owns: the request shape (a `system` message first, `user`/`assistant` messages, the
//! model's tool calls as an assistant message's `tool_calls` with JSON-encoded `arguments`,
//! each tool result as a `tool` message answering its `tool_call_id`, `tools` of type
//! `function`, `tool_choice` `auto`/`none`, `max_completion_tokens`), reading text, tool
//! calls and `usage` back, and mapping failures onto [`ModelError`] classes (429 with
//! `retry-after-ms`/`retry-after` rate limited — but a 429 `insufficient_quota`, an
//! exhausted plan, is a rejection; 503 overloaded; 408/409/5xx server; 400/401/403/404
//! rejected).
//! Must not: retry (the pool decides), send the lead's phone number, or log the API key.

use std::time::Duration;

use actors::conversation::{AgentReply, AgentRequest, Block, Speaker, ToolCall};
use actors::ports::{ChatModel, Completion, ModelError, Prompt};
use async_trait::async_trait;
use serde_json::{Value, json};

use super::exchange;
use crate::config::Secret;

pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    api_key: Secret,
    model: String,
    system: String,
    max_tokens: u32,
}

impl OpenAiClient {
    pub fn new(
        base_url: &str,
        api_key: Secret,
        model: String,
        system: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            url: format!("{}/v1/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model,
            system,
            max_tokens: 400,
        })
    }
}

/// The messages of one turn: a model turn is one assistant message (text and tool calls
/// together); a user turn is one `tool` message per tool result (Chat Completions wants
/// them right after the assistant message that asked), then the text, if any.
fn turn_messages(speaker: Speaker, blocks: &[Block]) -> Vec<Value> {
    let text: String = blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text(t) if !t.trim().is_empty() => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    match speaker {
        Speaker::Model => {
            let calls: Vec<Value> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::ToolCall(c) => Some(json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.input.to_string()},
                    })),
                    _ => None,
                })
                .collect();
            let mut message = json!({"role": "assistant", "content": text});
            if !calls.is_empty() {
                if text.is_empty() {
                    message["content"] = Value::Null;
                }
                message["tool_calls"] = Value::Array(calls);
            }
            vec![message]
        }
        Speaker::User => {
            let mut out: Vec<Value> = blocks
                .iter()
                .filter_map(|b| match b {
                    Block::ToolResult(r) => Some(json!({
                        "role": "tool",
                        "tool_call_id": r.call_id,
                        "content": r.content,
                    })),
                    _ => None,
                })
                .collect();
            if !text.is_empty() || out.is_empty() {
                out.push(json!({"role": "user", "content": text}));
            }
            out
        }
    }
}

/// The Chat Completions body for one step (or, with no tools, for a plain reply).
pub fn request_body(model: &str, max_tokens: u32, request: &AgentRequest) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for turn in &request.turns {
        messages.extend(turn_messages(turn.speaker, &turn.blocks));
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_completion_tokens": max_tokens,
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
        body["tool_choice"] = json!(if request.allow_tools { "auto" } else { "none" });
    }
    body
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Maps a failed response onto the pool's error classes.
pub fn classify(status: u16, headers: &reqwest::header::HeaderMap, text: &str) -> ModelError {
    let (body, message) = exchange::error_message(text);
    let code = body["error"]["code"]
        .as_str()
        .or(body["error"]["type"].as_str());
    match status {
        // The plan's quota, not a rate: asking again (here or in a second) is useless.
        429 if code == Some("insufficient_quota") => ModelError::Rejected { status, message },
        429 => ModelError::RateLimited {
            retry_after: retry_after(headers),
        },
        503 => ModelError::Overloaded,
        408 | 409 | 500..=599 => ModelError::Server { status },
        _ => ModelError::Rejected { status, message },
    }
}

/// A 2xx body → the reply: the first choice's text and tool calls, and the usage.
pub fn parse_reply(body: &Value) -> Result<AgentReply, ModelError> {
    let Some(choice) = body["choices"].as_array().and_then(|c| c.first()) else {
        return Err(ModelError::BadResponse("no choices".into()));
    };
    let message = &choice["message"];
    let mut blocks = Vec::new();
    if let Some(t) = message["content"].as_str()
        && !t.is_empty()
    {
        blocks.push(Block::Text(t.to_string()));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (call["id"].as_str(), call["function"]["name"].as_str())
        else {
            return Err(ModelError::BadResponse(
                "tool call without an id or name".into(),
            ));
        };
        // `arguments` is a JSON document in a string, and the model writes it: it may not
        // parse. The brain's tools validate their input, so an unreadable one becomes an
        // empty object the tool refuses, rather than a failed turn.
        let input = call["function"]["arguments"]
            .as_str()
            .and_then(|a| serde_json::from_str::<Value>(a).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        blocks.push(Block::ToolCall(ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            input,
            signature: None,
        }));
    }
    if blocks.is_empty() {
        let why = choice["finish_reason"].as_str().unwrap_or("empty");
        let refusal = message["refusal"].as_str().unwrap_or("");
        return Err(ModelError::BadResponse(format!(
            "no content (finish_reason {why}) {refusal}"
        )));
    }
    let usage = &body["usage"];
    Ok(AgentReply {
        blocks,
        provider: "openai".into(),
        input_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
    })
}

#[async_trait]
impl ChatModel for OpenAiClient {
    fn name(&self) -> &str {
        "openai"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        exchange::complete_by_converse(self, &self.system, prompt).await
    }

    async fn converse(&self, request: &AgentRequest) -> Result<AgentReply, ModelError> {
        let body = request_body(&self.model, self.max_tokens, request);
        let request = self
            .http
            .post(&self.url)
            .bearer_auth(self.api_key.expose())
            .json(&body);
        let body: Value = exchange::send(request, classify).await?;
        parse_reply(&body)
    }
}

#[cfg(test)]
mod tests {
    use actors::conversation::{ToolResult, ToolSpec, Turn};
    use actors::ports::LeadId;
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;

    fn request(allow_tools: bool) -> AgentRequest {
        AgentRequest {
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
                        Block::Text("Let me book it.".into()),
                        Block::ToolCall(ToolCall {
                            id: "call_abc".into(),
                            name: "schedule_tour".into(),
                            input: json!({"building": "lakeview"}),
                            signature: None,
                        }),
                    ],
                },
                Turn {
                    speaker: Speaker::User,
                    blocks: vec![Block::ToolResult(ToolResult {
                        call_id: "call_abc".into(),
                        name: "schedule_tour".into(),
                        content: r#"{"status":"requested"}"#.into(),
                        is_error: false,
                    })],
                },
            ],
            tools: vec![ToolSpec {
                name: "schedule_tour",
                description: "book",
                parameters: json!({"type": "object", "properties": {}}),
            }],
            allow_tools,
        }
    }

    #[test]
    fn the_body_has_the_chat_completions_shape() {
        let body = request_body("gpt-4o-mini", 100, &request(true));
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["max_completion_tokens"], 100);
        let m = body["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(
            m[1],
            json!({"role": "user", "content": "tour lakeview sat 11"})
        );
        assert_eq!(m[2]["role"], "assistant");
        assert_eq!(m[2]["content"], "Let me book it.");
        assert_eq!(m[2]["tool_calls"][0]["id"], "call_abc");
        assert_eq!(m[2]["tool_calls"][0]["type"], "function");
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "schedule_tour");
        // Arguments travel as a JSON document in a string.
        assert_eq!(
            m[2]["tool_calls"][0]["function"]["arguments"],
            r#"{"building":"lakeview"}"#
        );
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "call_abc", "content": r#"{"status":"requested"}"#})
        );
        assert_eq!(body["tools"][0]["type"], "function");
        assert_eq!(body["tools"][0]["function"]["name"], "schedule_tour");
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(request_body("m", 1, &request(false))["tool_choice"], "none");
        let mut plain = request(true);
        plain.tools.clear();
        assert!(request_body("m", 1, &plain).get("tools").is_none());
    }

    #[test]
    fn a_reply_gives_text_tool_calls_and_usage() {
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "schedule_tour", "arguments": "{\"building\":\"lakeview\"}"}}]
            }}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}
        });
        let reply = parse_reply(&body).unwrap();
        assert_eq!(reply.provider, "openai");
        assert_eq!((reply.input_tokens, reply.output_tokens), (30, 9));
        let calls = reply.tool_calls();
        assert_eq!(calls[0].id, "call_1");
        assert_eq!(calls[0].input, json!({"building": "lakeview"}));
        let text = json!({"choices": [{"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]});
        assert_eq!(parse_reply(&text).unwrap().text(), "Hi!");
        let empty = json!({"choices": [{"message": {"role": "assistant", "content": ""}, "finish_reason": "length"}]});
        assert!(matches!(
            parse_reply(&empty),
            Err(ModelError::BadResponse(_))
        ));
    }

    #[test]
    fn errors_map_onto_the_pool_classes() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        let rate = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        let limited = classify(429, &h, rate);
        assert_eq!(
            limited,
            ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(limited.is_retryable());
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        assert!(!classify(429, &h, quota).is_retryable());
        let key = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let unauthorized = classify(401, &HeaderMap::new(), key);
        assert!(
            matches!(&unauthorized, ModelError::Rejected { status: 401, message } if message == "Incorrect API key provided")
        );
        assert!(!unauthorized.is_retryable());
        assert!(!classify(400, &HeaderMap::new(), "{}").is_retryable());
        assert_eq!(
            classify(503, &HeaderMap::new(), "{}"),
            ModelError::Overloaded
        );
        assert_eq!(
            classify(500, &HeaderMap::new(), "{}"),
            ModelError::Server { status: 500 }
        );
    }
}
