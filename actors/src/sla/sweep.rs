//! The SLA sweep: runs [`decide`] over every open SLA and performs its actions through the
//! ports, recording each step in the SLA's row right after (or, for the owner and the lead,
//! together with or before) its effect.
//!
//! Owns: the order of effect and record per action, which is what a crash can split:
//! - **breach**: recorded, then counted (`lead_agent_sla_breaches_total{sla}`), so a
//!   breach counts once;
//! - **staff nag**: ticket comment and alert first, recorded after. A crash in between
//!   repeats one comment (harmless); a ticket system that is down keeps the nag unrecorded
//!   and the next sweep tries again, for up to an hour past the nag's due time, after which
//!   the nag is recorded and its text alerted: an outage delays a nag, never silences it;
//! - **escalation**: recorded first (the version check makes it a claim only one sweep
//!   wins), then alert and owner SMS: the owner is told at most once, and the alert
//!   carries the escalation if the SMS cannot go;
//! - **lead update**: the SMS is queued in the outbox in the *same transaction* that
//!   records the update ([`SlaStore::save_with_lead_sms`]), and the lead's actor sends it
//!   with the outbox's claim (`claim_send`) and in-doubt resolution: no crash can send it
//!   twice or lose it, and a STOP that arrives before the send suppresses it.
//!
//! Must not: send to an opted-out lead, comment on a `dry-run` ticket, or fail the whole
//! sweep for one SLA's trouble (each SLA is independent; errors are counted and logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{LeadId, SmsError, SmsSender, Store, StoreError};
use crate::send_window::SendWindows;

use super::{
    SlaAction, SlaEvents, SlaState, SlaStore, TICKET_RETRY_GRACE_MINUTES, TicketSystem, decide,
};

/// Tries of the owner's escalation SMS when the provider fails temporarily (never for an
/// unknown outcome: that one may have gone out).
const OWNER_SMS_ATTEMPTS: u32 = 3;

/// What one sweep did, for the scheduler's log and its tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Open SLAs looked at.
    pub checked: usize,
    pub breaches: usize,
    pub staff_nags: usize,
    /// Of those, comments that reached the ticket system.
    pub ticket_comments: usize,
    pub escalations: usize,
    pub owner_sms: usize,
    /// Update SMS queued in the outbox.
    pub lead_updates: usize,
    /// Lead updates not sent because the lead opted out.
    pub suppressed: usize,
    /// Lead updates held because it is quiet hours where the lead is; a later sweep sends.
    pub held_quiet: usize,
    /// Steps skipped because the SLA changed under the sweep (resolved meanwhile).
    pub conflicts: usize,
    /// Steps that failed and will be tried again by the next sweep.
    pub retry_later: usize,
    /// Invoice SLAs opened because a lead's move-in date was reached.
    pub invoices_opened: usize,
    /// Tasks created for open SLAs that had none (a creation that failed earlier).
    pub tasks_created: usize,
    /// Leads with an update SMS in the outbox: publish a wake-up for each (the periodic
    /// stale-work sweep would also find them, later).
    pub wake: Vec<LeadId>,
}

pub struct SlaSweep {
    slas: Arc<dyn SlaStore>,
    store: Arc<dyn Store>,
    tickets: Arc<dyn TicketSystem>,
    /// Opens the invoices whose move-in date came, and retries missing tasks.
    events: SlaEvents,
    sms: Arc<dyn SmsSender>,
    alerts: AlertHandle,
    owner_phone: Option<LeadId>,
    owner_unset_logged: AtomicBool,
    /// The sending windows (quiet hours, federal, the lead's state) and the zone of a lead
    /// whose own zone is unknown (`OWNER_TZ`).
    quiet: Option<(SendWindows, Tz)>,
}

impl SlaSweep {
    /// `owner_phone`: where escalations are texted (`OWNER_PHONE`); `None`: alert only.
    pub fn new(
        slas: Arc<dyn SlaStore>,
        store: Arc<dyn Store>,
        tickets: Arc<dyn TicketSystem>,
        sms: Arc<dyn SmsSender>,
        alerts: AlertHandle,
        owner_phone: Option<LeadId>,
    ) -> Self {
        Self {
            events: SlaEvents::new(slas.clone(), tickets.clone(), alerts.clone()),
            slas,
            store,
            tickets,
            sms,
            alerts,
            owner_phone,
            owner_unset_logged: AtomicBool::new(false),
            quiet: None,
        }
    }

    /// Holds lead updates outside the sending `windows` in the lead's zones (its stored zone,
    /// else its number's, else `default_tz`) and its state, as
    /// followups are held: an update is news, not an emergency, and can wait for the
    /// morning. Staff nags and the owner's escalation are not held.
    pub fn with_quiet_hours(mut self, windows: SendWindows, default_tz: Tz) -> Self {
        self.quiet = Some((windows, default_tz));
        self
    }

    async fn in_quiet_hours(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some((windows, default_tz)) = &self.quiet else {
            return Ok(false);
        };
        let stored = self.slas.lead_time_zone(lead).await?;
        let zones = crate::phone_zone::lead_zones(stored.as_deref(), lead.as_str(), *default_tz);
        Ok(windows.hold_until_all(now, lead.as_str(), &zones).is_some())
    }

    /// The scheduler's entry point: one pass over every open SLA as of `now`. Fails only
    /// when the open SLAs cannot be listed; one SLA's failure is counted in the report and
    /// retried next time.
    pub async fn run_sla_sweep(&self, now: DateTime<Utc>) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        // Invoices first, so a move-in reached today is swept (and ticketed) in this pass.
        match self.events.open_due_invoices(now).await {
            Ok(n) => report.invoices_opened = n,
            Err(e) => {
                report.retry_later += 1;
                tracing::warn!(error = %e, "could not open the invoices due; the next sweep retries");
            }
        }
        for mut sla in self.slas.open_slas().await? {
            report.checked += 1;
            if let Some(id) = self.events.create_missing_task(&sla).await {
                report.tasks_created += 1;
                sla.ticket_id = id;
            }
            if let Err(e) = self.check_one(sla.clone(), now, &mut report).await {
                report.retry_later += 1;
                tracing::warn!(lead = %sla.lead.log(), sla = %sla.kind, error = %e, "SLA step failed; the next sweep retries it");
            }
        }
        report.wake.sort();
        report.wake.dedup();
        Ok(report)
    }

    async fn check_one(
        &self,
        mut state: SlaState,
        now: DateTime<Utc>,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        let decision = decide(&state, now);
        for action in decision.actions {
            let mut next = state.clone();
            action.apply_to(&mut next, now);
            let recorded = match &action {
                SlaAction::Breach => {
                    let saved = self.slas.save_sla(&next).await?;
                    if saved {
                        report.breaches += 1;
                        metrics::counter!("lead_agent_sla_breaches_total", "sla" => state.kind.as_str())
                            .increment(1);
                        tracing::warn!(lead = %state.lead.log(), sla = %state.kind, "SLA breached");
                    }
                    saved
                }
                SlaAction::StaffNag {
                    overdue,
                    text,
                    ticket,
                    due_at,
                    ..
                } => {
                    if let Some(ticket) = ticket {
                        match self.tickets.add_comment(ticket, text).await {
                            Ok(()) => report.ticket_comments += 1,
                            Err(e)
                                if e.is_retryable()
                                    && now - *due_at
                                        < chrono::Duration::minutes(TICKET_RETRY_GRACE_MINUTES) =>
                            {
                                // Not recorded: the next sweep nags again.
                                report.retry_later += 1;
                                tracing::warn!(lead = %state.lead.log(), sla = %state.kind, ticket, error = %e, "ticket comment failed; retrying next sweep");
                                continue;
                            }
                            Err(e) => {
                                // Recorded all the same: a refused comment (or one the ticket
                                // system kept failing for an hour) would not be delivered by
                                // retrying every few minutes; the alert carries it instead.
                                self.alerts.raise(
                                    Alert::error(
                                        "sla_ticket_comment_failed",
                                        format!(
                                            "Could not comment on ticket {ticket} ({e}): {text}"
                                        ),
                                    )
                                    .for_lead(&state.lead),
                                );
                            }
                        }
                    }
                    if *overdue {
                        self.alerts.raise(
                            Alert::new(
                                AlertKind::General,
                                Severity::Warning,
                                "sla_staff_nag",
                                format!("STAFF NAG: {text}"),
                            )
                            .for_lead(&state.lead),
                        );
                    } else {
                        tracing::info!(lead = %state.lead.log(), sla = %state.kind, "{}", crate::log_phone::scrub(text));
                    }
                    let saved = self.slas.save_sla(&next).await?;
                    if saved {
                        report.staff_nags += 1;
                    }
                    saved
                }
                SlaAction::Escalate { text } => {
                    // Claim first: at most one owner SMS per SLA, whatever crashes.
                    let saved = self.slas.save_sla(&next).await?;
                    if saved {
                        report.escalations += 1;
                        self.escalate(&state, text, report).await;
                    }
                    saved
                }
                SlaAction::LeadUpdate { text, .. } => {
                    if self.store.is_opted_out(&state.lead).await? {
                        // Nothing recorded: the lead may opt back in; then the rule resumes.
                        report.suppressed += 1;
                        continue;
                    }
                    if self.in_quiet_hours(&state.lead, now).await? {
                        // Not recorded either: the first sweep after quiet hours sends it.
                        report.held_quiet += 1;
                        continue;
                    }
                    match self.slas.save_with_lead_sms(&next, text).await? {
                        Some(_) => {
                            report.lead_updates += 1;
                            report.wake.push(state.lead.clone());
                            true
                        }
                        None => false,
                    }
                }
            };
            if !recorded {
                report.conflicts += 1;
                return Ok(());
            }
            next.version += 1;
            state = next;
        }
        Ok(())
    }

    async fn escalate(&self, state: &SlaState, text: &str, report: &mut SweepReport) {
        self.alerts
            .raise(Alert::error("sla_escalated", text.to_string()).for_lead(&state.lead));
        let Some(owner) = &self.owner_phone else {
            if !self.owner_unset_logged.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    "OWNER_PHONE is not set: SLA escalations go to alerts only, not to the owner's phone"
                );
            }
            return;
        };
        let opted_out = self.store.is_opted_out(owner).await.unwrap_or(false);
        if opted_out {
            tracing::warn!(
                "the owner's phone opted out of our number; escalation sent as an alert only"
            );
            return;
        }
        let mut attempt = 1;
        let outcome = loop {
            match self.sms.send_sms(owner, text).await {
                // Temporary failures were never processed by the provider: safe to repeat.
                Err(SmsError::Retryable(e)) if attempt < OWNER_SMS_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "owner SMS failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(sent) => {
                report.owner_sms += 1;
                tracing::info!(lead = %state.lead.log(), sla = %state.kind, sid = %sent.provider_sid, "owner told of the escalation");
            }
            Err(e) => self.alerts.raise(
                Alert::error(
                    "sla_owner_sms_failed",
                    format!("Escalation SMS to the owner failed ({e}); the escalation was: {text}"),
                )
                .for_lead(&state.lead),
            ),
        }
    }
}
