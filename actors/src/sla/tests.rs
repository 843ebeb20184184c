use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::testing::{FakeTickets, MemSlaStore};
use super::*;
use crate::alert_router::AlertHandle;
use crate::testing::{FakeSms, MemStore, RecordingAlertSink, test_alerts, wait_for};

const LEAD: &str = "+13125550100";
const OWNER: &str = "+13125559999";
const TICKET: &str = "1209876543210";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn fresh(kind: SlaKind, ticket: &str) -> SlaState {
    SlaState::new(LeadId::new(LEAD), kind, ticket, t0())
}

/// One action, as the table spells it.
fn tag(a: &SlaAction) -> String {
    match a {
        SlaAction::Breach => "breach".into(),
        SlaAction::StaffNag {
            number,
            overdue: false,
            ticket,
            ..
        } => format!("gentle#{number}{}", ticket_tag(ticket)),
        SlaAction::StaffNag {
            number,
            overdue: true,
            ticket,
            ..
        } => format!("overdue#{number}{}", ticket_tag(ticket)),
        SlaAction::Escalate { .. } => "escalate".into(),
        SlaAction::LeadUpdate { overdue: false, .. } => "lead_gentle".into(),
        SlaAction::LeadUpdate { overdue: true, .. } => "lead_overdue".into(),
    }
}

fn ticket_tag(t: &Option<String>) -> &'static str {
    match t.as_deref() {
        Some(TICKET) => "+ticket",
        Some(_) => "+OTHER-ticket",
        None => "",
    }
}

/// Staff side settled (nagged 3 times an hour ago, escalated), so a row sees only the
/// lead-update rule.
fn staff_quiet(mut s: SlaState, now: DateTime<Utc>) -> SlaState {
    s.staff_nag_count = 3;
    s.staff_last_nagged_at = Some(now - Duration::hours(1));
    s.escalated_at = Some(now - Duration::hours(1));
    if now >= s.due_at() {
        s.breached_at = Some(s.due_at());
    }
    s
}

/// The lead heard from us an hour ago, so a row sees only the staff rules.
fn lead_heard(mut s: SlaState, now: DateTime<Utc>) -> SlaState {
    s.lead_last_update_at = Some(now - Duration::hours(1));
    s
}

struct Row {
    name: &'static str,
    state: SlaState,
    now: DateTime<Utc>,
    expect: Vec<String>,
}

/// Every branch of the rule for one kind.
fn rows_for(kind: SlaKind) -> Vec<Row> {
    let w = kind.window();
    let half = t0() + w / 2;
    let due = t0() + w;
    let h8 = Duration::hours(8);
    let min = Duration::minutes(1);
    let has_texts = kind.lead_texts().is_some();
    let lead = |gentle: bool| -> Vec<String> {
        match (has_texts, gentle) {
            (false, _) => vec![],
            (true, true) => vec!["lead_gentle".into()],
            (true, false) => vec!["lead_overdue".into()],
        }
    };
    let v = |tags: &[&str]| tags.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut rows = Vec::new();

    let now = half - min;
    rows.push(Row {
        name: "before 50 %: nothing",
        state: lead_heard(fresh(kind, TICKET), now),
        now,
        expect: vec![],
    });
    rows.push(Row {
        name: "at 50 %: the gentle nag, on the ticket",
        state: lead_heard(fresh(kind, TICKET), half),
        now: half,
        expect: v(&["gentle#1+ticket"]),
    });
    let mut gentle_sent = fresh(kind, TICKET);
    gentle_sent.staff_nag_count = 1;
    gentle_sent.staff_last_nagged_at = Some(half);
    rows.push(Row {
        name: "between 50 % and 100 % after the gentle nag: nothing",
        state: lead_heard(gentle_sent.clone(), due - min),
        now: due - min,
        expect: vec![],
    });
    rows.push(Row {
        name: "at 100 % after the gentle nag: breach and the first overdue nag",
        state: lead_heard(gentle_sent, due),
        now: due,
        expect: v(&["breach", "overdue#2+ticket"]),
    });
    rows.push(Row {
        name: "first seen at 100 %: the overdue nag, never a late gentle one",
        state: lead_heard(fresh(kind, TICKET), due),
        now: due,
        expect: v(&["breach", "overdue#1+ticket"]),
    });
    let mut overdue_sent = fresh(kind, TICKET);
    overdue_sent.staff_nag_count = 2;
    overdue_sent.staff_last_nagged_at = Some(due);
    overdue_sent.breached_at = Some(due);
    rows.push(Row {
        name: "under 8 h after an overdue nag: nothing",
        state: lead_heard(overdue_sent.clone(), due + h8 - min),
        now: due + h8 - min,
        expect: vec![],
    });
    rows.push(Row {
        name: "+8 h: the next overdue nag",
        state: lead_heard(overdue_sent, due + h8),
        now: due + h8,
        expect: v(&["overdue#3+ticket"]),
    });
    let mut three = fresh(kind, TICKET);
    three.staff_nag_count = 3;
    three.staff_last_nagged_at = Some(due + h8);
    three.breached_at = Some(due);
    rows.push(Row {
        name: "3 nags reached, under 8 h since the last: no 4th nag, no escalation yet",
        state: lead_heard(three.clone(), due + h8 * 2 - min),
        now: due + h8 * 2 - min,
        expect: vec![],
    });
    rows.push(Row {
        name: "3 nags and another 8 h: escalation to the owner",
        state: lead_heard(three.clone(), due + h8 * 2),
        now: due + h8 * 2,
        expect: v(&["escalate"]),
    });
    let mut escalated = three;
    escalated.escalated_at = Some(due + h8 * 2);
    let later = due + h8 * 20;
    rows.push(Row {
        name: "after the escalation: silence (no 4th nag, no second escalation)",
        state: lead_heard(escalated, later),
        now: later,
        expect: vec![],
    });

    let at24 = t0() + Duration::hours(24);
    rows.push(Row {
        name: "lead not heard from us for 24 h (never updated): the gentle update",
        state: staff_quiet(fresh(kind, TICKET), at24),
        now: at24,
        expect: lead(true),
    });
    let mut updated = fresh(kind, TICKET);
    updated.lead_last_update_at = Some(at24);
    rows.push(Row {
        name: "lead updated under 24 h ago: no update",
        state: staff_quiet(updated.clone(), at24 + Duration::hours(24) - min),
        now: at24 + Duration::hours(24) - min,
        expect: vec![],
    });
    let at48 = t0() + Duration::hours(48);
    rows.push(Row {
        name: "lead waiting 48 h, last update 24 h ago: the overdue update",
        state: staff_quiet(updated, at48),
        now: at48,
        expect: lead(false),
    });

    rows.push(Row {
        name: "dry-run ticket at 50 %: the nag is recorded, the ticket never touched",
        state: lead_heard(fresh(kind, "dry-run-42"), half),
        now: half,
        expect: v(&["gentle#1"]),
    });
    rows.push(Row {
        name: "dry-run ticket at 100 %: overdue nag without the ticket",
        state: lead_heard(fresh(kind, "dry-run-42"), due),
        now: due,
        expect: v(&["breach", "overdue#1"]),
    });
    rows.push(Row {
        name: "no ticket at all: nags without a comment",
        state: lead_heard(fresh(kind, ""), due),
        now: due,
        expect: v(&["breach", "overdue#1"]),
    });

    let mut resolved = fresh(kind, TICKET);
    resolved.resolved_at = Some(t0() + min);
    rows.push(Row {
        name: "resolved: nothing, however late",
        state: resolved,
        now: t0() + Duration::days(90),
        expect: vec![],
    });
    rows
}

#[test]
fn every_sla_branch_for_every_kind() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for kind in SlaKind::ALL {
        for row in rows_for(kind) {
            checked += 1;
            let d = decide(&row.state, row.now);
            let got: Vec<String> = d.actions.iter().map(tag).collect();
            if got != row.expect {
                failures.push(format!(
                    "{kind} / {}: expected {:?}, got {:?}",
                    row.name, row.expect, got
                ));
            }
            // Deciding again on the state it produced, at the same instant, does nothing:
            // a sweep that runs twice in a row acts once.
            let again = decide(&d.next, row.now);
            if !again.actions.is_empty() {
                failures.push(format!(
                    "{kind} / {}: not idempotent, second pass gave {:?}",
                    row.name,
                    again.actions.iter().map(tag).collect::<Vec<_>>()
                ));
            }
        }
    }
    assert_eq!(checked, SlaKind::ALL.len() * 17);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_windows_are_the_seeds() {
    assert_eq!(SlaKind::DocReview.window(), Duration::hours(24));
    assert_eq!(SlaKind::ApplicationDecision.window(), Duration::hours(48));
    assert_eq!(SlaKind::Invoice.window(), Duration::days(30));
    assert_eq!(SlaKind::ShowingSchedule.window(), Duration::hours(48));
    assert_eq!(SlaKind::FirstResponse.window(), Duration::minutes(5));
    for k in SlaKind::ALL {
        assert_eq!(SlaKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(
        SlaKind::parse("app_decision"),
        Some(SlaKind::ApplicationDecision)
    );
    assert_eq!(SlaKind::parse("tour"), None);
}

#[test]
fn nag_texts_say_what_waits_how_long_against_which_sla() {
    let s = fresh(SlaKind::DocReview, TICKET);
    let d = decide(&s, t0() + Duration::hours(12));
    let SlaAction::StaffNag { text, .. } = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(
        text,
        "Reminder: doc review for +13125550100 waiting 12h (SLA: 24h)"
    );
    let d = decide(&s, t0() + Duration::hours(30));
    let SlaAction::StaffNag { text, .. } = &d.actions[1] else {
        panic!("{:?}", d.actions)
    };
    assert_eq!(
        text,
        "OVERDUE (30h): doc review for +13125550100 waiting 30h (SLA: 24h)"
    );
    let s = fresh(SlaKind::Invoice, "");
    let d = decide(&s, t0() + Duration::days(15));
    let SlaAction::StaffNag { text, .. } = &d.actions[0] else {
        panic!("{:?}", d.actions)
    };
    assert!(text.ends_with("waiting 15 days (SLA: 30 days)"), "{text}");
}

// ------------------------------------------------------------------ the sweep -------- //

struct Rig {
    slas: Arc<MemSlaStore>,
    store: Arc<MemStore>,
    tickets: Arc<FakeTickets>,
    sms: Arc<FakeSms>,
    alerts: AlertHandle,
    sink: Arc<RecordingAlertSink>,
}

impl Rig {
    async fn new() -> Self {
        let (alerts, sink) = test_alerts().await;
        Self {
            slas: Arc::new(MemSlaStore::default()),
            store: Arc::new(MemStore::default()),
            tickets: Arc::new(FakeTickets::default()),
            sms: Arc::new(FakeSms::default()),
            alerts,
            sink,
        }
    }
    /// A sweep over the rig's ports: a new one stands for a restarted process.
    fn sweep(&self, owner: Option<&str>) -> SlaSweep {
        SlaSweep::new(
            self.slas.clone(),
            self.store.clone(),
            self.tickets.clone(),
            self.sms.clone(),
            self.alerts.clone(),
            owner.map(LeadId::new),
        )
    }
}

#[tokio::test]
async fn a_doc_review_left_alone_nags_three_times_then_escalates_once_and_keeps_the_lead_posted() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    rig.slas
        .open_sla(&lead, SlaKind::DocReview, TICKET, t0())
        .await
        .unwrap();
    let sweep = rig.sweep(Some(OWNER));
    let at = |h: i64| t0() + Duration::hours(h);

    let r = sweep.run_sla_sweep(at(1)).await.unwrap();
    assert_eq!((r.checked, r.staff_nags), (1, 0));
    let r = sweep.run_sla_sweep(at(12)).await.unwrap();
    assert_eq!((r.staff_nags, r.ticket_comments), (1, 1));
    let r = sweep.run_sla_sweep(at(12)).await.unwrap();
    assert_eq!(r.staff_nags, 0, "the same instant twice nags once");
    let r = sweep.run_sla_sweep(at(24)).await.unwrap();
    assert_eq!((r.breaches, r.staff_nags, r.lead_updates), (1, 1, 1));
    assert_eq!(r.wake, vec![lead.clone()]);
    let r = sweep.run_sla_sweep(at(31)).await.unwrap();
    assert_eq!(
        r,
        SweepReport {
            checked: 1,
            ..SweepReport::default()
        }
    );
    let r = sweep.run_sla_sweep(at(32)).await.unwrap();
    assert_eq!((r.breaches, r.staff_nags), (0, 1));
    let r = sweep.run_sla_sweep(at(40)).await.unwrap();
    assert_eq!(
        (r.staff_nags, r.escalations, r.owner_sms),
        (0, 1, 1),
        "no 4th nag: the owner is told instead"
    );
    let r = sweep.run_sla_sweep(at(48)).await.unwrap();
    assert_eq!((r.escalations, r.lead_updates), (0, 1));
    let r = sweep.run_sla_sweep(at(200)).await.unwrap();
    assert_eq!((r.staff_nags, r.escalations), (0, 0));

    let comments = rig.tickets.comments();
    assert_eq!(comments.len(), 3);
    assert!(comments.iter().all(|(t, _)| t == TICKET));
    assert!(comments[0].1.starts_with("Reminder:"));
    assert!(comments[1].1.starts_with("OVERDUE (24h)"));
    assert!(comments[2].1.starts_with("OVERDUE (32h)"));

    let owner_sms = rig.sms.sent_to(&LeadId::new(OWNER));
    assert_eq!(owner_sms.len(), 1);
    assert!(owner_sms[0].contains("SLA ESCALATION: doc review for +13125550100"));
    assert!(
        rig.sms.sent_to(&lead).is_empty(),
        "lead SMS go through the outbox"
    );

    let queued: Vec<String> = rig.slas.queued_sms().into_iter().map(|(_, b)| b).collect();
    let (gentle, late) = SlaKind::DocReview.lead_texts().unwrap();
    // 24 h: gentle; 48 h: overdue; then one a day while it stays open.
    assert_eq!(queued[..2], [gentle.to_string(), late.to_string()]);

    wait_for(|| rig.sink.events().iter().any(|e| e == "sla_escalated")).await;
    let events = rig.sink.events();
    assert_eq!(events.iter().filter(|e| *e == "sla_staff_nag").count(), 2);
    assert_eq!(events.iter().filter(|e| *e == "sla_escalated").count(), 1);
}

#[tokio::test]
async fn a_restarted_sweep_resumes_from_the_stored_state_without_repeating_a_step() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    rig.slas
        .open_sla(&lead, SlaKind::ShowingSchedule, TICKET, t0())
        .await
        .unwrap();
    rig.sweep(None)
        .run_sla_sweep(t0() + Duration::hours(48))
        .await
        .unwrap();
    // A new process: nothing but the store carries over.
    let r = rig
        .sweep(None)
        .run_sla_sweep(t0() + Duration::hours(50))
        .await
        .unwrap();
    assert_eq!((r.breaches, r.staff_nags, r.lead_updates), (0, 0, 0));
    let s = rig.slas.get(&lead, SlaKind::ShowingSchedule).unwrap();
    assert_eq!(s.staff_nag_count, 1);
    assert_eq!(s.breached_at, Some(t0() + Duration::hours(48)));
    assert_eq!(rig.tickets.comments().len(), 1);
}

#[tokio::test]
async fn dry_run_tickets_are_never_commented_on_but_nags_still_alert() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    rig.slas
        .open_sla(&lead, SlaKind::DocReview, "dry-run-sim-7", t0())
        .await
        .unwrap();
    let sweep = rig.sweep(None);
    for h in [12, 24, 32] {
        sweep
            .run_sla_sweep(t0() + Duration::hours(h))
            .await
            .unwrap();
    }
    assert!(rig.tickets.comments().is_empty());
    assert_eq!(
        rig.slas
            .get(&lead, SlaKind::DocReview)
            .unwrap()
            .staff_nag_count,
        3
    );
    wait_for(|| {
        rig.sink
            .events()
            .iter()
            .filter(|e| *e == "sla_staff_nag")
            .count()
            == 2
    })
    .await;
}

#[tokio::test]
async fn an_opted_out_lead_gets_no_update_and_resumes_after_opting_back_in() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    rig.slas
        .open_sla(&lead, SlaKind::ApplicationDecision, TICKET, t0())
        .await
        .unwrap();
    rig.store.set_opted_out(&lead, true);
    let sweep = rig.sweep(None);
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!((r.lead_updates, r.suppressed), (0, 1));
    assert!(r.wake.is_empty());
    assert_eq!(r.staff_nags, 1, "staff are still nagged");
    assert!(rig.slas.queued_sms().is_empty());
    rig.store.set_opted_out(&lead, false);
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(r.lead_updates, 1);
}

#[tokio::test]
async fn a_ticket_system_outage_keeps_the_nag_for_the_next_sweep_and_a_refusal_alerts() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    rig.slas
        .open_sla(&lead, SlaKind::DocReview, TICKET, t0())
        .await
        .unwrap();
    let sweep = rig.sweep(None);
    rig.tickets
        .fail_with(Some(TicketError::Retryable("503".into())));
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(12))
        .await
        .unwrap();
    assert_eq!((r.staff_nags, r.retry_later), (0, 1));
    assert_eq!(
        rig.slas
            .get(&lead, SlaKind::DocReview)
            .unwrap()
            .staff_nag_count,
        0
    );
    rig.tickets.fail_with(None);
    let r = sweep
        .run_sla_sweep(t0() + Duration::minutes(12 * 60 + 30))
        .await
        .unwrap();
    assert_eq!((r.staff_nags, r.ticket_comments), (1, 1));

    // An outage that outlasts the grace: the overdue nag is recorded with an alert an hour
    // after it fell due, not retried (and silent) for as long as Asana is down.
    rig.tickets
        .fail_with(Some(TicketError::Retryable("timeout".into())));
    let r = sweep
        .run_sla_sweep(t0() + Duration::minutes(24 * 60 + 59))
        .await
        .unwrap();
    assert_eq!((r.breaches, r.staff_nags, r.retry_later), (1, 0, 1));
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(25))
        .await
        .unwrap();
    assert_eq!((r.staff_nags, r.ticket_comments), (1, 0));
    wait_for(|| rig.sink.events().iter().any(|e| e == "sla_staff_nag")).await;

    rig.tickets.fail_with(Some(TicketError::Permanent {
        status: 404,
        message: "unknown task".into(),
    }));
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(33))
        .await
        .unwrap();
    assert_eq!(r.staff_nags, 1, "a refused comment is not retried");
    wait_for(|| {
        rig.sink
            .events()
            .iter()
            .any(|e| e == "sla_ticket_comment_failed")
    })
    .await;
}

#[tokio::test]
async fn without_an_owner_phone_the_escalation_is_an_alert_only() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    let mut s = SlaState::new(lead.clone(), SlaKind::FirstResponse, "", t0());
    s.staff_nag_count = 3;
    s.staff_last_nagged_at = Some(t0() + Duration::hours(8));
    s.breached_at = Some(t0() + Duration::minutes(5));
    rig.slas.put(s);
    let r = rig
        .sweep(None)
        .run_sla_sweep(t0() + Duration::hours(16))
        .await
        .unwrap();
    assert_eq!((r.escalations, r.owner_sms), (1, 0));
    assert!(rig.sms.sent().is_empty());
    wait_for(|| rig.sink.events().iter().any(|e| e == "sla_escalated")).await;
}

#[tokio::test]
async fn a_resolved_sla_is_left_alone_and_reopening_starts_a_new_cycle() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    let first = rig
        .slas
        .open_sla(&lead, SlaKind::DocReview, TICKET, t0())
        .await
        .unwrap();
    assert!(matches!(first, Opened::Created(_)));
    let again = rig
        .slas
        .open_sla(
            &lead,
            SlaKind::DocReview,
            "other",
            t0() + Duration::hours(1),
        )
        .await
        .unwrap();
    let Opened::AlreadyOpen(s) = again else {
        panic!("opening twice is idempotent")
    };
    assert_eq!((s.ticket_id.as_str(), s.started_at), (TICKET, t0()));
    rig.slas
        .resolve_sla(&lead, SlaKind::DocReview, t0() + Duration::hours(2))
        .await
        .unwrap();
    let r = rig
        .sweep(Some(OWNER))
        .run_sla_sweep(t0() + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(r, SweepReport::default());
    let reopened = rig
        .slas
        .open_sla(&lead, SlaKind::DocReview, "new", t0() + Duration::days(10))
        .await
        .unwrap();
    let Opened::Created(s) = reopened else {
        panic!("a resolved SLA opens a new cycle")
    };
    assert_eq!((s.staff_nag_count, s.resolved_at), (0, None));
}

#[tokio::test]
async fn the_owner_sms_survives_a_temporary_failure_and_a_refusal_is_alerted() {
    let rig = Rig::new().await;
    let mut s = SlaState::new(LeadId::new(LEAD), SlaKind::DocReview, TICKET, t0());
    s.staff_nag_count = 3;
    s.staff_last_nagged_at = Some(t0() + Duration::hours(32));
    s.breached_at = Some(t0() + Duration::hours(24));
    rig.slas.put(s.clone());
    rig.sms
        .fail_next(crate::ports::SmsError::Retryable("503".into()));
    let r = rig
        .sweep(Some(OWNER))
        .run_sla_sweep(t0() + Duration::hours(40))
        .await
        .unwrap();
    assert_eq!((r.escalations, r.owner_sms), (1, 1));
    assert_eq!(rig.sms.sent_to(&LeadId::new(OWNER)).len(), 1);

    let other = LeadId::new("+13125550177");
    rig.slas.put(SlaState {
        lead: other.clone(),
        ..s
    });
    rig.sms.fail_next(crate::ports::SmsError::Permanent {
        code: Some(21211),
        message: "invalid number".into(),
    });
    let r = rig
        .sweep(Some(OWNER))
        .run_sla_sweep(t0() + Duration::hours(40))
        .await
        .unwrap();
    assert_eq!((r.escalations, r.owner_sms), (1, 0));
    assert!(
        rig.slas
            .get(&other, SlaKind::DocReview)
            .unwrap()
            .escalated_at
            .is_some()
    );
    wait_for(|| {
        rig.sink
            .events()
            .iter()
            .any(|e| e == "sla_owner_sms_failed")
    })
    .await;
    let r = rig
        .sweep(Some(OWNER))
        .run_sla_sweep(t0() + Duration::hours(60))
        .await
        .unwrap();
    assert_eq!(r.escalations, 0, "escalated once, even when the SMS failed");
}

#[tokio::test]
async fn a_lead_update_waits_out_quiet_hours_in_the_leads_zone() {
    let rig = Rig::new().await;
    let lead = LeadId::new(LEAD);
    // Opened 03:00 Chicago (09:00 UTC is 03:00 CST on 2 March): due for an update 24 h later,
    // in the middle of the night.
    rig.slas
        .open_sla(&lead, SlaKind::DocReview, TICKET, t0())
        .await
        .unwrap();
    let quiet = crate::followup::QuietHours::parse("21:00-09:00").unwrap();
    let sweep = rig.sweep(None).with_quiet_hours(
        crate::send_window::SendWindows::new(quiet),
        chrono_tz::America::Chicago,
    );
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!((r.lead_updates, r.held_quiet), (0, 1));
    assert_eq!(r.staff_nags, 1, "staff nags do not wait for the morning");
    // 09:00 Chicago: it goes.
    let r = sweep
        .run_sla_sweep(t0() + Duration::hours(30))
        .await
        .unwrap();
    assert_eq!((r.lead_updates, r.held_quiet), (1, 0));

    // A lead with its own zone is judged by it: 10:00 UTC is 19:00 in Tokyo.
    let other = LeadId::new("+13125550188");
    rig.slas.set_time_zone(&other, "Asia/Tokyo");
    let start = t0() - Duration::hours(23);
    rig.slas
        .open_sla(&other, SlaKind::ShowingSchedule, "", start)
        .await
        .unwrap();
    let r = sweep
        .run_sla_sweep(start + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!((r.lead_updates, r.held_quiet), (1, 0));
    assert_eq!(rig.slas.queued_sms().len(), 2);
}

#[test]
fn a_deadline_set_at_opening_drives_the_nags_not_the_kinds_window() {
    // An accommodation request opened at 09:00 and due at 17:00 (its business day's close):
    // the reminder at 50 % of those 8 h is 13:00, the overdue nag at 17:00; the lead gets
    // no update texts (the kind has none).
    let mut s = fresh(SlaKind::AccommodationRequest, "");
    s.due = Some(t0() + Duration::hours(8));
    assert_eq!(s.due_at(), t0() + Duration::hours(8));
    assert_eq!(s.window(), Duration::hours(8));
    let tags = |s: &SlaState, at| decide(s, at).actions.iter().map(tag).collect::<Vec<_>>();
    assert!(tags(&s, t0() + Duration::hours(3)).is_empty());
    assert_eq!(tags(&s, t0() + Duration::hours(4)), vec!["gentle#1"]);
    let late = decide(&s, t0() + Duration::hours(8));
    assert_eq!(
        late.actions.iter().map(tag).collect::<Vec<_>>(),
        vec!["breach", "overdue#1"]
    );
    // A shorter deadline (asked at 16:00, due 17:00) is an hour, not 8 h.
    s.due = Some(t0() + Duration::hours(1));
    assert_eq!(tags(&s, t0() + Duration::minutes(30)), vec!["gentle#1"]);
    assert_eq!(
        tags(&s, t0() + Duration::hours(30))
            .first()
            .map(String::as_str),
        Some("breach"),
        "no lead update is queued for this kind, only staff nags"
    );
    assert!(
        !tags(&s, t0() + Duration::hours(30))
            .iter()
            .any(|t| t.starts_with("lead_"))
    );
}
