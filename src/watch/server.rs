//! The watch's own HTTP: `/health` and `/ready` for its Kubernetes probes, `/status` for
//! operators and tests.
//!
//! Owns: what "alive" and "ready" mean for a watchdog. Ready: its last check cycle ended
//! recently (within an interval and the longest a cycle can take) and Discord did not
//! refuse it at the last contact — a watch that cannot alert is not doing its job, and a
//! not-ready pod shows in `kubectl get pods`. Alive: the cycle loop is not wedged (three
//! intervals and the cycle budget, generously), so Kubernetes restarts a stuck watch.
//! `/status` is operator data: `OPS_TOKEN` as a bearer token, else loopback only.
//! Must not: depend on the service (the watch must stay up while the service is down).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

use super::WatchState;
use super::checks::CYCLE_BUDGET;
use super::incidents::Check;
use crate::http::ApiError;
use crate::http::health::{GIT_COMMIT, VERSION};

pub fn router(state: Arc<WatchState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .with_state(state)
}

fn ready_within(state: &WatchState) -> Duration {
    state.settings.interval + CYCLE_BUDGET + Duration::from_secs(15)
}

fn alive_within(state: &WatchState) -> Duration {
    state.settings.interval * 3 + CYCLE_BUDGET * 2
}

async fn health(State(state): State<Arc<WatchState>>) -> (StatusCode, Json<Value>) {
    let (_, since) = state.since_last_cycle();
    let alive = since <= alive_within(&state);
    let code = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": if alive { "ok" } else { "the check loop is stuck" },
            "role": "watch",
            "version": VERSION,
            "commit": GIT_COMMIT,
        })),
    )
}

async fn ready(State(state): State<Arc<WatchState>>) -> (StatusCode, Json<Value>) {
    let (cycled, since) = state.since_last_cycle();
    let recent = cycled && since <= ready_within(&state);
    let alerting = state.notifier.reachable() != Some(false);
    let ok = recent && alerting;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "ready": ok,
            "last_cycle_secs_ago": cycled.then_some(since.as_secs_f64()),
            "discord": if alerting { "ok" } else { "refused or unreachable at the last contact" },
        })),
    )
}

async fn status(
    State(state): State<Arc<WatchState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    crate::http::ops::authorize_token(
        state.settings.ops_token.as_ref().map(|t| t.expose()),
        &peer,
        &headers,
    )?;
    let incidents = state.incidents();
    let checks: serde_json::Map<String, Value> = Check::ALL
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                serde_json::to_value(incidents.status(*c)).unwrap_or(Value::Null),
            )
        })
        .collect();
    let (cycled, since) = state.since_last_cycle();
    Ok(Json(json!({
        "url": state.settings.url,
        "ops_url": state.settings.ops_url,
        "cycles": state.cycles(),
        "last_cycle_secs_ago": cycled.then_some(since.as_secs_f64()),
        "checks": checks,
        "alerts": state.notifier.status(),
        "discord_reachable": state.notifier.reachable(),
    })))
}
