//! The events that open and close SLAs by themselves: a lead asking for a tour opens
//! `showing_schedule` and booking one resolves it; a question about a voucher, accessibility
//! or an accommodation opens `accommodation_request` (same business day); documents arriving open `doc_review`, an
//! operator's review resolves it and, when complete, opens `application_decision`; the
//! move-in date recorded for a lead opens `invoice` once that date is reached. Each SLA it
//! opens gets its task in the ticket system (Asana), whose id is stored on the SLA so the
//! sweep's nags comment on it.
//!
//! Owns: which event opens or resolves which kind, the task's title and notes, and what a
//! failed task creation does (a temporary failure leaves the ticket empty for the sweep
//! to retry, [`SlaEvents::create_missing_task`]; a refusal is alerted and recorded as
//! [`NO_TICKET`]). Opening is idempotent: one open SLA per lead and kind (the store's
//! promise), so a replayed turn or a second request changes nothing.
//! Must not: know which ticket system or database is behind the ports, or block a lead's
//! turn on the ticket system ([`SlaEvents::open_soon`] creates the task in the background).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{LeadId, StoreError};

use super::business_day::BusinessHours;
use super::{
    NO_TICKET, NewTask, Opened, SlaKind, SlaState, SlaStore, TicketSystem, human_duration,
};

/// Opens and resolves SLAs on events. Cheap to clone (ports behind `Arc`s).
#[derive(Clone)]
pub struct SlaEvents {
    slas: Arc<dyn SlaStore>,
    tickets: Arc<dyn TicketSystem>,
    alerts: AlertHandle,
    /// The office's hours: an accommodation request is due by their close the same
    /// business day. `None`: its fixed 8 h window.
    business_hours: Option<BusinessHours>,
}

/// Kinds that get a task when opened. The first-response SLA (5 minutes, opened by the
/// response-gap watch on every unanswered message) would flood the project with tasks
/// that are closed before anyone reads them; its nags go to alerts.
pub fn gets_task(kind: SlaKind) -> bool {
    kind != SlaKind::FirstResponse
}

/// The date at the start of a move-in the brain recorded: an ISO date (`2026-12-01`, or a
/// longer ISO timestamp). The lead's own words ("next month") are not a date: `None`.
pub fn move_in_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    let head = t.get(..10)?;
    NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()
}

impl SlaEvents {
    pub fn new(
        slas: Arc<dyn SlaStore>,
        tickets: Arc<dyn TicketSystem>,
        alerts: AlertHandle,
    ) -> Self {
        Self {
            slas,
            tickets,
            alerts,
            business_hours: None,
        }
    }

    /// Accommodation requests are due by the close of `hours` the same business day.
    pub fn with_business_hours(mut self, hours: BusinessHours) -> Self {
        self.business_hours = Some(hours);
        self
    }

    /// Opens the lead's SLA of `kind` (idempotent) and, when it is new and has no ticket,
    /// creates its task before returning (the returned state carries the task's id).
    /// `why`: the task's notes ("Tour asked for: …").
    pub async fn open(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        started_at: DateTime<Utc>,
        ticket_id: &str,
        why: &str,
    ) -> Result<Opened, StoreError> {
        let opened = self
            .slas
            .open_sla(lead, kind, ticket_id, started_at)
            .await?;
        Ok(match opened {
            Opened::Created(mut s) => {
                self.record_opened(&s, why);
                if s.ticket_id.is_empty()
                    && gets_task(kind)
                    && let Some(id) = self.create_task_for(&s, why, true).await
                {
                    s.ticket_id = id;
                }
                Opened::Created(s)
            }
            already => already,
        })
    }

    /// Like [`SlaEvents::open`], but the task is created in the background: for a lead's
    /// turn, which must not wait on the ticket system. The SLA itself is stored before
    /// this returns (a store failure fails the caller, whose retry opens it).
    pub async fn open_soon(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        started_at: DateTime<Utc>,
        why: &str,
    ) -> Result<Opened, StoreError> {
        self.open_soon_due(lead, kind, started_at, None, why).await
    }

    /// [`SlaEvents::open_soon`] with a deadline of its own (`due`), set before the task is
    /// written so the task says it.
    async fn open_soon_due(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        started_at: DateTime<Utc>,
        due: Option<DateTime<Utc>>,
        why: &str,
    ) -> Result<Opened, StoreError> {
        let mut opened = self.slas.open_sla(lead, kind, "", started_at).await?;
        if let (Opened::Created(s), Some(due)) = (&mut opened, due)
            && self.slas.set_due(lead, kind, due).await?
        {
            s.due = Some(due);
        }
        if let Opened::Created(s) = &opened {
            self.record_opened(s, why);
            if gets_task(kind) {
                let me = self.clone();
                let (s, why) = (s.clone(), why.to_string());
                tokio::spawn(async move {
                    me.create_task_for(&s, &why, true).await;
                });
            }
        }
        Ok(opened)
    }

    fn record_opened(&self, s: &SlaState, why: &str) {
        metrics::counter!("lead_agent_sla_opened_total", "sla" => s.kind.as_str()).increment(1);
        tracing::info!(lead = %s.lead.log(), sla = %s.kind, "SLA opened: {}", crate::log_phone::scrub(why));
    }

    /// The sweep's retry: an open SLA with no ticket yet (its creation failed for a while,
    /// or the process stopped before it) gets its task now. Returns the new id.
    pub async fn create_missing_task(&self, s: &SlaState) -> Option<String> {
        if !s.ticket_id.is_empty() || !gets_task(s.kind) || s.resolved_at.is_some() {
            return None;
        }
        self.create_task_for(
            s,
            "Opened earlier; its task could not be created then.",
            false,
        )
        .await
    }

    /// Creates the task and stores its id on the SLA. `first_try`: a temporary failure is
    /// alerted once, on the first try; the sweep's retries only log.
    async fn create_task_for(&self, s: &SlaState, why: &str, first_try: bool) -> Option<String> {
        // A probe's SLA is real state (so /ops shows the path works) but no person's work:
        // no task. A store error here leaves the ticket empty for the sweep's retry.
        match self.slas.is_synthetic(&s.lead).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!(lead = %s.lead.log(), sla = %s.kind, "synthetic lead: no SLA task");
                return None;
            }
            Err(e) => {
                tracing::warn!(lead = %s.lead.log(), sla = %s.kind, error = %e, "SLA task deferred: the store did not say whether the lead is synthetic");
                return None;
            }
        }
        let task = NewTask {
            lead: s.lead.clone(),
            kind: s.kind,
            name: format!("{}: {}", capitalised(s.kind.label()), s.lead),
            notes: format!(
                "{why}\n\nSLA: {} from {} (due {}). Opened by the leasing agent; staff nags are \
                 posted here as comments. Resolve it in /ops when done.",
                human_duration(s.window()),
                s.started_at.format("%Y-%m-%d %H:%M UTC"),
                s.due_at().format("%Y-%m-%d %H:%M UTC"),
            ),
        };
        match self.tickets.create_task(&task).await {
            Ok(id) => {
                match self.slas.attach_ticket(&s.lead, s.kind, &id).await {
                    Ok(true) => {
                        tracing::info!(lead = %s.lead.log(), sla = %s.kind, ticket = %id, system = self.tickets.name(), "SLA task created")
                    }
                    Ok(false) => {
                        tracing::warn!(lead = %s.lead.log(), sla = %s.kind, ticket = %id, "SLA task created but the SLA was resolved or ticketed meanwhile")
                    }
                    Err(e) => {
                        // The task exists but is not recorded: the sweep would create a
                        // second one. Alerted so a person can link them.
                        self.alerts.raise(
                            Alert::error(
                                "sla_task_create_failed",
                                format!(
                                    "Task {id} was created for the {} SLA of {} but could not be recorded ({e}); a duplicate may follow.",
                                    s.kind.label(),
                                    s.lead
                                ),
                            )
                            .for_lead(&s.lead),
                        );
                        return None;
                    }
                }
                Some(id)
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(lead = %s.lead.log(), sla = %s.kind, error = %e, "SLA task not created; the SLA sweep retries");
                if first_try {
                    self.alerts.raise(
                        Alert::error(
                            "sla_task_create_failed",
                            format!(
                                "Could not create the task for the {} SLA of {} ({e}); the SLA sweep retries.",
                                s.kind.label(),
                                s.lead
                            ),
                        )
                        .for_lead(&s.lead),
                    );
                }
                None
            }
            Err(e) => {
                self.alerts.raise(
                    Alert::error(
                        "sla_task_create_failed",
                        format!(
                            "The ticket system refused the task for the {} SLA of {} ({e}); its nags go to alerts only.",
                            s.kind.label(),
                            s.lead
                        ),
                    )
                    .for_lead(&s.lead),
                );
                if let Err(e) = self.slas.attach_ticket(&s.lead, s.kind, NO_TICKET).await {
                    tracing::warn!(lead = %s.lead.log(), error = %e, "could not record the refused task");
                }
                None
            }
        }
    }

    /// A lead asked for a tour: opens `showing_schedule` (48 h to schedule it) and, when
    /// new, raises `TOUR_REQUEST`. `said`: the lead's words.
    pub async fn tour_requested(
        &self,
        lead: &LeadId,
        at: DateTime<Utc>,
        said: &str,
    ) -> Result<Opened, StoreError> {
        let why = format!("{lead} asked for a tour: \"{said}\"");
        let opened = self
            .open_soon(lead, SlaKind::ShowingSchedule, at, &why)
            .await?;
        if matches!(opened, Opened::Created(_)) {
            self.alerts.raise(
                Alert::new(
                    AlertKind::TourRequest,
                    Severity::Warning,
                    "showing_requested",
                    format!("{why}. Showing SLA opened (48h to schedule it)."),
                )
                .for_lead(lead),
            );
        }
        Ok(opened)
    }

    /// A lead asked about a voucher, accessibility or a reasonable accommodation (`about`:
    /// the phrase that said so): opens `accommodation_request`, due by the close of the
    /// same business day, and when new raises a HITL_FEEDBACK alert for a person to answer.
    pub async fn accommodation_requested(
        &self,
        lead: &LeadId,
        at: DateTime<Utc>,
        about: &str,
        said: &str,
    ) -> Result<Opened, StoreError> {
        let why = format!(
            "{lead} asked about \"{about}\": \"{said}\". Fair housing: a person answers (the lead was told so)"
        );
        let due = self.business_hours.map(|h| h.same_day_deadline(at));
        let opened = self
            .open_soon_due(lead, SlaKind::AccommodationRequest, at, due, &why)
            .await?;
        if let Opened::Created(s) = &opened {
            let due_local = match &self.business_hours {
                Some(h) => s
                    .due_at()
                    .with_timezone(&h.tz)
                    .format("%a %Y-%m-%d %H:%M %Z")
                    .to_string(),
                None => s.due_at().format("%Y-%m-%d %H:%M UTC").to_string(),
            };
            self.alerts.raise(
                Alert::new(
                    AlertKind::HitlFeedback,
                    Severity::Warning,
                    "accommodation_request",
                    format!(
                        "{why}. SLA accommodation_request opened: reply to the lead by {due_local}; the AI says nothing more on it."
                    ),
                )
                .for_lead(lead)
                .with_reason(format!("asked about {about}")),
            );
        }
        Ok(opened)
    }

    /// A tour was booked for the lead: its `showing_schedule` SLA, if open, is resolved.
    pub async fn tour_booked(
        &self,
        lead: &LeadId,
        at: DateTime<Utc>,
    ) -> Result<Option<SlaState>, StoreError> {
        let resolved = self
            .slas
            .resolve_sla(lead, SlaKind::ShowingSchedule, at)
            .await?;
        if resolved.is_some() {
            tracing::info!(lead = %lead.log(), "tour booked: showing SLA resolved");
        }
        Ok(resolved)
    }

    /// A lead's documents arrived: opens `doc_review` (24 h) with its task, created before
    /// this returns, and — when the review is new — raises REQUIREMENTS_NOTE
    /// `documents_arrived`, which asks for the review (`Alert::doc_review`: Discord shows
    /// complete / incomplete buttons). Every intake calls this: the operators' /ops endpoint
    /// and the mailbox intake (the binary's `doc_intake` job). `note`: what arrived.
    pub async fn documents_arrived(
        &self,
        lead: &LeadId,
        at: DateTime<Utc>,
        note: &str,
    ) -> Result<Opened, StoreError> {
        let why = if note.trim().is_empty() {
            format!("Documents arrived from {lead}.")
        } else {
            format!("Documents arrived from {lead}: {}", note.trim())
        };
        let opened = self.open(lead, SlaKind::DocReview, at, "", &why).await?;
        if let Opened::Created(s) = &opened {
            // One alert per review, asking for it: the chat sink attaches the buttons.
            let mut alert = Alert::new(
                AlertKind::RequirementsNote,
                Severity::Info,
                "documents_arrived",
                format!(
                    "{why}\nDoc review due in {} (by {}).",
                    human_duration(s.window()),
                    s.due_at().format("%Y-%m-%d %H:%M UTC")
                ),
            )
            .for_lead(lead);
            alert.doc_review = true;
            self.alerts.raise(alert);
        }
        Ok(opened)
    }

    /// An operator reviewed the lead's documents: `doc_review` is resolved, and when the
    /// documents are complete the `application_decision` SLA (48 h) opens. `None`: the lead
    /// has no doc review.
    pub async fn doc_review_resolved(
        &self,
        lead: &LeadId,
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<Option<(SlaState, Option<Opened>)>, StoreError> {
        let Some(review) = self.slas.resolve_sla(lead, SlaKind::DocReview, at).await? else {
            return Ok(None);
        };
        let decision = if complete {
            let why = format!(
                "{lead}'s documents were reviewed and are complete: decide the application."
            );
            Some(
                self.open(lead, SlaKind::ApplicationDecision, at, "", &why)
                    .await?,
            )
        } else {
            None
        };
        Ok(Some((review, decision)))
    }

    /// Opens the `invoice` SLA of every lead whose recorded move-in date is reached (as of
    /// `now`, UTC) and who never had one; it starts at the move-in date. Returns how many.
    pub async fn open_due_invoices(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut opened = 0;
        for (lead, text) in self.slas.move_ins_without_invoice().await? {
            let Some(date) = move_in_date(&text) else {
                continue;
            };
            // Not yet, or so long ago that the invoice window has passed (a date a lead
            // gave months before talking to us): nothing to open.
            if date > now.date_naive() || date + SlaKind::Invoice.window() <= now.date_naive() {
                continue;
            }
            let start = date
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc();
            let why = format!("{lead} moved in on {date}: the invoice is due within 30 days.");
            if let Opened::Created(_) = self.open(&lead, SlaKind::Invoice, start, "", &why).await? {
                opened += 1;
            }
        }
        Ok(opened)
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::super::testing::{FakeTickets, MemSlaStore};
    use super::super::{SlaSweep, TicketError};
    use super::*;
    use crate::testing::{FakeSms, MemStore, RecordingAlertSink, test_alerts, wait_for};

    const LEAD: &str = "+13125550100";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    struct Rig {
        slas: Arc<MemSlaStore>,
        tickets: Arc<FakeTickets>,
        sink: Arc<RecordingAlertSink>,
        events: SlaEvents,
        sweep: SlaSweep,
    }

    async fn rig() -> Rig {
        let slas = Arc::new(MemSlaStore::default());
        let tickets = Arc::new(FakeTickets::default());
        let (alerts, sink) = test_alerts().await;
        let sweep = SlaSweep::new(
            slas.clone(),
            Arc::new(MemStore::default()),
            tickets.clone(),
            Arc::new(FakeSms::default()),
            alerts.clone(),
            None,
        );
        Rig {
            events: SlaEvents::new(slas.clone(), tickets.clone(), alerts),
            slas,
            tickets,
            sink,
            sweep,
        }
    }

    #[tokio::test]
    async fn documents_open_a_ticketed_review_once_and_a_complete_review_opens_the_decision() {
        let r = rig().await;
        let lead = LeadId::new(LEAD);
        let Opened::Created(s) = r
            .events
            .documents_arrived(&lead, t0(), "pay stubs")
            .await
            .unwrap()
        else {
            panic!("new review")
        };
        assert_eq!(s.ticket_id, "7000");
        assert_eq!(
            r.slas.get(&lead, SlaKind::DocReview).unwrap().ticket_id,
            "7000"
        );
        let task = &r.tickets.tasks()[0];
        assert_eq!(task.name, format!("Doc review: {LEAD}"));
        assert!(
            task.notes.contains("pay stubs") && task.notes.contains("due 2026-03-03 09:00 UTC")
        );
        assert!(matches!(
            r.events
                .documents_arrived(&lead, t0(), "again")
                .await
                .unwrap(),
            Opened::AlreadyOpen(_)
        ));
        assert_eq!(r.tickets.tasks().len(), 1);

        let (review, decision) = r
            .events
            .doc_review_resolved(&lead, t0(), false)
            .await
            .unwrap()
            .unwrap();
        assert!(
            review.resolved_at.is_some() && decision.is_none(),
            "incomplete: no decision"
        );
        r.events.documents_arrived(&lead, t0(), "").await.unwrap();
        let (_, decision) = r
            .events
            .doc_review_resolved(&lead, t0(), true)
            .await
            .unwrap()
            .unwrap();
        let Some(Opened::Created(d)) = decision else {
            panic!("decision opened")
        };
        assert_eq!(d.kind, SlaKind::ApplicationDecision);
        assert_eq!(d.ticket_id, "7002");
        assert!(
            r.events
                .doc_review_resolved(&LeadId::new("+13125550199"), t0(), true)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_synthetic_leads_sla_opens_without_a_task() {
        let r = rig().await;
        let probe = LeadId::new("+13125550199");
        r.slas.set_synthetic(&probe);
        let Opened::Created(s) = r
            .events
            .documents_arrived(&probe, t0(), "probe")
            .await
            .unwrap()
        else {
            panic!("opened")
        };
        assert_eq!(s.ticket_id, "");
        assert!(r.tickets.tasks().is_empty(), "{:?}", r.tickets.tasks());
        r.events
            .documents_arrived(&LeadId::new(LEAD), t0(), "real")
            .await
            .unwrap();
        assert_eq!(
            r.tickets.tasks().len(),
            1,
            "a real lead's SLA gets its task"
        );
    }

    #[tokio::test]
    async fn a_task_that_fails_for_now_is_created_by_a_later_sweep_and_a_refused_one_is_alerted() {
        let r = rig().await;
        let lead = LeadId::new(LEAD);
        r.tickets
            .fail_with(Some(TicketError::Retryable("503".into())));
        r.events.documents_arrived(&lead, t0(), "").await.unwrap();
        assert_eq!(r.slas.get(&lead, SlaKind::DocReview).unwrap().ticket_id, "");
        wait_for(|| {
            r.sink
                .events()
                .contains(&"sla_task_create_failed".to_string())
        })
        .await;
        let rep = r
            .sweep
            .run_sla_sweep(t0() + Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(rep.tasks_created, 0, "still failing");
        r.tickets.fail_with(None);
        let rep = r
            .sweep
            .run_sla_sweep(t0() + Duration::hours(12))
            .await
            .unwrap();
        assert_eq!(rep.tasks_created, 1);
        assert_eq!(
            r.slas.get(&lead, SlaKind::DocReview).unwrap().ticket_id,
            "7000"
        );
        // The gentle nag of that same sweep went to the new task.
        assert_eq!(r.tickets.comments()[0].0, "7000");

        r.tickets.fail_with(Some(TicketError::Permanent {
            status: 403,
            message: "no".into(),
        }));
        r.events
            .tour_requested(&lead, t0(), "can I tour it?")
            .await
            .unwrap();
        wait_for(|| {
            r.slas
                .get(&lead, SlaKind::ShowingSchedule)
                .is_some_and(|s| s.ticket_id == NO_TICKET)
        })
        .await;
        r.tickets.fail_with(None);
        r.sweep
            .run_sla_sweep(t0() + Duration::hours(30))
            .await
            .unwrap();
        assert_eq!(r.tickets.tasks().len(), 1, "a refused task is not retried");
        assert!(r.tickets.comments().iter().all(|(t, _)| t != NO_TICKET));
    }

    #[tokio::test]
    async fn a_tour_asked_for_opens_the_showing_sla_and_booking_resolves_it() {
        let r = rig().await;
        let lead = LeadId::new(LEAD);
        assert!(matches!(
            r.events
                .tour_requested(&lead, t0(), "can I see it?")
                .await
                .unwrap(),
            Opened::Created(_)
        ));
        wait_for(|| {
            r.slas
                .get(&lead, SlaKind::ShowingSchedule)
                .is_some_and(|s| s.ticket_id == "7000")
        })
        .await;
        wait_for(|| r.sink.events().contains(&"showing_requested".to_string())).await;
        r.events.tour_requested(&lead, t0(), "again").await.unwrap();
        let resolved = r
            .events
            .tour_booked(&lead, t0() + Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert!(resolved.resolved_at.is_some());
        assert_eq!(r.tickets.tasks().len(), 1);
        assert_eq!(
            r.sink
                .events()
                .iter()
                .filter(|e| *e == "showing_requested")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn the_sweep_opens_the_invoice_at_the_move_in_date_once() {
        let r = rig().await;
        let (due, later, words, old) = (
            LeadId::new(LEAD),
            LeadId::new("+13125550101"),
            LeadId::new("+13125550102"),
            LeadId::new("+13125550103"),
        );
        r.slas.set_move_in(&due, "2026-03-01");
        r.slas.set_move_in(&later, "2026-03-20");
        r.slas.set_move_in(&words, "next month");
        r.slas.set_move_in(&old, "2025-12-01");
        let rep = r.sweep.run_sla_sweep(t0()).await.unwrap();
        assert_eq!(rep.invoices_opened, 1);
        let inv = r.slas.get(&due, SlaKind::Invoice).unwrap();
        assert_eq!(
            inv.started_at,
            Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(inv.ticket_id, "7000");
        for l in [&later, &words, &old] {
            assert!(r.slas.get(l, SlaKind::Invoice).is_none());
        }
        r.slas
            .resolve_sla(&due, SlaKind::Invoice, t0())
            .await
            .unwrap();
        let rep = r
            .sweep
            .run_sla_sweep(t0() + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(rep.invoices_opened, 0, "one invoice per lead, ever");
        let rep = r
            .sweep
            .run_sla_sweep(t0() + Duration::days(18))
            .await
            .unwrap();
        assert_eq!(rep.invoices_opened, 1, "the later move-in, on its day");
    }

    #[test]
    fn a_move_in_is_a_date_only_when_it_reads_as_one() {
        let d = |s| move_in_date(s);
        assert_eq!(d("2026-12-01"), NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(d(" 2026-12-01T10:00"), NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(d("next month"), None);
        assert_eq!(d("2026-13-01"), None);
        assert_eq!(d("é"), None);
    }
}
