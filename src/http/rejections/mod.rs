//! Refused webhooks are loud. A wrong `PUBLIC_BASE_URL` (a typo, a new load balancer, http
//! vs https) once made every inbound SMS a 403 with nothing stored, nothing counted and
//! nothing alerted; the response-gap watch cannot see a message that was never stored.
//!
//! Owns: the count of every refused webhook (`lead_agent_webhooks_rejected_total{reason}`:
//! signature, loopback-only, form, phone, size, type) and of every 503
//! (`lead_agent_webhooks_unavailable_total`); the alerts about them — UNAUTHORIZED for a
//! refused signature (the first at once, then at most one summary with the count per
//! `WEBHOOK_ALERT_SECS`, paced per [`Cause`] so one cause cannot hold back another's first), ERROR `inbound_unavailable` for 503s (same pacing), ERROR
//! `inbound_down` when signed webhooks have been refused for `INBOUND_DOWN_SECS` with none
//! accepted, and `inbound_recovered` at the next accepted one; and the diagnosis of a bad
//! signature: it is checked again against the URL the request itself names (Host,
//! X-Forwarded-Proto/Host/Port), and when that one matches the alert says "Twilio signs
//! <url>; PUBLIC_BASE_URL is <configured>".
//! Must not: accept a request because the diagnosis matched (it only explains the refusal:
//! Host and X-Forwarded-* are the caller's to choose), block the webhook (alerts are
//! fire-and-forget), or alert once per request (an attacker's flood is one summary per
//! period).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use axum::http::HeaderMap;

use crate::channels::twilio::verify_signature;

/// Why a webhook was refused: the label of `lead_agent_webhooks_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// 403: missing or invalid `X-Twilio-Signature`.
    Signature,
    /// 403: no `TWILIO_AUTH_TOKEN`, and the peer is not on this machine.
    LoopbackOnly,
    /// 400: the form does not decode, or a required field is missing or malformed.
    Form,
    /// 400: `From` or `To` is not an E.164 number (`inbound::rules`).
    Phone,
    /// 413: the body is over the limit.
    Size,
    /// 415: not `application/x-www-form-urlencoded`.
    Type,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Signature => "signature",
            Reason::LoopbackOnly => "loopback-only",
            Reason::Form => "form",
            Reason::Phone => "phone",
            Reason::Size => "size",
            Reason::Type => "type",
        }
    }
}

/// The URL a request names for itself: scheme from `X-Forwarded-Proto` (else http), host
/// from `X-Forwarded-Host` (else `Host`), port from `X-Forwarded-Port` when the host has
/// none, then the path and query as received.
pub fn claimed_url(headers: &HeaderMap, path_and_query: &str) -> Option<String> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let proto = first("x-forwarded-proto")
        .unwrap_or("http")
        .to_ascii_lowercase();
    let host = first("x-forwarded-host").or_else(|| first("host"))?;
    let mut authority = host.to_string();
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !host.ends_with(']');
    if let Some(port) = first("x-forwarded-port").filter(|_| !has_port) {
        let default = if proto == "https" { "443" } else { "80" };
        if port != default {
            authority = format!("{host}:{port}");
        }
    }
    Some(format!("{proto}://{authority}{path_and_query}"))
}

/// What a refusal's diagnosis found. Each cause is paced on its own: a refusal with one
/// cause (a probe posting without forwarded headers, a scanner) must not hold back the
/// first alert of another (Twilio's own requests refused for a wrong `PUBLIC_BASE_URL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The signature matches the URL the request names: `PUBLIC_BASE_URL` is wrong.
    WrongUrl,
    /// The signature matches no URL we can think of: a wrong token, or not Twilio.
    NoMatch,
    /// No `X-Twilio-Signature` at all.
    Missing,
    /// `TWILIO_AUTH_TOKEN` unset and the peer is not on this machine.
    NoToken,
    /// Not an authentication refusal (form, size, type): counted, not alerted.
    Other,
}

/// Explains a refused signature. Tries the URL the request names, and that URL with the
/// other scheme (a load balancer that terminates TLS without X-Forwarded-Proto makes an
/// https request look like http). Never used to accept.
pub fn diagnose_signature(
    token: &str,
    configured_url: &str,
    headers: &HeaderMap,
    path_and_query: &str,
    params: &[(String, String)],
    signature: Option<&str>,
) -> (Cause, String) {
    let Some(signature) = signature else {
        return (
            Cause::Missing,
            format!(
                "The request carries no X-Twilio-Signature: it is not from Twilio (or a proxy \
                 in front of us strips the header). Checked against {configured_url}."
            ),
        );
    };
    let claimed = claimed_url(headers, path_and_query);
    let mut candidates = Vec::new();
    if let Some(c) = &claimed {
        candidates.push(c.clone());
        for (from, to) in [("http://", "https://"), ("https://", "http://")] {
            if let Some(rest) = c.strip_prefix(from) {
                candidates.push(format!("{to}{rest}"));
            }
        }
    }
    let configured_base = configured_url
        .strip_suffix(path_and_query)
        .unwrap_or(configured_url);
    for url in candidates.iter().filter(|u| u.as_str() != configured_url) {
        if verify_signature(token, url, params, signature) {
            let base = url.strip_suffix(path_and_query).unwrap_or(url);
            return (
                Cause::WrongUrl,
                format!(
                    "Twilio signs {url}; PUBLIC_BASE_URL is {configured_base}. Set \
                     PUBLIC_BASE_URL to {base} (the URL Twilio is configured to call, without \
                     the path): until then every inbound SMS is refused."
                ),
            );
        }
    }
    (
        Cause::NoMatch,
        format!(
            "The signature matches neither PUBLIC_BASE_URL ({configured_url}) nor the URL the \
             request names ({}): a wrong TWILIO_AUTH_TOKEN (rotated? the secondary token?), a \
             Twilio webhook rule signing with another key, or a request that is not from Twilio.",
            claimed.as_deref().unwrap_or("no Host header")
        ),
    )
}

/// One kind of alert paced as "the first at once, then one summary per period".
#[derive(Default)]
struct Paced {
    last_alert: Option<Instant>,
    /// Refusals since the last alert.
    pending: u64,
    last_detail: String,
}

impl Paced {
    /// `Some(count)` when an alert is due now for this event (the count it reports).
    fn note(&mut self, now: Instant, every: Duration, detail: String) -> Option<u64> {
        self.pending += 1;
        self.last_detail = detail;
        match self.last_alert {
            Some(t) if now.duration_since(t) < every => None,
            _ => self.take(now),
        }
    }

    /// A summary is due: the period passed with refusals pending.
    fn due(&mut self, now: Instant, every: Duration) -> Option<u64> {
        match self.last_alert {
            Some(t) if self.pending > 0 && now.duration_since(t) >= every => self.take(now),
            _ => None,
        }
    }

    fn take(&mut self, now: Instant) -> Option<u64> {
        self.last_alert = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[derive(Default)]
struct State {
    /// One pace per cause (see [`Cause`]).
    unauthorized: HashMap<Cause, Paced>,
    unavailable: Paced,
    /// The first signed webhook refused since the last one accepted.
    refused_since: Option<Instant>,
    refused_count: u64,
    last_cause: String,
    down_alerted: bool,
}

/// The web process's watch over its refusals; one per process.
pub struct WebhookWatch {
    alerts: AlertHandle,
    every: Duration,
    down_after: Duration,
    state: Mutex<State>,
}

/// An alert the watch decided to raise (built outside the lock, raised by the caller).
type Raise = Vec<Alert>;

impl WebhookWatch {
    pub fn new(alerts: AlertHandle, every: Duration, down_after: Duration) -> Self {
        Self {
            alerts,
            every,
            down_after,
            state: Mutex::new(State::default()),
        }
    }

    /// A refused webhook. `signed`: it carried an X-Twilio-Signature (Twilio's, as far as we
    /// can tell); `detail`: what the alert says about it (the diagnosis for signatures).
    pub fn rejected(&self, reason: Reason, cause: Cause, signed: bool, detail: &str) {
        metrics::counter!("lead_agent_webhooks_rejected_total", "reason" => reason.label())
            .increment(1);
        let raise = self.rejected_at(Instant::now(), reason, cause, signed, detail);
        self.raise(raise);
    }

    /// A verified webhook that no durable path took: answered 503.
    pub fn unavailable(&self, detail: &str) {
        metrics::counter!("lead_agent_webhooks_unavailable_total").increment(1);
        let raise = self.unavailable_at(Instant::now(), detail);
        self.raise(raise);
    }

    /// A webhook accepted (stored or kept by a fallback).
    pub fn accepted(&self) {
        let raise = self.accepted_at(Instant::now());
        self.raise(raise);
    }

    /// Raises the summaries and the `inbound_down` alert that have come due; run every
    /// second or so by [`WebhookWatch::spawn_ticker`].
    pub fn tick(&self) {
        let raise = self.tick_at(Instant::now());
        self.raise(raise);
    }

    pub fn spawn_ticker(self: std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                self.tick();
            }
        })
    }

    fn raise(&self, alerts: Raise) {
        for a in alerts {
            self.alerts.raise(a);
        }
    }

    fn rejected_at(
        &self,
        now: Instant,
        reason: Reason,
        cause: Cause,
        signed: bool,
        detail: &str,
    ) -> Raise {
        let mut out = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return out;
        };
        if signed {
            s.refused_since.get_or_insert(now);
            s.refused_count += 1;
            s.last_cause = detail.to_string();
        }
        if matches!(reason, Reason::Signature | Reason::LoopbackOnly)
            && cause != Cause::Other
            && let Some(count) =
                s.unauthorized
                    .entry(cause)
                    .or_default()
                    .note(now, self.every, detail.to_string())
        {
            out.push(unauthorized_alert(count, self.every, detail, false));
        }
        out
    }

    fn unavailable_at(&self, now: Instant, detail: &str) -> Raise {
        let mut out = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return out;
        };
        s.refused_since.get_or_insert(now);
        s.refused_count += 1;
        s.last_cause = format!("503: {detail}");
        if let Some(count) = s.unavailable.note(now, self.every, detail.to_string()) {
            out.push(unavailable_alert(count, self.every, detail, false));
        }
        out
    }

    fn accepted_at(&self, now: Instant) -> Raise {
        let mut out = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return out;
        };
        if s.down_alerted {
            let since = s
                .refused_since
                .map(|t| now.duration_since(t).as_secs())
                .unwrap_or(0);
            out.push(Alert::new(
                AlertKind::Error,
                Severity::Info,
                "inbound_recovered",
                format!(
                    "Inbound is back: a webhook was accepted after {since} s in which {} signed \
                     webhooks were refused.",
                    s.refused_count
                ),
            ));
        }
        s.down_alerted = false;
        s.refused_since = None;
        s.refused_count = 0;
        out
    }

    fn tick_at(&self, now: Instant) -> Raise {
        let mut out = Vec::new();
        let Ok(mut s) = self.state.lock() else {
            return out;
        };
        for paced in s.unauthorized.values_mut() {
            if let Some(count) = paced.due(now, self.every) {
                out.push(unauthorized_alert(
                    count,
                    self.every,
                    &paced.last_detail,
                    true,
                ));
            }
        }
        if let Some(count) = s.unavailable.due(now, self.every) {
            let detail = s.unavailable.last_detail.clone();
            out.push(unavailable_alert(count, self.every, &detail, true));
        }
        if let Some(since) = s.refused_since
            && !s.down_alerted
            && now.duration_since(since) >= self.down_after
        {
            s.down_alerted = true;
            out.push(Alert::error(
                "inbound_down",
                format!(
                    "Inbound is down: {} signed webhooks refused in the last {} s and none \
                     accepted — leads are texting and nobody answers. Last cause: {}",
                    s.refused_count,
                    now.duration_since(since).as_secs(),
                    s.last_cause
                ),
            ));
        }
        out
    }
}

fn unauthorized_alert(count: u64, every: Duration, detail: &str, summary: bool) -> Alert {
    let text = if summary {
        format!(
            "{count} more webhooks refused (signature) in the last {} s. {detail}",
            every.as_secs()
        )
    } else {
        format!("Webhook refused (signature). {detail}")
    };
    Alert::new(
        AlertKind::Unauthorized,
        Severity::Critical,
        "webhook_signature_rejected",
        text,
    )
}

fn unavailable_alert(count: u64, every: Duration, detail: &str, summary: bool) -> Alert {
    let text = if summary {
        format!(
            "{count} more webhooks answered 503 in the last {} s (Twilio does not retry a 5xx \
             unless the webhook URL's connection overrides say so: these messages may be lost). \
             {detail}",
            every.as_secs()
        )
    } else {
        format!(
            "A verified webhook was answered 503: neither the store nor a fallback could keep it \
             (Twilio does not retry a 5xx unless the webhook URL's connection overrides say so). \
             {detail}"
        )
    };
    Alert::error("inbound_unavailable", text)
}

#[cfg(test)]
mod tests;
