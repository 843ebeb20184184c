//! `GET /ops/parked` and `POST /ops/leads/{phone}/unpark`: who is parked (reply cap,
//! restarts), and the operator's way to end a park before it expires.
//!
//! Owns: reading the parks in force from the store (every worker's view, not this
//! process's) and the unpark: the park ends in the store, then the lead is woken (one
//! wake-up on the work queue) so the messages that arrived while it was parked get one turn.
//! The reply caps count from the unpark (`actors::park`), so that turn is not parked again.
//! Must not: be reachable around the ops guard (JSON body, same origin: `ops_guard.rs`, in
//! front of every `/ops` POST) or authorization, or touch the lead's messages.

use std::net::SocketAddr;

use actors::park::{Park, ParkStore};
use actors::ports::{LeadId, WakeLead};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ops::authorize;
use super::{ApiError, AppState};

/// The parks in force now, oldest first; `/ops/status` carries the same list.
pub async fn parked_now(state: &AppState) -> Result<Vec<Park>, ApiError> {
    state
        .store
        .parked(chrono::Utc::now())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<Park>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    Ok(Json(parked_now(&state).await?))
}

/// 200 with the park that ended, 404 when the lead has none in force. The body is not read
/// (the guard has checked it is declared JSON); `{}` will do.
pub async fn unpark(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = LeadId::new(phone);
    let ended = state
        .store
        .unpark(&lead, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let Some(park) = ended else {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "lead": lead, "error": "this lead is not parked" })),
        )
            .into_response());
    };
    tracing::info!(lead = %lead.log(), reason = park.reason.label(), "lead unparked by an operator");
    // The wake-up is what gives the waiting messages their turn. If the queue refuses it,
    // the unpark still stands: the stale-work sweep (OUTBOX_SWEEP_SECS) wakes any lead whose
    // pending messages outlived their wake-up.
    let woken = match state.queue.publish(WakeLead { lead: lead.clone() }).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(lead = %lead.log(), error = %e, "unparked lead not woken; the sweep will");
            false
        }
    };
    Ok(Json(json!({ "lead": lead, "unparked": park, "woken": woken })).into_response())
}
