//! `/ops` routes of the SLA engine: open an SLA for a lead (with its task when no ticket is
//! given), resolve it, and list open SLAs and recent breaches (the /ops page and the daily
//! owner report read the list).
//!
//! Owns: validating what an operator or another system sends (phone, kind, ticket id,
//! start time) with a clear 4xx for each mistake. Must not: run the rules or the sweep
//! (the scheduler does), or answer anyone [`super::ops::authorize`] refuses.

use std::net::SocketAddr;

use actors::ports::LeadId;
use actors::sla::{Opened, SlaKind, SlaStore, SlaView};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::ops::authorize;
use super::{ApiError, AppState};
use crate::config::is_e164;

/// A start time this far ahead of our clock is a mistake, not clock skew.
const MAX_FUTURE_START: Duration = Duration::minutes(5);
const MAX_TICKET_ID_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSla {
    kind: String,
    #[serde(default)]
    ticket_id: Option<String>,
    /// RFC 3339; absent: now.
    #[serde(default)]
    started_at: Option<String>,
}

fn kind_from(s: &str) -> Result<SlaKind, ApiError> {
    SlaKind::parse(s).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown SLA kind {s:?}; expected one of: {}",
            SlaKind::ALL.map(SlaKind::as_str).join(", ")
        ))
    })
}

pub(super) fn lead_from(phone: &str) -> Result<LeadId, ApiError> {
    if is_e164(phone) {
        Ok(LeadId::new(phone))
    } else {
        Err(ApiError::BadRequest(format!(
            "{phone:?} is not an E.164 phone number like +13125550123"
        )))
    }
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// `POST /ops/leads/{phone}/sla` with `{"kind", "ticket_id"?, "started_at"?}`: 201 with the
/// new SLA, or 200 with the open one unchanged (opening twice is idempotent).
pub async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req: OpenSla = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"kind\", \"ticket_id\"?, \"started_at\"?}}: {e}"
        ))
    })?;
    let kind = kind_from(&req.kind)?;
    let ticket_id = req.ticket_id.unwrap_or_default().trim().to_string();
    if ticket_id.chars().count() > MAX_TICKET_ID_CHARS || ticket_id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "ticket_id must be at most {MAX_TICKET_ID_CHARS} printable characters"
        )));
    }
    let now = Utc::now();
    let started_at = match req.started_at.as_deref() {
        None => now,
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "started_at {s:?} is not an RFC 3339 time (e.g. 2026-03-02T09:00:00Z): {e}"
                ))
            })?
            .with_timezone(&Utc),
    };
    if started_at > now + MAX_FUTURE_START {
        return Err(ApiError::BadRequest(format!(
            "started_at {} is in the future",
            started_at.to_rfc3339()
        )));
    }
    // Through the events path, so an SLA opened without a ticket gets its task (created
    // before the answer, which carries its id), as one opened by an event does.
    let opened = state
        .sla
        .events()
        .open(
            &lead,
            kind,
            started_at,
            &ticket_id,
            &format!("Opened by an operator through /ops for {lead}."),
        )
        .await
        .map_err(unavailable)?;
    let (status, created, sla) = match opened {
        Opened::Created(s) => {
            tracing::info!(lead = %lead.log(), sla = %kind, ticket = %s.ticket_id, "SLA opened");
            (StatusCode::CREATED, true, s)
        }
        Opened::AlreadyOpen(s) => (StatusCode::OK, false, s),
    };
    Ok((
        status,
        Json(json!({ "created": created, "sla": SlaView::at(sla, now) })),
    )
        .into_response())
}

/// `POST /ops/leads/{phone}/sla/{kind}/resolve`: 200 with the resolved SLA (resolving again
/// keeps the first time), 404 when the lead has no SLA of that kind.
pub async fn resolve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((phone, kind)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let kind = kind_from(&kind)?;
    let now = Utc::now();
    match state
        .store
        .resolve_sla(&lead, kind, now)
        .await
        .map_err(unavailable)?
    {
        Some(s) => {
            tracing::info!(lead = %lead.log(), sla = %kind, "SLA resolved");
            Ok(Json(json!({ "sla": SlaView::at(s, now) })).into_response())
        }
        None => Ok((StatusCode::NOT_FOUND, format!("{lead} has no {kind} SLA")).into_response()),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// RFC 3339: breaches at or after it; default the last 24 hours.
    since: Option<String>,
}

/// `GET /ops/sla[?since=RFC3339]`: every open SLA (with its deadline and whether it is
/// overdue) and the breaches since `since` (default: the last 24 h), resolved or not.
pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &peer, &headers)?;
    let now = Utc::now();
    let since = match q.since.as_deref() {
        None => now - Duration::hours(24),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| ApiError::BadRequest(format!("since {s:?} is not an RFC 3339 time: {e}")))?
            .with_timezone(&Utc),
    };
    let open: Vec<SlaView> = state
        .store
        .open_slas()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|s| SlaView::at(s, now))
        .collect();
    let breaches: Vec<SlaView> = state
        .store
        .breaches_since(since)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|s| SlaView::at(s, now))
        .collect();
    Ok(Json(json!({
        "now": now,
        "breaches_since": since,
        "open": open,
        "breaches": breaches,
    })))
}
