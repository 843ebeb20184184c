//! `/health` (liveness: the process answers) and `/ready` (this process can do its role's
//! work, every actor under the root supervisor runs, and we are not shutting down).
//!
//! Readiness is per role. A web process is ready while it can take a webhook durably: the
//! store answers, or a fallback that keeps webhooks until it does (RabbitMQ's inbound
//! queue, the journal) is up — so a database outage does not take every web pod out of the
//! load balancer, where Twilio's requests would fail to connect instead of being kept. A
//! worker or scheduler needs the store and the queue.
//! Must not: make /health depend on anything outside the process — a database blip must
//! not get every pod restarted by its liveness probe.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::role::Role;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("LEAD_AGENT_GIT_COMMIT");

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": VERSION, "commit": GIT_COMMIT }))
}

pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let accepting = state.accepting.load(Ordering::SeqCst);
    let store = state.store.ping().await;
    let queue = state.queue.is_ready().await;
    // A root child that is down (between its death and its restart, or retried because it
    // cannot start) is named here, so a probe or a person sees which part is missing.
    let roots = state.roots.status();
    let actors: serde_json::Map<String, Value> = roots
        .iter()
        .map(|c| {
            let s = match (c.up, &c.last_failure) {
                (true, _) => "up".to_string(),
                (false, Some(why)) => format!("down: {why}"),
                (false, None) => "down".to_string(),
            };
            (c.name.to_string(), Value::String(s))
        })
        .collect();
    let actors_down: Vec<&str> = roots.iter().filter(|c| !c.up).map(|c| c.name).collect();
    let fallback = if store.is_err() {
        state.intake.ready_fallback().await
    } else {
        None
    };
    let inbound = match (&store, fallback) {
        (Ok(()), _) => "store".to_string(),
        (Err(_), Some(name)) => format!("fallback: {name}"),
        (Err(_), None) => "unavailable".to_string(),
    };
    let ok = accepting
        && actors_down.is_empty()
        && match state.role {
            // The webhook stores, or keeps the message for later; a wake-up the queue
            // cannot take is deferred (`crate::inbound::wake`).
            Role::Web => store.is_ok() || fallback.is_some(),
            Role::All => (store.is_ok() && queue) || fallback.is_some(),
            Role::Worker | Role::Scheduler => store.is_ok() && queue,
        };
    let body = json!({
        "ready": ok,
        "role": state.role.name(),
        "accepting": accepting,
        "store": store.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
        "queue": if queue { "ok" } else { "unavailable" },
        "inbound": inbound,
        "deferred_wakes": state.intake.deferred_wakes(),
        "actors": actors,
        "actors_down": actors_down,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
