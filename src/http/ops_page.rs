//! `GET /ops`: the operator's page — server-rendered HTML, no script, no build step,
//! refreshed by the browser every 15 s. Active leads, queue depth, model health, recent
//! alerts, SLA breaches, scheduled jobs and the last verification, all read live from this
//! process and the store. `POST /ops/verifications` is where `verify --record` reports.
//!
//! Owns: browser access to operator data. A browser cannot send a bearer header, so
//! `/ops?token=OPS_TOKEN` is accepted once: it answers 303 to `/ops` with an HttpOnly,
//! SameSite=Strict cookie (`Secure` when PUBLIC_BASE_URL is https) holding its issue time
//! and an HMAC of that time keyed by the token ([`session_cookie`]: never the token itself).
//! The server honours it for `OPS_SESSION_SECS` after issue, whatever the browser keeps;
//! an expired, future-dated or forged one is refused like no cookie, and changing
//! OPS_TOKEN revokes every cookie. The page sets `Referrer-Policy: no-referrer` so the URL
//! with the token goes nowhere else. The bearer header works too, and with OPS_TOKEN unset
//! only loopback peers get in (as for `/ops/*`). The page has no script and no form: what
//! changes state is a JSON POST from a client ([`super::ops_guard`]).
//! Must not: be public by default, change anything but the verification log, or show a
//! section as healthy when its data source does not exist in this build — it says so.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, is_local};
use crate::store::VerificationRecord;
use crate::verify::Report;

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

fn cookie_from(headers: &HeaderMap) -> Option<String> {
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
    match cookie_from(headers) {
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
            "default-src 'none'; style-src 'unsafe-inline'",
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

pub async fn page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let response = match access(&state, &peer, &headers, &query) {
        Access::Refused(status, why) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!doctype html><html><head><title>lead-agent ops: refused</title></head><body><h1>Refused</h1><p id=\"refused\">{}</p></body></html>",
                esc(why)
            ),
        )
            .into_response(),
        Access::SetCookie(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/ops".to_string()),
                (header::SET_COOKIE, set_cookie(&state, &value)),
            ],
        )
            .into_response(),
        Access::Granted => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render(&state).await,
        )
            .into_response(),
    };
    with_page_headers(response)
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
    Ok(StatusCode::CREATED)
}

/// HTML-escapes text from the store, alerts or configuration.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn metric(out: &mut String, id: &str, label: &str, value: impl std::fmt::Display) {
    let _ = write!(
        out,
        "<tr><th>{}</th><td data-metric=\"{id}\">{}</td></tr>",
        esc(label),
        esc(&value.to_string())
    );
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;margin-bottom:1rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.pass{color:#176b2c;font-weight:bold}.fail{color:#b00020;font-weight:bold}.skip{color:#8a6d00}\
.none{color:#666;font-style:italic}section{margin-bottom:1.5rem}";

/// The whole page, from live state.
pub async fn render(state: &AppState) -> String {
    let now = chrono::Utc::now();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\">\
         <title>lead-agent ops</title><style>{STYLE}</style></head><body><h1>lead-agent ops</h1>\
         <p>Role <b data-metric=\"role\">{}</b>, version {} commit {} — {} (refreshes every 15 s)</p>",
        state.role.name(),
        super::health::VERSION,
        esc(super::health::GIT_COMMIT),
        now.format("%Y-%m-%d %H:%M:%S UTC"),
    );

    // Live numbers.
    out.push_str("<section><h2>Now</h2><table>");
    metric(
        &mut out,
        "queue-depth",
        "Queue depth (wake-ups waiting)",
        state.queue.depth(),
    );
    match &state.worker {
        Some(w) => {
            metric(
                &mut out,
                "active-leads",
                "Active lead actors",
                w.registry.active_leads(),
            );
            metric(
                &mut out,
                "busy-turns",
                "Turns running",
                w.registry.busy_leads(),
            );
        }
        None => {
            out.push_str("<tr><th>Active lead actors</th><td data-metric=\"active-leads\" class=\"none\">not running in this role (see the worker pods)</td></tr>");
        }
    }
    out.push_str("</table></section>");

    // Model health.
    out.push_str("<section><h2>Model health</h2>");
    match &state.worker {
        Some(w) => {
            let stats = w.pool.stats();
            out.push_str("<table>");
            metric(&mut out, "llm-chain", "Provider chain", w.pool.provider_names().join(" → "));
            metric(&mut out, "llm-in-flight", "Calls in flight", stats.in_flight.load(Ordering::SeqCst));
            metric(&mut out, "llm-concurrency", "Concurrency cap", w.pool.config().concurrency);
            metric(&mut out, "llm-calls", "Calls since start", stats.calls.load(Ordering::SeqCst));
            metric(&mut out, "llm-fallbacks", "Fallbacks since start", stats.fallbacks.load(Ordering::SeqCst));
            metric(&mut out, "llm-hard-timeouts", "Chains past the hard budget", stats.hard_timeouts.load(Ordering::SeqCst));
            out.push_str("</table>");
        }
        None => out.push_str("<p class=\"none\" data-metric=\"llm-chain\">no model pool in this role (see the worker pods)</p>"),
    }
    out.push_str("</section>");

    let alerts = state.alerts.recent();

    // SLA breaches of the last 24 hours, from the SLA engine's table (any process's), plus
    // first-response re-drives by the response-gap watch.
    out.push_str("<section><h2>SLA breaches (24 h)</h2>");
    let since = chrono::Utc::now() - chrono::Duration::hours(24);
    match actors::sla::SlaStore::breaches_since(&state.store, since).await {
        Ok(breaches) if breaches.is_empty() => out.push_str(
            "<p class=\"none\" data-metric=\"sla-breaches\">none in the last 24 hours</p>",
        ),
        Ok(breaches) => {
            out.push_str(
                "<table data-metric=\"sla-breaches\"><tr><th>breached</th><th>lead</th><th>SLA</th><th>staff nags</th><th>state</th></tr>",
            );
            for b in breaches.iter().rev().take(20) {
                let status = if b.resolved_at.is_some() {
                    "resolved"
                } else if b.escalated_at.is_some() {
                    "escalated"
                } else {
                    "open"
                };
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    b.breached_at
                        .map(|t| t.format("%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    esc(b.lead.as_str()),
                    esc(b.kind.as_str()),
                    b.staff_nag_count,
                    status
                );
            }
            out.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"none\" data-metric=\"sla-breaches\">store unavailable: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    out.push_str("</section>");

    // Parked leads, from the store (every worker's parks): their messages wait here.
    out.push_str("<section><h2>Parked leads</h2>");
    match super::parks::parked_now(state).await {
        Ok(parks) if parks.is_empty() => {
            out.push_str("<p class=\"none\" data-metric=\"parked\">none</p>")
        }
        Ok(parks) => {
            out.push_str(
                "<p>Their messages are stored, not answered, until the park expires or \
                 <code>lead-agent unpark PHONE</code>.</p><table data-metric=\"parked\">\
                 <tr><th>lead</th><th>reason</th><th>parked</th><th>expires</th></tr>",
            );
            for p in &parks {
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(p.lead.as_str()),
                    p.reason.label(),
                    p.parked_at.format("%m-%d %H:%M"),
                    p.expires_at.format("%m-%d %H:%M"),
                );
            }
            out.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"none\" data-metric=\"parked\">store unavailable: {}</p>",
                esc(&e.to_string())
            );
        }
    }
    out.push_str("</section>");

    // Scheduled jobs.
    out.push_str("<section><h2>Scheduled jobs</h2>");
    out.push_str(&scheduled_jobs_html(state).await);
    out.push_str("</section>");

    // Recent alerts.
    let _ = write!(
        out,
        "<section><h2>Recent alerts</h2><p>{} kept in this process; newest first.</p>",
        alerts.len()
    );
    if alerts.is_empty() {
        out.push_str("<p class=\"none\" data-metric=\"alerts\">none</p>");
    } else {
        out.push_str("<table data-metric=\"alerts\"><tr><th>at</th><th>kind</th><th>severity</th><th>event</th><th>lead</th><th>text</th></tr>");
        for a in alerts.iter().rev().take(25) {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{:?}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.raised_at.format("%m-%d %H:%M:%S"),
                a.kind,
                a.severity,
                esc(&a.event),
                esc(a.lead.as_ref().map(|l| l.as_str()).unwrap_or("")),
                esc(&a.text)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");

    // Last verification.
    out.push_str("<section><h2>Last verification</h2>");
    out.push_str(&verification_html(state.store.last_verification().await));
    out.push_str("</section></body></html>");
    out
}

/// The scheduler's jobs as the store has them (the scheduler process writes them, so any
/// role can show them). None stored: no scheduler has run against this store.
async fn scheduled_jobs_html(state: &AppState) -> String {
    let jobs = match state.store.scheduled_jobs().await {
        Err(e) => {
            return format!(
                "<p class=\"fail\" data-metric=\"scheduled-jobs\">the store did not answer: {}</p>",
                esc(&e.to_string())
            );
        }
        Ok(jobs) => jobs,
    };
    if jobs.is_empty() {
        return "<p class=\"none\" data-metric=\"scheduled-jobs\">not running: no scheduler has registered jobs in this store</p>".into();
    }
    let mut out = format!(
        "<p><span data-metric=\"scheduled-jobs\">{}</span> job(s)</p><table><tr><th>job</th><th>schedule</th><th>next</th><th>last run</th><th>lateness</th><th>outcome</th><th>runs</th><th>missed</th></tr>",
        jobs.len()
    );
    for j in &jobs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&j.name),
            esc(&j.schedule),
            esc(&j.time_zone),
            esc(j.next_fire_at.as_deref().unwrap_or("—")),
            esc(j.last_run_at.as_deref().unwrap_or("never")),
            j.last_lateness_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_default(),
            esc(j.last_outcome.as_deref().unwrap_or("")),
            j.runs,
            j.missed
        );
    }
    out.push_str("</table>");
    out
}

fn verification_html(
    last: Result<Option<VerificationRecord>, actors::ports::StoreError>,
) -> String {
    let record = match last {
        Err(e) => {
            return format!(
                "<p class=\"fail\">the store did not answer: {}</p>",
                esc(&e.to_string())
            );
        }
        Ok(None) => {
            return "<p class=\"none\" data-metric=\"last-verification\">never verified (run <code>lead-agent verify --url … --record</code>)</p>".into();
        }
        Ok(Some(r)) => r,
    };
    let mut out = format!(
        "<p><span data-metric=\"last-verification\" class=\"{}\">{}</span> at {} against {}</p>",
        if record.passed { "pass" } else { "fail" },
        if record.passed { "PASS" } else { "FAIL" },
        record.verified_at.format("%Y-%m-%d %H:%M UTC"),
        esc(&record.url)
    );
    if let Ok(report) = serde_json::from_str::<Report>(&record.report) {
        out.push_str("<table><tr><th>step</th><th>result</th><th>detail</th></tr>");
        for s in &report.steps {
            let status = s.status.as_str();
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"{}\">{status}</td><td>{}</td></tr>",
                esc(&s.step),
                status.to_ascii_lowercase(),
                esc(&s.detail)
            );
        }
        out.push_str("</table>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_alerts_is_escaped() {
        assert_eq!(
            esc("<script>\"x\"&'y'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }

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
        assert_eq!(cookie_from(&headers), Some(a));
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
