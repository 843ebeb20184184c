//! The Discord REST client the alert paths share: one per process, so the spool's channel
//! workers and the direct path draw on the same rate-limit state for one bot.
//!
//! Owns: `POST /channels/{id}/messages` with the nonce and `enforce_nonce`; Discord's rate
//! limits — `X-RateLimit-Remaining` / `-Reset-After` per channel bucket, a 429's
//! `retry_after` (per bucket, or for everything when global), at most 50 requests in any
//! second overall; the classification of every answer (delivered, rate limited, 401 bad
//! token, 403/404 blocked channel, another 4xx refused for good, 5xx/408/timeout/connection
//! failure transient) and the halts it implies: a 401 stops every post of this process, a
//! 403/404 stops that channel (10,000 401/403/429 answers in 10 minutes get the IP banned,
//! REFERENCE.md); the backoff between transient failures.
//! Must not: know where an alert came from (spool or direct queue) or decide what happens
//! to it after an answer — the caller keeps, deletes or retries it; raise alerts (its
//! failures are log lines: alerting about alerts is a loop).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Secret;

/// Discord's global limit per bot (REFERENCE.md). The headers tell us per-bucket limits; the
/// global one is only reported by a 429, so we keep under it ourselves.
const GLOBAL_PER_SECOND: usize = 50;
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest a post may take; shorter when the channel lease is short (a post must end
/// while its poster still holds the lease, see `lease.rs`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How one post went.
#[derive(Debug, PartialEq)]
pub enum PostOutcome {
    Delivered,
    /// 429: the wait is recorded (for the channel, or for all when global); post again.
    RateLimited {
        wait: Duration,
        global: bool,
    },
    /// 401: the token is wrong; this process has stopped posting.
    Unauthorized(String),
    /// 403/404: this channel cannot be posted to; it is stopped.
    ChannelBlocked(String),
    /// Another 4xx: this body will never be accepted.
    Refused(String),
    /// 5xx, 408, timeout, connection failure: try again later.
    Transient(String),
}

#[derive(Default)]
struct Bucket {
    remaining: Option<u64>,
    reset_at: Option<Instant>,
    /// `X-RateLimit-Bucket`, for the logs.
    id: Option<String>,
}

pub struct DiscordRest {
    http: reqwest::Client,
    api_base: String,
    token: Secret,
    retry_max: Duration,
    halted: Mutex<Option<String>>,
    halted_channels: Mutex<HashMap<String, String>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    global_until: Mutex<Option<Instant>>,
    recent_requests: Mutex<VecDeque<Instant>>,
    requests: AtomicU64,
}

impl DiscordRest {
    pub fn new(
        api_base: &str,
        token: Secret,
        retry_max: Duration,
        request_timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            http: crate::channels::http_client(request_timeout)?,
            api_base: api_base.to_string(),
            token,
            retry_max: retry_max.max(FIRST_BACKOFF),
            halted: Mutex::new(None),
            halted_channels: Mutex::default(),
            buckets: Mutex::default(),
            global_until: Mutex::new(None),
            recent_requests: Mutex::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// Set when a 401 stopped every post of this process.
    pub fn halted(&self) -> Option<String> {
        self.halted.lock().unwrap().clone()
    }

    pub fn halted_channels(&self) -> HashMap<String, String> {
        self.halted_channels.lock().unwrap().clone()
    }

    /// True when nothing may be posted to `channel` (a 401, or a 403/404 on it).
    pub fn stopped(&self, channel: &str) -> bool {
        self.halted.lock().unwrap().is_some()
            || self.halted_channels.lock().unwrap().contains_key(channel)
    }

    /// HTTP requests made (accepted or not).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The pause after `failures` consecutive transient failures of one channel.
    pub fn backoff(&self, failures: u32) -> Duration {
        backoff(failures, self.retry_max)
    }

    /// Waits out a global 429, the channel bucket's reset when it has no requests left, and
    /// our own cap of 50 requests in any second; then takes one of those 50.
    pub async fn wait_for_capacity(&self, channel: &str) {
        loop {
            let now = Instant::now();
            let global = self.global_until.lock().unwrap().filter(|t| *t > now);
            let bucket = {
                let buckets = self.buckets.lock().unwrap();
                buckets
                    .get(channel)
                    .and_then(|b| match (b.remaining, b.reset_at) {
                        (Some(0), Some(t)) if t > now => Some(t),
                        _ => None,
                    })
            };
            let own = {
                let mut recent = self.recent_requests.lock().unwrap();
                while recent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
                {
                    recent.pop_front();
                }
                if recent.len() >= GLOBAL_PER_SECOND {
                    recent.front().map(|t| *t + Duration::from_secs(1))
                } else if global.is_none() && bucket.is_none() {
                    recent.push_back(now);
                    None
                } else {
                    None
                }
            };
            match [global, bucket, own].into_iter().flatten().max() {
                None => return,
                Some(until) => tokio::time::sleep_until(until).await,
            }
        }
    }

    /// Posts `payload` (a JSON message body) to `channel` with `nonce`, and records what the
    /// answer says about the rate limits and halts.
    pub async fn post(&self, channel: &str, payload: &str, nonce: &str) -> PostOutcome {
        let mut body: serde_json::Value = match serde_json::from_str(payload) {
            Ok(v) => v,
            Err(e) => return PostOutcome::Refused(format!("payload is not JSON: {e}")),
        };
        body["nonce"] = serde_json::Value::String(nonce.to_string());
        body["enforce_nonce"] = serde_json::Value::Bool(true);
        let url = format!("{}/channels/{channel}/messages", self.api_base);
        self.requests.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .http
            .post(&url)
            .header("Authorization", format!("Bot {}", self.token.expose()))
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
        self.note_bucket(channel, &resp);
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
        let outcome = match status {
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
        };
        self.record(channel, &outcome);
        outcome
    }

    /// The side effects an answer has on every later post: a 429's wait, a halt.
    fn record(&self, channel: &str, outcome: &PostOutcome) {
        match outcome {
            PostOutcome::RateLimited { wait, global } => {
                tracing::info!(channel, ?wait, global, "Discord rate limit; waiting");
                let until = Instant::now() + *wait;
                if *global {
                    *self.global_until.lock().unwrap() = Some(until);
                } else {
                    let mut buckets = self.buckets.lock().unwrap();
                    let b = buckets.entry(channel.to_string()).or_default();
                    b.remaining = Some(0);
                    b.reset_at = Some(until);
                }
            }
            PostOutcome::Unauthorized(reason) => {
                let mut halted = self.halted.lock().unwrap();
                if halted.is_none() {
                    tracing::error!(
                        reason,
                        "Discord refused the bot token (401): alert posting stopped; alerts stay spooled until DISCORD_BOT_TOKEN is fixed and the process restarted"
                    );
                    *halted = Some(reason.clone());
                }
            }
            PostOutcome::ChannelBlocked(reason) => {
                let mut halted = self.halted_channels.lock().unwrap();
                if !halted.contains_key(channel) {
                    tracing::error!(
                        channel,
                        reason,
                        "Discord refuses posts to this channel: posting to it stopped; its alerts stay spooled until access is fixed and the process restarted"
                    );
                    halted.insert(channel.to_string(), reason.clone());
                }
            }
            _ => {}
        }
    }

    /// Records what the response says about the channel's bucket: requests left and when it
    /// resets (`X-RateLimit-Reset-After`, seconds, fractional).
    fn note_bucket(&self, channel: &str, resp: &reqwest::Response) {
        let remaining = header(resp, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        let reset_after =
            header(resp, "x-ratelimit-reset-after").and_then(|v| v.parse::<f64>().ok());
        let id = header(resp, "x-ratelimit-bucket").map(str::to_string);
        if remaining.is_none() && reset_after.is_none() {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap();
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
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// 0.25 s doubling per consecutive failure, capped.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    actors::backoff::Backoff::new(FIRST_BACKOFF, max).delay(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_quarter_second_up_to_the_cap() {
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, max), Duration::from_millis(250));
        assert_eq!(backoff(2, max), Duration::from_millis(500));
        assert_eq!(backoff(3, max), Duration::from_secs(1));
        assert_eq!(backoff(30, max), max);
    }
}
