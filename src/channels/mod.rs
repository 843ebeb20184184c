//! Adapters to the outside voices: Twilio (in and out), the chat models, alert sinks, and
//! the ticket system (Asana) the SLA engine nags staff through.
//!
//! Owns: wire formats and the mapping of each vendor's failures onto the actors' error
//! classes. Must not: hold policy (retries, fallbacks, ordering live in the actors crate).

pub mod asana;
pub mod crm;
pub mod dialer;
pub mod discord;
pub mod dry_run;
pub mod feedback_link;
pub mod fub_texts;
pub mod google;
pub mod identity;
pub mod llm;
pub mod log_alerts;
pub mod twilio;

use std::time::Duration;

/// The HTTP client every vendor adapter uses: a whole-request timeout, and a short connect
/// timeout so that an unreachable host fails fast (and is classed as never sent).
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
}
