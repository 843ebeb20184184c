//! [`Settings`]: what the service runs on, read from the environment (or any lookup) in one
//! pass that reports every problem together. The groups with rules of their own are read
//! beside it (`super::brain`, `super::discord`, `super::scheduler`); the rest are here.
//!
//! Owns: the settings structs of the service and the checks that span variables (the two
//! listeners' ports, the model timeouts against the turn's).
//! Must not: read the process environment except through [`super::read_var`], or keep a
//! secret in anything but a [`Secret`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use actors::outbox::InDoubtPolicy;

use super::brain::{BrainSettings, brain_settings};
use super::discord::{DiscordSettings, HitlSettings, discord_and_hitl};
use super::otel::{TracingSettings, tracing_settings};
use super::reader::{ConfigError, Reader, is_e164};
use super::scheduler::{SchedulerSettings, scheduler_settings};
use super::secret::Secret;
use super::vars::read_var;

#[derive(Debug, Clone)]
pub enum TwilioSender {
    MessagingService(String),
    From(String),
}

/// Credentials and sender for real sends; absent means the dry-run sender.
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub auth_token: Secret,
    pub sender: TwilioSender,
}

#[derive(Debug, Clone)]
pub struct AnthropicSettings {
    pub api_key: Secret,
    pub model: String,
}

/// The RabbitMQ work queue; absent means the in-process queue.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: Secret,
    pub queue: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub bind_address: IpAddr,
    /// The ops listener (`/ops`, `/ops/*`, `/metrics`): `OPS_PORT`, `OPS_BIND_ADDRESS`.
    pub ops_port: u16,
    pub ops_bind_address: IpAddr,
    /// `ALLOW_INSECURE` (or `serve --insecure`): start exposed without the tokens
    /// (`crate::exposure`).
    pub allow_insecure: bool,
    /// `HTTP_*`: the listener's timeouts and caps.
    pub http: crate::http::server::HttpLimits,
    pub database_url: Secret,
    pub readonly_database_url: Option<Secret>,
    pub amqp: Option<AmqpSettings>,
    pub public_base_url: String,
    /// Verifies webhook signatures; independent of sending (a staging setup may verify
    /// real webhooks and still send dry-run).
    pub twilio_auth_token: Option<Secret>,
    pub twilio: Option<TwilioSettings>,
    pub twilio_api_base: String,
    /// `INBOUND_JOURNAL_PATH` as set; which process uses a journal depends on its role
    /// (`startup`).
    pub inbound_journal: JournalSetting,
    /// `WEBHOOK_ALERT_SECS`: one summary alert per kind per this period at most.
    pub webhook_alert_every: Duration,
    /// `INBOUND_DOWN_SECS`: refused with none accepted this long means inbound is down.
    pub inbound_down_after: Duration,
    /// `INBOUND_BODY_MAX_CHARS`: an inbound body is stored cut to this many characters.
    pub inbound_body_max_chars: usize,
    pub anthropic: Option<AnthropicSettings>,
    pub anthropic_base_url: String,
    pub llm_concurrency: usize,
    pub llm_soft_timeout: Duration,
    pub llm_hard_timeout: Duration,
    pub brain: BrainSettings,
    pub lead_turn_timeout: Duration,
    pub lead_idle: Duration,
    pub lead_memory_budget_bytes: usize,
    pub lead_restart_max: u32,
    pub lead_restart_window: Duration,
    /// `REPLY_CAP_PER_HOUR`, `REPLY_CAP_PER_DAY`, `PARK_SECS`: the reply-loop guard and how
    /// long a park lasts.
    pub parks: actors::park::ParkPolicy,
    /// `TAKEOVER_IDLE_HOURS`: a takeover with no operator activity this long is released
    /// by the scheduler (`takeover_idle_release`), alerted.
    pub takeover_idle: Duration,
    pub root_restart_max: u32,
    pub root_restart_window: Duration,
    pub outbox_sweep_every: Duration,
    /// When in-doubt replies are checked with Twilio (`OUTBOX_IN_DOUBT_WAIT_SECS`,
    /// `OUTBOX_RECHECK_SECS`).
    pub in_doubt: InDoubtPolicy,
    pub twilio_timeout: Duration,
    pub shutdown_grace: Duration,
    pub chat_window_messages: usize,
    pub chat_window_bytes: usize,
    pub office_name: String,
    pub ops_token: Option<Secret>,
    /// `OPS_SESSION_SECS`: the /ops page's cookie is refused this long after it was issued.
    pub ops_session: Duration,
    /// Where SLA escalations are texted; `None`: alert only.
    pub owner_phone: Option<String>,
    /// Asana for SLA staff nags; `None`: the dry-run ticket log.
    pub asana_access_token: Option<Secret>,
    pub asana_api_base: String,
    /// `ASANA_PROJECT_GID` / `ASANA_SECTION_GID`: where SLA tasks are created.
    pub asana_project_gid: Option<String>,
    pub asana_section_gid: Option<String>,
    /// `HOMEEASY_DIALER_URL`; `None`: dialer hand-offs are dry runs.
    pub dialer_url: Option<String>,
    pub voice_ai_api_key: Option<Secret>,
    /// `FEEDBACK_FORM_URL`: shown on HITL and escalation alerts.
    pub feedback_form_url: Option<String>,
    /// The answer to HELP/INFO (`HELP_REPLY`, else CTIA's parts from OFFICE_NAME and
    /// OFFICE_CONTACT); `None`: Twilio's Advanced Opt-Out answers it.
    pub help_reply: Option<String>,
    /// The one confirmation of a plain-language revocation (`OPT_OUT_CONFIRMATION`);
    /// `None`: Twilio's Advanced Opt-Out answers opt-outs.
    pub opt_out_confirmation: Option<String>,
    /// The neutral answer to a voucher, accessibility or accommodation question, which a
    /// person then answers (`ACCOMMODATION_REPLY`).
    pub accommodation_reply: String,
    /// The office's hours (`BUSINESS_HOURS`, in OWNER_TZ): an accommodation request is due
    /// by their close the same business day.
    pub business_hours: actors::sla::business_day::BusinessHours,
    pub scheduler: SchedulerSettings,
    pub log_format: LogFormat,
    /// `LOG_PHONE` (+ `LOG_PHONE_KEY`): set once at start by `main`.
    pub log_phone: actors::log_phone::LogPhoneMode,
    pub discord: DiscordSettings,
    pub hitl: HitlSettings,
    /// Where spans are exported (`OTEL_*`, `LANGSMITH_*`): read by `main` into telemetry.
    pub tracing: TracingSettings,
    /// `AGENT_PROFILE` (+ `AGENT_PROFILE_FILE`): who this deployment is (`super::profile`).
    pub profile: super::profile::AgentProfile,
    /// The mailbox document intake (`GMAIL_*`, `GDRIVE_*`, `BLUELAKE_STAFF_EMAIL`).
    pub doc_intake: super::DocIntakeSettings,
}

/// `INBOUND_JOURNAL_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalSetting {
    /// Unset: the default file in role `all` without RabbitMQ, none otherwise.
    Default,
    Off,
    Path(std::path::PathBuf),
}

impl JournalSetting {
    /// The file name used when the variable is unset (relative, like the SQLite default).
    pub const DEFAULT_FILE: &'static str = "lead-agent.inbound.jsonl";

    fn parse(raw: Option<String>) -> Self {
        match raw.map(|v| v.trim().to_string()) {
            None => JournalSetting::Default,
            Some(v) if v.eq_ignore_ascii_case("off") => JournalSetting::Off,
            Some(v) => JournalSetting::Path(v.into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `AMQP_URL` (or the seed's `CELERY_BROKER_URL`) and `AMQP_QUEUE`. A problem names the
/// variable, never its value: the URL carries the broker password.
fn amqp_settings(r: &mut Reader<'_>) -> Option<AmqpSettings> {
    use crate::queue::rabbitmq::{MAX_QUEUE_NAME, parse_amqp_url};

    let primary = r.raw("AMQP_URL");
    let alias = r.raw("CELERY_BROKER_URL");
    let (name, url) = match (primary, alias) {
        (None, None) => return None,
        (Some(p), Some(a)) if p.trim() != a.trim() => {
            r.problems.push(
                "AMQP_URL and CELERY_BROKER_URL are both set and differ; set one of them".into(),
            );
            return None;
        }
        (Some(p), _) => ("AMQP_URL", p),
        (None, Some(a)) => ("CELERY_BROKER_URL", a),
    };
    let mut ok = true;
    if let Err(e) = parse_amqp_url(&url) {
        r.problems.push(format!(
            "{name} is not a usable amqp://user:pass@host:port/vhost URL: {e}"
        ));
        ok = false;
    }
    let queue = r.string("AMQP_QUEUE").trim().to_string();
    if queue.is_empty() || queue.len() > MAX_QUEUE_NAME {
        r.problems.push(format!(
            "AMQP_QUEUE must be 1 to {MAX_QUEUE_NAME} bytes long"
        ));
        ok = false;
    } else if queue.starts_with("amq.") {
        r.problems
            .push("AMQP_QUEUE must not start with `amq.` (RabbitMQ reserves it)".into());
        ok = false;
    }
    ok.then(|| AmqpSettings {
        url: Secret::new(url),
        queue,
    })
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&read_var)
    }

    /// Builds settings from any lookup (tests pass a map). Reports all problems together.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // The profile's values are defaults of the variables it sets: every reader below
        // sees an explicit variable first, then the profile, then the variable's default.
        let (profile, profile_problems) = super::profile::AgentProfile::resolve(get);
        let layered = |name: &str| get(name).or_else(|| profile.value_of(name));
        let mut r = Reader::new(&layered);
        r.problems.extend(profile_problems);
        let port: u16 = r.parse("PORT");
        let bind_address: IpAddr = r.parse("BIND_ADDRESS");
        let ops_port: u16 = r.parse("OPS_PORT");
        let ops_bind_address: IpAddr = r.parse("OPS_BIND_ADDRESS");
        if ops_port == port && port != 0 {
            r.problems.push(format!(
                "OPS_PORT and PORT are both {port}: the ops listener needs a port of its own"
            ));
        }
        let allow_insecure = r.flag("ALLOW_INSECURE");
        let public_base_url = r
            .raw("PUBLIC_BASE_URL")
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let public_base_url = public_base_url.trim_end_matches('/').to_string();
        if url::Url::parse(&public_base_url).is_err() {
            r.problems
                .push(format!("PUBLIC_BASE_URL={public_base_url:?} is not a URL"));
        }
        let database_url = r.string("DATABASE_URL");
        let readonly_database_url = r.raw("READONLY_DATABASE_URL");
        for (name, url) in [
            ("DATABASE_URL", Some(&database_url)),
            ("READONLY_DATABASE_URL", readonly_database_url.as_ref()),
        ] {
            if let Some(url) = url
                && !(url.starts_with("sqlite:") || crate::store::is_postgres_url(url))
            {
                r.problems.push(format!(
                    "{name} must be a sqlite:, postgres: or postgresql: URL (got scheme {:?})",
                    url.split(':').next().unwrap_or("")
                ));
            }
        }

        let amqp = amqp_settings(&mut r);

        let auth_token = r.raw("TWILIO_AUTH_TOKEN").map(Secret::new);
        let account_sid = r.raw("TWILIO_ACCOUNT_SID");
        let service = r
            .raw("TWILIO_MESSAGING_SERVICE_SID")
            .or_else(|| r.raw("TWILIO_SERVICE_HOMEEASY"));
        let from = r.raw("TWILIO_FROM_NUMBER");
        let twilio = match (&account_sid, &auth_token) {
            (None, _) => None,
            (Some(_), None) => {
                r.problems
                    .push("TWILIO_AUTH_TOKEN is required when TWILIO_ACCOUNT_SID is set".into());
                None
            }
            (Some(sid), Some(token)) => {
                let sender = match (service, from) {
                    (Some(s), _) => Some(TwilioSender::MessagingService(s)),
                    (None, Some(f)) => Some(TwilioSender::From(f)),
                    (None, None) => {
                        r.problems.push(
                            "TWILIO_MESSAGING_SERVICE_SID (or TWILIO_SERVICE_HOMEEASY) or \
                             TWILIO_FROM_NUMBER is required when TWILIO_ACCOUNT_SID is set"
                                .into(),
                        );
                        None
                    }
                };
                sender.map(|sender| TwilioSettings {
                    account_sid: sid.clone(),
                    auth_token: token.clone(),
                    sender,
                })
            }
        };

        let anthropic = r.raw("ANTHROPIC_API_KEY").map(|key| AnthropicSettings {
            api_key: Secret::new(key),
            model: r.string("ANTHROPIC_MODEL"),
        });

        let owner_phone = r.raw("OWNER_PHONE").map(|p| p.trim().to_string());
        if let Some(p) = &owner_phone
            && !is_e164(p)
        {
            r.problems.push(format!(
                "OWNER_PHONE={p:?} must be an E.164 number like +13125550123"
            ));
        }
        let asana_api_base = r.string("ASANA_API_BASE");
        if url::Url::parse(&asana_api_base).is_err() {
            r.problems
                .push(format!("ASANA_API_BASE={asana_api_base:?} is not a URL"));
        }
        let gid = |r: &mut Reader<'_>, name: &str| {
            let v = r
                .raw(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            if let Some(g) = &v
                && !g.bytes().all(|b| b.is_ascii_digit())
            {
                r.problems
                    .push(format!("{name}={g:?} must be an Asana gid (digits)"));
            }
            v
        };
        let asana_project_gid = gid(&mut r, "ASANA_PROJECT_GID");
        let asana_section_gid = gid(&mut r, "ASANA_SECTION_GID");
        let dialer_url = r
            .raw("HOMEEASY_DIALER_URL")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        if let Some(u) = &dialer_url
            && !matches!(url::Url::parse(u), Ok(p) if p.scheme() == "https" || p.scheme() == "http")
        {
            r.problems
                .push(format!("HOMEEASY_DIALER_URL={u:?} is not an http(s) URL"));
        }
        let feedback_form_url = r
            .raw("FEEDBACK_FORM_URL")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let brain = brain_settings(&mut r);
        let office_name = r.string("OFFICE_NAME");
        let help_reply = super::compliance::help_reply(&mut r, &office_name);
        let opt_out_confirmation = super::compliance::opt_out_confirmation(&mut r, &office_name);
        let accommodation_reply = super::compliance::accommodation_reply(&mut r);

        let log_format = r.log_format();
        let log_phone = r.log_phone();
        let scheduler = scheduler_settings(&mut r);

        let (mut discord, hitl) = discord_and_hitl(&mut r);
        discord.routes = profile.alert_routes.clone();
        let tracing = tracing_settings(&mut r);
        let doc_intake = super::doc_intake::doc_intake_settings(&mut r);

        let settings = Settings {
            port,
            bind_address,
            ops_port,
            ops_bind_address,
            allow_insecure,
            http: crate::http::server::HttpLimits::read(&mut r),
            database_url: Secret::new(database_url),
            readonly_database_url: readonly_database_url.map(Secret::new),
            amqp,
            public_base_url,
            twilio_auth_token: auth_token,
            twilio,
            twilio_api_base: r.string("TWILIO_API_BASE"),
            inbound_journal: JournalSetting::parse(r.raw("INBOUND_JOURNAL_PATH")),
            webhook_alert_every: r.seconds("WEBHOOK_ALERT_SECS"),
            inbound_down_after: r.seconds("INBOUND_DOWN_SECS"),
            inbound_body_max_chars: r.positive("INBOUND_BODY_MAX_CHARS"),
            anthropic,
            anthropic_base_url: r.string("ANTHROPIC_BASE_URL"),
            llm_concurrency: r.positive("LLM_CONCURRENCY"),
            llm_soft_timeout: r.seconds("LLM_SOFT_TIMEOUT_SECS"),
            llm_hard_timeout: r.seconds("LLM_HARD_TIMEOUT_SECS"),
            brain,
            lead_turn_timeout: r.seconds("LEAD_TURN_TIMEOUT_SECS"),
            lead_idle: r.seconds("LEAD_IDLE_SECS"),
            lead_memory_budget_bytes: r.positive("LEAD_MEMORY_BUDGET_BYTES"),
            lead_restart_max: r.parse("LEAD_RESTART_MAX"),
            lead_restart_window: r.seconds("LEAD_RESTART_WINDOW_SECS"),
            parks: actors::park::ParkPolicy {
                per_hour: r.positive("REPLY_CAP_PER_HOUR"),
                per_day: r.positive("REPLY_CAP_PER_DAY"),
                park_for: r.seconds("PARK_SECS"),
            },
            takeover_idle: super::compliance::takeover_idle(&mut r),
            root_restart_max: r.parse("ROOT_RESTART_MAX"),
            root_restart_window: r.seconds("ROOT_RESTART_WINDOW_SECS"),
            outbox_sweep_every: r.seconds("OUTBOX_SWEEP_SECS"),
            in_doubt: InDoubtPolicy {
                wait: r.seconds("OUTBOX_IN_DOUBT_WAIT_SECS"),
                recheck: r.seconds("OUTBOX_RECHECK_SECS"),
            },
            twilio_timeout: r.seconds("TWILIO_TIMEOUT_SECS"),
            shutdown_grace: r.seconds("SHUTDOWN_GRACE_SECS"),
            chat_window_messages: r.positive("CHAT_WINDOW_MESSAGES"),
            chat_window_bytes: r.positive("CHAT_WINDOW_BYTES"),
            office_name,
            ops_token: r.raw("OPS_TOKEN").map(Secret::new),
            ops_session: r.seconds("OPS_SESSION_SECS"),
            owner_phone,
            asana_access_token: r.raw("ASANA_ACCESS_TOKEN").map(Secret::new),
            asana_api_base,
            asana_project_gid,
            asana_section_gid,
            dialer_url,
            voice_ai_api_key: r.raw("VOICE_AI_API_KEY").map(Secret::new),
            feedback_form_url,
            help_reply,
            opt_out_confirmation,
            accommodation_reply,
            business_hours: super::compliance::business_hours(&mut r, scheduler.time_zone),
            scheduler,
            log_format,
            log_phone,
            tracing,
            doc_intake,
            discord,
            hitl,
            profile: profile.clone(),
        };
        if settings.llm_hard_timeout < settings.llm_soft_timeout {
            r.problems.push(
                "LLM_HARD_TIMEOUT_SECS must not be shorter than LLM_SOFT_TIMEOUT_SECS".into(),
            );
        }
        if settings.lead_turn_timeout <= settings.llm_hard_timeout {
            r.problems.push(
                "LEAD_TURN_TIMEOUT_SECS must be longer than LLM_HARD_TIMEOUT_SECS (a turn \
                 includes the model chain)"
                    .into(),
            );
        }
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(r.problems))
        }
    }

    /// Settings from a map, for tests and tools.
    pub fn from_map(map: &HashMap<&str, &str>) -> Result<Self, ConfigError> {
        let get = |name: &str| map.get(name).map(|v| v.to_string());
        Self::from_lookup(&get)
    }

    /// True when the work queue can be shared between processes (RabbitMQ); the in-process
    /// queue cannot.
    pub fn has_shared_queue(&self) -> bool {
        self.amqp.is_some()
    }

    /// `host:pid`: names this process in turn records and logs.
    pub fn worker_id() -> String {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "local".into());
        format!("{host}:{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_ops_port;

    #[test]
    fn defaults_need_no_environment_at_all() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.port, 5012);
        assert_eq!(s.public_base_url, "http://127.0.0.1:5012");
        assert!(s.twilio.is_none() && s.anthropic.is_none());
        assert_eq!(s.llm_concurrency, 6);
    }

    #[test]
    fn every_problem_is_reported_at_once_by_name() {
        let map = HashMap::from([
            ("PORT", "eighty"),
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("LLM_CONCURRENCY", "0"),
            ("LOG_FORMAT", "xml"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in ["PORT", "TWILIO_AUTH_TOKEN", "LLM_CONCURRENCY", "LOG_FORMAT"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
    }

    #[test]
    fn twilio_needs_a_sender_and_accepts_the_seeds_alias() {
        let map = HashMap::from([
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "tok"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("TWILIO_FROM_NUMBER"));
        let map = HashMap::from([
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "tok"),
            ("TWILIO_SERVICE_HOMEEASY", "MG1"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert!(matches!(
            s.twilio.unwrap().sender,
            TwilioSender::MessagingService(ref m) if m == "MG1"
        ));
    }

    #[test]
    fn amqp_is_off_by_default_and_accepts_the_seeds_alias() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(
            s.amqp.is_none(),
            "unset AMQP_URL means the in-process queue"
        );
        let map = HashMap::from([("CELERY_BROKER_URL", "amqp://u:p@rabbit:5672//")]);
        let amqp = Settings::from_map(&map).unwrap().amqp.unwrap();
        assert_eq!(amqp.url.expose(), "amqp://u:p@rabbit:5672//");
        assert_eq!(amqp.queue, "lead-agent.wake");
        let map = HashMap::from([
            ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f"),
            ("AMQP_QUEUE", "leads.test"),
        ]);
        assert_eq!(
            Settings::from_map(&map).unwrap().amqp.unwrap().queue,
            "leads.test"
        );
    }

    #[test]
    fn amqp_problems_are_reported_by_name_with_the_others_and_without_the_password() {
        let map = HashMap::from([
            ("AMQP_URL", "redis://u:hunter2@cache:6379"),
            ("AMQP_QUEUE", "amq.mine"),
            ("PORT", "eighty"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        for name in ["AMQP_URL", "AMQP_QUEUE", "PORT"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");

        let map = HashMap::from([
            ("AMQP_URL", "amqp://u:hunter2@a:5672/%2f"),
            ("CELERY_BROKER_URL", "amqp://u:hunter2@b:5672/%2f"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(err.contains("AMQP_URL and CELERY_BROKER_URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn sla_settings_are_off_by_default_and_a_bad_owner_phone_is_named() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert!(s.owner_phone.is_none() && s.asana_access_token.is_none());
        assert_eq!(s.asana_api_base, "https://app.asana.com/api/1.0");
        let map = HashMap::from([
            ("OWNER_PHONE", "312-555-0123"),
            ("ASANA_API_BASE", "not a url"),
        ]);
        let err = Settings::from_map(&map).unwrap_err().to_string();
        assert!(
            err.contains("OWNER_PHONE") && err.contains("ASANA_API_BASE"),
            "{err}"
        );
        let map = HashMap::from([
            ("OWNER_PHONE", "+13125550123"),
            ("ASANA_ACCESS_TOKEN", "asana-secret"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.owner_phone.as_deref(), Some("+13125550123"));
        assert!(!format!("{s:?}").contains("asana-secret"));
    }

    #[test]
    fn both_listeners_default_to_loopback_on_their_own_ports() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.bind_address.to_string(), "127.0.0.1");
        assert_eq!(s.ops_bind_address.to_string(), "127.0.0.1");
        assert_eq!((s.port, s.ops_port), (5012, 5013));
        assert_eq!(default_ops_port(), 5013);
        assert!(!s.allow_insecure);
        assert_eq!(s.ops_session, Duration::from_secs(43200));
        let err = Settings::from_map(&HashMap::from([
            ("PORT", "6000"),
            ("OPS_PORT", "6000"),
            ("ALLOW_INSECURE", "perhaps"),
            ("OPS_SESSION_SECS", "0"),
        ]))
        .unwrap_err()
        .to_string();
        for name in ["OPS_PORT and PORT", "ALLOW_INSECURE", "OPS_SESSION_SECS"] {
            assert!(err.contains(name), "{name}: {err}");
        }
        let s = Settings::from_map(&HashMap::from([("PORT", "0"), ("OPS_PORT", "0")])).unwrap();
        assert_eq!(
            (s.port, s.ops_port),
            (0, 0),
            "two ephemeral ports are two ports"
        );
        let s = Settings::from_map(&HashMap::from([("ALLOW_INSECURE", "true")])).unwrap();
        assert!(s.allow_insecure);
    }

    #[test]
    fn log_phone_is_masked_by_default_and_hash_needs_its_key() {
        use actors::log_phone::LogPhoneMode;
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.log_phone, LogPhoneMode::Masked);
        let s = Settings::from_map(&HashMap::from([("LOG_PHONE", "full")])).unwrap();
        assert_eq!(s.log_phone, LogPhoneMode::Full);
        let s = Settings::from_map(&HashMap::from([
            ("LOG_PHONE", "hash"),
            ("LOG_PHONE_KEY", "k3y"),
        ]))
        .unwrap();
        assert_eq!(
            s.log_phone,
            LogPhoneMode::Hash {
                key: b"k3y".to_vec()
            }
        );
        assert!(!format!("{s:?}").contains("k3y"), "the key is a secret");
        let err = Settings::from_map(&HashMap::from([("LOG_PHONE", "hash")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOG_PHONE_KEY is required"), "{err}");
        let err = Settings::from_map(&HashMap::from([("LOG_PHONE", "plain")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("LOG_PHONE=\"plain\""), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let map = HashMap::from([
            ("TWILIO_AUTH_TOKEN", "supersecret"),
            ("OPS_TOKEN", "tok2"),
            ("AMQP_URL", "amqp://u:brokerpass@rabbit:5672/%2f"),
        ]);
        let s = Settings::from_map(&map).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("supersecret") && !shown.contains("tok2"));
        assert!(!shown.contains("brokerpass"), "{shown}");
    }
}
