//! `/ops/*`: read-only JSON for operators and the dev helper — a lead's conversation and
//! turns, recent alerts, and the live state of the actor tree, queue and model pool.
//!
//! Owns: access control for operator data: a bearer token (`OPS_TOKEN`) or the console's
//! session cookie when configured, otherwise loopback peers only. Must not: be public by default, or change anything.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use actors::ports::LeadId;
use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, is_local};
use crate::scheduler::JobContext;
use crate::scheduler::jobs::build_owner_report;
use crate::store::{HeartbeatView, JobView, MessageView, TurnView};

/// OPS_TOKEN as a bearer token when set, or the `/ops` page's session cookie (the
/// console's actions post to these very endpoints with it; the ops guard has checked same
/// origin, JSON and the CSRF token before); loopback peers only when OPS_TOKEN is not set.
/// Every operator endpoint goes through it (`/ops/*`, `/metrics`, the `/ops` page's header
/// path).
pub fn authorize(state: &AppState, peer: &SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    match authorize_token(
        state.settings.ops_token.as_ref().map(|t| t.expose()),
        peer,
        headers,
    ) {
        Err(_) if super::ops_page::has_page_session(state, headers) => Ok(()),
        other => other,
    }
}

/// The rule of [`authorize`] for any process holding an `OPS_TOKEN` (the watch's `/status`
/// too).
pub fn authorize_token(
    token: Option<&str>,
    peer: &SocketAddr,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    match token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                Ok(())
            } else {
                Err(ApiError::Unauthorized(
                    "a valid OPS_TOKEN bearer token is required".into(),
                ))
            }
        }
        None if is_local(peer) => Ok(()),
        None => Err(ApiError::Forbidden(
            "OPS_TOKEN is not set: /ops answers loopback only".into(),
        )),
    }
}

pub async fn messages(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = LeadId::new(phone);
    let list = state
        .store
        .conversation(&lead, 200)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(list))
}

pub async fn turns(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<Json<Vec<TurnView>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let list = state
        .store
        .turns(&LeadId::new(phone))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(list))
}

pub async fn alerts(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &peer, &headers)?;
    Ok(Json(json!(state.alerts.recent())))
}

pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let worker = match &state.worker {
        Some(w) => {
            let pool = w.pool.stats();
            json!({
                "active_leads": w.registry.active_leads(),
                "llm": {
                    "providers": w.pool.provider_names(),
                    "concurrency": w.pool.config().concurrency,
                    "in_flight": pool.in_flight.load(Ordering::SeqCst),
                    "max_in_flight": pool.max_in_flight.load(Ordering::SeqCst),
                    "calls": pool.calls.load(Ordering::SeqCst),
                    "fallbacks": pool.fallbacks.load(Ordering::SeqCst),
                    "hard_timeouts": pool.hard_timeouts.load(Ordering::SeqCst),
                    "refused_by_breaker": pool.refused_by_breaker.load(Ordering::SeqCst),
                    "breakers": w.pool.breaker_states().into_iter()
                        .map(|(name, state)| (name, state.as_str()))
                        .collect::<std::collections::BTreeMap<_, _>>(),
                },
                "supervisor": w.registry.snapshot().await.unwrap_or_default(),
            })
        }
        None => Value::Null,
    };
    // From the store, so any role shows every worker's parks; `null` while the store does
    // not answer (the rest of the status is still worth reading then).
    let parked = super::parks::parked_now(&state).await.ok();
    let takeovers = super::takeovers::takeovers_now(&state).await.ok();
    Ok(Json(json!({
        "role": state.role.name(),
        "queue_depth": state.queue.depth(),
        "parked": parked,
        "takeovers": takeovers,
        "worker": worker,
        "roots": state.roots.status(),
    })))
}

/// Every scheduled job: schedule, next fire time, last run, lateness and outcome (written by
/// the live schedulers into the store, so any role can answer). `inspect scheduled` reads
/// this.
pub async fn scheduled(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<JobView>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let jobs = state
        .store
        .scheduled_jobs()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(jobs))
}

/// One heartbeat as `/ops/heartbeats` answers it.
#[derive(serde::Serialize)]
pub struct HeartbeatAnswer {
    #[serde(flatten)]
    beat: HeartbeatView,
    /// `HEARTBEAT_SECS` (in ms) as this process has it: how often the writers beat (every
    /// role reads the same configuration), so an outside observer (`lead-agent watch`)
    /// judges staleness by the service's own period instead of a guess.
    heartbeat_every_ms: u64,
}

/// Heartbeats of worker and scheduler processes, newest first.
pub async fn heartbeats(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<HeartbeatAnswer>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let beats = state
        .store
        .heartbeats()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let every = state.settings.scheduler.heartbeat_every.as_millis() as u64;
    Ok(Json(
        beats
            .into_iter()
            .map(|beat| HeartbeatAnswer {
                beat,
                heartbeat_every_ms: every,
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
pub struct ReportQuery {
    /// `true`: the last 24 hours as of now instead of the last stored daily report.
    #[serde(default)]
    live: bool,
}

/// The owner's daily report: the last one the scheduler stored, or (`?live=true`) the last
/// 24 hours as of now. 404 before the first report when not live.
pub async fn report(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    if q.live {
        let ctx = JobContext {
            settings: state.settings.clone(),
            store: state.store.clone(),
            queue: state.queue.clone(),
            alerts: state.alerts.clone(),
            sla: state.sla.clone(),
            instance: "ops".into(),
            crm_texts: None,
            doc_intake: None,
        };
        let report = build_owner_report(&ctx, chrono::Utc::now())
            .await
            .map_err(|e| ApiError::Unavailable(format!("{e:#}")))?;
        return Ok(Json(report).into_response());
    }
    match state
        .store
        .latest_report()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
    {
        Some((_, body)) => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
        None => Ok((
            axum::http::StatusCode::NOT_FOUND,
            "no daily report yet; /ops/report?live=true shows the last 24 hours",
        )
            .into_response()),
    }
}
