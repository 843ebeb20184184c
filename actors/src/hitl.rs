//! Human in the loop: the port through which a lead actor holds a reply for a person
//! instead of sending it (`HITL_ENABLED`).
//!
//! Owns: the [`ReplyHolds`] trait and the text of the alert that asks for a decision.
//! Must not: send anything or know how a person answers (Discord buttons, an endpoint):
//! the decision arrives in `src/` and a approved reply reaches the lead through the normal
//! outbox path (a `queued` reply flushed by the lead's next turn), never around it.

use async_trait::async_trait;

use crate::alert_router::{Alert, AlertKind, Severity};
use crate::ports::{LeadId, StoreError};

/// Durable holds. Implemented by the SQL store and the in-memory fake.
#[async_trait]
pub trait ReplyHolds: Send + Sync + 'static {
    /// Atomically: keep `body` as a held reply to the inbound messages `answered` and mark
    /// them handled, so no other turn answers them while a person decides. Returns the
    /// hold's id, or `None` (writing nothing) when any of them was no longer pending.
    async fn hold_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        provider: &str,
    ) -> Result<Option<i64>, StoreError>;
}

/// The HITL_FEEDBACK alert for a new hold: what the lead wrote and the draft. A chat sink
/// attaches approve / edit / reject to it through [`Alert::reply_hold`], and "Take over"
/// (`Alert::takeover`): a person may rather answer the lead themselves.
pub fn held_reply_alert(lead: &LeadId, hold_id: i64, inbound: &[&str], draft: &str) -> Alert {
    let mut alert = Alert::new(
        AlertKind::HitlFeedback,
        Severity::Warning,
        "reply_held",
        format!(
            "Reply #{hold_id} to {lead} is waiting for approval.\nLead wrote: {}\n\nDraft reply:\n{draft}",
            inbound.join(" / ")
        ),
    )
    .for_lead(lead)
    .with_takeover(crate::alert_router::TakeoverButtons::Offer);
    alert.reply_hold = Some(hold_id);
    alert
}
