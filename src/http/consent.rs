//! `GET /ops/leads/{phone}/consent` and `POST /ops/leads/{phone}/consent`: the lead's consent
//! ledger for an operator answering a complaint, and the operator's revoke or restore (the
//! lead asked by phone, by mail, in person).
//!
//! Owns: validating the phone and the action (a clear 400 for each mistake, 404 for a
//! phone that never wrote to us) and shaping the answer: the status every send checks
//! (`leads.opted_out`, since when) and the events, newest first.
//! Must not: be reachable around the ops guard (JSON body, same origin: `ops_guard.rs`, in
//! front of every `/ops` POST) or authorization, or send the lead anything: an operator's
//! revoke is not confirmed by SMS (the lead did not text it), and a restore sends nothing
//! until the lead writes or a followup falls due.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ops::authorize;
use super::sla::{lead_from, unavailable};
use super::{ApiError, AppState};

/// A note is the ledger's record of why; a page of text is not a note.
const MAX_NOTE_CHARS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentAction {
    action: String,
    note: String,
}

fn not_found(lead: &actors::ports::LeadId) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "lead": lead, "error": "no lead with this phone has written to us" })),
    )
        .into_response()
}

/// 200 with `{lead, status: {opted_out, since}, events: [...]}` (newest first); 400 for a
/// phone that is not E.164; 404 for a lead we do not know.
pub async fn show(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let Some(status) = state
        .store
        .consent_status(&lead)
        .await
        .map_err(unavailable)?
    else {
        return Ok(not_found(&lead));
    };
    let events = state
        .store
        .consent_events(&lead)
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "lead": lead, "status": status, "events": events })).into_response())
}

/// `{"action": "revoke"|"restore", "note": "..."}`: 200 with the event recorded and the
/// status after it. A revoke sets `leads.opted_out` (and cancels the pending followup) as
/// STOP does; a restore clears it as START does.
pub async fn act(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req: ConsentAction = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"action\": \"revoke\"|\"restore\", \"note\": \"...\"}}: {e}"
        ))
    })?;
    let grants = match req.action.as_str() {
        "revoke" => false,
        "restore" => true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown action {other:?}; expected \"revoke\" or \"restore\""
            )));
        }
    };
    let note = req.note.trim();
    if note.is_empty() {
        return Err(ApiError::BadRequest(
            "note must say why (e.g. \"the lead asked by phone\"): it is the ledger's record"
                .into(),
        ));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "note must be at most {MAX_NOTE_CHARS} characters"
        )));
    }
    let Some(event) = state
        .store
        .record_operator_consent(&lead, grants, note)
        .await
        .map_err(unavailable)?
    else {
        return Ok(not_found(&lead));
    };
    tracing::info!(lead = %lead.log(), action = %req.action, "consent changed by an operator");
    let status = state
        .store
        .consent_status(&lead)
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "lead": lead, "event": event, "status": status })).into_response())
}
