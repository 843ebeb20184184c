//! Human in the loop, the adapter side: what a person's decision does, and the escalation
//! of holds nobody decided on.
//!
//! Owns: turning an approve / edit / reject into store changes and a wake-up for the lead
//! (the send itself is the lead actor's normal path: opt-out checked at the last moment,
//! sent once), and [`escalate_expired_holds`], a plain function of `now` that the periodic
//! loop in `startup/background.rs` (or a scheduler) calls.
//! Must not: send an SMS itself or block the Discord interaction on a send (Discord wants
//! its answer within 3 s).

use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity, TakeoverButtons};
use actors::lead::clamp_sms;
use actors::ports::{LeadId, StoreError, WakeLead};
use chrono::{DateTime, Utc};
use std::sync::Arc;

use crate::config::HitlSettings;
use crate::queue::WorkQueue;
use crate::store::{HoldDecision, SqlStore};

/// A person's decision on a held reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    /// Approve with this text instead of the draft.
    Edit(String),
    Reject,
}

/// Records `decision` on hold `hold_id` (once: a repeated click finds it decided) and, when
/// something is now to be sent, wakes the lead in the background so that its actor sends it.
pub async fn decide(
    store: &SqlStore,
    alerts: &AlertHandle,
    queue: Arc<dyn WorkQueue>,
    hold_id: i64,
    decision: Decision,
    by: &str,
) -> Result<HoldDecision, StoreError> {
    let edited = match &decision {
        Decision::Edit(text) => Some(clamp_sms(text.trim())),
        _ => None,
    };
    let approve = match &decision {
        Decision::Approve => Some(None),
        Decision::Edit(_) => Some(edited.as_deref()),
        Decision::Reject => None,
    };
    let outcome = store.decide_hold(hold_id, approve, by).await?;
    match &outcome {
        HoldDecision::Approved { lead, reply_id } => {
            let verb = if edited.is_some() {
                "edited and approved"
            } else {
                "approved"
            };
            alerts.raise(
                Alert::event(
                    "reply_approved",
                    format!("{lead}: reply #{hold_id} {verb} by {by}; sending (outbox {reply_id})"),
                )
                .for_lead(lead),
            );
            wake_in_background(queue, lead.clone());
        }
        HoldDecision::Rejected { lead, body } => {
            alerts.raise(
                Alert::new(
                    AlertKind::HitlFeedback,
                    Severity::Warning,
                    "reply_rejected",
                    format!("Reply #{hold_id} to {lead} rejected by {by}; not sent. The lead is waiting for a person.\n\nRejected draft:\n{body}"),
                )
                .for_lead(lead)
                // The lead waits for a person: the button lets one take the conversation.
                .with_takeover(TakeoverButtons::Offer),
            );
        }
        HoldDecision::AlreadyDecided { .. } | HoldDecision::NotFound => {}
    }
    Ok(outcome)
}

/// The reply is `queued` in the store; the wake-up only makes it go now. If the publish
/// fails, the periodic sweep wakes leads whose queued work has waited (stale work).
fn wake_in_background(queue: Arc<dyn WorkQueue>, lead: LeadId) {
    tokio::spawn(async move {
        if let Err(e) = queue.publish(WakeLead { lead: lead.clone() }).await {
            tracing::warn!(lead = %lead.log(), error = %e, "could not wake the lead for an approved reply; the outbox sweep will");
        }
    });
}

/// Escalates every hold undecided for longer than `settings.hold_timeout` as of `now`, once
/// each: an ERROR alert carrying the held text (with the approve / edit / reject buttons,
/// so a person can still decide from there) and, per lead, one neutral holding SMS queued
/// through the outbox. The reply stays held. Returns how many holds were escalated.
pub async fn escalate_expired_holds(
    store: &SqlStore,
    alerts: &AlertHandle,
    queue: &dyn WorkQueue,
    settings: &HitlSettings,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let timeout =
        chrono::Duration::from_std(settings.hold_timeout).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(timeout)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let escalated = store
        .escalate_expired_holds(cutoff, &settings.holding_message, now)
        .await?;
    for hold in &escalated {
        let waited = (now - hold.created_at).num_minutes();
        let holding = if hold.holding_reply_id.is_some() {
            "The lead is being sent a holding message."
        } else {
            "The lead already got a holding message in this pass."
        };
        let mut alert = Alert::error(
            "hitl_hold_expired",
            format!(
                "Reply #{} to {} has waited {waited} min for approval with no decision. {holding} The reply stays held for a person.\n\nHeld reply:\n{}",
                hold.id, hold.lead, hold.body
            ),
        )
        .for_lead(&hold.lead)
        .with_takeover(TakeoverButtons::Offer);
        alert.reply_hold = Some(hold.id);
        alerts.raise(alert);
    }
    let mut leads: Vec<LeadId> = escalated
        .iter()
        .filter(|h| h.holding_reply_id.is_some())
        .map(|h| h.lead.clone())
        .collect();
    leads.dedup();
    for lead in leads {
        if let Err(e) = queue.publish(WakeLead { lead: lead.clone() }).await {
            tracing::warn!(lead = %lead.log(), error = %e, "could not wake the lead for its holding message; the outbox sweep will");
        }
    }
    Ok(escalated.len())
}

/// How often the escalation loop looks: a quarter of the timeout, between 1 s and 30 s, so
/// a hold is escalated within about a quarter of its timeout after it expires.
pub fn escalation_period(settings: &HitlSettings) -> Duration {
    (settings.hold_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}
