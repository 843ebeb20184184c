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

/// Most characters of a refused request's body kept in an error: vendors' error bodies
/// name the problem in their first line, and a whole HTML error page is noise in an alert.
pub const ERROR_EXCERPT_CHARS: usize = 200;

/// The start of a failed response's body (empty when it cannot be read), for the error
/// that reports it.
pub async fn error_excerpt(response: reqwest::Response) -> String {
    response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(ERROR_EXCERPT_CHARS)
        .collect()
}
