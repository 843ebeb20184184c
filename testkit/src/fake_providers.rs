//! Fake Anthropic, Gemini and OpenAI servers for the model-chain and brain tests: each answers with
//! scripted responses in the providers' documented shapes (success, tool use / function
//! call, and the error bodies and headers of REFERENCE.md), then with a default text reply,
//! and records every request with the instant it arrived.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::serve;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Canned {
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: vec![("request-id", "req_fake".into())],
            body,
        }
    }
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Anthropic,
    Gemini,
    OpenAi,
}

struct FakeState {
    kind: Kind,
    script: Mutex<VecDeque<Canned>>,
    /// Answered when the script is empty; `None` = the default text reply.
    fallback: Mutex<Option<Canned>>,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    state: Arc<FakeState>,
}

impl FakeProvider {
    async fn start(kind: Kind) -> Self {
        let state = Arc::new(FakeState {
            kind,
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/v1/messages", post(anthropic))
            .route("/v1beta/models/{action}", post(gemini))
            .route("/v1/chat/completions", post(openai))
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }

    pub async fn anthropic() -> Self {
        Self::start(Kind::Anthropic).await
    }

    pub async fn gemini() -> Self {
        Self::start(Kind::Gemini).await
    }

    /// OpenAI's Chat Completions (`POST /v1/chat/completions`).
    pub async fn openai() -> Self {
        Self::start(Kind::OpenAi).await
    }

    /// Answers these, in order, before anything else.
    pub fn script(&self, answers: Vec<Canned>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Answers this whenever the script is empty (`None`: the default text reply).
    pub fn always(&self, answer: Option<Canned>) {
        *self.state.fallback.lock().unwrap() = answer;
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
}

fn respond(state: &FakeState, default: Value) -> Response {
    let canned = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.fallback.lock().unwrap().clone())
        .unwrap_or_else(|| Canned::ok(default));
    let mut headers = HeaderMap::new();
    for (k, v) in &canned.headers {
        headers.insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    (
        StatusCode::from_u16(canned.status).unwrap(),
        headers,
        axum::Json(canned.body),
    )
        .into_response()
}

async fn anthropic(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    assert!(state.kind == Kind::Anthropic);
    let last = last_user_text_anthropic(&body);
    state.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        path: "/v1/messages".into(),
        headers,
        body,
    });
    respond(&state, anthropic_text(&format!("Anthropic: {last}")))
}

async fn gemini(
    State(state): State<Arc<FakeState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    assert!(state.kind == Kind::Gemini);
    let last = body["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["parts"][0]["text"].as_str())
        .unwrap_or("")
        .to_string();
    state.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        path: format!("/v1beta/models/{action}"),
        headers,
        body,
    });
    respond(&state, gemini_text(&format!("Gemini: {last}")))
}

async fn openai(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    assert!(state.kind == Kind::OpenAi);
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    state.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        path: "/v1/chat/completions".into(),
        headers,
        body,
    });
    respond(&state, openai_text(&format!("OpenAI: {last}")))
}

fn last_user_text_anthropic(body: &Value) -> String {
    let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
        return String::new();
    };
    match &last["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

// ---- Anthropic shapes (Messages API) ----

pub fn anthropic_text(text: &str) -> Value {
    json!({
        "id": "msg_01fake", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 6}
    })
}

pub fn anthropic_tool_use(id: &str, name: &str, input: Value) -> Value {
    json!({
        "id": "msg_01tool", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [
            {"type": "text", "text": "Let me set that up."},
            {"type": "tool_use", "id": id, "name": name, "input": input}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 30, "output_tokens": 20}
    })
}

pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Canned {
    Canned {
        status,
        headers: vec![("request-id", "req_fake_err".into())],
        body: json!({"type": "error", "error": {"type": kind, "message": message}}),
    }
}

// ---- Gemini shapes (generateContent) ----

pub fn gemini_text(text: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 5, "totalTokenCount": 16},
        "modelVersion": "gemini-2.5-flash"
    })
}

pub fn gemini_function_call(name: &str, args: Value, signature: &str) -> Value {
    json!({
        "candidates": [{
            "content": {"parts": [{"functionCall": {"name": name, "args": args}, "thoughtSignature": signature}], "role": "model"},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 9, "totalTokenCount": 49},
        "modelVersion": "gemini-2.5-flash"
    })
}

pub fn gemini_error(code: u16, status: &str, message: &str, retry_delay: Option<&str>) -> Canned {
    let mut details = Vec::new();
    if let Some(d) = retry_delay {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": d}));
    }
    Canned {
        status: code,
        headers: vec![],
        body: json!({"error": {"code": code, "message": message, "status": status, "details": details}}),
    }
}

// ---- OpenAI shapes (Chat Completions) ----

pub fn openai_text(text: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1764700000,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20}
    })
}

pub fn openai_tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({
        "id": "chatcmpl-tool", "object": "chat.completion", "created": 1764700000,
        "model": "gpt-4o-mini",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": id, "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()}}]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    })
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(status: u16, kind: &str, code: &str, message: &str) -> Canned {
    Canned {
        status,
        headers: vec![],
        body: json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    }
}
