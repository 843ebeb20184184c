//! Discord and human-in-the-loop settings: the bot that posts alerts and the channel each
//! alert kind goes to, the application whose interactions approve held replies, and HITL.
//!
//! Owns: the rule that HITL without a way to reach a person is a configuration error.
//! Must not: post anything (`crate::channels::discord`).

use std::collections::HashMap;
use std::time::Duration;

use actors::alert_router::AlertKind;

use super::reader::{Reader, is_snowflake};
use super::secret::Secret;

/// Discord: the bot that posts alerts and the application that receives HITL interactions.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    /// Unset: no alert goes to Discord (all to the log).
    pub bot_token: Option<Secret>,
    pub api_base: String,
    pub default_channel: Option<String>,
    /// `DISCORD_CHANNEL_<KEY>` of each kind that has its own.
    pub channels: HashMap<AlertKind, String>,
    /// The agent profile's routes (`super::profile`): a kind posted to another kind's
    /// channel (the Locator's EVENT and AGENT_RESPONSE to LOCATOR). Empty by default.
    pub routes: HashMap<AlertKind, AlertKind>,
    /// `DISCORD_PUBLIC_KEY`, decoded: verifies interaction signatures.
    pub public_key: Option<[u8; 32]>,
    pub retry_max: Duration,
    /// `DISCORD_DIRECT_QUEUE_MAX`: alerts held in memory while the spool is unwritable.
    pub direct_queue_max: usize,
    /// `DISCORD_LEASE_SECS`: how long a process holds a channel between renewals.
    pub lease: Duration,
}

impl DiscordSettings {
    /// The channel a kind is posted to: the channel of the kind the profile routes it to,
    /// else its own, else the default; `None` (no channel or no token) means the log. A
    /// route to a kind without a channel falls through, so a profile never silences a kind.
    pub fn channel_for(&self, kind: AlertKind) -> Option<&str> {
        self.bot_token.as_ref()?;
        self.routes
            .get(&kind)
            .and_then(|to| self.channels.get(to))
            .or_else(|| self.channels.get(&kind))
            .or(self.default_channel.as_ref())
            .map(String::as_str)
    }

    /// The variable naming a kind's own channel.
    pub fn channel_var(kind: AlertKind) -> String {
        format!("DISCORD_CHANNEL_{}", kind.key())
    }
}

/// Human in the loop (`HITL_ENABLED`).
#[derive(Debug, Clone)]
pub struct HitlSettings {
    pub enabled: bool,
    pub hold_timeout: Duration,
    pub holding_message: String,
}

fn decode_hex_32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// `DISCORD_*` and `HITL_*`. HITL without a way to reach a person would hold every reply
/// forever, so its prerequisites are problems, not warnings.
pub(super) fn discord_and_hitl(r: &mut Reader<'_>) -> (DiscordSettings, HitlSettings) {
    let mut channels = HashMap::new();
    let check = |r: &mut Reader<'_>, name: &str| -> Option<String> {
        let v = r.raw(name)?.trim().to_string();
        if is_snowflake(&v) {
            Some(v)
        } else {
            r.problems
                .push(format!("{name}={v:?} is not a Discord channel id (digits)"));
            None
        }
    };
    let default_channel = check(r, "DISCORD_DEFAULT_CHANNEL");
    for kind in AlertKind::ALL {
        if let Some(id) = check(r, &DiscordSettings::channel_var(kind)) {
            channels.insert(kind, id);
        }
    }
    let public_key = r.raw("DISCORD_PUBLIC_KEY").and_then(|k| {
        let key = decode_hex_32(&k);
        if key.is_none() {
            r.problems.push(
                "DISCORD_PUBLIC_KEY must be 64 hex digits (the application's public key)".into(),
            );
        }
        key
    });
    let discord = DiscordSettings {
        bot_token: r.raw("DISCORD_BOT_TOKEN").map(Secret::new),
        api_base: r
            .string("DISCORD_API_BASE")
            .trim_end_matches('/')
            .to_string(),
        default_channel,
        channels,
        routes: HashMap::new(),
        public_key,
        retry_max: r.seconds("DISCORD_RETRY_MAX_SECS"),
        direct_queue_max: r.positive("DISCORD_DIRECT_QUEUE_MAX"),
        lease: r.seconds("DISCORD_LEASE_SECS"),
    };
    if discord.lease < Duration::from_secs(1) {
        r.problems
            .push("DISCORD_LEASE_SECS must be at least 1 (a post must fit in half of it)".into());
    }
    let enabled = match r
        .string("HITL_ENABLED")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        other => {
            r.problems
                .push(format!("HITL_ENABLED={other:?} must be true or false"));
            false
        }
    };
    let hitl = HitlSettings {
        enabled,
        hold_timeout: r.seconds("HITL_HOLD_TIMEOUT_SECS"),
        holding_message: r.string("HITL_HOLDING_MESSAGE"),
    };
    if enabled {
        if discord.bot_token.is_none() {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_BOT_TOKEN (held replies are posted to Discord)"
                    .into(),
            );
        }
        if discord.public_key.is_none() {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_PUBLIC_KEY (to verify the approve/edit/reject interactions)"
                    .into(),
            );
        }
        if !discord.channels.contains_key(&AlertKind::HitlFeedback)
            && discord.default_channel.is_none()
        {
            r.problems.push(
                "HITL_ENABLED=true needs DISCORD_CHANNEL_HITL_FEEDBACK or DISCORD_DEFAULT_CHANNEL"
                    .into(),
            );
        }
        if hitl.holding_message.trim().is_empty() {
            r.problems
                .push("HITL_HOLDING_MESSAGE must not be empty".into());
        }
    }
    (discord, hitl)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{ENV_VARS, Settings};

    #[test]
    fn every_alert_kind_has_a_declared_channel_variable() {
        for kind in AlertKind::ALL {
            let name = DiscordSettings::channel_var(kind);
            assert!(
                ENV_VARS.iter().any(|v| v.name == name),
                "{name} is not declared"
            );
        }
    }

    #[test]
    fn a_kind_uses_its_own_channel_then_the_default_then_the_log() {
        let map = HashMap::from([
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_ERROR", "111"),
            ("DISCORD_DEFAULT_CHANNEL", "999"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.discord.channel_for(AlertKind::Error), Some("111"));
        assert_eq!(s.discord.channel_for(AlertKind::Event), Some("999"));
        let map = HashMap::from([
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_ERROR", "111"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.discord.channel_for(AlertKind::Event), None);
        let map = HashMap::from([("DISCORD_CHANNEL_ERROR", "111")]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(
            s.discord.channel_for(AlertKind::Error),
            None,
            "no token: the log"
        );
    }

    #[test]
    fn hitl_without_its_prerequisites_is_refused_by_name() {
        let map = HashMap::from([("HITL_ENABLED", "true"), ("DISCORD_CHANNEL_EVENT", "12x")]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in [
            "DISCORD_BOT_TOKEN",
            "DISCORD_PUBLIC_KEY",
            "DISCORD_CHANNEL_HITL_FEEDBACK",
            "DISCORD_CHANNEL_EVENT",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        let key = "ab".repeat(32);
        let map = HashMap::from([
            ("HITL_ENABLED", "true"),
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_PUBLIC_KEY", key.as_str()),
            ("DISCORD_DEFAULT_CHANNEL", "42"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert!(s.hitl.enabled);
        assert_eq!(s.discord.public_key, Some([0xab; 32]));
        assert_eq!(s.hitl.hold_timeout, Duration::from_secs(600));
    }
}
