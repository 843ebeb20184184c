//! The SLA engine: internal deadlines (doc review, application decision, invoice, showing
//! schedule, first response, accommodation request) and the nag sequence that follows a deadline slipping.
//!
//! Owns: the rules (each kind's window, the 50 % gentle nag, the overdue nags at 100 % and
//! then at most every 8 h, at most 3 staff nags, one escalation to the owner, the 24 h
//! lead update), the pure decision [`decide`] over one SLA's durable [`SlaState`], the
//! ports it needs ([`SlaStore`], [`TicketSystem`]) and the sweep ([`sweep::SlaSweep`]) that
//! applies decisions through them.
//! Must not: keep state anywhere but the store (a restart must resume every sequence where
//! it was), send an SMS to a lead except through the outbox (see [`SlaStore::save_with_lead_sms`]),
//! comment on a ticket whose id starts with `dry-run`, or know which ticket system, database
//! or SMS provider is behind a port.

pub mod business_day;
pub mod events;
pub mod sweep;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::{LeadId, StoreError};

pub use events::SlaEvents;
pub use sweep::{SlaSweep, SweepReport};

/// Gap between two overdue staff nags, and between the last nag and the escalation: "three
/// nags and then silence — if three nags didn't work, a fourth won't either" (the seed).
pub const NAG_INTERVAL_HOURS: i64 = 8;
/// Staff nags in all, the gentle one included (the seed's `nag_count < 3`).
pub const MAX_STAFF_NAGS: i32 = 3;
/// A lead who has not heard from us this long gets an update SMS.
pub const LEAD_UPDATE_AFTER_HOURS: i64 = 24;
/// Past this much waiting, the lead update apologises instead of reassuring.
pub const LEAD_OVERDUE_AFTER_HOURS: i64 = 48;
/// How long past its due time a nag keeps waiting for a ticket system that fails
/// temporarily; after that it is recorded with an alert, so an outage delays a nag by at
/// most this, never silences it.
pub const TICKET_RETRY_GRACE_MINUTES: i64 = 60;
/// Ticket ids with this prefix belong to simulations: never commented on.
pub const DRY_RUN_TICKET_PREFIX: &str = "dry-run";
/// The ticket id of an SLA whose task the ticket system refused to create: never
/// commented on, and not retried (an empty id is: the sweep creates the missing task).
pub const NO_TICKET: &str = "none";

/// The five internal SLAs of the seed, and the accommodation request (issue 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    /// 24 h from receipt of the documents.
    DocReview,
    /// 48 h from complete documents.
    ApplicationDecision,
    /// 30 days from move-in.
    Invoice,
    /// 48 h from the showing request.
    ShowingSchedule,
    /// 5 min from an inbound message (opened by the response-gap watch, not here).
    FirstResponse,
    /// The same business day (`BUSINESS_HOURS`) from a lead's question about a voucher,
    /// accessibility or a reasonable accommodation, which a person answers.
    AccommodationRequest,
}

impl SlaKind {
    pub const ALL: [SlaKind; 6] = [
        SlaKind::DocReview,
        SlaKind::ApplicationDecision,
        SlaKind::Invoice,
        SlaKind::ShowingSchedule,
        SlaKind::FirstResponse,
        SlaKind::AccommodationRequest,
    ];

    /// The name used in the database, the ops API and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaKind::DocReview => "doc_review",
            SlaKind::ApplicationDecision => "application_decision",
            SlaKind::Invoice => "invoice",
            SlaKind::ShowingSchedule => "showing_schedule",
            SlaKind::FirstResponse => "first_response",
            SlaKind::AccommodationRequest => "accommodation_request",
        }
    }

    /// Accepts [`SlaKind::as_str`] names (and the seed's `app_decision`).
    pub fn parse(s: &str) -> Option<SlaKind> {
        match s.trim() {
            "doc_review" => Some(SlaKind::DocReview),
            "application_decision" | "app_decision" => Some(SlaKind::ApplicationDecision),
            "invoice" => Some(SlaKind::Invoice),
            "showing_schedule" => Some(SlaKind::ShowingSchedule),
            "first_response" => Some(SlaKind::FirstResponse),
            "accommodation_request" => Some(SlaKind::AccommodationRequest),
            _ => None,
        }
    }

    /// What a person calls it, in nags and alerts.
    pub fn label(self) -> &'static str {
        match self {
            SlaKind::DocReview => "doc review",
            SlaKind::ApplicationDecision => "application decision",
            SlaKind::Invoice => "invoice",
            SlaKind::ShowingSchedule => "showing schedule",
            SlaKind::FirstResponse => "first response",
            SlaKind::AccommodationRequest => "accommodation request",
        }
    }

    /// The seed's numbers: `SLA_DOC_REVIEW_H = 24`, `SLA_APP_DECISION_H = 48`,
    /// `SLA_INVOICE_DAYS = 30`, `SLA_SHOWING_SCHEDULE_H = 48`, first response 5 minutes.
    /// An accommodation request's deadline is the same business day, set when it opens
    /// ([`SlaState::due`]); 8 h is its window only when opened without one.
    pub fn window(self) -> Duration {
        match self {
            SlaKind::DocReview => Duration::hours(24),
            SlaKind::ApplicationDecision => Duration::hours(48),
            SlaKind::Invoice => Duration::days(30),
            SlaKind::ShowingSchedule => Duration::hours(48),
            SlaKind::FirstResponse => Duration::minutes(5),
            SlaKind::AccommodationRequest => Duration::hours(8),
        }
    }

    /// The update SMS a waiting lead gets (gentle, overdue). `None` for the invoice: its
    /// window is 30 days, so the 24 h / 48 h rhythm would text a tenant every day for a
    /// month and call the invoice "overdue" on day 2 of 30 — the seed passes lead texts
    /// per SLA and leaves them out where they do not fit.
    pub fn lead_texts(self) -> Option<(&'static str, &'static str)> {
        match self {
            SlaKind::DocReview => Some((
                "Hi! A quick update: we're still reviewing the documents you sent us. We'll text you as soon as we're done.",
                "Hi! We're sorry your document review is taking longer than we promised. It's at the top of our list and we'll text you as soon as it's done.",
            )),
            SlaKind::ApplicationDecision => Some((
                "Hi! A quick update: your application is still being reviewed. We'll text you as soon as there's a decision.",
                "Hi! We're sorry the decision on your application is taking longer than we promised. It's at the top of our list and we'll text you as soon as we hear.",
            )),
            SlaKind::ShowingSchedule => Some((
                "Hi! A quick update: we're still lining up a time for your showing. We'll text you as soon as it's set.",
                "Hi! We're sorry it's taking this long to schedule your showing. It's at the top of our list and we'll text you a time as soon as we have one.",
            )),
            SlaKind::FirstResponse => Some((
                "Hi! Thanks for your message, and sorry we haven't answered yet. Someone from the office will get back to you soon.",
                "Hi! We're sorry for the long wait on your message. It's with our team now and someone will reply as soon as possible.",
            )),
            // The lead was told a person answers the same business day; the staff nags
            // carry this one.
            SlaKind::Invoice | SlaKind::AccommodationRequest => None,
        }
    }
}

impl fmt::Display for SlaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One SLA of one lead, exactly as stored: everything [`decide`] needs, so a restart
/// resumes every sequence where it stood.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlaState {
    pub lead: LeadId,
    pub kind: SlaKind,
    pub started_at: DateTime<Utc>,
    /// Empty: no ticket (nags go to alerts only).
    pub ticket_id: String,
    pub staff_nag_count: i32,
    pub staff_last_nagged_at: Option<DateTime<Utc>>,
    pub lead_last_update_at: Option<DateTime<Utc>>,
    /// When the SLA first passed 100 % (counted once as a breach).
    pub breached_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Bumped by every write: a write based on an older read changes nothing (two sweeps,
    /// or a resolve racing a sweep, never both act on one step).
    pub version: i64,
    /// A deadline set when it opened (the accommodation request's business day); `None`:
    /// `started_at` + the kind's window.
    pub due: Option<DateTime<Utc>>,
}

impl SlaState {
    /// A fresh SLA as the store opens it.
    pub fn new(
        lead: LeadId,
        kind: SlaKind,
        ticket_id: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            lead,
            kind,
            started_at,
            ticket_id: ticket_id.into(),
            staff_nag_count: 0,
            staff_last_nagged_at: None,
            lead_last_update_at: None,
            breached_at: None,
            escalated_at: None,
            resolved_at: None,
            version: 0,
            due: None,
        }
    }

    pub fn due_at(&self) -> DateTime<Utc> {
        self.due
            .unwrap_or_else(|| self.started_at + self.kind.window())
    }

    /// From the start to the deadline: what "50 %" and "SLA: 8h" are of.
    pub fn window(&self) -> Duration {
        self.due_at() - self.started_at
    }

    /// The ticket to comment on, unless there is none or it is a simulation's.
    pub fn real_ticket(&self) -> Option<&str> {
        let t = self.ticket_id.trim();
        (!t.is_empty() && t != NO_TICKET && !t.starts_with(DRY_RUN_TICKET_PREFIX)).then_some(t)
    }
}

/// One thing the sweep must do for an SLA. Each carries its own state change
/// ([`SlaAction::apply_to`]) so the sweep records each step right after performing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlaAction {
    /// The SLA passed 100 % for the first time: count a breach.
    Breach,
    /// A nag to staff: a comment on `ticket` (when real) and, when overdue, an alert.
    /// `number` is the nag's count after it (1 ..= 3).
    StaffNag {
        number: i32,
        overdue: bool,
        text: String,
        ticket: Option<String>,
        /// When this nag fell due (the sweep may run later): bounds retries of the ticket.
        due_at: DateTime<Utc>,
    },
    /// After the last nag went unanswered: the owner is told, once (alert + SMS).
    Escalate { text: String },
    /// The lead has not heard from us in 24 h: an update SMS through the outbox.
    LeadUpdate { overdue: bool, text: String },
}

impl SlaAction {
    pub fn apply_to(&self, state: &mut SlaState, now: DateTime<Utc>) {
        match self {
            SlaAction::Breach => state.breached_at = Some(now),
            SlaAction::StaffNag { number, .. } => {
                state.staff_nag_count = *number;
                state.staff_last_nagged_at = Some(now);
            }
            SlaAction::Escalate { .. } => state.escalated_at = Some(now),
            SlaAction::LeadUpdate { .. } => state.lead_last_update_at = Some(now),
        }
    }
}

/// What [`decide`] returns: the actions, in the order to perform them, and the state once
/// all of them are done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<SlaAction>,
    pub next: SlaState,
}

/// "12h", "15 days", "3 min": how long, as a nag says it.
pub fn human_duration(d: Duration) -> String {
    let minutes = d.num_minutes().max(0);
    if minutes < 60 {
        format!("{minutes} min")
    } else if minutes < 72 * 60 {
        format!("{}h", minutes / 60)
    } else {
        format!("{} days", minutes / (24 * 60))
    }
}

/// The pure SLA rule: given one SLA's state and the time, what to do and the state after.
/// Calling it again with the state it returned and the same `now` yields no action.
///
/// The seed's `_sla_check`, with its subtle points kept:
/// - the overdue branch and the gentle branch are exclusive in one check: the overdue nag is
///   tried first, and the gentle nag only when it does not fire and no nag was sent yet (so
///   an SLA first seen past 100 % gets the overdue nag, never a late "reminder");
/// - "hours since the last nag" is infinite when never nagged;
/// - the gentle nag counts toward the 3 staff nags;
/// - the lead update is independent of the nags and may go out in the same check.
///
/// One reading departs from the seed's code, on purpose: the seed gates *every* overdue nag
/// on 8 h since the last nag, so a gentle nag sent at 50 % of a window shorter than 16 h
/// (first response: 2.5 min) would hold the overdue nag until 8 h after it. Here a nag
/// sent before the deadline does not gate the first overdue nag: it fires at 100 %, and the
/// 8 h gap separates the overdue nags from each other ("At 100 %, an overdue alert fires …
/// Every 8 hours after that, another nag"). For windows of 16 h and more the two readings
/// agree. Escalation: once the 3rd nag has gone unanswered for another 8 h.
pub fn decide(state: &SlaState, now: DateTime<Utc>) -> Decision {
    let mut actions = Vec::new();
    if state.resolved_at.is_some() {
        return Decision {
            actions,
            next: state.clone(),
        };
    }
    let window = state.window();
    let waited = now - state.started_at;
    let due_at = state.due_at();
    let overdue = now >= due_at;
    let interval = Duration::hours(NAG_INTERVAL_HOURS);
    let since_nag = state.staff_last_nagged_at.map(|t| now - t);

    if overdue && state.breached_at.is_none() {
        actions.push(SlaAction::Breach);
    }

    // When the next overdue nag falls due: at the deadline after at most a pre-deadline
    // nag, else 8 h after the last one.
    let overdue_nag_due = match state.staff_last_nagged_at {
        Some(last) if last >= due_at => last + interval,
        _ => due_at,
    };
    let nag_gate_open = now >= overdue_nag_due;
    let what = format!(
        "{} for {} waiting {} (SLA: {})",
        state.kind.label(),
        state.lead,
        human_duration(waited),
        human_duration(window)
    );
    if overdue && state.staff_nag_count < MAX_STAFF_NAGS && nag_gate_open {
        actions.push(SlaAction::StaffNag {
            number: state.staff_nag_count + 1,
            overdue: true,
            text: format!("OVERDUE ({}): {what}", human_duration(waited)),
            ticket: state.real_ticket().map(str::to_string),
            due_at: overdue_nag_due,
        });
    } else if waited >= window / 2 && state.staff_nag_count == 0 {
        actions.push(SlaAction::StaffNag {
            number: 1,
            overdue: false,
            text: format!("Reminder: {what}"),
            ticket: state.real_ticket().map(str::to_string),
            due_at: state.started_at + window / 2,
        });
    }

    if state.staff_nag_count >= MAX_STAFF_NAGS
        && state.escalated_at.is_none()
        && since_nag.is_some_and(|d| d >= interval)
    {
        let ticket = match state.real_ticket() {
            Some(t) => format!(" (ticket {t})"),
            None => String::new(),
        };
        actions.push(SlaAction::Escalate {
            text: format!(
                "SLA ESCALATION: {} for {}{ticket} has waited {} against an SLA of {}; \
                 {MAX_STAFF_NAGS} staff nags went unanswered.",
                state.kind.label(),
                state.lead,
                human_duration(waited),
                human_duration(window)
            ),
        });
    }

    if let Some((gentle, late)) = state.kind.lead_texts() {
        let last_heard = state.lead_last_update_at.unwrap_or(state.started_at);
        if now - last_heard >= Duration::hours(LEAD_UPDATE_AFTER_HOURS) {
            let overdue = waited >= Duration::hours(LEAD_OVERDUE_AFTER_HOURS);
            actions.push(SlaAction::LeadUpdate {
                overdue,
                text: if overdue { late } else { gentle }.to_string(),
            });
        }
    }

    let mut next = state.clone();
    for a in &actions {
        a.apply_to(&mut next, now);
    }
    Decision { actions, next }
}

/// An SLA as /ops and the daily report see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlaView {
    #[serde(flatten)]
    pub state: SlaState,
    pub due_at: DateTime<Utc>,
    /// Past its deadline and not resolved.
    pub overdue: bool,
}

impl SlaView {
    pub fn at(state: SlaState, now: DateTime<Utc>) -> Self {
        let due_at = state.due_at();
        Self {
            overdue: state.resolved_at.is_none() && now >= due_at,
            due_at,
            state,
        }
    }
}

/// What opening an SLA found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new SLA (or a new cycle of one resolved earlier).
    Created(SlaState),
    /// It was already open: nothing changed (opening is idempotent).
    AlreadyOpen(SlaState),
}

/// Durable SLA state, keyed by (lead, kind). Each method is one transaction.
#[async_trait]
pub trait SlaStore: Send + Sync + 'static {
    /// Opens the lead's SLA of this kind. Already open: returns it unchanged. Resolved
    /// earlier: starts a new cycle (counters cleared). Creates the lead if it never texted.
    async fn open_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Opened, StoreError>;

    /// Marks it resolved at `at` (kept if already resolved). `None`: no such SLA.
    async fn resolve_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        at: DateTime<Utc>,
    ) -> Result<Option<SlaState>, StoreError>;

    /// Every SLA not yet resolved, of real leads: a synthetic lead (the watchdog's probe
    /// number) is never nagged about or escalated.
    async fn open_slas(&self) -> Result<Vec<SlaState>, StoreError>;

    /// SLAs that breached at or after `since`, resolved or not, oldest breach first.
    async fn breaches_since(&self, since: DateTime<Utc>) -> Result<Vec<SlaState>, StoreError>;

    /// Writes `next` if the stored row still has `next.version`, and bumps the version.
    /// False: someone wrote in between (resolved, or another sweep): nothing written.
    async fn save_sla(&self, next: &SlaState) -> Result<bool, StoreError>;

    /// Whether the lead is synthetic (the watchdog's or verify's probe number): its SLAs
    /// open, but no task is created in the ticket system for them.
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError>;

    /// The lead's own IANA time zone, when known (quiet hours are the lead's local time).
    async fn lead_time_zone(&self, lead: &LeadId) -> Result<Option<String>, StoreError>;

    /// Like [`SlaStore::save_sla`], and in the same transaction queues `body` to the lead
    /// in the outbox (a reply row in `queued`, sent by the lead's actor with its
    /// exactly-once claim). Returns the reply's id; `None` when the version check failed
    /// (nothing queued).
    async fn save_with_lead_sms(
        &self,
        next: &SlaState,
        body: &str,
    ) -> Result<Option<i64>, StoreError>;

    /// Records the ticket created for an open SLA that has none yet (`ticket_id` empty).
    /// Not version-checked and no version bump: the sweep's writes never touch the ticket,
    /// so neither can undo the other. False: resolved meanwhile, or a ticket already set.
    async fn attach_ticket(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
    ) -> Result<bool, StoreError>;

    /// Sets the deadline of an open SLA (one whose window is not a fixed duration: the
    /// accommodation request's business day). False: no open SLA of that kind.
    async fn set_due(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        due: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Leads whose recorded move-in (the brain's requirements, as the lead or the model
    /// put it) exists and who never had an invoice SLA: (lead, move-in text). The caller
    /// reads the date.
    async fn move_ins_without_invoice(&self) -> Result<Vec<(LeadId, String)>, StoreError>;
}

/// A task to create for a newly opened SLA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    pub lead: LeadId,
    pub kind: SlaKind,
    /// The task's title ("Showing schedule: +1312…").
    pub name: String,
    /// Its description: why it was opened, the deadline.
    pub notes: String,
}

/// Why a ticket comment failed, by what to do about it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TicketError {
    /// Timeouts, 429, 5xx: the nag is not recorded and the next sweep tries again.
    #[error("ticket system temporarily unavailable: {0}")]
    Retryable(String),
    /// The ticket system refused (bad token, unknown task): trying again will not help.
    #[error("ticket system refused ({status}): {message}")]
    Permanent { status: u16, message: String },
}

impl TicketError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, TicketError::Retryable(_))
    }
}

/// Where staff nags are written: Asana in production, the log otherwise.
#[async_trait]
pub trait TicketSystem: Send + Sync + 'static {
    /// Short name for logs (`asana`, `dry-run`).
    fn name(&self) -> &str;
    async fn add_comment(&self, ticket_id: &str, text: &str) -> Result<(), TicketError>;
    /// Creates the SLA's task and returns its id; a dry-run system returns an id starting
    /// with [`DRY_RUN_TICKET_PREFIX`] and posts nothing.
    async fn create_task(&self, task: &NewTask) -> Result<String, TicketError>;
}
