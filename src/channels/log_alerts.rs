//! The log alert sink: where alerts go until Discord is configured.
//!
//! Owns: one log line per alert, at a level matching its severity. Must not: fail — a sink
//! that cannot fail is the floor under every other sink.

use actors::alert_router::{Alert, AlertError, AlertSink, Severity};
use async_trait::async_trait;

pub struct LogAlertSink;

#[async_trait]
impl AlertSink for LogAlertSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        let lead = alert.lead.as_ref().map(|l| l.as_str()).unwrap_or("-");
        let channel = alert.kind.key();
        match alert.severity {
            Severity::Critical => {
                tracing::error!(target: "alert", channel, event = %alert.event, lead, "{}", alert.text)
            }
            Severity::Warning => {
                tracing::warn!(target: "alert", channel, event = %alert.event, lead, "{}", alert.text)
            }
            Severity::Info => {
                tracing::info!(target: "alert", channel, event = %alert.event, lead, "{}", alert.text)
            }
        }
        Ok(())
    }
}
