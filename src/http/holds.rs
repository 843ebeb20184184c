//! `POST /ops/holds/{id}/decide`: a person's decision on a held reply (HITL) from `/ops` —
//! the console's Approve / Edit / Reject buttons and any script. The same decision as the
//! Discord buttons and edit modal (`super::discord`): both call [`crate::hitl::decide`],
//! which records it once and wakes the lead so its actor sends the approved text.
//!
//! Owns: reading `{"decision": "approve"|"edit"|"reject", "operator": "name", "text"?}`
//! and the answers: 200 with what the decision did, 400 for a body that is not that (an
//! edit needs a non-empty `text`, the others none), 404 for a hold that does not exist,
//! 409 for one already decided (naming how).
//! Must not: be reachable around the ops guard or authorization, or send an SMS itself.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ops::authorize;
use super::{ApiError, AppState};
use crate::hitl::{Decision, decide};
use crate::store::HoldDecision;

const SHAPE: &str = r#"{"decision": "approve"|"edit"|"reject", "operator": "name", "text"?}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    decision: String,
    operator: String,
    text: Option<String>,
}

fn decision_from(req: &DecideRequest) -> Result<Decision, ApiError> {
    let bad = |why: &str| Err(ApiError::BadRequest(format!("{why}; body: {SHAPE}")));
    match (req.decision.as_str(), req.text.as_deref()) {
        ("approve", None) => Ok(Decision::Approve),
        ("reject", None) => Ok(Decision::Reject),
        ("edit", Some(t)) if !t.trim().is_empty() => Ok(Decision::Edit(t.to_string())),
        ("edit", _) => bad("an edit needs the new text in \"text\""),
        ("approve" | "reject", Some(_)) => bad("only an edit takes \"text\""),
        (other, _) => bad(&format!("unknown decision {other:?}")),
    }
}

pub async fn decide_hold(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let req: DecideRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body must be JSON {SHAPE}: {e}")))?;
    let operator = req.operator.trim().to_string();
    if operator.is_empty() || operator.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "\"operator\" must name who decides".into(),
        ));
    }
    let decision = decision_from(&req)?;
    let by = format!("{operator} (/ops)");
    let outcome = decide(
        &state.store,
        &state.alerts,
        state.queue.clone(),
        id,
        decision,
        &by,
    )
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(match outcome {
        HoldDecision::Approved { lead, reply_id } => Json(json!({
            "hold": id, "lead": lead, "decision": req.decision, "reply_id": reply_id,
        }))
        .into_response(),
        HoldDecision::Rejected { lead, .. } => {
            Json(json!({ "hold": id, "lead": lead, "decision": "reject" })).into_response()
        }
        HoldDecision::AlreadyDecided { state } => (
            StatusCode::CONFLICT,
            Json(json!({ "hold": id, "error": format!("this reply was already {state}; nothing changed") })),
        )
            .into_response(),
        HoldDecision::NotFound => (
            StatusCode::NOT_FOUND,
            Json(json!({ "hold": id, "error": "no held reply with this id" })),
        )
            .into_response(),
    })
}
