//! The watch's own way to Discord: it shares no spool, store or sender with the service,
//! so a service that cannot alert is still reported.
//!
//! Owns: turning a [`Notice`] into a Discord message (the service's builder,
//! `channels::discord::alert_message`, plus a plain `content` line a phone notification
//! shows), posting it — to a channel webhook (`DISCORD_WEBHOOK`, `?wait=true`) or with the
//! bot to one channel — in order, and retrying: 429s wait Discord's `retry_after`; 5xx,
//! timeouts and refused connections back off from 0.5 s to `DISCORD_RETRY_MAX_SECS`; a
//! 401/403/404 (a wrong webhook or token) keeps trying at the longest pause, since only a
//! person can fix it and the notice must not be lost meanwhile. Posting runs on its own
//! task: the checks never wait for Discord.
//! Must not: go quiet. Every failed attempt is an ERROR log line saying the watch cannot
//! alert, and every notice is also logged, so the log carries it whatever Discord does.
//! Never logs the webhook URL (it is the credential).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::alert_router::{Alert, AlertKind, Severity};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::checks::human;
use super::incidents::Notice;
use super::settings::{AlertTarget, WatchSettings};
use crate::channels::discord::{alert_message, enforce_limits};
use crate::probe::describe_error;

const FIRST_RETRY: Duration = Duration::from_millis(500);
/// A 429's `retry_after` is honoured up to this (Discord's are seconds; a huge one is a
/// bug, and the notice must still go out).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(600);

/// The Discord message for a notice: the service's embed (title `ERROR · watch_<check>_down`
/// or `…_recovered`, red or blue), a `Check` and a `Service` field, and a `content` line.
pub fn message(notice: &Notice, service_url: &str) -> Value {
    let check = notice.check().name();
    let (severity, content, text) = match notice {
        Notice::Down { detail, .. } => (
            Severity::Critical,
            format!("🔴 **lead-agent watch**: `{check}` is failing on {service_url}"),
            format!("{check} FAILING: {detail}"),
        ),
        Notice::Recovered {
            detail,
            down_since,
            at,
            ..
        } => (
            Severity::Info,
            format!(
                "🟢 **lead-agent watch**: `{check}` recovered on {service_url} after {}",
                human((*at - *down_since).num_milliseconds())
            ),
            format!(
                "{check} recovered (failing since {}): {detail}",
                down_since.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ),
    };
    let mut alert = Alert::new(AlertKind::Error, severity, &notice.event(), text);
    alert.raised_at = notice.at();
    let mut body = alert_message(&alert);
    body["content"] = json!(content);
    if let Some(fields) = body["embeds"][0]["fields"].as_array_mut() {
        fields.push(json!({"name": "Check", "value": check, "inline": true}));
        fields.push(json!({"name": "Service", "value": service_url, "inline": true}));
    }
    enforce_limits(&mut body);
    body
}

/// A nonce for the bot's post (≤ 25 characters): a retry after a lost answer is then not
/// a second message. Channel webhooks take none; there a lost answer can mean a duplicate.
fn nonce(notice: &Notice) -> String {
    let kind = match notice {
        Notice::Down { .. } => 'd',
        Notice::Recovered { .. } => 'r',
    };
    format!(
        "w{kind}{}{}",
        notice.check() as u8,
        notice.at().timestamp_millis()
    )
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Try again after this long (at least).
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Discord will never take this body: logged in full and dropped.
    Refused(String),
}

/// Reads a 429's wait: the body's `retry_after` (fractional seconds), else `Retry-After`.
fn retry_after(headers: &reqwest::header::HeaderMap, body: &Value) -> Option<Duration> {
    body["retry_after"]
        .as_f64()
        .or_else(|| {
            headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s).min(MAX_RATE_LIMIT_WAIT))
}

/// Classifies Discord's answer.
pub fn classify(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry {
            after: Some(retry_after(headers, body).unwrap_or(FIRST_RETRY)),
            why: "rate limited (429)".into(),
        },
        401 | 403 | 404 => Outcome::Retry {
            after: None,
            why: format!(
                "{status}: the webhook or bot token is wrong or lost access (fix DISCORD_WEBHOOK / DISCORD_BOT_TOKEN and the channel); {}",
                body["message"].as_str().unwrap_or("")
            ),
        },
        408 | 500..=599 => Outcome::Retry {
            after: None,
            why: format!("Discord answered {status}"),
        },
        _ => Outcome::Refused(format!(
            "Discord refused the message with {status}: {}",
            body["message"].as_str().unwrap_or("")
        )),
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct NotifierStatus {
    /// Notices not yet in Discord.
    pub pending: usize,
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Why the last attempt failed, while it is the latest outcome.
    pub last_error: Option<String>,
    /// Seconds the oldest pending notice has waited.
    pub oldest_pending_secs: Option<u64>,
}

#[derive(Default)]
struct Shared {
    status: NotifierStatus,
    oldest_pending: Option<Instant>,
    /// The last contact with Discord (a probe or a post) worked.
    reachable: Option<bool>,
}

/// Hands notices to the posting task.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::UnboundedSender<Notice>,
    shared: Arc<Mutex<Shared>>,
    poster: Arc<Poster>,
}

impl Notifier {
    /// Starts the posting task.
    pub fn start(settings: Arc<WatchSettings>) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let poster = Arc::new(Poster::new(settings)?);
        tokio::spawn(run(rx, poster.clone(), shared.clone()));
        Ok(Self { tx, shared, poster })
    }

    /// Queues `notice` (never waits) and logs it: the log has every notice, whatever
    /// Discord does.
    pub fn send(&self, notice: Notice) {
        match &notice {
            Notice::Down { check, detail, .. } => {
                tracing::error!(
                    check = check.name(),
                    detail,
                    "WATCH: {} is failing",
                    check.name()
                );
            }
            Notice::Recovered { check, detail, .. } => {
                tracing::info!(
                    check = check.name(),
                    detail,
                    "WATCH: {} recovered",
                    check.name()
                );
            }
        }
        {
            let mut s = self.shared.lock().expect("notifier lock");
            s.status.pending += 1;
            s.oldest_pending.get_or_insert_with(Instant::now);
        }
        if self.tx.send(notice).is_err() {
            tracing::error!("THE WATCH CANNOT ALERT: its Discord poster has stopped");
        }
    }

    pub fn status(&self) -> NotifierStatus {
        let s = self.shared.lock().expect("notifier lock");
        let mut status = s.status.clone();
        status.oldest_pending_secs = s.oldest_pending.map(|t| t.elapsed().as_secs());
        status
    }

    /// False once a probe or a post failed, until one works again; `None` before any.
    pub fn reachable(&self) -> Option<bool> {
        self.shared.lock().expect("notifier lock").reachable
    }

    /// Asks Discord whether the target exists and the watch may use it, without posting
    /// (`GET` of the webhook, or of the channel with the bot). Logs loudly when not.
    pub async fn probe(&self) -> bool {
        let ok = match self.poster.probe().await {
            Ok(()) => {
                tracing::info!(target = %self.poster.target.describe(), "the watch can reach Discord");
                true
            }
            Err(why) => {
                tracing::error!(target = %self.poster.target.describe(), %why, "THE WATCH CANNOT ALERT: Discord does not accept its target");
                false
            }
        };
        self.shared.lock().expect("notifier lock").reachable = Some(ok);
        ok
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Notice>,
    poster: Arc<Poster>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut queue: VecDeque<Notice> = VecDeque::new();
    let mut backoff = FIRST_RETRY;
    loop {
        if queue.is_empty() {
            match rx.recv().await {
                Some(n) => queue.push_back(n),
                None => return,
            }
        }
        while let Ok(n) = rx.try_recv() {
            queue.push_back(n);
        }
        let Some(notice) = queue.front() else {
            continue;
        };
        let outcome = poster.post(notice).await;
        let wait = {
            let mut s = shared.lock().expect("notifier lock");
            match outcome {
                Outcome::Delivered => {
                    queue.pop_front();
                    s.status.delivered += 1;
                    s.status.last_error = None;
                    s.reachable = Some(true);
                    backoff = FIRST_RETRY;
                    None
                }
                Outcome::Refused(why) => {
                    tracing::error!(%why, notice = ?notice, "THE WATCH CANNOT ALERT: Discord refused this notice for good; it is dropped (it is in this log)");
                    queue.pop_front();
                    s.status.failed_attempts += 1;
                    s.status.last_error = Some(why);
                    None
                }
                Outcome::Retry { after, why } => {
                    s.status.failed_attempts += 1;
                    s.reachable = Some(false);
                    let wait = after.unwrap_or(backoff);
                    if after.is_none() {
                        backoff = (backoff * 2).min(poster.retry_max);
                    }
                    tracing::error!(
                        %why,
                        pending = queue.len(),
                        retry_in_secs = wait.as_secs_f64(),
                        "THE WATCH CANNOT ALERT: posting to Discord failed; retrying"
                    );
                    s.status.last_error = Some(why);
                    Some(wait)
                }
            }
        };
        {
            let mut s = shared.lock().expect("notifier lock");
            s.status.pending = queue.len();
            if queue.is_empty() {
                s.oldest_pending = None;
            }
        }
        if let Some(wait) = wait {
            // New notices keep queueing while we wait; order is kept.
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    n = rx.recv() => match n {
                        Some(n) => queue.push_back(n),
                        None => return,
                    },
                }
            }
        }
    }
}

/// One HTTP client and the target.
struct Poster {
    http: reqwest::Client,
    target: AlertTarget,
    service_url: String,
    retry_max: Duration,
}

impl Poster {
    fn new(settings: Arc<WatchSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            target: settings.alert_to.clone(),
            service_url: settings.url.clone(),
            retry_max: settings.retry_max.max(FIRST_RETRY),
        })
    }

    fn request(&self, method: reqwest::Method, body: Option<&Value>) -> reqwest::RequestBuilder {
        let request = match &self.target {
            AlertTarget::Webhook { url } => {
                let mut url = reqwest::Url::parse(url.expose()).expect("validated at start");
                if body.is_some() {
                    // Wait for the message to exist, so a 2xx means it is in the channel.
                    url.query_pairs_mut().append_pair("wait", "true");
                }
                self.http.request(method, url)
            }
            AlertTarget::Bot {
                api_base,
                token,
                channel,
            } => {
                let path = if body.is_some() {
                    format!("{api_base}/channels/{channel}/messages")
                } else {
                    format!("{api_base}/channels/{channel}")
                };
                self.http
                    .request(method, path)
                    .header("Authorization", format!("Bot {}", token.expose()))
            }
        };
        match body {
            Some(b) => request.json(b),
            None => request,
        }
    }

    async fn post(&self, notice: &Notice) -> Outcome {
        let mut body = message(notice, &self.service_url);
        if matches!(self.target, AlertTarget::Bot { .. }) {
            body["nonce"] = json!(nonce(notice));
            body["enforce_nonce"] = json!(true);
        }
        match self
            .request(reqwest::Method::POST, Some(&body))
            .send()
            .await
        {
            Err(e) => Outcome::Retry {
                after: None,
                // Never the URL: the webhook URL is the credential.
                why: format!("Discord unreachable: {}", describe_error(e)),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                classify(status, &headers, &answer)
            }
        }
    }

    async fn probe(&self) -> Result<(), String> {
        match self.request(reqwest::Method::GET, None).send().await {
            Err(e) => Err(format!("Discord unreachable: {}", describe_error(e))),
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("Discord answered {}", r.status())),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use reqwest::header::{HeaderMap, HeaderValue};

    use super::*;
    use crate::watch::incidents::Check;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
    }

    #[test]
    fn a_down_notice_names_its_check_in_the_title_a_field_and_the_content() {
        let down = Notice::Down {
            check: Check::Scheduler,
            detail: "no scheduler heartbeat within 3 s".into(),
            at: t(0),
        };
        let m = message(&down, "http://svc:5012");
        assert_eq!(m["embeds"][0]["title"], "ERROR · watch_scheduler_down");
        assert!(
            m["content"]
                .as_str()
                .unwrap()
                .contains("`scheduler` is failing")
        );
        let fields = m["embeds"][0]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["name"] == "Check" && f["value"] == "scheduler")
        );
        assert_eq!(m["allowed_mentions"]["parse"], json!([]));
        let up = Notice::Recovered {
            check: Check::Scheduler,
            detail: "fine".into(),
            down_since: t(0),
            at: t(600),
        };
        let m = message(&up, "http://svc:5012");
        assert_eq!(m["embeds"][0]["title"], "ERROR · watch_scheduler_recovered");
        assert!(m["content"].as_str().unwrap().contains("after 10 min"));
        assert!(nonce(&up).len() <= 25 && nonce(&up) != nonce(&down));
    }

    #[test]
    fn a_429_waits_discords_retry_after_and_errors_are_retried_or_refused() {
        let none = HeaderMap::new();
        assert_eq!(
            classify(429, &none, &json!({"retry_after": 1.5, "global": false})),
            Outcome::Retry {
                after: Some(Duration::from_millis(1500)),
                why: "rate limited (429)".into()
            }
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert!(matches!(
            classify(429, &h, &Value::Null),
            Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert_eq!(classify(204, &none, &Value::Null), Outcome::Delivered);
        for status in [500, 502, 503, 408, 401, 404] {
            assert!(
                matches!(
                    classify(status, &none, &Value::Null),
                    Outcome::Retry { after: None, .. }
                ),
                "{status}"
            );
        }
        assert!(matches!(
            classify(400, &none, &Value::Null),
            Outcome::Refused(_)
        ));
    }
}
