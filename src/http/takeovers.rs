//! `GET /ops/takeovers`, `POST /ops/leads/{phone}/takeover`, `…/release` and `…/reply`:
//! the operator's doors to a human takeover (issue 15 item 6) — the same actions as the
//! Discord buttons and reply box (`super::discord`), both through [`crate::takeover`].
//!
//! Owns: reading and validating the requests and their answers: 400 for a phone that is not
//! E.164 or a body that is not what the route takes; 404 for a lead that never texted us
//! (take) or is not taken over (release); 409 for a take of a lead already taken (naming
//! who holds it) and for a reply to a lead not taken over.
//! Must not: be reachable around the ops guard (JSON body, same origin: `ops_guard.rs`, in
//! front of every `/ops` POST) or authorization (the ops token, or the `/ops` page's
//! session cookie for the page's own buttons), or send an SMS itself (a reply is queued in
//! the outbox and sent by the lead's actor).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::sla::lead_from;
use super::{ApiError, AppState};
use crate::store::{TakeOutcome, Takeover};
use crate::takeover::TakeoverError;

/// Who, in the take, release and reply bodies; `body` only in the reply.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeoverRequest {
    operator: Option<String>,
    body: Option<String>,
}

fn read(body: &[u8], shape: &str) -> Result<TakeoverRequest, ApiError> {
    // An empty body reads as `{}` (the release needs nothing).
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body must be JSON {shape}: {e}")))
}

/// The ops token, as for every `/ops` route (`super::ops::authorize`), or the `/ops`
/// page's session cookie: the page's Take over and Release buttons post with it
/// (`super::ops_page::has_page_session`; the ops guard has checked same origin and JSON).
fn authorize(state: &AppState, peer: &SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    match super::ops::authorize(state, peer, headers) {
        Err(_) if super::ops_page::has_page_session(state, headers) => Ok(()),
        other => other,
    }
}

fn refused(e: TakeoverError) -> Result<Response, ApiError> {
    match e {
        TakeoverError::Invalid(why) => Err(ApiError::BadRequest(why)),
        TakeoverError::NotTaken(lead) => Ok((
            StatusCode::CONFLICT,
            Json(json!({
                "lead": lead,
                "error": "this lead is not taken over: take it over first (POST /ops/leads/{phone}/takeover)",
            })),
        )
            .into_response()),
        TakeoverError::Store(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// The takeovers in force, oldest first (every worker's view: read from the store).
pub async fn takeovers_now(state: &AppState) -> Result<Vec<Takeover>, ApiError> {
    state
        .store
        .takeovers()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

pub async fn list(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Vec<Takeover>>, ApiError> {
    authorize(&state, &peer, &headers)?;
    Ok(Json(takeovers_now(&state).await?))
}

/// `{"operator": "name"}`: 200 with the new takeover; 409 with the one in force when the
/// lead is taken already; 404 for a number that never texted us.
pub async fn take(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req = read(&body, r#"{"operator": "name"}"#)?;
    let Some(operator) = req.operator else {
        return Err(ApiError::BadRequest(
            r#"body must name the operator: {"operator": "name"}"#.into(),
        ));
    };
    if req.body.is_some() {
        return Err(ApiError::BadRequest(
            "a takeover takes no body text; send it with …/reply".into(),
        ));
    }
    let outcome = crate::takeover::take(
        &state.store,
        &state.alerts,
        &lead,
        &operator,
        "ops",
        state.settings.takeover_idle,
    )
    .await;
    Ok(match outcome {
        Ok(TakeOutcome::Taken(t)) => Json(json!({ "lead": lead, "takeover": t })).into_response(),
        Ok(TakeOutcome::AlreadyTaken(t)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "lead": lead,
                "error": format!("this lead is already taken over by {}", t.operator),
                "takeover": t,
            })),
        )
            .into_response(),
        Ok(TakeOutcome::UnknownLead) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "lead": lead, "error": "no lead with this number has texted us" })),
        )
            .into_response(),
        Err(e) => return refused(e),
    })
}

/// `{"operator": "name"}` or `{}`: 200 with the takeover as ended; 404 when the lead is not
/// taken over. The AI answers the lead's next message, not those of the takeover.
pub async fn release(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let req = read(&body, r#"{"operator": "name"?}"#)?;
    let by = req.operator.unwrap_or_else(|| "an operator (/ops)".into());
    match crate::takeover::release(&state.store, &state.alerts, &lead, &by).await {
        Ok(ended) => Ok(Json(json!({ "lead": lead, "released": ended })).into_response()),
        Err(TakeoverError::NotTaken(_)) => Ok((
            StatusCode::NOT_FOUND,
            Json(
                json!({ "lead": lead, "error": "this lead is not taken over; nothing to release" }),
            ),
        )
            .into_response()),
        Err(e) => refused(e),
    }
}

/// `{"operator": "name", "body": "text"}`: 202 with the outbox id of the operator's SMS
/// (sent by the lead's actor, with the opt-out check at the claim); 409 when the lead is
/// not taken over.
pub async fn reply(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &peer, &headers)?;
    let lead = lead_from(&phone)?;
    let shape = r#"{"operator": "name", "body": "text"}"#;
    let req = read(&body, shape)?;
    let (Some(operator), Some(text)) = (req.operator, req.body) else {
        return Err(ApiError::BadRequest(format!("body must be JSON {shape}")));
    };
    match crate::takeover::reply(
        &state.store,
        &state.alerts,
        state.queue.clone(),
        &lead,
        &operator,
        &text,
    )
    .await
    {
        Ok(reply_id) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "lead": lead, "reply_id": reply_id })),
        )
            .into_response()),
        Err(e) => refused(e),
    }
}
