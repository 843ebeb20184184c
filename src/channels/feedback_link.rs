//! `FEEDBACK_FORM_URL` on the alerts that ask a person to step in: every alert on its way
//! to the sink (Discord or the log) gets "Feedback: <url>" appended when its event is a
//! HITL hold or an escalation, so whoever handles it can say how the agent did.
//!
//! Owns: which events carry the link ([`FEEDBACK_EVENTS`]) and the wording. Must not:
//! change any other alert, or the alert's kind, channel or buttons.

use std::sync::Arc;

use actors::alert_router::{Alert, AlertError, AlertKind, AlertSink};
use async_trait::async_trait;

/// The HITL hold and its expiry, the brain's hand-off to a person, and the SLA engine's
/// escalation to the owner (never on the EVENT stream's lines of the same name).
pub const FEEDBACK_EVENTS: [&str; 4] = [
    "reply_held",
    "hitl_hold_expired",
    "escalation",
    "sla_escalated",
];

pub struct FeedbackLinkSink {
    inner: Arc<dyn AlertSink>,
    url: String,
}

impl FeedbackLinkSink {
    /// `url` unset: the sink itself, unchanged.
    pub fn wrap(inner: Arc<dyn AlertSink>, url: Option<&str>) -> Arc<dyn AlertSink> {
        match url {
            Some(url) => Arc::new(Self {
                inner,
                url: url.to_string(),
            }),
            None => inner,
        }
    }
}

/// The alert as it is delivered: with the link when its event asks for feedback.
pub fn with_feedback_link(alert: &Alert, url: &str) -> Option<Alert> {
    // The EVENT stream repeats `reply_held` as a line of the turn's trace: not a request.
    if alert.kind == AlertKind::Event || !FEEDBACK_EVENTS.contains(&alert.event.as_str()) {
        return None;
    }
    let mut a = alert.clone();
    a.text = format!("{}\n\nFeedback: {url}", a.text);
    Some(a)
}

#[async_trait]
impl AlertSink for FeedbackLinkSink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        match with_feedback_link(alert, &self.url) {
            Some(a) => self.inner.deliver(&a).await,
            None => self.inner.deliver(alert).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use actors::alert_router::Severity;

    use super::*;

    #[test]
    fn hitl_and_escalation_alerts_carry_the_link_and_others_do_not() {
        let url = "https://forms.example.com/feedback";
        let held = Alert::new(
            AlertKind::HitlFeedback,
            Severity::Warning,
            "reply_held",
            "Reply #1",
        );
        assert_eq!(
            with_feedback_link(&held, url).unwrap().text,
            format!("Reply #1\n\nFeedback: {url}")
        );
        let esc = Alert::error("sla_escalated", "SLA ESCALATION");
        assert!(with_feedback_link(&esc, url).unwrap().text.ends_with(url));
        let other = Alert::event("sms_sent", "x");
        assert!(with_feedback_link(&other, url).is_none());
        let trace = Alert::event("reply_held", "held for approval");
        assert!(
            with_feedback_link(&trace, url).is_none(),
            "the event stream's line"
        );
    }
}
