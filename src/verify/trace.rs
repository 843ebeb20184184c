//! `verify`'s event trace, the second half of the seed's step 7 ("check Discord channels
//! for the event trace"): the synthetic SMS's `message_received` → `ai_response` →
//! `sms_sent` events, read back from the channel the EVENT stream posts to, through
//! Discord's REST API (`GET /channels/{id}/messages?after=…&limit=100` with the bot token;
//! the bot needs View Channel and Read Message History there). What it proves beyond the
//! reply: the alert path of this deploy reaches Discord, not only the SMS path.
//!
//! Owns: reading the channel and deciding the step. Must not: post to Discord, print the
//! token, or pass when it could not read the channel (that is a SKIP or a FAIL).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STEPS, Status, StepResult, step};
use crate::config::read_var;

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds: snowflakes count from it.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// The events one answered SMS leaves in the EVENT stream, in order.
pub const TRACE: [&str; 3] = ["message_received", "ai_response", "sms_sent"];

/// Where the EVENT stream goes and how to read it back.
#[derive(Clone)]
pub struct EventChannel {
    /// The REST base, e.g. `https://discord.com/api/v10`.
    pub api_base: String,
    pub bot_token: String,
    pub channel: String,
}

impl std::fmt::Debug for EventChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventChannel")
            .field("api_base", &self.api_base)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl EventChannel {
    /// From the service's own variables (`DISCORD_BOT_TOKEN`, `DISCORD_API_BASE`, and the
    /// channel EVENT alerts post to: the channel the agent profile routes them to when it
    /// is set (the Locator's `DISCORD_CHANNEL_LOCATOR`), else `DISCORD_CHANNEL_EVENT`, else
    /// `DISCORD_DEFAULT_CHANNEL`); `Err` says why the trace cannot be read.
    pub fn from_env() -> Result<Self, String> {
        let bot_token = read_var("DISCORD_BOT_TOKEN")
            .ok_or("no DISCORD_BOT_TOKEN: the event trace in Discord was not read")?;
        let (profile, _) = crate::config::AgentProfile::resolve(&read_var);
        let routed = profile
            .alert_routes
            .get(&actors::alert_router::AlertKind::Event)
            .and_then(|to| read_var(&crate::config::DiscordSettings::channel_var(*to)));
        let channel = routed
            .or_else(|| read_var("DISCORD_CHANNEL_EVENT"))
            .or_else(|| read_var("DISCORD_DEFAULT_CHANNEL"))
            .ok_or(
                "neither DISCORD_CHANNEL_EVENT nor DISCORD_DEFAULT_CHANNEL: \
                 events go to the log, no channel to read",
            )?;
        let api_base = read_var("DISCORD_API_BASE")
            .unwrap_or_else(|| "https://discord.com/api/v10".into())
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            api_base,
            bot_token,
            channel,
        })
    }
}

/// The smallest snowflake of a message created at `at`: `after` it lists what came since.
pub fn snowflake_at(at: DateTime<Utc>) -> u64 {
    ((at.timestamp_millis() - DISCORD_EPOCH_MS).max(0) as u64) << 22
}

/// One EVENT message as the trace reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMessage {
    pub id: u64,
    /// The event's name (`EVENT · message_received` → `message_received`).
    pub event: String,
    pub lead: Option<String>,
    pub text: String,
    pub raised_at: Option<DateTime<Utc>>,
}

/// The EVENT messages in a page of Get Channel Messages (anything else is skipped).
pub fn parse_page(page: &Value) -> Vec<EventMessage> {
    let mut out = Vec::new();
    for m in page.as_array().into_iter().flatten() {
        let Some(id) = m["id"].as_str().and_then(|i| i.parse().ok()) else {
            continue;
        };
        let embed = &m["embeds"][0];
        let Some(event) = embed["title"]
            .as_str()
            .and_then(|t| t.strip_prefix("EVENT · "))
        else {
            continue;
        };
        let lead = embed["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == "Lead (phone)")
            .and_then(|f| f["value"].as_str())
            .map(str::to_string);
        out.push(EventMessage {
            id,
            event: event.to_string(),
            lead,
            text: embed["description"].as_str().unwrap_or("").to_string(),
            raised_at: embed["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        });
    }
    out
}

/// Which of [`TRACE`] the messages show for this lead, in order: `message_received`
/// carrying the synthetic text, then each next event of the lead raised no earlier than
/// the one before. Returns the events found (a prefix of the trace).
pub fn find_trace(messages: &[EventMessage], phone: &str, text: &str) -> Vec<&'static str> {
    let mut sorted: Vec<&EventMessage> = messages
        .iter()
        .filter(|m| m.lead.as_deref() == Some(phone))
        .collect();
    sorted.sort_by_key(|m| (m.raised_at, m.id));
    let mut found = Vec::new();
    let mut since: Option<(Option<DateTime<Utc>>, u64)> = None;
    for name in TRACE {
        let hit = sorted.iter().find(|m| {
            m.event == name
                && (name != TRACE[0] || m.text.contains(text))
                && since.is_none_or(|s| (m.raised_at, m.id) >= s)
        });
        match hit {
            Some(m) => {
                found.push(name);
                since = Some((m.raised_at, m.id));
            }
            None => break,
        }
    }
    found
}

/// Reads the channel from `after` on, paging until a short page; `Err` for an answer that
/// no wait will change (a refused token or permission, a missing channel).
async fn read_since(
    http: &reqwest::Client,
    channel: &EventChannel,
    mut after: u64,
    into: &mut Vec<EventMessage>,
) -> Result<(), String> {
    for _ in 0..20 {
        let url = format!(
            "{}/channels/{}/messages?after={after}&limit=100",
            channel.api_base, channel.channel
        );
        let response = http
            .get(&url)
            .header("authorization", format!("Bot {}", channel.bot_token))
            .send()
            .await
            .map_err(|e| format!("retry: Discord did not answer: {e}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(format!("retry: Discord answered {status}"));
        }
        if !status.is_success() {
            return Err(format!(
                "Discord answered {status} for channel {}: the bot needs View Channel and \
                 Read Message History there",
                channel.channel
            ));
        }
        let page: Value = response
            .json()
            .await
            .map_err(|e| format!("retry: Discord's answer was not JSON: {e}"))?;
        let count = page.as_array().map_or(0, Vec::len);
        let messages = parse_page(&page);
        for m in messages {
            if !into.iter().any(|seen| seen.id == m.id) {
                into.push(m);
            }
        }
        let newest = page
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["id"].as_str().and_then(|i| i.parse::<u64>().ok()))
            .max();
        match newest {
            Some(id) if count >= 100 => after = id,
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The event-trace step: the trace of the SMS sent at `sent_at` with `text` from `phone`,
/// read until it is whole or `wait` is over.
pub async fn check_event_trace(
    channel: Result<&EventChannel, &str>,
    sms_answered: bool,
    phone: &str,
    text: &str,
    sent_at: DateTime<Utc>,
    wait: Duration,
) -> StepResult {
    let name = STEPS[7];
    let channel = match channel {
        Ok(c) => c,
        Err(why) => return step(name, Status::Skip, why),
    };
    if !sms_answered {
        return step(
            name,
            Status::Fail,
            "the synthetic SMS was not answered: no trace to read",
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default HTTP client builds");
    // A minute before the send: the service's clock and this machine's may differ.
    let after = snowflake_at(sent_at - chrono::Duration::seconds(60));
    let deadline = tokio::time::Instant::now() + wait;
    let mut messages = Vec::new();
    loop {
        let last_error = match read_since(&http, channel, after, &mut messages).await {
            Ok(()) => None,
            Err(e) if e.starts_with("retry: ") => Some(e[7..].to_string()),
            Err(e) => return step(name, Status::Fail, e),
        };
        let found = find_trace(&messages, phone, text);
        if found.len() == TRACE.len() {
            return step(
                name,
                Status::Pass,
                format!("{} in channel {}", TRACE.join(" → "), channel.channel),
            );
        }
        if tokio::time::Instant::now() >= deadline {
            let missing: Vec<&str> = TRACE[found.len()..].to_vec();
            return step(
                name,
                Status::Fail,
                format!(
                    "channel {}: {}missing {} after {} s{}",
                    channel.channel,
                    if found.is_empty() {
                        String::new()
                    } else {
                        format!("found {}; ", found.join(" → "))
                    },
                    missing.join(", "),
                    wait.as_secs(),
                    last_error
                        .map(|e| format!(" (last read: {e})"))
                        .unwrap_or_default()
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(id: u64, event: &str, lead: &str, text: &str, at: &str) -> Value {
        json!({"id": id.to_string(), "embeds": [{
            "title": format!("EVENT · {event}"), "description": text, "timestamp": at,
            "fields": [{"name": "Lead (phone)", "value": lead, "inline": true}]}]})
    }

    #[test]
    fn a_whole_trace_is_found_in_order_for_the_lead_and_the_text() {
        let page = json!([
            message(
                5,
                "sms_sent",
                "+13125550199",
                "sent",
                "2026-12-03T10:00:03Z"
            ),
            message(
                4,
                "ai_response",
                "+13125550199",
                "reply",
                "2026-12-03T10:00:02Z"
            ),
            message(
                3,
                "message_received",
                "+13125550199",
                "+13125550199: verify 10:00",
                "2026-12-03T10:00:01Z"
            ),
            message(
                2,
                "sms_sent",
                "+13125550100",
                "other lead",
                "2026-12-03T10:00:01Z"
            ),
            json!({"id": "1", "embeds": [{"title": "ERROR · pipeline_stalled"}]}),
        ]);
        let messages = parse_page(&page);
        assert_eq!(messages.len(), 4, "the ERROR message is not an event");
        assert_eq!(
            find_trace(&messages, "+13125550199", "verify 10:00"),
            TRACE.to_vec()
        );
        // Another lead's events, or another SMS's text, are not this trace.
        assert!(find_trace(&messages, "+13125550100", "verify 10:00").is_empty());
        assert!(find_trace(&messages, "+13125550199", "verify 11:00").is_empty());
    }

    #[test]
    fn events_raised_before_the_message_do_not_complete_its_trace() {
        let page = json!([
            message(
                3,
                "message_received",
                "+1312",
                "verify 10:00",
                "2026-12-03T10:00:05Z"
            ),
            message(
                2,
                "ai_response",
                "+1312",
                "an earlier turn",
                "2026-12-03T09:59:00Z"
            ),
            message(
                1,
                "sms_sent",
                "+1312",
                "an earlier send",
                "2026-12-03T09:59:01Z"
            ),
        ]);
        assert_eq!(
            find_trace(&parse_page(&page), "+1312", "verify 10:00"),
            vec!["message_received"]
        );
    }

    #[test]
    fn a_snowflake_counts_milliseconds_since_discords_epoch_shifted_by_22() {
        let epoch: DateTime<Utc> = "2015-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(snowflake_at(epoch), 0);
        assert_eq!(
            snowflake_at(epoch + chrono::Duration::milliseconds(1)),
            1 << 22
        );
        // Discord's documented example: 175928847299117063 was created 2016-04-30 11:18:25.796 UTC.
        let at: DateTime<Utc> = "2016-04-30T11:18:25.796Z".parse().unwrap();
        assert_eq!(snowflake_at(at), 175928847299117063 >> 22 << 22);
    }
}
