//! Human takeover, the lead actor's side (issue 15 item 6): what a turn does for a lead an
//! operator has taken over — no model call, no draft, no SMS: the pending messages are
//! recorded `no_reply` with [`TAKEN_OVER`] (so the response-gap watch, which counts pending
//! messages, does not take them for a stalled pipeline and re-drive or alert) and forwarded
//! to the HITL channel with the reply box ([`forwarded_alert`]).
//!
//! Owns: the no-reply detail and the text of the forward. Must not: know how a takeover is
//! taken or released, or how the operator answers (the store says who holds the lead in
//! `LeadWork::taken_by`; `src/takeover.rs`, `/ops` and the Discord buttons do the rest), or
//! answer these messages later: a release hands back the next message, not the ones the
//! operator already saw.

use crate::alert_router::{Alert, AlertKind, Severity, TakeoverButtons};
use crate::ports::LeadId;

/// The `detail` of an inbound message that arrived while the lead was taken over.
pub const TAKEN_OVER: &str = "taken_over";

/// HITL_FEEDBACK `takeover_inbound`: what the lead wrote, for the operator who holds the
/// conversation, with Reply and Release buttons ([`TakeoverButtons::Taken`]).
pub fn forwarded_alert(lead: &LeadId, operator: &str, messages: &[&str]) -> Alert {
    Alert::new(
        AlertKind::HitlFeedback,
        Severity::Warning,
        "takeover_inbound",
        format!(
            "{lead} wrote (taken over by {operator}; the AI is not answering):\n{}",
            messages.join("\n")
        ),
    )
    .for_lead(lead)
    .with_takeover(TakeoverButtons::Taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forward_names_the_operator_carries_every_message_and_the_reply_buttons() {
        let a = forwarded_alert(&LeadId::new("+13125550100"), "ana", &["hi", "still free?"]);
        assert_eq!(a.kind, AlertKind::HitlFeedback);
        assert!(a.text.contains("taken over by ana"), "{}", a.text);
        assert!(a.text.ends_with("hi\nstill free?"), "{}", a.text);
        assert_eq!(a.takeover, Some(TakeoverButtons::Taken));
        assert_eq!(a.lead, Some(LeadId::new("+13125550100")));
    }
}
