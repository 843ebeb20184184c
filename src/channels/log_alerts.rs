//! The log alert sink: where alerts go until Discord is configured.
//!
//! Owns: one log line per alert, at a level matching its severity, with the lead and every
//! number in the text shown as `LOG_PHONE` says (`actors::log_phone`): an alert's text
//! names the lead for the operator on Discord, but a log is shipped elsewhere. Control
//! characters in the text (an SMS body quoted by a HITL alert) are escaped by the log
//! format (`crate::telemetry`), not here. Must not: fail — a sink that cannot fail is the
//! floor under every other sink.

use actors::alert_router::{Alert, AlertError, AlertSink, Severity};
use actors::log_phone::scrub;
use async_trait::async_trait;

pub struct LogAlertSink;

#[async_trait]
impl AlertSink for LogAlertSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        let lead = alert
            .lead
            .as_ref()
            .map(|l| l.log().to_string())
            .unwrap_or_else(|| "-".into());
        let lead = lead.as_str();
        let channel = alert.kind.key();
        let text = scrub(&alert.text);
        match alert.severity {
            Severity::Critical => {
                tracing::error!(target: "alert", channel, event = %alert.event, lead, "{text}")
            }
            Severity::Warning => {
                tracing::warn!(target: "alert", channel, event = %alert.event, lead, "{text}")
            }
            Severity::Info => {
                tracing::info!(target: "alert", channel, event = %alert.event, lead, "{text}")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use actors::alert_router::AlertKind;
    use actors::ports::LeadId;

    use super::*;
    use crate::telemetry::capture::Captured;

    #[tokio::test]
    async fn an_alert_is_one_escaped_line_with_its_numbers_masked() {
        let lead = LeadId::new("+13125550142");
        let alert = Alert::new(
            AlertKind::HitlFeedback,
            Severity::Critical,
            "reply_held",
            "Reply to +13125550142.\nLead wrote: hi\n2026-01-01T00:00:00Z ERROR forged",
        )
        .for_lead(&lead);
        let captured = Captured::default();
        let _guard = tracing::dispatcher::set_default(&captured.pretty());
        LogAlertSink.deliver(&alert).await.unwrap();
        let out = captured.text();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains("3125550142"), "{out}");
        assert!(out.contains("lead=+1******0142"), "{out}");
        assert!(out.contains("Reply to +1******0142.\\nLead wrote"), "{out}");
    }
}
