//! Gemini `generateContent` client (`POST {base}/v1beta/models/{model}:generateContent`,
//! header `x-goog-api-key`): the fallback brain after Anthropic.
//!
//! Owns: the request shape (`systemInstruction`, `contents` with `user`/`model` roles,
//! `tools[].functionDeclarations`, `toolConfig.functionCallingConfig.mode`, `functionCall`
//! parts echoed back with their `thoughtSignature`, `functionResponse` parts), reading text,
//! function calls and `usageMetadata` back, and mapping failures onto [`ModelError`] classes
//! (REFERENCE.md: 400 INVALID_ARGUMENT / 403 / 404 rejected, 429 RESOURCE_EXHAUSTED with a
//! RetryInfo `retryDelay`, 500 server, 503 UNAVAILABLE overloaded, 504 server).
//! Must not: retry (the pool decides) or log the API key. Thought parts are never read as
//! the reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actors::conversation::{AgentReply, AgentRequest, Block, Speaker, ToolCall};
use actors::ports::{ChatModel, Completion, ModelError, Prompt};
use async_trait::async_trait;
use serde_json::{Value, json};

use super::exchange;
use crate::config::Secret;

pub struct GeminiClient {
    http: reqwest::Client,
    url: String,
    api_key: Secret,
    model: String,
    system: String,
    max_tokens: u32,
    next_call: AtomicU64,
}

impl GeminiClient {
    pub fn new(
        base_url: &str,
        api_key: Secret,
        model: String,
        system: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(timeout)?,
            url: format!(
                "{}/v1beta/models/{}:generateContent",
                base_url.trim_end_matches('/'),
                model
            ),
            api_key,
            model,
            system,
            max_tokens: 1024,
            next_call: AtomicU64::new(1),
        })
    }
}

/// A function response must be a JSON object: our tool results are JSON objects already;
/// anything else is wrapped.
fn response_object(content: &str, is_error: bool) -> Value {
    match serde_json::from_str::<Value>(content) {
        Ok(v @ Value::Object(_)) => v,
        _ if is_error => json!({ "error": content }),
        _ => json!({ "result": content }),
    }
}

/// The generateContent body for one step (or, with no tools, for a plain reply).
pub fn request_body(model: &str, max_tokens: u32, request: &AgentRequest) -> Value {
    let contents: Vec<Value> = request
        .turns
        .iter()
        .map(|turn| {
            let role = match turn.speaker {
                Speaker::User => "user",
                Speaker::Model => "model",
            };
            let parts: Vec<Value> = turn
                .blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text(t) if t.trim().is_empty() => None,
                    Block::Text(t) => Some(json!({"text": t})),
                    Block::ToolCall(c) => {
                        let mut part = json!({"functionCall": {"name": c.name, "args": c.input}});
                        if let Some(sig) = &c.signature {
                            part["thoughtSignature"] = json!(sig);
                        }
                        Some(part)
                    }
                    Block::ToolResult(r) => Some(json!({
                        "functionResponse": {
                            "name": r.name,
                            "response": response_object(&r.content, r.is_error)
                        }
                    })),
                })
                .collect();
            json!({"role": role, "parts": parts})
        })
        .collect();
    let mut generation = json!({"maxOutputTokens": max_tokens});
    // 2.5 Flash thinks by default, which costs seconds and output tokens an SMS does not
    // need; it accepts a zero budget (Pro does not, so Pro keeps its default).
    if model.contains("flash") {
        generation["thinkingConfig"] = json!({"thinkingBudget": 0});
    }
    let mut body = json!({
        "systemInstruction": {"parts": [{"text": request.system}]},
        "contents": contents,
        "generationConfig": generation,
    });
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
        body["toolConfig"] = json!({
            "functionCallingConfig": {"mode": if request.allow_tools { "AUTO" } else { "NONE" }}
        });
    }
    body
}

/// "22s", "1.5s" → duration (google.protobuf.Duration's JSON form).
fn parse_delay(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// RetryInfo's `retryDelay` from an error body, else a `Retry-After` header.
fn retry_delay(body: &Value, headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| d["retryDelay"].as_str().and_then(parse_delay))
        .or_else(|| {
            headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
        })
}

pub fn classify(status: u16, headers: &reqwest::header::HeaderMap, text: &str) -> ModelError {
    let (body, message) = exchange::error_message(text);
    match status {
        429 => ModelError::RateLimited {
            retry_after: retry_delay(&body, headers),
        },
        503 => ModelError::Overloaded,
        408 | 500..=599 => ModelError::Server { status },
        _ => ModelError::Rejected { status, message },
    }
}

impl GeminiClient {
    fn parse_reply(&self, body: Value) -> Result<AgentReply, ModelError> {
        let Some(candidate) = body["candidates"].as_array().and_then(|c| c.first()) else {
            let why = body["promptFeedback"]["blockReason"]
                .as_str()
                .unwrap_or("no candidates");
            return Err(ModelError::BadResponse(format!("no answer: {why}")));
        };
        let mut blocks = Vec::new();
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if part["thought"].as_bool() == Some(true) {
                continue;
            }
            if let Some(t) = part["text"].as_str() {
                blocks.push(Block::Text(t.to_string()));
            } else if let Some(fc) = part.get("functionCall") {
                let Some(name) = fc["name"].as_str() else {
                    return Err(ModelError::BadResponse(
                        "functionCall without a name".into(),
                    ));
                };
                let n = self.next_call.fetch_add(1, Ordering::Relaxed);
                blocks.push(Block::ToolCall(ToolCall {
                    id: fc["id"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("gemini-call-{n}")),
                    name: name.to_string(),
                    input: fc.get("args").cloned().unwrap_or(json!({})),
                    signature: part["thoughtSignature"].as_str().map(str::to_string),
                }));
            }
        }
        if blocks.is_empty() {
            let why = candidate["finishReason"].as_str().unwrap_or("empty");
            return Err(ModelError::BadResponse(format!(
                "no content (finishReason {why})"
            )));
        }
        let usage = &body["usageMetadata"];
        Ok(AgentReply {
            blocks,
            provider: "gemini".into(),
            input_tokens: usage["promptTokenCount"].as_u64().unwrap_or(0),
            output_tokens: usage["candidatesTokenCount"].as_u64().unwrap_or(0)
                + usage["thoughtsTokenCount"].as_u64().unwrap_or(0),
        })
    }
}

#[async_trait]
impl ChatModel for GeminiClient {
    fn name(&self) -> &str {
        "gemini"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        exchange::complete_by_converse(self, &self.system, prompt).await
    }

    async fn converse(&self, request: &AgentRequest) -> Result<AgentReply, ModelError> {
        let body = request_body(&self.model, self.max_tokens, request);
        let request = self
            .http
            .post(&self.url)
            .header("x-goog-api-key", self.api_key.expose())
            .json(&body);
        let body: Value = exchange::send(request, classify).await?;
        self.parse_reply(body)
    }
}

#[cfg(test)]
mod tests {
    use actors::conversation::{ToolResult, ToolSpec, Turn};
    use actors::ports::LeadId;
    use reqwest::header::HeaderMap;

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
                    blocks: vec![Block::ToolCall(ToolCall {
                        id: "gemini-call-1".into(),
                        name: "schedule_tour".into(),
                        input: json!({"building": "lakeview", "when": "2026-12-05T11:00"}),
                        signature: Some("sig==".into()),
                    })],
                },
                Turn {
                    speaker: Speaker::User,
                    blocks: vec![Block::ToolResult(ToolResult {
                        call_id: "gemini-call-1".into(),
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
    fn the_body_has_the_documented_shape() {
        let body = request_body("gemini-2.5-flash", 100, &request(true));
        assert_eq!(body["systemInstruction"]["parts"][0]["text"], "be brief");
        assert_eq!(body["contents"][0]["role"], "user");
        assert_eq!(body["contents"][1]["role"], "model");
        assert_eq!(
            body["contents"][1]["parts"][0]["functionCall"]["name"],
            "schedule_tour"
        );
        assert_eq!(body["contents"][1]["parts"][0]["thoughtSignature"], "sig==");
        assert_eq!(
            body["contents"][2]["parts"][0]["functionResponse"]["response"]["status"],
            "requested"
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "schedule_tour"
        );
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
        assert_eq!(body["generationConfig"]["maxOutputTokens"], 100);
        let last = request_body("gemini-2.5-pro", 100, &request(false));
        assert_eq!(last["toolConfig"]["functionCallingConfig"]["mode"], "NONE");
        assert!(last["generationConfig"].get("thinkingConfig").is_none());
    }

    #[test]
    fn errors_map_onto_the_pool_classes() {
        let h = HeaderMap::new();
        let exhausted = r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#;
        assert_eq!(
            classify(429, &h, exhausted),
            ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(22))
            }
        );
        assert_eq!(classify(503, &h, "{}"), ModelError::Overloaded);
        assert_eq!(classify(504, &h, "{}"), ModelError::Server { status: 504 });
        let bad = r#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        assert!(matches!(
            classify(400, &h, bad),
            ModelError::Rejected { status: 400, message } if message == "Invalid JSON payload"
        ));
    }
}
