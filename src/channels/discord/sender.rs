//! The Discord alert path: a sink that spools each alert to the store and a sender that
//! posts the spool to Discord, in order per channel, at the pace Discord allows.
//!
//! Owns: the choice of channel per alert kind (own channel, else the default, else the
//! log), the durable spool write, and delivery: one worker per channel posting its oldest
//! owed alert first; Discord's rate limits read from the `X-RateLimit-*` headers per
//! channel bucket, a 429's `retry_after` (per bucket or global) honoured, at most 50
//! requests a second overall; 5xx, timeouts and connection failures retried with capped
//! backoff while the alert stays spooled; a nonce on every post so a retry of a post that
//! did arrive is deduplicated by Discord; a 401 stops the sender (one log error) and a
//! 403/404 stops that channel, their alerts staying spooled for after the fix.
//! Must not: block or fail the raiser (the sink only writes a row), raise an alert about
//! its own failures (they are logged: alerting about alerts is a loop), or post one
//! spooled row twice on purpose (a row is deleted only once Discord has it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::alert_router::{Alert, AlertError, AlertSink, Severity};
use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::channels::log_alerts::LogAlertSink;
use crate::config::{DiscordSettings, Secret};
use crate::store::{SpooledAlert, SqlStore};

use super::alert_message;

/// Discord's global limit per bot (REFERENCE.md). The headers tell us per-bucket limits; the
/// global one is only reported by a 429, so we keep under it ourselves.
const GLOBAL_PER_SECOND: usize = 50;
/// How often the sender looks at the spool without being woken (rows written by other
/// processes, a worker that exited just as a row arrived).
const POLL_EVERY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The sink the alert router delivers to when Discord is configured: a kind with a channel
/// is spooled (and the sender woken); a kind without one, or a spool write that fails, goes
/// to the log.
pub struct DiscordSpoolSink {
    store: SqlStore,
    channels: DiscordSettings,
    wake: Arc<Notify>,
}

impl DiscordSpoolSink {
    pub fn new(store: SqlStore, channels: DiscordSettings, wake: Arc<Notify>) -> Self {
        Self {
            store,
            channels,
            wake,
        }
    }
}

#[async_trait]
impl AlertSink for DiscordSpoolSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        let Some(channel) = self.channels.channel_for(alert.kind) else {
            return LogAlertSink.deliver(alert).await;
        };
        if alert.severity == Severity::Critical {
            // Critical alerts also reach the log: if Discord is refusing us (a revoked
            // token halts the sender) the log is where an operator still sees them.
            let _ = LogAlertSink.deliver(alert).await;
        }
        let payload = alert_message(alert).to_string();
        match self
            .store
            .spool_alert(channel, alert.kind.key(), &payload)
            .await
        {
            Ok(_) => {
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                // The store is the spool; without it the log is all that is left.
                let _ = LogAlertSink.deliver(alert).await;
                Err(AlertError(format!("could not spool the alert: {e}")))
            }
        }
    }
}

/// What the sender is doing, for /ops and tests.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct SenderStatus {
    /// Set when a 401 stopped the sender: the token must be fixed (and the process
    /// restarted); the spool keeps everything meanwhile.
    pub halted: Option<String>,
    /// Channels stopped by a 403/404 (missing access, unknown channel), with the reason.
    pub halted_channels: HashMap<String, String>,
    /// Alerts still owed, as of the sender's last look at the spool.
    pub spooled: i64,
    /// Posts Discord accepted.
    pub delivered: u64,
    /// HTTP requests made (accepted or not).
    pub requests: u64,
    /// Times the sender has looked at the spool.
    pub passes: u64,
}

#[derive(Default)]
struct Bucket {
    remaining: Option<u64>,
    reset_at: Option<Instant>,
    /// `X-RateLimit-Bucket`, for the logs.
    id: Option<String>,
}

struct Shared {
    store: SqlStore,
    http: reqwest::Client,
    api_base: String,
    token: Secret,
    retry_max: Duration,
    wake: Arc<Notify>,
    halted: Mutex<Option<String>>,
    halted_channels: Mutex<HashMap<String, String>>,
    active: Mutex<HashSet<String>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    global_until: Mutex<Option<Instant>>,
    recent_requests: Mutex<VecDeque<Instant>>,
    spooled: AtomicU64,
    delivered: AtomicU64,
    requests: AtomicU64,
    passes: AtomicU64,
}

/// A handle on the running sender.
#[derive(Clone)]
pub struct DiscordSender {
    shared: Arc<Shared>,
}

enum PostOutcome {
    Delivered,
    RateLimited {
        wait: Duration,
        global: bool,
    },
    /// 401: the token is wrong.
    Unauthorized(String),
    /// 403/404: this channel cannot be posted to.
    ChannelBlocked(String),
    /// Another 4xx: this body will never be accepted.
    Refused(String),
    /// 5xx, timeout, connection failure: try again later.
    Transient(String),
}

/// The nonce of a spooled row: stable across retries of that row, distinct between rows and
/// between databases (the row's creation time is in it); ≤ 25 characters as Discord wants.
pub fn nonce_for(row: &SpooledAlert) -> String {
    fn base36(mut n: u64) -> String {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut out = Vec::new();
        loop {
            out.push(DIGITS[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        out.reverse();
        String::from_utf8(out).expect("ascii")
    }
    format!(
        "la{}-{}",
        base36(row.id.max(0) as u64),
        base36(row.created_at.timestamp_millis().max(0) as u64)
    )
}

impl DiscordSender {
    /// Starts the sender over the spool in `store`. `wake` is the sink's doorbell.
    pub fn start(
        store: SqlStore,
        settings: &DiscordSettings,
        token: Secret,
        wake: Arc<Notify>,
    ) -> anyhow::Result<(Self, tokio::task::JoinHandle<()>)> {
        let http = crate::channels::http_client(REQUEST_TIMEOUT)?;
        let shared = Arc::new(Shared {
            store,
            http,
            api_base: settings.api_base.clone(),
            token,
            retry_max: settings.retry_max.max(FIRST_BACKOFF),
            wake,
            halted: Mutex::new(None),
            halted_channels: Mutex::default(),
            active: Mutex::default(),
            buckets: Mutex::default(),
            global_until: Mutex::new(None),
            recent_requests: Mutex::default(),
            spooled: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            passes: AtomicU64::new(0),
        });
        let join = tokio::spawn(dispatch(shared.clone()));
        Ok((Self { shared }, join))
    }

    pub fn status(&self) -> SenderStatus {
        let s = &self.shared;
        SenderStatus {
            halted: s.halted.lock().unwrap().clone(),
            halted_channels: s.halted_channels.lock().unwrap().clone(),
            spooled: s.spooled.load(Ordering::SeqCst) as i64,
            delivered: s.delivered.load(Ordering::SeqCst),
            requests: s.requests.load(Ordering::SeqCst),
            passes: s.passes.load(Ordering::SeqCst),
        }
    }
}

/// Looks at the spool whenever woken (or every second) and makes sure each channel that is
/// owed something has a worker.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        if shared.halted.lock().unwrap().is_none() {
            match shared.store.spooled_channels().await {
                Ok(channels) => {
                    for channel in channels {
                        if shared
                            .halted_channels
                            .lock()
                            .unwrap()
                            .contains_key(&channel)
                        {
                            continue;
                        }
                        if shared.active.lock().unwrap().insert(channel.clone()) {
                            tokio::spawn(channel_worker(shared.clone(), channel));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "alert spool unreadable; retrying"),
            }
        }
        if let Ok(n) = shared.store.spooled_count().await {
            shared.spooled.store(n.max(0) as u64, Ordering::SeqCst);
            metrics::gauge!("lead_agent_alerts_spooled").set(n as f64);
        }
        shared.passes.fetch_add(1, Ordering::SeqCst);
        let _ = tokio::time::timeout(POLL_EVERY, shared.wake.notified()).await;
    }
}

/// Posts one channel's spool, oldest first, until it is empty or the channel (or the whole
/// sender) is stopped. The only writer of its channel, so order holds.
async fn channel_worker(shared: Arc<Shared>, channel: String) {
    let mut failures: u32 = 0;
    loop {
        if shared.halted.lock().unwrap().is_some() {
            break;
        }
        let row = match shared.store.next_spooled(&channel).await {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(channel, error = %e, "alert spool unreadable; the next pass retries");
                break;
            }
        };
        wait_for_capacity(&shared, &channel).await;
        match post(&shared, &row).await {
            PostOutcome::Delivered => {
                failures = 0;
                shared.delivered.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = shared.store.spooled_delivered(row.id).await {
                    // Discord has it; if the delete is lost the retry carries the same nonce
                    // and Discord answers with the message it already has.
                    tracing::warn!(channel, id = row.id, error = %e, "delivered alert not removed from the spool");
                    break;
                }
            }
            PostOutcome::RateLimited { wait, global } => {
                tracing::info!(channel, ?wait, global, "Discord rate limit; waiting");
                let until = Instant::now() + wait;
                if global {
                    *shared.global_until.lock().unwrap() = Some(until);
                } else {
                    let mut buckets = shared.buckets.lock().unwrap();
                    let b = buckets.entry(channel.clone()).or_default();
                    b.remaining = Some(0);
                    b.reset_at = Some(until);
                }
            }
            PostOutcome::Unauthorized(reason) => {
                let mut halted = shared.halted.lock().unwrap();
                if halted.is_none() {
                    tracing::error!(
                        reason,
                        "Discord refused the bot token (401): alert posting stopped; alerts stay spooled until DISCORD_BOT_TOKEN is fixed and the process restarted"
                    );
                    *halted = Some(reason);
                }
                break;
            }
            PostOutcome::ChannelBlocked(reason) => {
                tracing::error!(
                    channel,
                    reason,
                    "Discord refuses posts to this channel: posting to it stopped; its alerts stay spooled until access is fixed and the process restarted"
                );
                shared
                    .halted_channels
                    .lock()
                    .unwrap()
                    .insert(channel.clone(), reason);
                break;
            }
            PostOutcome::Refused(reason) => {
                tracing::error!(
                    channel,
                    id = row.id,
                    reason,
                    "Discord refused an alert for good; kept in the spool as failed"
                );
                let _ = shared.store.spooled_refused(row.id, &reason).await;
            }
            PostOutcome::Transient(reason) => {
                failures += 1;
                let _ = shared.store.spooled_attempt_failed(row.id, &reason).await;
                let delay = backoff(failures, shared.retry_max);
                tracing::warn!(
                    channel,
                    id = row.id,
                    attempt = failures,
                    ?delay,
                    reason,
                    "Discord post failed; the alert stays spooled and is retried"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
    shared.active.lock().unwrap().remove(&channel);
    // A row spooled between our last read and the removal above would wait for the next
    // poll; ringing the dispatcher makes it look now.
    shared.wake.notify_one();
}

/// 0.25 s doubling per consecutive failure, capped.
fn backoff(failures: u32, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(exp)).min(max)
}

/// Waits out a global 429, the channel bucket's reset when it has no requests left, and
/// our own cap of 50 requests in any second.
async fn wait_for_capacity(shared: &Shared, channel: &str) {
    loop {
        let now = Instant::now();
        let global = shared.global_until.lock().unwrap().filter(|t| *t > now);
        let bucket = {
            let buckets = shared.buckets.lock().unwrap();
            buckets
                .get(channel)
                .and_then(|b| match (b.remaining, b.reset_at) {
                    (Some(0), Some(t)) if t > now => Some(t),
                    _ => None,
                })
        };
        let own = {
            let mut recent = shared.recent_requests.lock().unwrap();
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                recent.pop_front();
            }
            if recent.len() >= GLOBAL_PER_SECOND {
                recent.front().map(|t| *t + Duration::from_secs(1))
            } else {
                recent.push_back(now);
                None
            }
        };
        match [global, bucket, own].into_iter().flatten().max() {
            None => return,
            Some(until) => tokio::time::sleep_until(until).await,
        }
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn post(shared: &Shared, row: &SpooledAlert) -> PostOutcome {
    let mut body: serde_json::Value = match serde_json::from_str(&row.payload) {
        Ok(v) => v,
        Err(e) => return PostOutcome::Refused(format!("spooled payload is not JSON: {e}")),
    };
    body["nonce"] = serde_json::Value::String(nonce_for(row));
    body["enforce_nonce"] = serde_json::Value::Bool(true);
    let url = format!("{}/channels/{}/messages", shared.api_base, row.channel_id);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let sent = shared
        .http
        .post(&url)
        .header("Authorization", format!("Bot {}", shared.token.expose()))
        .header(
            "User-Agent",
            concat!(
                "DiscordBot (https://github.com/lead-agent, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ),
        )
        .json(&body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return PostOutcome::Transient(format!("timed out: {e}")),
        Err(e) => return PostOutcome::Transient(format!("request failed: {e}")),
    };
    note_bucket(shared, &row.channel_id, &resp);
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return PostOutcome::Delivered;
    }
    let global_header =
        header(&resp, "x-ratelimit-global").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let retry_after_header =
        header(&resp, "retry-after").and_then(|v| v.trim().parse::<f64>().ok());
    let text = resp.text().await.unwrap_or_default();
    let short = text.chars().take(300).collect::<String>();
    match status {
        429 => {
            let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
            let secs = parsed
                .as_ref()
                .and_then(|v| v["retry_after"].as_f64())
                .or(retry_after_header)
                .unwrap_or(1.0);
            let global = global_header
                || parsed
                    .as_ref()
                    .and_then(|v| v["global"].as_bool())
                    .unwrap_or(false);
            // Bounded so a garbled header cannot park a channel for a day.
            let wait = Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
            PostOutcome::RateLimited { wait, global }
        }
        401 => PostOutcome::Unauthorized(format!("401: {short}")),
        403 | 404 => PostOutcome::ChannelBlocked(format!("{status}: {short}")),
        408 | 500..=599 => PostOutcome::Transient(format!("{status}: {short}")),
        _ => PostOutcome::Refused(format!("{status}: {short}")),
    }
}

/// Records what the response says about the channel's bucket: requests left and when it
/// resets (`X-RateLimit-Reset-After`, seconds, fractional).
fn note_bucket(shared: &Shared, channel: &str, resp: &reqwest::Response) {
    let remaining = header(resp, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
    let reset_after = header(resp, "x-ratelimit-reset-after").and_then(|v| v.parse::<f64>().ok());
    let id = header(resp, "x-ratelimit-bucket").map(str::to_string);
    if remaining.is_none() && reset_after.is_none() {
        return;
    }
    let mut buckets = shared.buckets.lock().unwrap();
    let b = buckets.entry(channel.to_string()).or_default();
    if remaining.is_some() {
        b.remaining = remaining;
    }
    if let Some(secs) = reset_after.filter(|s| s.is_finite() && *s >= 0.0) {
        b.reset_at = Some(Instant::now() + Duration::from_secs_f64(secs.min(3600.0)));
    }
    if id.is_some() {
        b.id = id;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn row(id: i64) -> SpooledAlert {
        SpooledAlert {
            id,
            channel_id: "1".into(),
            kind: "ERROR".into(),
            payload: "{}".into(),
            attempts: 0,
            created_at: Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap(),
        }
    }

    #[test]
    fn a_nonce_is_stable_per_row_distinct_between_rows_and_short_enough() {
        assert_eq!(nonce_for(&row(7)), nonce_for(&row(7)));
        assert_ne!(nonce_for(&row(7)), nonce_for(&row(8)));
        assert!(nonce_for(&row(i64::MAX)).len() <= 25);
    }

    #[test]
    fn backoff_doubles_from_a_quarter_second_up_to_the_cap() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, max), Duration::from_millis(250));
        assert_eq!(backoff(2, max), Duration::from_millis(500));
        assert_eq!(backoff(3, max), Duration::from_secs(1));
        assert_eq!(backoff(30, max), max);
    }
}
