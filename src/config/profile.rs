//! The agent profile (issue 14 item 6): who this deployment is. One image runs several
//! agents — the landlord's leasing rep, the apartment Locator — each its own Deployment set,
//! queue and database; `AGENT_PROFILE` picks a built-in profile and `AGENT_PROFILE_FILE` (YAML,
//! the same fields) overrides parts of it.
//!
//! Owns: the built-in profiles, the file's schema, and the precedence — an explicit
//! environment variable > the profile file > the built-in profile > the variable's default.
//! The profile's settings that are variables (office name, catalog source, followup
//! sequence, queue) are given as *defaults of those variables* ([`AgentProfile::value_of`]),
//! so every reader sees the same precedence and the variables keep their checks; the rest
//! (prompt, tone, greeting, alert channel routes) have no variable of their own.
//! Must not: read the environment itself (the settings' lookup gives `AGENT_PROFILE` and
//! `AGENT_PROFILE_FILE`), or replace the SMS rules of the system prompt — a profile adds to
//! the prompt, never removes the length and ASCII rules every agent's SMS must keep.

use std::collections::{BTreeMap, HashMap};

use actors::alert_router::AlertKind;
use serde::Deserialize;

/// The built-in profile `AGENT_PROFILE` names when unset: today's agent, exactly.
pub const DEFAULT_PROFILE: &str = "landlord_rep";

/// The names `AGENT_PROFILE` accepts.
pub const BUILTIN_PROFILES: [&str; 2] = ["landlord_rep", "locator"];

/// Who this deployment is. `None` fields leave the variable's own default (or the code's
/// wording) in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentProfile {
    /// The built-in profile it starts from (`AGENT_PROFILE`).
    pub name: String,
    /// `AGENT_PROFILE_FILE`, when one was applied on top.
    pub file: Option<String>,
    /// The default of `OFFICE_NAME`: how the agent names itself in replies and followups.
    pub office_name: Option<String>,
    /// Added to the system prompt of every model (the plain chain's and the brain's).
    pub prompt: Option<String>,
    /// Added to the system prompt as the tone to keep.
    pub tone: Option<String>,
    /// The rules responder's first line to a new lead (else its "Thanks for texting …").
    pub greeting: Option<String>,
    /// The default of `BUILDINGS_FILE`.
    pub buildings_file: Option<String>,
    /// The default of `BUILDING_SERVICE_API`.
    pub building_service_api: Option<String>,
    /// The default of `FOLLOWUP_HOURS`.
    pub followup_hours: Option<String>,
    /// The default of `AMQP_QUEUE`: each agent consumes a queue of its own.
    pub queue: Option<String>,
    /// Alert kind → the kind whose Discord channel it is posted to (the Locator's turn
    /// events go to the LOCATOR channel). The `Alert` keeps its kind; only the channel moves.
    pub alert_routes: HashMap<AlertKind, AlertKind>,
}

/// The file's schema: every field optional, unknown fields refused (a misspelt field would
/// otherwise be silently ignored).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    office_name: Option<String>,
    prompt: Option<String>,
    tone: Option<String>,
    greeting: Option<String>,
    buildings_file: Option<String>,
    building_service_api: Option<String>,
    followup_hours: Option<String>,
    queue: Option<String>,
    /// `EVENT: LOCATOR`: alert kind keys, as in `DISCORD_CHANNEL_<KIND>`.
    #[serde(default)]
    alert_channels: BTreeMap<String, String>,
}

/// A built-in profile by name; `None` for a name that is not one.
pub fn builtin(name: &str) -> Option<AgentProfile> {
    match name {
        "landlord_rep" => Some(AgentProfile {
            name: name.into(),
            ..AgentProfile::default()
        }),
        "locator" => Some(AgentProfile {
            name: name.into(),
            office_name: Some("the apartment locator".into()),
            prompt: Some(
                "You are the apartment locator, not one building's leasing office: you help the \
                 renter find the right place among every building we work with. Learn the area \
                 they want first, then bedrooms, move-in date, budget, voucher and pets, and \
                 offer the two or three best matches."
                    .into(),
            ),
            tone: Some("friendly and efficient, like a helpful friend who knows the city".into()),
            greeting: Some(
                "Hi! This is the apartment locator, thanks for texting. I can help you find a \
                 place that fits."
                    .into(),
            ),
            followup_hours: Some("24,72".into()),
            queue: Some("lead-agent-locator.wake".into()),
            alert_routes: HashMap::from([
                (AlertKind::Event, AlertKind::Locator),
                (AlertKind::AgentResponse, AlertKind::Locator),
            ]),
            ..AgentProfile::default()
        }),
        _ => None,
    }
}

/// The kinds whose channels some built-in profile routes alerts to: a channel only a
/// profile fills (LOCATOR) is still a channel something reaches (`tests/api/alert_kinds.rs`).
pub fn routed_channel_kinds() -> Vec<AlertKind> {
    let mut out: Vec<AlertKind> = BUILTIN_PROFILES
        .iter()
        .filter_map(|n| builtin(n))
        .flat_map(|p| p.alert_routes.into_values())
        .collect();
    out.sort_by_key(|k| k.key());
    out.dedup();
    out
}

fn kind_of(key: &str) -> Option<AlertKind> {
    AlertKind::ALL
        .into_iter()
        .find(|k| k.key().eq_ignore_ascii_case(key.trim()))
}

impl AgentProfile {
    /// `AGENT_PROFILE` and `AGENT_PROFILE_FILE` as the lookup has them, resolved; every
    /// problem is returned (the profile falls back to the default so the rest of the
    /// settings are still read and reported together).
    pub fn resolve(get: &dyn Fn(&str) -> Option<String>) -> (AgentProfile, Vec<String>) {
        let mut problems = Vec::new();
        let name = get("AGENT_PROFILE")
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        let mut profile = builtin(&name).unwrap_or_else(|| {
            problems.push(format!(
                "AGENT_PROFILE={name:?} is not a built-in profile ({}); a profile of your own is \
                 AGENT_PROFILE_FILE on top of one of them",
                BUILTIN_PROFILES.join(", ")
            ));
            builtin(DEFAULT_PROFILE).expect("the default profile is built in")
        });
        if let Some(path) = get("AGENT_PROFILE_FILE").filter(|p| !p.trim().is_empty()) {
            match std::fs::read_to_string(path.trim()) {
                Err(e) => problems.push(format!("AGENT_PROFILE_FILE={path:?} cannot be read: {e}")),
                Ok(text) => {
                    if let Err(p) = profile.apply_file(&path, &text) {
                        problems.push(p);
                    }
                }
            }
        }
        (profile, problems)
    }

    /// Lays a profile file's fields over this profile. Its `alert_channels`, when it lists
    /// any, replace the built-in routes whole; an absent or empty field keeps them.
    pub fn apply_file(&mut self, path: &str, text: &str) -> Result<(), String> {
        let file: ProfileFile = serde_yaml_ng::from_str(text)
            .map_err(|e| format!("AGENT_PROFILE_FILE={path:?} is not a valid profile: {e}"))?;
        let mut routes = HashMap::new();
        let mut bad = Vec::new();
        for (from, to) in &file.alert_channels {
            match (kind_of(from), kind_of(to)) {
                (Some(f), Some(t)) => {
                    routes.insert(f, t);
                }
                _ => bad.push(format!("{from}: {to}")),
            }
        }
        if !bad.is_empty() {
            return Err(format!(
                "AGENT_PROFILE_FILE={path:?}: alert_channels {} must map alert kinds to alert \
                 kinds (the keys of DISCORD_CHANNEL_<KIND>, e.g. EVENT: LOCATOR)",
                bad.join(", ")
            ));
        }
        let over = |mine: &mut Option<String>, theirs: Option<String>| {
            if let Some(v) = theirs.filter(|v| !v.trim().is_empty()) {
                *mine = Some(v);
            }
        };
        over(&mut self.office_name, file.office_name);
        over(&mut self.prompt, file.prompt);
        over(&mut self.tone, file.tone);
        over(&mut self.greeting, file.greeting);
        over(&mut self.buildings_file, file.buildings_file);
        over(&mut self.building_service_api, file.building_service_api);
        over(&mut self.followup_hours, file.followup_hours);
        over(&mut self.queue, file.queue);
        if !file.alert_channels.is_empty() {
            self.alert_routes = routes;
        }
        self.file = Some(path.to_string());
        Ok(())
    }

    /// The profile's value of a variable it sets, used when the environment does not set
    /// it (the variable's own default applies when neither does).
    pub fn value_of(&self, name: &str) -> Option<String> {
        match name {
            "OFFICE_NAME" => self.office_name.clone(),
            "BUILDINGS_FILE" => self.buildings_file.clone(),
            "BUILDING_SERVICE_API" => self.building_service_api.clone(),
            "FOLLOWUP_HOURS" => self.followup_hours.clone(),
            "AMQP_QUEUE" => self.queue.clone(),
            _ => None,
        }
    }

    /// The variables a profile can set, for `config print`.
    pub const VARIABLES: [&'static str; 5] = [
        "OFFICE_NAME",
        "BUILDINGS_FILE",
        "BUILDING_SERVICE_API",
        "FOLLOWUP_HOURS",
        "AMQP_QUEUE",
    ];

    /// What the profile adds to a model's system prompt: its prompt, then its tone; empty
    /// for the landlord rep (today's prompt, unchanged).
    pub fn prompt_addition(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(p) = &self.prompt {
            parts.push(p.trim().to_string());
        }
        if let Some(t) = &self.tone {
            parts.push(format!("Tone: {}.", t.trim().trim_end_matches('.')));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// `base` with the profile's addition after it.
    pub fn extend_prompt(&self, base: String) -> String {
        match self.prompt_addition() {
            Some(add) => format!("{base}\n\n{add}"),
            None => base,
        }
    }

    /// One line for logs and `config print`.
    pub fn describe(&self) -> String {
        match &self.file {
            Some(f) => format!("{} (built-in) + {f}", self.name),
            None => format!("{} (built-in)", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn lookup(map: HashMap<&'static str, String>) -> impl Fn(&str) -> Option<String> {
        move |n: &str| map.get(n).cloned()
    }

    #[test]
    fn unset_is_the_landlord_rep_and_changes_nothing() {
        let (p, problems) = AgentProfile::resolve(&lookup(HashMap::new()));
        assert!(problems.is_empty());
        assert_eq!(p.name, "landlord_rep");
        assert_eq!(p, builtin("landlord_rep").unwrap());
        for v in AgentProfile::VARIABLES {
            assert_eq!(p.value_of(v), None, "{v}");
        }
        assert_eq!(p.prompt_addition(), None);
        assert_eq!(p.extend_prompt("base".into()), "base");
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.office_name, "the leasing office");
        assert!(s.discord.routes.is_empty());
    }

    #[test]
    fn the_locator_gives_its_defaults_and_an_explicit_variable_still_wins() {
        let amqp = ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f");
        let s = Settings::from_map(&HashMap::from([("AGENT_PROFILE", "locator"), amqp])).unwrap();
        assert_eq!(s.profile.name, "locator");
        assert_eq!(s.amqp.unwrap().queue, "lead-agent-locator.wake");
        assert_eq!(s.office_name, "the apartment locator");
        assert!(
            s.profile
                .prompt_addition()
                .unwrap()
                .contains("apartment locator")
        );
        let s = Settings::from_map(&HashMap::from([
            ("AGENT_PROFILE", "locator"),
            amqp,
            ("AMQP_QUEUE", "mine"),
            ("OFFICE_NAME", "Acme"),
        ]))
        .unwrap();
        assert_eq!(s.amqp.unwrap().queue, "mine");
        assert_eq!(s.office_name, "Acme");
        // The landlord rep keeps today's queue.
        let s = Settings::from_map(&HashMap::from([amqp])).unwrap();
        assert_eq!(s.amqp.unwrap().queue, "lead-agent.wake");
    }

    #[test]
    fn a_file_overrides_the_built_in_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ken.yaml");
        std::fs::write(
            &path,
            "office_name: Ken Insurance\nqueue: lead-agent-ken.wake\nalert_channels:\n  EVENT: GENERAL\n",
        )
        .unwrap();
        let path = path.display().to_string();
        let amqp = ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f");
        let s = Settings::from_map(&HashMap::from([
            ("AGENT_PROFILE", "locator"),
            ("AGENT_PROFILE_FILE", path.as_str()),
            amqp,
        ]))
        .unwrap();
        assert_eq!(s.office_name, "Ken Insurance", "file over built-in");
        assert_eq!(s.amqp.unwrap().queue, "lead-agent-ken.wake");
        assert_eq!(
            s.profile.greeting,
            builtin("locator").unwrap().greeting,
            "what the file leaves out stays the built-in's"
        );
        assert_eq!(
            s.profile.alert_routes,
            HashMap::from([(AlertKind::Event, AlertKind::General)])
        );
        assert!(s.profile.describe().contains("ken.yaml"));
        let s = Settings::from_map(&HashMap::from([
            ("AGENT_PROFILE_FILE", path.as_str()),
            ("OFFICE_NAME", "Env wins"),
        ]))
        .unwrap();
        assert_eq!(s.office_name, "Env wins");
        assert_eq!(s.profile.name, "landlord_rep");
    }

    #[test]
    fn an_unknown_name_or_a_bad_file_is_a_start_up_error_naming_it() {
        let err = Settings::from_map(&HashMap::from([("AGENT_PROFILE", "ken")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AGENT_PROFILE=\"ken\"") && err.contains("locator"),
            "{err}"
        );

        let err = Settings::from_map(&HashMap::from([(
            "AGENT_PROFILE_FILE",
            "/nonexistent/profile.yaml",
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("AGENT_PROFILE_FILE") && err.contains("cannot be read"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        for (text, expect) in [
            ("offce_name: typo\n", "offce_name"),
            ("alert_channels:\n  EVENT: NOWHERE\n", "EVENT: NOWHERE"),
            ("queue: amq.reserved\n", "AMQP_QUEUE"),
        ] {
            let path = dir.path().join("p.yaml");
            std::fs::write(&path, text).unwrap();
            let path = path.display().to_string();
            let err = Settings::from_map(&HashMap::from([
                ("AGENT_PROFILE_FILE", path.as_str()),
                ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f"),
            ]))
            .unwrap_err()
            .to_string();
            assert!(err.contains(expect), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_locator_routes_its_turn_events_to_the_locator_channel() {
        let s = Settings::from_map(&HashMap::from([
            ("AGENT_PROFILE", "locator"),
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_EVENT", "1"),
            ("DISCORD_CHANNEL_LOCATOR", "2"),
            ("DISCORD_CHANNEL_ERROR", "3"),
            ("DISCORD_DEFAULT_CHANNEL", "9"),
        ]))
        .unwrap();
        let d = &s.discord;
        assert_eq!(d.channel_for(AlertKind::Event), Some("2"));
        assert_eq!(d.channel_for(AlertKind::AgentResponse), Some("2"));
        assert_eq!(d.channel_for(AlertKind::Error), Some("3"), "not routed");
        assert_eq!(d.channel_for(AlertKind::General), Some("9"));
        // Without a LOCATOR channel, a routed kind falls back to its own, then the default.
        let s = Settings::from_map(&HashMap::from([
            ("AGENT_PROFILE", "locator"),
            ("DISCORD_BOT_TOKEN", "tok"),
            ("DISCORD_CHANNEL_EVENT", "1"),
            ("DISCORD_DEFAULT_CHANNEL", "9"),
        ]))
        .unwrap();
        assert_eq!(s.discord.channel_for(AlertKind::Event), Some("1"));
        assert_eq!(s.discord.channel_for(AlertKind::AgentResponse), Some("9"));
        assert_eq!(routed_channel_kinds(), vec![AlertKind::Locator]);
    }
}
