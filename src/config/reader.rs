//! The reader: turns raw variable values into typed ones and collects every problem instead
//! of failing at the first, so that [`ConfigError`] names them all at once. The service's
//! settings (`super::settings`), the HTTP limits (`crate::http::server`) and the watch
//! (`crate::watch::settings`) read through it.
//!
//! Owns: the getters (a value, its default, or a problem naming the variable) and the
//! value checks several settings share (E.164 phone numbers, Discord ids).
//! Must not: read the process environment itself (its lookup is given), or put a value
//! that may be a secret into a problem.

use std::fmt;
use std::time::Duration;

use super::settings::LogFormat;
use super::vars::default_of;

/// Everything wrong with the environment, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Collects values and problems; each getter records a problem instead of failing fast.
/// Also the watch's reader (`watch::settings`), which reads its own variables only.
pub(crate) struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            get,
            problems: Vec::new(),
        }
    }
}

impl Reader<'_> {
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    pub(crate) fn string(&self, name: &str) -> String {
        self.raw(name)
            .unwrap_or_else(|| default_of(name).to_string())
    }

    pub(crate) fn parse<T: std::str::FromStr>(&mut self, name: &str) -> T
    where
        T::Err: fmt::Display,
    {
        let text = self.string(name);
        match text.trim().parse::<T>() {
            Ok(v) => v,
            Err(e) => {
                self.problems
                    .push(format!("{name}={text:?} is not valid: {e}"));
                default_of(name)
                    .parse::<T>()
                    .unwrap_or_else(|_| panic!("default of {name} parses"))
            }
        }
    }

    pub(super) fn positive<T>(&mut self, name: &str) -> T
    where
        T: std::str::FromStr + PartialOrd + Default,
        T::Err: fmt::Display,
    {
        let v: T = self.parse(name);
        if v <= T::default() {
            self.problems.push(format!("{name} must be greater than 0"));
        }
        v
    }

    /// `LOG_FORMAT`.
    pub(crate) fn log_format(&mut self) -> LogFormat {
        match self.string("LOG_FORMAT").as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                self.problems
                    .push(format!("LOG_FORMAT={other:?} must be `pretty` or `json`"));
                LogFormat::Pretty
            }
        }
    }

    /// `LOG_PHONE`, with `LOG_PHONE_KEY` required for `hash`.
    pub(crate) fn log_phone(&mut self) -> actors::log_phone::LogPhoneMode {
        use actors::log_phone::LogPhoneMode;
        match self.string("LOG_PHONE").trim() {
            "masked" => LogPhoneMode::Masked,
            "full" => LogPhoneMode::Full,
            "hash" => match self.raw("LOG_PHONE_KEY").filter(|k| !k.is_empty()) {
                Some(key) => LogPhoneMode::Hash {
                    key: key.into_bytes(),
                },
                None => {
                    self.problems.push(
                        "LOG_PHONE_KEY is required when LOG_PHONE=hash (the HMAC key, the same in every process)".into(),
                    );
                    LogPhoneMode::Masked
                }
            },
            other => {
                self.problems.push(format!(
                    "LOG_PHONE={other:?} must be `masked`, `hash` or `full`"
                ));
                LogPhoneMode::Masked
            }
        }
    }

    /// A `true`/`false` variable (`1`/`0`, `yes`/`no` too).
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        match self.string(name).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => {
                self.problems
                    .push(format!("{name}={other:?} must be true or false"));
                false
            }
        }
    }

    pub(crate) fn seconds(&mut self, name: &str) -> Duration {
        let secs: f64 = self.parse(name);
        if !(secs.is_finite() && secs > 0.0) {
            self.problems
                .push(format!("{name} must be a positive number of seconds"));
            return Duration::from_secs(1);
        }
        Duration::from_secs_f64(secs)
    }
}

/// A Discord id (snowflake) is a decimal number.
pub(crate) fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `+` and 8 to 15 digits: the form Twilio sends and accepts phone numbers in.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}
