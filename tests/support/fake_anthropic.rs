//! A fake Anthropic Messages API: answers "Reply to: <last user message>" after a set
//! latency, records every request, the most calls at once and any overlap of one lead's
//! calls; hangs on HANG and answers 529 on OVERLOAD.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::serve;

#[derive(Default)]
pub struct FakeLlmState {
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    per_user: Mutex<HashMap<String, usize>>,
    same_user_overlap: AtomicBool,
    latency_ms: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeAnthropic {
    pub url: String,
    state: Arc<FakeLlmState>,
}

struct InFlight(Arc<FakeLlmState>, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(n) = self.0.per_user.lock().unwrap().get_mut(&self.1) {
            *n -= 1;
        }
    }
}

impl FakeAnthropic {
    pub async fn start(latency: Duration) -> Self {
        let state = Arc::new(FakeLlmState::default());
        state
            .latency_ms
            .store(latency.as_millis() as usize, Ordering::SeqCst);
        let router = Router::new()
            .route("/v1/messages", post(anthropic_messages))
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn saw_same_lead_overlap(&self) -> bool {
        self.state.same_user_overlap.load(Ordering::SeqCst)
    }
}

/// Answers "Reply to: <last user message>"; hangs (until the client gives up) when that
/// message contains HANG; answers 529 when it contains OVERLOAD.
async fn anthropic_messages(
    State(state): State<Arc<FakeLlmState>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> impl IntoResponse {
    let user = request["metadata"]["user_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    state
        .requests
        .lock()
        .unwrap()
        .push((headers, request.clone()));
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    {
        let mut per = state.per_user.lock().unwrap();
        let n = per.entry(user.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            state.same_user_overlap.store(true, Ordering::SeqCst);
        }
    }
    let _guard = InFlight(state.clone(), user);
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if last.contains("HANG") {
        std::future::pending::<()>().await;
    }
    let latency = state.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency as u64)).await;
    }
    if last.contains("OVERLOAD") {
        return (
            StatusCode::from_u16(529).unwrap(),
            Json(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        );
    }
    (
        StatusCode::OK,
        Json(json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [{"type": "text", "text": format!("Reply to: {last}")}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5}
        })),
    )
}
