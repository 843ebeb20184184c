//! The operator console (issue 18): the inbox on `/ops` ([`inbox`]), one lead's
//! conversation at `/ops/conversations/{phone}` ([`conversation`]), the CSRF token of its
//! actions ([`csrf`]), its one script, `/ops/console.js`, served from the binary, and
//! `/ops/changes`, the stamp the open pages poll to reload themselves when it moves.
//!
//! Owns: the conversation page's handler and the script's route. Access is the `/ops`
//! page's (`super::ops_page::gate`: token → HttpOnly cookie, or the bearer header, or
//! loopback without `OPS_TOKEN`); the pages carry the CSP `script-src 'self'`, so the
//! script is the only code they run, and it holds no data.
//! Must not: act by itself. Every button of the console posts to the `/ops` endpoint its
//! action is (`super::holds`, `super::takeovers`, `super::parks`, `super::sla`), the same
//! handler a script or the CLI calls, through the ops guard.

pub mod charts;
pub mod conversation;
pub mod csrf;
pub mod inbox;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ops_page::{gate, html_page, view::html};
use super::{ApiError, AppState};

/// The console's script: confirmations, the operator's name, the JSON POSTs.
const SCRIPT: &str = include_str!("console.js");

/// `GET /ops/console.js`. The same bytes for everyone (no data in them), so no
/// authorization; cached for a minute.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=60"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// `GET /ops/conversations/{phone}`: 400 for a number that is not E.164; a number that
/// never texted us shows an empty conversation.
pub async fn conversation_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let lead = match super::sla::lead_from(&phone) {
        Ok(lead) => lead,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let location = inbox::conversation_href(&lead);
    if let Some(response) = gate(&state, &peer, &headers, &query, &location) {
        return response;
    }
    let csrf = csrf::token_for(&state, &headers).unwrap_or_default();
    let mut page = conversation::gather(&state, &lead, csrf).await;
    page.stamp = stamp(&state).await;
    html_page(html(&page))
}

/// The stamp a console page is rendered with (its `<body data-stamp>`); empty when the
/// store does not answer (the page then says so, and the script does not reload on it).
pub async fn stamp(state: &AppState) -> String {
    state
        .store
        .console_stamp(chrono::Utc::now())
        .await
        .unwrap_or_default()
}

/// `GET /ops/changes`: `{"stamp": "…"}`, what the open console pages poll (every 10 s, and
/// only while visible: a page nobody looks at asks nothing) to reload when it changed.
pub async fn changes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    super::ops::authorize(&state, &peer, &headers)?;
    let stamp = state
        .store
        .console_stamp(chrono::Utc::now())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(serde_json::json!({ "stamp": stamp })))
}

/// `GET /ops/charts`: the last 24 hours as server-rendered SVG ([`charts`]).
pub async fn charts_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = gate(&state, &peer, &headers, &query, "/ops/charts") {
        return response;
    }
    let page = charts::ChartsPage {
        csrf: csrf::token_for(&state, &headers).unwrap_or_default(),
        now: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        charts: charts::gather(&state).await,
    };
    html_page(html(&page))
}
