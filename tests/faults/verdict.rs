//! The checker every scenario ends with, and the table it prints.
//!
//! Replies are counted where a lead would count them, at the fake Twilio: per burst lead
//! (each sent one message with its own MessageSid), 0 replies is lost, 1 answered once, 2+
//! twice. A webhook whose last answer was not 200 is counted as refused: Twilio does not
//! retry it (a 5xx or a read timeout is error 11200, sent to the Fallback URL if one is set,
//! else dropped), so it fails the scenario even when the service kept and answered the
//! message some other way. Alerts are what reached the fake Discord's bot API (each message
//! Discord created, at its first successful post; nonce retries count once) or the
//! watchdog's webhook; a fault's alert is the first post after the fault's start that its
//! rule matches, and its latency is measured from the fault's start.
//!
//! Must not: wait without a bound, or pass a scenario whose fault did not happen.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use actors::ports::LeadId;

use crate::cluster::{ALERT_CHANNEL, Cluster};
use crate::inbound::Delivery;
use crate::support::fake_discord::WEBHOOK_CHANNEL;

/// After the outbox settles, how long to keep watching for a late second reply.
const QUIET: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// The service's own alerts, through the bot API.
    Bot,
    /// The watchdog's, through its channel webhook.
    Watchdog,
}

#[derive(Clone, Debug)]
pub struct Posted {
    pub source: Source,
    pub title: String,
    /// Title, description, fields and content, for rules to search.
    pub text: String,
    pub at: Instant,
}

/// Every alert posted so far, in arrival order: the service's through the bot API, the
/// watchdog's through its channel webhook (both at the one fake Discord).
pub fn posted(cluster: &Cluster) -> Vec<Posted> {
    let mut seen = HashSet::new();
    cluster
        .discord
        .requests()
        .into_iter()
        .filter_map(|r| {
            let source = match r.channel.as_str() {
                ALERT_CHANNEL => Source::Bot,
                WEBHOOK_CHANNEL => Source::Watchdog,
                _ => return None,
            };
            let created = (200..300).contains(&r.status)
                && r.body["nonce"]
                    .as_str()
                    .is_none_or(|n| seen.insert((r.channel.clone(), n.to_string())));
            created.then(|| {
                let title = r.body["embeds"][0]["title"]
                    .as_str()
                    .or(r.body["content"].as_str())
                    .unwrap_or("")
                    .to_string();
                Posted {
                    source,
                    title: match source {
                        Source::Bot => title,
                        Source::Watchdog => format!("watch: {title}"),
                    },
                    text: message_text(&r.body),
                    at: r.at,
                }
            })
        })
        .collect()
}

fn message_text(body: &serde_json::Value) -> String {
    let mut text = body["content"].as_str().unwrap_or("").to_string();
    for e in body["embeds"].as_array().into_iter().flatten() {
        for key in ["title", "description"] {
            text.push('\n');
            text.push_str(e[key].as_str().unwrap_or(""));
        }
        for f in e["fields"].as_array().into_iter().flatten() {
            text.push('\n');
            text.push_str(f["name"].as_str().unwrap_or(""));
            text.push_str(": ");
            text.push_str(f["value"].as_str().unwrap_or(""));
        }
    }
    text
}

/// What a fault's alert must look like, and by when it must arrive.
pub struct AlertRule {
    pub what: String,
    pub bound: Duration,
    matches: Box<dyn Fn(&Posted) -> bool + Send + Sync>,
    /// Words that name the fault's cause: an alert that names none is shown as such.
    cause: &'static [&'static str],
}

impl AlertRule {
    pub fn new(
        what: impl Into<String>,
        bound: Duration,
        matches: impl Fn(&Posted) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            bound,
            matches: Box::new(matches),
            cause: &[],
        }
    }

    /// An outage's alert: from the service or the watchdog, naming the cause (one of
    /// `cause`, case-insensitive) — the service survives a store or broker outage, and
    /// says so by cause (`store_unavailable`, `queue_unavailable`). The watchdog's
    /// `watch_*_down` about a consequence (stale heartbeats) is seen but is not enough.
    /// Never the EVENT stream (it narrates turns; it is no alarm), nor the response-gap
    /// watch's generic `pipeline_*`/`response_gap` (the backstop for any cause; it says
    /// leads wait, not why).
    pub fn outage(what: &str, cause: &'static [&'static str], bound: Duration) -> Self {
        let mut rule = Self::new(
            format!("{what} (an alert naming one of {cause:?})"),
            bound,
            move |p| !is_narration(p) && names(p, cause),
        );
        rule.cause = cause;
        rule
    }
}

fn names(p: &Posted, words: &[&str]) -> bool {
    let text = p.text.to_lowercase();
    words.iter().any(|w| text.contains(w))
}

/// The event stream and the generic stall alerts: seen, but never a fault's own alert.
fn is_narration(p: &Posted) -> bool {
    p.title.starts_with("EVENT ·")
        || p.title.contains("pipeline_")
        || p.title.contains("response_gap")
}

#[derive(Clone, Debug)]
pub enum AlertOutcome {
    Arrived {
        title: String,
        latency: Duration,
        bound: Duration,
    },
    Missing {
        what: String,
        bound: Duration,
        seen: Vec<String>,
    },
}

impl AlertOutcome {
    pub fn on_time(&self) -> bool {
        matches!(self, AlertOutcome::Arrived { latency, bound, .. } if latency <= bound)
    }
}

/// The first post since `fault` that `rule` matches, waiting until its bound has passed
/// (returns at once if it is already there; a match after the bound is reported late).
pub async fn alert_outcome(cluster: &Cluster, rule: &AlertRule, fault: Instant) -> AlertOutcome {
    loop {
        let posts = posted(cluster);
        if let Some(p) = posts.iter().find(|p| p.at >= fault && (rule.matches)(p)) {
            let unnamed = !rule.cause.is_empty() && !names(p, rule.cause);
            return AlertOutcome::Arrived {
                title: if unnamed {
                    format!("{} (names no cause)", p.title)
                } else {
                    p.title.clone()
                },
                latency: p.at - fault,
                bound: rule.bound,
            };
        }
        if fault.elapsed() > rule.bound {
            return AlertOutcome::Missing {
                what: rule.what.clone(),
                bound: rule.bound,
                seen: summarize(posts.iter().filter(|p| p.at >= fault)),
            };
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Each title once, with its count when repeated ("ERROR · response_gap ×8").
fn summarize<'a>(posts: impl Iterator<Item = &'a Posted>) -> Vec<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for p in posts {
        match counts.iter_mut().find(|(t, _)| *t == p.title) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.title.clone(), 1)),
        }
    }
    counts
        .into_iter()
        .map(|(t, n)| if n > 1 { format!("{t} ×{n}") } else { t })
        .collect()
}

/// One scenario's result: one row of the table.
pub struct Verdict {
    pub scenario: String,
    pub messages: usize,
    pub answered_once: usize,
    pub lost: Vec<String>,
    pub twice: Vec<String>,
    pub refused: Vec<String>,
    pub alert: AlertOutcome,
    /// Anything else the scenario requires, said plainly (its fault not landing included).
    pub problems: Vec<String>,
    /// The processes' logs, kept when the scenario failed.
    pub logs: Option<PathBuf>,
}

impl Verdict {
    /// A scenario whose harness itself failed (a panic: an instance that would not start…).
    pub fn broken(scenario: &str, why: String) -> Self {
        Self {
            scenario: scenario.to_string(),
            messages: 0,
            answered_once: 0,
            lost: Vec::new(),
            twice: Vec::new(),
            refused: Vec::new(),
            alert: AlertOutcome::Missing {
                what: "(not reached)".into(),
                bound: Duration::ZERO,
                seen: Vec::new(),
            },
            problems: vec![format!("the scenario did not run to its verdict: {why}")],
            logs: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.twice.is_empty()
            && self.refused.is_empty()
            && self.alert.on_time()
            && self.problems.is_empty()
    }

    /// Every failure, one line each, naming the messages and the alert.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |v: &[String]| v.join("; ");
        if !self.lost.is_empty() {
            out.push(format!("lost {}: {}", self.lost.len(), list(&self.lost)));
        }
        if !self.twice.is_empty() {
            out.push(format!(
                "answered twice {}: {}",
                self.twice.len(),
                list(&self.twice)
            ));
        }
        if !self.refused.is_empty() {
            out.push(format!(
                "refused (not 200; Twilio does not retry) {}: {}",
                self.refused.len(),
                list(&self.refused)
            ));
        }
        match &self.alert {
            AlertOutcome::Arrived {
                title,
                latency,
                bound,
            } if latency > bound => out.push(format!(
                "alert late: {title} after {:.1} s (bound {} s)",
                latency.as_secs_f64(),
                bound.as_secs()
            )),
            AlertOutcome::Arrived { .. } => {}
            AlertOutcome::Missing { what, bound, seen } => out.push(format!(
                "no alert within {} s: expected {what}; alerts seen since the fault: {seen:?}",
                bound.as_secs()
            )),
        }
        out.extend(self.problems.iter().cloned());
        if let Some(dir) = &self.logs {
            out.push(format!("process logs kept in {}", dir.display()));
        }
        out
    }
}

/// Waits (at most `drain`) until every message the service took — accepted with a 200, or
/// found in the store — has a reply at Twilio and nothing of those leads is left in flight
/// in the outbox, then a quiet moment for late duplicates; then counts the replies.
pub async fn judge(
    cluster: &mut Cluster,
    scenario: String,
    deliveries: Vec<Delivery>,
    alert: AlertOutcome,
    mut problems: Vec<String>,
    drain: Duration,
) -> Verdict {
    let deadline = Instant::now() + drain;
    let mut drained = false;
    while Instant::now() < deadline {
        if settled(cluster, &deliveries).await {
            drained = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    tokio::time::sleep(QUIET).await;
    if !drained {
        problems.push(format!(
            "the outbox had not settled after {} s (replies pending, sending or in doubt)",
            drain.as_secs()
        ));
    }
    let mut v = Verdict {
        scenario,
        messages: deliveries.len(),
        answered_once: 0,
        lost: Vec::new(),
        twice: Vec::new(),
        refused: Vec::new(),
        alert,
        problems,
        logs: None,
    };
    for d in &deliveries {
        let replies = cluster.twilio.sent_to(&d.sms.lead).len();
        match replies {
            0 => {
                let stored = stored(cluster, d).await;
                v.lost.push(format!(
                    "{} {} (webhook: {}; {})",
                    d.sms.lead,
                    d.sms.sid,
                    d.last(),
                    if stored {
                        "stored, never answered"
                    } else {
                        "never stored"
                    }
                ));
            }
            1 => v.answered_once += 1,
            n => v.twice.push(format!("{}: {n} replies", d.sms.lead)),
        }
        if !d.last().is_accepted() {
            v.refused.push(format!("{}: {}", d.sms.lead, d.last()));
        }
    }
    if !v.passed() {
        v.logs = Some(cluster.processes.keep_logs());
    }
    v
}

async fn stored(cluster: &Cluster, d: &Delivery) -> bool {
    cluster
        .store
        .conversation(&LeadId::new(d.sms.lead.clone()), 20)
        .await
        .map(|c| {
            c.iter()
                .any(|m| m.message_sid.as_deref() == Some(d.sms.sid.as_str()))
        })
        .unwrap_or(false)
}

async fn settled(cluster: &Cluster, deliveries: &[Delivery]) -> bool {
    for d in deliveries {
        if !d.accepted() && !stored(cluster, d).await {
            continue; // nothing has it: it can never be answered
        }
        if cluster.twilio.sent_to(&d.sms.lead).is_empty() {
            return false;
        }
        let Ok(conv) = cluster
            .store
            .conversation(&LeadId::new(d.sms.lead.clone()), 20)
            .await
        else {
            return false;
        };
        if conv.iter().any(|m| {
            matches!(
                m.state.as_str(),
                "pending" | "queued" | "sending" | "in_doubt"
            )
        }) {
            return false;
        }
    }
    true
}

/// The table: one row per scenario, then each failing scenario's failures.
pub fn table(verdicts: &[Verdict]) -> String {
    let mut t = String::from(
        "| scenario | messages | answered once | lost | twice | refused | alert | alert latency | verdict |\n\
         |---|---:|---:|---:|---:|---:|---|---|---|\n",
    );
    for v in verdicts {
        let (alert, latency) = match &v.alert {
            AlertOutcome::Arrived {
                title,
                latency,
                bound,
            } => (
                title.clone(),
                format!(
                    "{:.1} s ({} {} s)",
                    latency.as_secs_f64(),
                    if latency <= bound {
                        "≤"
                    } else {
                        "LATE, bound"
                    },
                    bound.as_secs()
                ),
            ),
            AlertOutcome::Missing { bound, .. } => (
                "none".to_string(),
                format!("— (bound {} s)", bound.as_secs()),
            ),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.scenario,
            v.messages,
            v.answered_once,
            v.lost.len(),
            v.twice.len(),
            v.refused.len(),
            alert,
            latency,
            if v.passed() { "pass" } else { "FAIL" }
        );
    }
    for v in verdicts.iter().filter(|v| !v.passed()) {
        let _ = writeln!(t, "\n{} FAILED:", v.scenario);
        for f in v.failures() {
            let _ = writeln!(t, "  - {f}");
        }
    }
    t
}
