//! Settings: every environment variable the service reads, with its default or the rule
//! that makes it required, its meaning, and whether it is a secret.
//!
//! Owns: [`ENV_VARS`] (the one list README, the deploy manifests and their tests are checked
//! against) and [`Settings::from_env`], which reports every problem at once, by name.
//! Must not: read the environment anywhere else (all reads go through [`read_var`], which
//! refuses names missing from the list), or print a secret: [`Secret`]'s `Debug` redacts.
//!
//! Layout: [`vars`] declares the variables and reads one; [`reader`] turns raw values into
//! typed ones and collects the problems; [`settings`] is what the service runs on, with the
//! groups that have rules of their own beside it ([`brain`] with [`providers`], [`discord`]
//! with HITL, [`scheduler`], [`otel`] for tracing, [`doc_intake`] for the mailbox intake);
//! [`profile`] is the agent profile, whose values are defaults of the variables it sets (an
//! explicit variable still wins). The scheduler's job table is the
//! scheduler's (`crate::scheduler::table`),
//! re-exported here because [`JobSetting`] names its jobs.

pub mod brain;
pub mod compliance;
pub mod discord;
pub mod doc_intake;
pub mod otel;
pub mod profile;
pub mod providers;
pub mod reader;
pub mod scheduler;
pub mod secret;
pub mod settings;
pub mod vars;

pub use brain::BrainSettings;
pub use discord::{DiscordSettings, HitlSettings};
pub use doc_intake::DocIntakeSettings;
pub use otel::{TraceTarget, TracingSettings};
pub use profile::AgentProfile;
pub use reader::{ConfigError, is_e164};
pub(crate) use reader::{Reader, is_snowflake};
pub use scheduler::{JobSetting, SchedulerSettings};
pub use secret::Secret;
pub use settings::{
    AmqpSettings, AnthropicSettings, JournalSetting, LogFormat, Settings, TwilioSender,
    TwilioSettings,
};
pub use vars::{ENV_VARS, EnvVar, default_ops_port, local_ops_port, read_var};

pub use crate::scheduler::table::{Job, MissedTicks, parse_cron};
