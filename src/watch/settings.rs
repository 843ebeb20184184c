//! The watch's configuration: the few variables it reads ([`VARS`]), never the service's
//! store or queue. Its Deployment declares exactly these (`config check` holds it to that),
//! and the service's containers need not declare the ones only it reads ([`WATCH_ONLY`]).
//!
//! Owns: [`WatchSettings`], built from the flags and its own variables with every problem
//! reported at once, by name. Must not: read `DATABASE_URL`, `AMQP_URL` or any variable
//! outside [`VARS`] (the lookup refuses them), or print a secret.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::{ConfigError, LogFormat, Reader, Secret, is_e164, is_snowflake, read_var};

/// Every variable the watch reads, in `config::ENV_VARS` order.
pub const VARS: &[&str] = &[
    "PORT",
    "BIND_ADDRESS",
    "HTTP_HEADER_TIMEOUT_SECS",
    "HTTP_BODY_TIMEOUT_SECS",
    "HTTP_IDLE_TIMEOUT_SECS",
    "HTTP_REQUEST_TIMEOUT_SECS",
    "HTTP_MAX_CONNECTIONS",
    "HTTP_MAX_IN_FLIGHT",
    "HTTP_SHUTDOWN_SECS",
    "PUBLIC_BASE_URL",
    "TWILIO_AUTH_TOKEN",
    "DISCORD_BOT_TOKEN",
    "DISCORD_API_BASE",
    "DISCORD_DEFAULT_CHANNEL",
    "DISCORD_CHANNEL_ERROR",
    "DISCORD_RETRY_MAX_SECS",
    "OPS_TOKEN",
    "LOG_FORMAT",
    "RUST_LOG",
    "WATCH_URL",
    "WATCH_OPS_URL",
    "WATCH_INTERVAL_SECS",
    "WATCH_E2E_SECS",
    "WATCH_E2E_TIMEOUT_SECS",
    "WATCH_TEST_PHONE",
    "WATCH_SCHEDULER_LATE_SECS",
    "WATCH_SPOOL_AGE_SECS",
    "DISCORD_WEBHOOK",
];

/// The variables only the watch reads: the service's containers do not declare them.
pub const WATCH_ONLY: &[&str] = &[
    "WATCH_URL",
    "WATCH_OPS_URL",
    "WATCH_INTERVAL_SECS",
    "WATCH_E2E_SECS",
    "WATCH_E2E_TIMEOUT_SECS",
    "WATCH_TEST_PHONE",
    "WATCH_SCHEDULER_LATE_SECS",
    "WATCH_SPOOL_AGE_SECS",
    "DISCORD_WEBHOOK",
];

/// Where the watch posts its own alerts.
#[derive(Debug, Clone)]
pub enum AlertTarget {
    /// A channel webhook (`DISCORD_WEBHOOK`): the URL is the credential.
    Webhook { url: Secret },
    /// The bot (`DISCORD_BOT_TOKEN`) to one channel.
    Bot {
        api_base: String,
        token: Secret,
        channel: String,
    },
}

impl AlertTarget {
    /// For logs: what kind of target, never its secret.
    pub fn describe(&self) -> String {
        match self {
            AlertTarget::Webhook { .. } => "the Discord channel webhook (DISCORD_WEBHOOK)".into(),
            AlertTarget::Bot { channel, .. } => format!("Discord channel {channel} via the bot"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// The service's public base URL, without a trailing `/`: `/ready`, the webhook.
    pub url: String,
    /// Its ops listener, without a trailing `/`: `/ops/*`.
    pub ops_url: String,
    /// The URL Twilio signs (what the synthetic SMS is signed against).
    pub public_url: String,
    pub interval: Duration,
    /// `None`: the end-to-end check is off (`WATCH_E2E_SECS=off`).
    pub e2e_every: Option<Duration>,
    pub e2e_timeout: Duration,
    pub test_phone: Option<String>,
    /// Our number, the synthetic SMS's `To`.
    pub to: String,
    pub scheduler_late: Duration,
    pub spool_age: Duration,
    pub ops_token: Option<Secret>,
    pub twilio_auth_token: Option<Secret>,
    pub alert_to: AlertTarget,
    /// Longest pause between attempts while Discord cannot be reached.
    pub retry_max: Duration,
    pub bind: SocketAddr,
    /// `HTTP_*`: its listener's limits, the service's own variables.
    pub http: crate::http::server::HttpLimits,
    pub log_format: LogFormat,
}

/// What the command line gives.
#[derive(Debug, Clone, Default)]
pub struct WatchFlags {
    pub url: Option<String>,
    pub ops_url: Option<String>,
    pub public_url: Option<String>,
    pub to: Option<String>,
}

/// `read_var`, refusing any variable that is not the watch's: the watch must never read the
/// service's store or queue settings, not even by accident.
pub fn watch_var(name: &str) -> Option<String> {
    assert!(
        VARS.contains(&name),
        "the watch reads {name}, which is not in watch::settings::VARS"
    );
    read_var(name)
}

fn url_problem(name: &str, url: &str) -> Option<String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => None,
        _ => Some(format!("{name}={url:?} is not an http(s) URL")),
    }
}

impl WatchSettings {
    pub fn from_env(flags: WatchFlags) -> Result<Self, ConfigError> {
        Self::from_lookup(&watch_var, flags)
    }

    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        flags: WatchFlags,
    ) -> Result<Self, ConfigError> {
        let mut r = Reader::new(get);
        let port: u16 = r.parse("PORT");
        let bind_address: IpAddr = r.parse("BIND_ADDRESS");
        let url = flags
            .url
            .or_else(|| r.raw("WATCH_URL"))
            .map(|u| u.trim().trim_end_matches('/').to_string());
        let url = match url {
            Some(u) => {
                if let Some(p) = url_problem("WATCH_URL (--url)", &u) {
                    r.problems.push(p);
                }
                u
            }
            None => {
                r.problems.push(
                    "WATCH_URL (or --url) is required: the service's base URL to watch".into(),
                );
                String::new()
            }
        };
        let ops_url = flags
            .ops_url
            .or_else(|| r.raw("WATCH_OPS_URL"))
            .map(|u| u.trim().trim_end_matches('/').to_string());
        let ops_url = match ops_url {
            Some(u) => {
                if let Some(p) = url_problem("WATCH_OPS_URL (--ops-url)", &u) {
                    r.problems.push(p);
                }
                u
            }
            None if url.is_empty() => String::new(),
            None => crate::probe::ops_url_for(&url, crate::config::default_ops_port()),
        };
        let public_url = flags
            .public_url
            .or_else(|| r.raw("PUBLIC_BASE_URL"))
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| url.clone());
        // Without a URL at all, that problem is the one to read.
        if !public_url.is_empty()
            && let Some(p) = url_problem("PUBLIC_BASE_URL (--public-url)", &public_url)
        {
            r.problems.push(p);
        }
        let interval = r.seconds("WATCH_INTERVAL_SECS");
        let e2e_every = match r.string("WATCH_E2E_SECS").trim() {
            "off" => None,
            _ => Some(r.seconds("WATCH_E2E_SECS")),
        };
        let e2e_timeout = r.seconds("WATCH_E2E_TIMEOUT_SECS");
        let test_phone = r.raw("WATCH_TEST_PHONE").map(|p| p.trim().to_string());
        match (&test_phone, e2e_every) {
            (Some(p), _) if !is_e164(p) => r
                .problems
                .push(format!("WATCH_TEST_PHONE={p:?} is not an E.164 number (+1…)")),
            (None, Some(_)) => r.problems.push(
                "WATCH_TEST_PHONE is required for the end-to-end check (a phone the team owns: its reply really goes out); set WATCH_E2E_SECS=off to run without it".into(),
            ),
            _ => {}
        }
        let to = flags.to.unwrap_or_else(|| "+13125550000".into());
        let alert_to = alert_target(&mut r);
        let settings = Self {
            public_url,
            interval,
            e2e_every,
            e2e_timeout,
            test_phone,
            to,
            scheduler_late: r.seconds("WATCH_SCHEDULER_LATE_SECS"),
            spool_age: r.seconds("WATCH_SPOOL_AGE_SECS"),
            ops_token: r.raw("OPS_TOKEN").map(Secret::new),
            twilio_auth_token: r.raw("TWILIO_AUTH_TOKEN").map(Secret::new),
            retry_max: r.seconds("DISCORD_RETRY_MAX_SECS"),
            bind: SocketAddr::new(bind_address, port),
            http: crate::http::server::HttpLimits::read(&mut r),
            log_format: r.log_format(),
            url,
            ops_url,
            alert_to: alert_to.unwrap_or(AlertTarget::Webhook {
                url: Secret::new(""),
            }),
        };
        if r.problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError(r.problems))
        }
    }
}

/// `DISCORD_WEBHOOK`, else the bot to `DISCORD_CHANNEL_ERROR`, else `DISCORD_DEFAULT_CHANNEL`.
/// A watch with no way to alert would be the silence it exists to prevent: a problem.
fn alert_target(r: &mut Reader<'_>) -> Option<AlertTarget> {
    if let Some(url) = r.raw("DISCORD_WEBHOOK") {
        let url = url.trim().to_string();
        // Never the value in the message: the URL carries the webhook's token.
        let ok = url::Url::parse(&url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.path().contains("/webhooks/")
        });
        if !ok {
            r.problems.push(
                "DISCORD_WEBHOOK is not a channel webhook URL (https://discord.com/api/webhooks/{id}/{token})".into(),
            );
            return None;
        }
        return Some(AlertTarget::Webhook {
            url: Secret::new(url),
        });
    }
    let token = r.raw("DISCORD_BOT_TOKEN");
    let channel = ["DISCORD_CHANNEL_ERROR", "DISCORD_DEFAULT_CHANNEL"]
        .into_iter()
        .find_map(|name| r.raw(name).map(|c| (name, c.trim().to_string())));
    match (token, channel) {
        (Some(token), Some((name, channel))) => {
            if !is_snowflake(&channel) {
                r.problems.push(format!(
                    "{name}={channel:?} is not a Discord channel id (digits)"
                ));
                return None;
            }
            Some(AlertTarget::Bot {
                api_base: r
                    .string("DISCORD_API_BASE")
                    .trim_end_matches('/')
                    .to_string(),
                token: Secret::new(token),
                channel,
            })
        }
        _ => {
            r.problems.push(
                "the watch has no way to alert: set DISCORD_WEBHOOK, or DISCORD_BOT_TOKEN with DISCORD_CHANNEL_ERROR or DISCORD_DEFAULT_CHANNEL".into(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::config::ENV_VARS;

    fn settings(pairs: &[(&str, &str)], flags: WatchFlags) -> Result<WatchSettings, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        WatchSettings::from_lookup(&|n| map.get(n).map(|v| v.to_string()), flags)
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("WATCH_URL", "http://10.0.0.5:5012/"),
        ("WATCH_TEST_PHONE", "+13125550199"),
        ("DISCORD_WEBHOOK", "https://discord.com/api/webhooks/1/abc"),
    ];

    #[test]
    fn the_watch_reads_exactly_its_declared_variables_and_never_the_store_or_the_queue() {
        let asked = RefCell::new(BTreeSet::new());
        let _ = WatchSettings::from_lookup(
            &|n| {
                asked.borrow_mut().insert(n.to_string());
                None
            },
            WatchFlags::default(),
        );
        // RUST_LOG is read by telemetry, the rest here; the bot's variables only when there
        // is no webhook, so ask again that way.
        let map: HashMap<&str, &str> = [
            ("DISCORD_BOT_TOKEN", "t"),
            ("DISCORD_CHANNEL_ERROR", "1"),
            ("WATCH_E2E_SECS", "off"),
        ]
        .into();
        let _ = WatchSettings::from_lookup(
            &|n| {
                asked.borrow_mut().insert(n.to_string());
                map.get(n).map(|v| v.to_string())
            },
            WatchFlags::default(),
        );
        asked.borrow_mut().insert("RUST_LOG".into());
        let declared: BTreeSet<String> = VARS.iter().map(|v| v.to_string()).collect();
        assert_eq!(*asked.borrow(), declared);
        for name in [
            "DATABASE_URL",
            "AMQP_URL",
            "CELERY_BROKER_URL",
            "READONLY_DATABASE_URL",
        ] {
            assert!(!VARS.contains(&name), "{name}");
        }
        // Every name is a declared variable, in ENV_VARS order; watch-only ones are the
        // watch's.
        let order: Vec<&str> = ENV_VARS
            .iter()
            .map(|v| v.name)
            .filter(|n| VARS.contains(n))
            .collect();
        assert_eq!(order, VARS);
        assert!(WATCH_ONLY.iter().all(|n| VARS.contains(n)));
    }

    #[test]
    #[should_panic(expected = "not in watch::settings::VARS")]
    fn reading_a_service_variable_from_the_watch_is_refused() {
        watch_var("DATABASE_URL");
    }

    #[test]
    fn defaults_and_the_public_url_falls_back_to_public_base_url_then_the_url() {
        let s = settings(MINIMAL, WatchFlags::default()).unwrap();
        assert_eq!(s.url, "http://10.0.0.5:5012");
        assert_eq!(
            s.ops_url, "http://10.0.0.5:5013",
            "the same host on the ops port"
        );
        assert_eq!(s.public_url, "http://10.0.0.5:5012");
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.e2e_every, Some(Duration::from_secs(300)));
        assert!(matches!(s.alert_to, AlertTarget::Webhook { .. }));
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("PUBLIC_BASE_URL", "https://leads.example.com"));
        let s = settings(&pairs, WatchFlags::default()).unwrap();
        assert_eq!(s.public_url, "https://leads.example.com");
        let s = settings(
            &pairs,
            WatchFlags {
                url: Some("http://other:1".into()),
                ops_url: None,
                public_url: Some("https://twilio-signs.example.com/".into()),
                to: None,
            },
        )
        .unwrap();
        assert_eq!(
            (s.url.as_str(), s.public_url.as_str()),
            ("http://other:1", "https://twilio-signs.example.com")
        );
        pairs.push(("WATCH_OPS_URL", "http://lead-agent-ops:5013/"));
        let s = settings(&pairs, WatchFlags::default()).unwrap();
        assert_eq!(s.ops_url, "http://lead-agent-ops:5013");
        let s = settings(
            &pairs,
            WatchFlags {
                ops_url: Some("http://127.0.0.1:6013".into()),
                ..WatchFlags::default()
            },
        )
        .unwrap();
        assert_eq!(s.ops_url, "http://127.0.0.1:6013", "--ops-url wins");
        pairs.push(("WATCH_OPS_URL", "ftp://x"));
        let err = settings(&pairs, WatchFlags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("WATCH_OPS_URL"), "{err}");
    }

    #[test]
    fn every_problem_is_named_at_once_and_no_secret_is_shown() {
        let err = settings(
            &[
                ("WATCH_INTERVAL_SECS", "0"),
                ("DISCORD_WEBHOOK", "hunter2-not-a-url"),
            ],
            WatchFlags::default(),
        )
        .unwrap_err()
        .to_string();
        for name in [
            "WATCH_URL",
            "WATCH_INTERVAL_SECS",
            "WATCH_TEST_PHONE",
            "DISCORD_WEBHOOK",
        ] {
            assert!(err.contains(name), "{name}: {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");
        let err = settings(
            &[("WATCH_URL", "http://x"), ("WATCH_E2E_SECS", "off")],
            WatchFlags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no way to alert"), "{err}");
    }

    #[test]
    fn without_a_webhook_the_bot_posts_to_the_error_channel_else_the_default_one() {
        let base = [
            ("WATCH_URL", "http://x"),
            ("WATCH_E2E_SECS", "off"),
            ("DISCORD_BOT_TOKEN", "t"),
            ("DISCORD_DEFAULT_CHANNEL", "222"),
        ];
        let s = settings(&base, WatchFlags::default()).unwrap();
        assert!(matches!(&s.alert_to, AlertTarget::Bot { channel, .. } if channel == "222"));
        assert_eq!(s.e2e_every, None);
        let mut with_error = base.to_vec();
        with_error.push(("DISCORD_CHANNEL_ERROR", "111"));
        let s = settings(&with_error, WatchFlags::default()).unwrap();
        assert!(matches!(&s.alert_to, AlertTarget::Bot { channel, .. } if channel == "111"));
    }
}
