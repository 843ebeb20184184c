//! `/ops` routes of document intake: a lead's documents arrived (opens the doc review SLA
//! and its task, and alerts REQUIREMENTS_NOTE with the review buttons), and an operator's
//! review of them (resolves it; complete documents open the application decision) — the
//! same [`review`] the Discord button calls. The mailbox intake (`crate::doc_intake`, the
//! scheduler's `doc_intake` job) calls the same
//! [`actors::sla::SlaEvents::documents_arrived`].
//!
//! Owns: validating the request. Must not: decide what a review opens (that is
//! `actors::sla::events`), or answer anyone [`super::ops::authorize`] refuses.

use std::net::SocketAddr;

use actors::ports::LeadId;
use actors::sla::{Opened, SlaState, SlaView};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::ops::authorize;
use super::sla::{lead_from, unavailable};
use super::{ApiError, AppState};

const MAX_NOTE_CHARS: usize = 2000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Arrived {
    /// What arrived ("pay stubs, ID"), for the task's notes.
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reviewed {
    /// True: the documents are complete (the application decision opens).
    complete: bool,
}

/// `POST /ops/leads/{phone}/documents` with `{"note"?}` (or an empty body): 201 with the
/// new doc review SLA and its task id, 200 with the open one unchanged.
pub async fn arrived(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req: Arrived = if body.iter().all(u8::is_ascii_whitespace) {
        Arrived::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("body must be JSON {{\"note\"?}}: {e}")))?
    };
    let note = req.note.unwrap_or_default();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "note must be at most {MAX_NOTE_CHARS} characters"
        )));
    }
    let now = Utc::now();
    let opened = state
        .sla
        .events()
        .documents_arrived(&lead, now, &note)
        .await
        .map_err(unavailable)?;
    let (status, created, sla) = match opened {
        Opened::Created(s) => (StatusCode::CREATED, true, s),
        Opened::AlreadyOpen(s) => (StatusCode::OK, false, s),
    };
    Ok((
        status,
        Json(json!({ "created": created, "sla": SlaView::at(sla, now) })),
    )
        .into_response())
}

/// `POST /ops/leads/{phone}/documents/review` with `{"complete": bool}`: resolves the doc
/// review; when complete, opens the application decision (in `application_decision`).
/// 404 when the lead has no doc review.
pub async fn reviewed(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req: Reviewed = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"complete\": true|false}}: {e}"
        ))
    })?;
    let now = Utc::now();
    match review(&state, &lead, now, req.complete, "an operator (/ops)").await? {
        None => Ok((
            StatusCode::NOT_FOUND,
            format!("{lead} has no doc_review SLA"),
        )
            .into_response()),
        Some((review, decision)) => {
            let decision = decision.map(|o| match o {
                Opened::Created(s) | Opened::AlreadyOpen(s) => SlaView::at(s, now),
            });
            Ok(Json(json!({
                "doc_review": SlaView::at(review, now),
                "application_decision": decision,
            }))
            .into_response())
        }
    }
}

/// The review itself, for both its doors (this endpoint and the Discord button in
/// `super::discord`): resolves the lead's doc review and, when complete, opens the
/// application decision. `None`: the lead has no doc review. `by`: who, for the log.
pub(super) async fn review(
    state: &AppState,
    lead: &LeadId,
    now: DateTime<Utc>,
    complete: bool,
    by: &str,
) -> Result<Option<(SlaState, Option<Opened>)>, ApiError> {
    let resolved = state
        .sla
        .events()
        .doc_review_resolved(lead, now, complete)
        .await
        .map_err(unavailable)?;
    if resolved.is_some() {
        tracing::info!(lead = %lead.log(), complete, by, "doc review resolved");
    }
    Ok(resolved)
}
