//! `/health` (liveness: the process answers) and `/ready` (the store and queue answer, and
//! we are not shutting down).
//!
//! Must not: make /health depend on anything outside the process — a database blip must
//! not get every pod restarted by its liveness probe.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("LEAD_AGENT_GIT_COMMIT");

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": VERSION, "commit": GIT_COMMIT }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let accepting = state.accepting.load(Ordering::SeqCst);
    let store = state.store.ping().await;
    let queue = state.queue.is_ready().await;
    let ok = accepting && store.is_ok() && queue;
    let body = json!({
        "ready": ok,
        "accepting": accepting,
        "store": store.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "queue": if queue { "ok" } else { "unavailable" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
