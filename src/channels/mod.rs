//! Adapters to the outside voices: Twilio (in and out), the chat models, and alert sinks.
//!
//! Owns: wire formats and the mapping of each vendor's failures onto the actors' error
//! classes. Must not: hold policy (retries, fallbacks, ordering live in the actors crate).

pub mod dry_run;
pub mod llm;
pub mod log_alerts;
pub mod twilio;
