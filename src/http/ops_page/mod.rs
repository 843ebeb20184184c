//! `GET /ops`: the operator's console — server-rendered HTML, no build step. The inbox
//! first (`super::console`), then active leads, queue depth, model health, recent alerts, SLA
//! breaches, parked leads, human takeovers, scheduled jobs and the last verification, all read live from this
//! process and the store (`view.rs`, rendered from `templates/ops/`, escaped by default).
//! `POST /ops/verifications` is where `verify --record` reports.
//!
//! Owns: browser access to operator data. A browser cannot send a bearer header, so
//! `/ops?token=OPS_TOKEN` is accepted once: it answers 303 to `/ops` with an HttpOnly,
//! SameSite=Strict cookie (`Secure` when PUBLIC_BASE_URL is https) holding its issue time
//! and an HMAC of that time keyed by the token ([`session_cookie`]: never the token itself).
//! The server honours it for `OPS_SESSION_SECS` after issue, whatever the browser keeps;
//! an expired, future-dated or forged one is refused like no cookie, and changing
//! OPS_TOKEN revokes every cookie. The page sets `Referrer-Policy: no-referrer` so the URL
//! with the token goes nowhere else. The bearer header works too, and with OPS_TOKEN unset
//! only loopback peers get in (as for `/ops/*`). What changes state is a JSON POST
//! ([`super::ops_guard`]): the page's one script (the takeover form and Release buttons)
//! sends exactly that to `/ops/leads/{phone}/takeover|release`, same origin, with the
//! cookie; no native form posts (the guard refuses a form body).
//! Must not: be public by default, change anything but the verification log, or show a
//! section as healthy when its data source does not exist in this build — it says so.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, is_local};
use crate::store::VerificationRecord;
use crate::verify::Report;

pub(crate) mod view;

pub const COOKIE: &str = "lead_agent_ops";

/// A cookie issued this far in our future is refused: clock skew between replicas is
/// seconds, not minutes.
const MAX_FUTURE_SKEW_SECS: i64 = 60;

/// HMAC-SHA1 keyed by the token over a fixed label and the issue time, in hex.
fn session_mac(token: &str, issued_at: i64) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"lead-agent /ops browser session v2 issued at ");
    mac.update(issued_at.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cookie value for `token` issued at `issued_at` (Unix seconds):
/// `issued_at.hmac(token, issued_at)`.
pub fn session_cookie(token: &str, issued_at: i64) -> String {
    format!("{issued_at}.{}", session_mac(token, issued_at))
}

/// True when `value` is a cookie for `token` issued less than `lifetime` before `now`.
pub fn session_valid(token: &str, value: &str, now: i64, lifetime: std::time::Duration) -> bool {
    let Some((at, mac)) = value.split_once('.') else {
        return false;
    };
    let Ok(issued_at) = at.parse::<i64>() else {
        return false;
    };
    let age = now.saturating_sub(issued_at);
    if age < -MAX_FUTURE_SKEW_SECS || age >= lifetime.as_secs() as i64 {
        return false;
    }
    // `at` is the canonical decimal (what was signed), so "+12" or "012" cannot pass.
    at == issued_at.to_string()
        && bool::from(
            mac.as_bytes()
                .ct_eq(session_mac(token, issued_at).as_bytes()),
        )
}

pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// True when the request carries a valid `/ops` page session (the cookie of a browser that
/// opened the page with the token). The takeover routes accept it besides the bearer
/// token, so that the page's own buttons work: they are JSON POSTs behind the ops guard
/// (same origin), and the cookie is SameSite=Strict, so another site cannot ride on it.
pub(crate) fn has_page_session(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = state.settings.ops_token.as_ref().map(|t| t.expose()) else {
        return false;
    };
    cookie_value(headers).is_some_and(|c| {
        session_valid(
            token,
            &c,
            chrono::Utc::now().timestamp(),
            state.settings.ops_session,
        )
    })
}

enum Access {
    Granted,
    /// A valid token in the URL: trade it for the cookie.
    SetCookie(String),
    Refused(StatusCode, &'static str),
}

fn access(
    state: &AppState,
    peer: &SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Access {
    let Some(token) = state.settings.ops_token.as_ref().map(|t| t.expose()) else {
        return if is_local(peer) {
            Access::Granted
        } else {
            Access::Refused(
                StatusCode::FORBIDDEN,
                "OPS_TOKEN is not set: /ops answers loopback peers only.",
            )
        };
    };
    let now = chrono::Utc::now().timestamp();
    if let Some(given) = query.get("token") {
        return if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            Access::SetCookie(session_cookie(token, now))
        } else {
            Access::Refused(StatusCode::UNAUTHORIZED, "That token is not OPS_TOKEN.")
        };
    }
    if super::ops::authorize(state, peer, headers).is_ok() {
        return Access::Granted;
    }
    match cookie_value(headers) {
        Some(c) if session_valid(token, &c, now, state.settings.ops_session) => Access::Granted,
        Some(_) => Access::Refused(
            StatusCode::UNAUTHORIZED,
            "This session has expired or is not valid: open /ops?token=YOUR_OPS_TOKEN again, or send the token as a bearer token.",
        ),
        None => Access::Refused(
            StatusCode::UNAUTHORIZED,
            "This page needs OPS_TOKEN: open /ops?token=YOUR_OPS_TOKEN once, or send it as a bearer token.",
        ),
    }
}

fn with_page_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            // No inline script: the one script is /ops/console.js, from this binary.
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The `Set-Cookie` value: the browser keeps it as long as the server honours it, and
/// sends it over https only when the service is public over https (a browser still sends
/// a `Secure` cookie to `http://127.0.0.1`, i.e. through `kubectl port-forward`).
fn set_cookie(state: &AppState, value: &str) -> String {
    let secure = state
        .settings
        .public_base_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    format!(
        "{COOKIE}={value}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age={}{}",
        state.settings.ops_session.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The access rule of every console page, answered: `Some` is the response to send instead
/// of the page (a refusal, or the 303 that trades `?token=` for the cookie and comes back
/// to `location`); `None`, the page.
pub(crate) fn gate(
    state: &AppState,
    peer: &SocketAddr,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    location: &str,
) -> Option<Response> {
    match access(state, peer, headers, query) {
        Access::Granted => None,
        Access::Refused(status, why) => Some(with_page_headers(
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                view::html(&view::Refused { why }),
            )
                .into_response(),
        )),
        Access::SetCookie(value) => Some(with_page_headers(
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, location.to_string()),
                    (header::SET_COOKIE, set_cookie(state, &value)),
                ],
            )
                .into_response(),
        )),
    }
}

/// A console page's HTML with the page headers.
pub(crate) fn html_page(body: String) -> Response {
    with_page_headers(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

/// `GET /ops`: the inbox (`crate::http::console::inbox`, `?q=`, `?before=`, `?after=`), then
/// the process and store sections.
pub async fn page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = gate(&state, &peer, &headers, &query, "/ops") {
        return response;
    }
    let csrf = super::console::csrf::token_for(&state, &headers).unwrap_or_default();
    html_page(view::html(&view::gather(&state, &query, csrf).await))
}

/// `POST /ops/verifications`: `verify --record` reports its result here.
pub async fn record_verification(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // Authorized before the body is even parsed.
    super::ops::authorize(&state, &peer, &headers)?;
    let report: Report = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a verify report: {e}")))?;
    let record = VerificationRecord {
        verified_at: report.at,
        url: report.url.clone(),
        passed: report.passed,
        report: serde_json::to_string(&report).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    state
        .store
        .record_verification(&record)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    // A failed verification is a release refused or a deploy gone wrong: someone must know
    // now, not when they next open /ops (the pipeline rolls back; the cause stays open).
    if !report.passed {
        state.alerts.raise(actors::alert_router::Alert::error(
            "verification_failed",
            verification_failure_text(&report),
        ));
    }
    Ok(StatusCode::CREATED)
}

/// The alert's text: where, and each failed step with its detail.
fn verification_failure_text(report: &Report) -> String {
    let failed: Vec<String> = report
        .steps
        .iter()
        .filter(|s| s.status == crate::verify::Status::Fail)
        .map(|s| format!("{}: {}", s.step, s.detail))
        .collect();
    format!(
        "verify FAILED against {} at {}: {}",
        report.url,
        report.at.format("%Y-%m-%d %H:%M:%S UTC"),
        failed.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_not_the_token_and_changes_with_it() {
        let a = session_cookie("token-a", 1_700_000_000);
        assert!(!a.contains("token-a") && a.starts_with("1700000000."));
        assert_eq!(a, session_cookie("token-a", 1_700_000_000));
        assert_ne!(a, session_cookie("token-b", 1_700_000_000));
        assert_ne!(a, session_cookie("token-a", 1_700_000_001));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={a}")).unwrap(),
        );
        assert_eq!(cookie_value(&headers), Some(a));
    }

    #[test]
    fn a_session_is_honoured_for_its_lifetime_and_never_after_or_forged() {
        let day = std::time::Duration::from_secs(12 * 3600);
        let at = 1_700_000_000;
        let c = session_cookie("tok", at);
        assert!(session_valid("tok", &c, at, day));
        assert!(session_valid("tok", &c, at + 12 * 3600 - 1, day));
        assert!(!session_valid("tok", &c, at + 12 * 3600, day), "expired");
        assert!(!session_valid("tok", &c, at - 3600, day), "from the future");
        assert!(!session_valid("other", &c, at, day), "another token");
        // A later issue time with the old MAC, or a re-encoded time: forged.
        let (_, mac) = c.split_once('.').unwrap();
        for forged in [
            format!("{}.{mac}", at + 3600),
            format!("0{at}.{mac}"),
            format!("+{at}.{mac}"),
            mac.to_string(),
            String::new(),
        ] {
            assert!(!session_valid("tok", &forged, at, day), "{forged}");
        }
    }
}
