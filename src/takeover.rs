//! Human takeover (issue 15 item 6), the adapter side: taking a lead over, the operator's
//! reply, the release, and the idle release — each the same for every door (`/ops`, the
//! Discord buttons and modal, the scheduler's `takeover_idle_release` job).
//!
//! Owns: validating the operator's name and text, the alerts (HITL_FEEDBACK: taken, each
//! operator text queued, released, released as idle) and the wake-up that makes the lead's
//! actor send a queued operator text. The store holds the takeover (`src/store/takeovers.rs`);
//! while it is in force the lead's turn records and forwards instead of drafting
//! (`actors::takeover`), the followup sweep drops the lead's timer, and `claim_send`
//! suppresses any reply but the operator's and the rule-owed ones.
//! Must not: send an SMS itself (the operator's text is an outbox row; the lead's actor
//! sends it with the opt-out check at the claim, once), or answer the messages that arrived
//! during a takeover after the release: the release hands back the next message only.

use std::sync::Arc;
use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle, AlertKind, Severity, TakeoverButtons};
use actors::ports::{LeadId, StoreError, WakeLead};
use chrono::{DateTime, Utc};

use crate::queue::WorkQueue;
use crate::store::{SqlStore, TakeOutcome, Takeover};

/// Longest operator name kept (a Discord username is at most 32; a person's name fits).
pub const MAX_OPERATOR_CHARS: usize = 64;

/// Why a request was refused: the HTTP and Discord doors word it their own way.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error("{0}")]
    Invalid(String),
    /// The lead has no takeover in force.
    #[error("{0} is not taken over")]
    NotTaken(LeadId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operator's name, trimmed; refused when empty, too long or with control characters.
pub fn operator_name(raw: &str) -> Result<String, TakeoverError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > MAX_OPERATOR_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(TakeoverError::Invalid(format!(
            "operator must be a name of 1 to {MAX_OPERATOR_CHARS} printable characters"
        )));
    }
    Ok(name.to_string())
}

/// The operator's SMS, trimmed; refused when empty or longer than one Twilio body (it is
/// the operator's own words: refused rather than cut).
pub fn reply_text(raw: &str) -> Result<String, TakeoverError> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(TakeoverError::Invalid("the reply is empty".into()));
    }
    if body.chars().count() > actors::lead::MAX_SMS_CHARS {
        return Err(TakeoverError::Invalid(format!(
            "the reply is longer than one SMS body ({} characters)",
            actors::lead::MAX_SMS_CHARS
        )));
    }
    Ok(body.to_string())
}

/// Takes `lead` over for `operator`; alerts HITL_FEEDBACK `lead_taken_over` (with Reply and
/// Release) when this call took it.
pub async fn take(
    store: &SqlStore,
    alerts: &AlertHandle,
    lead: &LeadId,
    operator: &str,
    via: &str,
    idle: Duration,
) -> Result<TakeOutcome, TakeoverError> {
    let operator = operator_name(operator)?;
    let outcome = store.take_over(lead, &operator, via, Utc::now()).await?;
    if let TakeOutcome::Taken(_) = &outcome {
        tracing::info!(lead = %lead.log(), via, "lead taken over by an operator");
        metrics::counter!("lead_agent_takeovers_total", "via" => via.to_string()).increment(1);
        alerts.raise(
            Alert::new(
                AlertKind::HitlFeedback,
                Severity::Info,
                "lead_taken_over",
                format!(
                    "{operator} took over {lead} ({via}): the AI stops replying and following up. \
                     Messages from the lead come here with a Reply button; release it when done \
                     (idle release after {} of no operator activity).",
                    human_idle(idle)
                ),
            )
            .for_lead(lead)
            .with_takeover(TakeoverButtons::Taken),
        );
    }
    Ok(outcome)
}

/// `TAKEOVER_IDLE_HOURS` as an operator reads it: "4 h", "90 min", "5 s".
pub fn human_idle(idle: Duration) -> String {
    let secs = idle.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{} s", idle.as_secs_f64().ceil())
    }
}

/// Queues `body` as `operator`'s SMS to the taken-over `lead` (counts as operator
/// activity) and wakes the lead so that its actor sends it; returns the outbox id.
pub async fn reply(
    store: &SqlStore,
    alerts: &AlertHandle,
    queue: Arc<dyn WorkQueue>,
    lead: &LeadId,
    operator: &str,
    body: &str,
) -> Result<i64, TakeoverError> {
    let operator = operator_name(operator)?;
    let body = reply_text(body)?;
    let Some((reply_id, _)) = store.queue_operator_reply(lead, &body, Utc::now()).await? else {
        return Err(TakeoverError::NotTaken(lead.clone()));
    };
    alerts.raise(
        Alert::event(
            "operator_reply",
            format!("{lead} ← [{operator}] {body} (outbox {reply_id})"),
        )
        .for_lead(lead),
    );
    // The row is durable; a lost wake-up is made good by the stale-work sweep
    // (OUTBOX_SWEEP_SECS). In the background: Discord wants its answer within 3 s.
    let lead = lead.clone();
    tokio::spawn(async move {
        if let Err(e) = queue.publish(WakeLead { lead: lead.clone() }).await {
            tracing::warn!(lead = %lead.log(), error = %e, "operator reply queued but the wake-up failed; the outbox sweep will send it");
        }
    });
    Ok(reply_id)
}

/// Releases `lead` (by `by`); alerts `takeover_released`. The AI answers the lead's next
/// message; those that arrived during the takeover stay unanswered by it.
pub async fn release(
    store: &SqlStore,
    alerts: &AlertHandle,
    lead: &LeadId,
    by: &str,
) -> Result<Takeover, TakeoverError> {
    let by = operator_name(by)?;
    let Some(ended) = store.release_takeover(lead, &by, Utc::now()).await? else {
        return Err(TakeoverError::NotTaken(lead.clone()));
    };
    tracing::info!(lead = %lead.log(), "takeover released by an operator");
    alerts.raise(
        Alert::new(
            AlertKind::HitlFeedback,
            Severity::Info,
            "takeover_released",
            format!(
                "{by} released {lead} (taken by {} at {}): the AI answers the lead's next message \
                 (not the ones that came during the takeover).",
                ended.operator,
                ended.taken_at.format("%Y-%m-%d %H:%M UTC")
            ),
        )
        .for_lead(lead)
        .with_takeover(TakeoverButtons::Offer),
    );
    Ok(ended)
}

/// The scheduler's `takeover_idle_release` job: every takeover whose operator has done
/// nothing for `idle` (`TAKEOVER_IDLE_HOURS`) is released, each with a HITL_FEEDBACK
/// warning `takeover_idle_released` (with "Take over" to take it again). Returns how many.
pub async fn release_idle(
    store: &SqlStore,
    alerts: &AlertHandle,
    idle: Duration,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(idle)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let released = store.release_idle_takeovers(cutoff, now).await?;
    for t in &released {
        let silent = (now - t.last_activity_at).num_minutes();
        metrics::counter!("lead_agent_takeovers_idle_released_total").increment(1);
        alerts.raise(
            Alert::new(
                AlertKind::HitlFeedback,
                Severity::Warning,
                "takeover_idle_released",
                format!(
                    "Takeover of {} by {} released: no operator activity for {silent} min \
                     (TAKEOVER_IDLE_HOURS). The AI answers the lead's next message; the messages \
                     that came during the takeover are not answered by it.",
                    t.lead, t.operator
                ),
            )
            .for_lead(&t.lead)
            .with_takeover(TakeoverButtons::Offer),
        );
    }
    Ok(released.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_replies_are_trimmed_and_the_unusable_refused() {
        assert_eq!(operator_name("  ana ").unwrap(), "ana");
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert!(operator_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(reply_text(" hi ").unwrap(), "hi");
        assert!(reply_text(" ").is_err());
        assert!(reply_text(&"x".repeat(1601)).is_err());
        assert!(reply_text(&"x".repeat(1600)).is_ok());
        assert_eq!(human_idle(Duration::from_secs(4 * 3600)), "4 h");
        assert_eq!(human_idle(Duration::from_secs(5400)), "90 min");
        assert_eq!(human_idle(Duration::from_secs_f64(3.6)), "4 s");
    }
}
