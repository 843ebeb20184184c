//! A fake Anthropic Messages API: answers "Reply to: <last user message>" after a set
//! latency (± a uniform jitter), records every request, the most calls at once and any
//! overlap of one lead's calls; hangs on HANG and answers 529 on OVERLOAD.
//!
//! The load bench starts it with [`FakeAnthropic::start_bench`]: on a fixed address, with
//! jitter, and without recording requests (the simulator's memory must not grow with the
//! run); it reads [`FakeAnthropic::calls`] and [`FakeAnthropic::mean_call_ms`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};

use super::serve_on;

#[derive(Default)]
pub struct FakeLlmState {
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    per_user: Mutex<HashMap<String, usize>>,
    same_user_overlap: AtomicBool,
    latency_ms: AtomicUsize,
    jitter_ms: u64,
    /// Off for the bench: requests are counted, not kept.
    record: bool,
    calls: AtomicU64,
    /// Sum over calls of request received → answer built, in microseconds.
    busy_micros: AtomicU64,
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
    /// On a loopback port of its own; every request recorded.
    pub async fn start(latency: Duration) -> Self {
        let state = FakeLlmState {
            record: true,
            ..FakeLlmState::default()
        };
        Self::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), latency, state)
            .await
            .expect("a loopback port is free")
    }

    /// For the load bench: on `addr`, each call taking `latency` ± `jitter` (uniform, so
    /// the mean stays `latency`), requests counted but not kept.
    pub async fn start_bench(
        addr: SocketAddr,
        latency: Duration,
        jitter: Duration,
    ) -> std::io::Result<Self> {
        let state = FakeLlmState {
            jitter_ms: jitter.as_millis() as u64,
            ..FakeLlmState::default()
        };
        Self::start_with(addr, latency, state).await
    }

    async fn start_with(
        addr: SocketAddr,
        latency: Duration,
        state: FakeLlmState,
    ) -> std::io::Result<Self> {
        state
            .latency_ms
            .store(latency.as_millis() as usize, Ordering::SeqCst);
        let state = Arc::new(state);
        let router = Router::new()
            .route("/v1/messages", post(anthropic_messages))
            .route("/v1/models", axum::routing::get(anthropic_models))
            .with_state(state.clone());
        let bound = serve_on(addr, router).await?;
        Ok(Self {
            url: format!("http://{bound}"),
            state,
        })
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The mean time a call actually took here: on a loaded machine the sleep overshoots
    /// the latency, and a drain time can only be judged against the latency the model
    /// really had.
    pub fn mean_call_ms(&self) -> Option<f64> {
        let calls = self.calls();
        (calls > 0)
            .then(|| self.state.busy_micros.load(Ordering::SeqCst) as f64 / calls as f64 / 1000.0)
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
/// The key the models list refuses (401 `authentication_error`, as Anthropic answers a
/// revoked key): tests of the self-check's probe use it.
pub const REVOKED_KEY: &str = "revoked-key";

/// List Models (`GET /v1/models`): the documented shape, one model; 401 without a key, or
/// with [`REVOKED_KEY`].
async fn anthropic_models(headers: HeaderMap) -> axum::response::Response {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key.is_none_or(|k| k.is_empty() || k == REVOKED_KEY)
        || headers.get("anthropic-version").is_none()
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response();
    }
    Json(serde_json::json!({
        "data": [{"type": "model", "id": "claude-test", "display_name": "Claude (fake)", "created_at": "2025-01-01T00:00:00Z"}],
        "has_more": false, "first_id": "claude-test", "last_id": "claude-test"
    }))
    .into_response()
}

async fn anthropic_messages(
    State(state): State<Arc<FakeLlmState>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> impl IntoResponse {
    let user = request["metadata"]["user_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let started = Instant::now();
    state.calls.fetch_add(1, Ordering::SeqCst);
    if state.record {
        state
            .requests
            .lock()
            .unwrap()
            .push((headers, request.clone()));
    }
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
    let delay = jittered(
        state.latency_ms.load(Ordering::SeqCst) as u64,
        state.jitter_ms,
    );
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if last.contains("OVERLOAD") {
        return (
            StatusCode::from_u16(529).unwrap(),
            Json(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        );
    }
    state
        .busy_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
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

/// `latency` plus a uniform offset in `[-jitter, +jitter]`, never below zero: the mean
/// stays `latency`, so the bench's ideal drain time N·L/C still holds on average.
fn jittered(latency_ms: u64, jitter_ms: u64) -> Duration {
    if jitter_ms == 0 {
        return Duration::from_millis(latency_ms);
    }
    let offset = rand::rng().random_range(-(jitter_ms as i64)..=(jitter_ms as i64));
    Duration::from_millis((latency_ms as i64 + offset).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds_and_never_goes_negative() {
        for _ in 0..1000 {
            let d = jittered(100, 30).as_millis();
            assert!((70..=130).contains(&d), "{d}");
            let d = jittered(5, 50).as_millis();
            assert!(d <= 55, "{d}");
        }
        assert_eq!(jittered(100, 0), Duration::from_millis(100));
    }
}
