//! lead-agent: an SMS leasing office that runs itself. The binary's adapters and wiring;
//! the actor logic lives in the `actors` crate.
//!
//! Layout: `config` (every environment variable), `startup` (wiring and shutdown order),
//! `role` (which parts of the service a process runs),
//! `http` (the public listener: webhooks, health; the ops listener: /ops, /metrics),
//! `exposure` (no exposed listener without its secrets), `inbound` (the webhook's durable intake and its
//! fallbacks), `store` (SQLite or PostgreSQL), `queue` (work queue),
//! `scheduler` (the periodic jobs), `sla` (the SLA engine's wiring), `channels` (Twilio,
//! chat models, alert sinks, Asana, CRM), `probe` (the service seen from outside: /ops
//! reads and the synthetic SMS), `watch` (the watchdog process), `cli`, `dev_sms`,
//! `inspect`, `park_cli`, `consent_cli`, `eval` and `simulate` (commands), `telemetry`.

pub mod building_service;
pub mod catalog;
pub mod channels;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod consent_cli;
pub mod crm_text_log;
pub mod deploy_lint;
pub mod dev_sms;
pub mod doc_intake;
pub mod eval;
pub mod exposure;
pub mod hitl;
pub mod http;
pub mod inbound;
pub mod inspect;
pub mod judged_revocations;
pub mod paced_failures;
pub mod park_cli;
pub mod probe;
pub mod queue;
pub mod role;
pub mod scheduler;
// The load bench, with its fakes and progress bar: not in the service binary as shipped.
#[cfg(feature = "simulate")]
pub mod simulate;
pub mod sla;
pub mod startup;
pub mod store;
pub mod takeover;
pub mod takeover_cli;
pub mod telemetry;
pub mod verify;
pub mod watch;
