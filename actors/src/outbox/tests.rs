//! The in-doubt policy on a [`ManualClock`], with the in-memory store and provider.

use super::*;
use crate::alert_router::AlertHandle;
use crate::ports::{Claim, LeadId, ManualClock, ProviderStatus};
use crate::testing::{FakeSms, MemStore, test_alerts};

const WAIT: Duration = Duration::from_secs(300);
const RECHECK: Duration = Duration::from_secs(120);

struct Setup {
    sweep: OutboxSweep,
    store: Arc<MemStore>,
    sms: Arc<FakeSms>,
    clock: ManualClock,
    alerts: AlertHandle,
    lead: LeadId,
}

impl Setup {
    /// A reply to the lead's "Hi" whose sender died after claiming it (`sending`).
    async fn new(body: &str) -> Self {
        let (alerts, _sink) = test_alerts().await;
        let store = Arc::new(MemStore::default());
        let sms = Arc::new(FakeSms::default());
        let lead = LeadId::new("+13125550100");
        store.insert_inbound(&lead, "SM1", "Hi");
        let reply = store
            .commit_reply(&lead, &[1], body, "rules")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Send);
        let clock = ManualClock::new(chrono::Utc::now());
        clock.advance(Duration::from_secs(1));
        let sweep = OutboxSweep::new(
            store.clone(),
            store.clone(),
            sms.clone(),
            alerts.clone(),
            Arc::new(clock.clone()),
            Duration::from_secs(90),
            InDoubtPolicy {
                wait: WAIT,
                recheck: RECHECK,
            },
        );
        Self {
            sweep,
            store,
            sms,
            clock,
            alerts,
            lead,
        }
    }

    /// As a restarting single process does: every claim is orphaned, now in doubt.
    async fn flagged(body: &str) -> Self {
        let t = Self::new(body).await;
        let report = t.sweep.sweep_with(Duration::ZERO).await.unwrap();
        assert_eq!((report.flagged, report.waiting), (1, 1), "{report:?}");
        t
    }

    fn state(&self) -> String {
        self.store.outbound(&self.lead)[0].1.clone()
    }

    fn events(&self) -> Vec<String> {
        self.alerts.recent().into_iter().map(|a| a.event).collect()
    }

    async fn sweep_after(&self, d: Duration) -> SweepReport {
        self.clock.advance(d);
        self.sweep.sweep().await.unwrap()
    }
}

#[tokio::test]
async fn a_fresh_claim_is_left_to_its_live_sender() {
    let t = Setup::new("Hello").await;
    assert_eq!(t.sweep.sweep().await.unwrap(), SweepReport::default());
    assert_eq!(t.state(), "sending");
}

#[tokio::test]
async fn a_reply_in_doubt_for_less_than_the_wait_is_not_checked() {
    let t = Setup::flagged("Hello").await;
    t.sms.fail_lookups(true); // a check would show as unresolved
    let report = t.sweep_after(WAIT - Duration::from_secs(10)).await;
    assert_eq!(report.waiting, 1, "{report:?}");
    assert_eq!(report.unresolved, 0);
    assert_eq!(t.state(), "in_doubt");
    assert!(t.events().is_empty(), "{:?}", t.events());
}

#[tokio::test]
async fn absent_once_is_not_resent() {
    let t = Setup::flagged("Hello").await;
    let report = t.sweep_after(WAIT).await;
    assert_eq!(report.absent, 1, "{report:?}");
    assert!(report.requeued.is_empty());
    assert_eq!(t.state(), "in_doubt");
    // Sweeping again before the recheck interval neither asks nor counts again.
    let report = t.sweep_after(RECHECK - Duration::from_secs(1)).await;
    assert_eq!((report.waiting, report.absent), (1, 0), "{report:?}");
    assert_eq!(t.state(), "in_doubt");
    assert!(t.events().is_empty(), "{:?}", t.events());
}

#[tokio::test]
async fn absent_twice_spaced_apart_is_queued_again_and_alerted() {
    let t = Setup::flagged("Hello").await;
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    let report = t.sweep_after(RECHECK).await;
    assert_eq!(report.requeued, vec![t.lead.clone()], "{report:?}");
    assert_eq!(t.state(), "queued");
    assert_eq!(t.events(), vec!["in_doubt_resent"]);
    assert!(
        t.sms.sent().is_empty(),
        "the sweep queues; the lead's actor sends"
    );
}

#[tokio::test]
async fn found_queued_is_recorded_sent_not_resent_and_alerted() {
    let t = Setup::flagged("Hello").await;
    let sid = t.sms.provider_has(&t.lead, "Hello", ProviderStatus::Queued);
    let report = t.sweep_after(WAIT).await;
    assert_eq!(report.confirmed_sent, 1, "{report:?}");
    assert_eq!(t.state(), "sent");
    assert_eq!(t.events(), vec!["in_doubt_resolved"]);
    assert!(t.alerts.recent()[0].text.contains(&sid));
    // Settled: later sweeps leave it alone.
    assert_eq!(t.sweep_after(RECHECK).await, SweepReport::default());
}

#[tokio::test]
async fn found_after_an_absent_check_is_recorded_sent() {
    let t = Setup::flagged("Hello").await;
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    t.sms
        .provider_has(&t.lead, "Hello", ProviderStatus::Accepted);
    assert_eq!(t.sweep_after(RECHECK).await.confirmed_sent, 1);
    assert_eq!(t.state(), "sent");
}

#[tokio::test]
async fn a_body_whose_quotes_the_provider_rewrote_is_found() {
    let ours = "“Sure” — it’s available… want a tour?";
    let t = Setup::flagged(ours).await;
    t.sms.provider_has(
        &t.lead,
        "\"Sure\" - it's available... want a tour?",
        ProviderStatus::Sent,
    );
    let report = t.sweep_after(WAIT).await;
    assert_eq!(report.confirmed_sent, 1, "{report:?}");
    assert_eq!(t.state(), "sent");
}

#[tokio::test]
async fn an_unmatched_outbound_message_in_the_window_leaves_it_in_doubt_alerted_once() {
    let t = Setup::flagged("Hello").await;
    t.sms.provider_has(
        &t.lead,
        "Something we never wrote",
        ProviderStatus::Delivered,
    );
    for _ in 0..3 {
        let report = t.sweep_after(WAIT.max(RECHECK)).await;
        assert_eq!(report.unresolved, 1, "{report:?}");
        assert_eq!(t.state(), "in_doubt");
    }
    assert_eq!(t.events(), vec!["in_doubt_ambiguous"]);
}

#[tokio::test]
async fn an_ambiguous_check_between_two_absent_ones_starts_the_count_again() {
    let t = Setup::flagged("Hello").await;
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    // The stranger turns out to be a reply of ours that went out: accounted for from now on.
    let stranger = t
        .sms
        .provider_has(&t.lead, "Other reply", ProviderStatus::Delivered);
    assert_eq!(t.sweep_after(RECHECK).await.unresolved, 1);
    t.store.insert_inbound(&t.lead, "SM2", "again");
    let other = t
        .store
        .commit_reply(&t.lead, &[3], "Other reply", "rules")
        .await
        .unwrap()
        .unwrap();
    t.store
        .record_send(
            other,
            &SendOutcome::Sent {
                provider_sid: stranger,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        t.sweep_after(RECHECK).await.absent,
        1,
        "counting from one again"
    );
    assert_eq!(t.sweep_after(RECHECK).await.requeued.len(), 1);
}

#[tokio::test]
async fn a_message_the_provider_has_as_failed_is_recorded_failed_for_a_person_not_resent() {
    let t = Setup::flagged("Hello").await;
    t.sms
        .provider_has(&t.lead, "Hello", ProviderStatus::Undelivered);
    let report = t.sweep_after(WAIT).await;
    assert_eq!(report.failed_at_provider, 1, "{report:?}");
    assert!(report.requeued.is_empty());
    assert_eq!(t.state(), "failed");
    assert_eq!(t.events(), vec!["in_doubt_failed"]);
}

#[tokio::test]
async fn a_provider_that_cannot_answer_leaves_it_in_doubt_alerted_once_and_keeps_the_count() {
    let t = Setup::flagged("Hello").await;
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    t.sms.fail_lookups(true);
    assert_eq!(t.sweep_after(RECHECK).await.unresolved, 1);
    assert_eq!(t.sweep_after(RECHECK).await.unresolved, 1);
    assert_eq!(t.state(), "in_doubt");
    assert_eq!(t.events(), vec!["in_doubt_unresolved"]);
    t.sms.fail_lookups(false);
    assert_eq!(
        t.sweep_after(RECHECK).await.requeued.len(),
        1,
        "the outage did not erase the first absent check"
    );
}

#[tokio::test]
async fn a_restarted_sweeper_reads_the_checks_from_the_store() {
    let t = Setup::flagged("Hello").await;
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    // A new process: same store and clock, nothing in memory.
    let restarted = OutboxSweep::new(
        t.store.clone(),
        t.store.clone(),
        t.sms.clone(),
        t.alerts.clone(),
        Arc::new(t.clock.clone()),
        Duration::from_secs(90),
        InDoubtPolicy {
            wait: WAIT,
            recheck: RECHECK,
        },
    );
    let early = restarted.sweep_with(Duration::ZERO).await.unwrap();
    assert_eq!(
        (early.waiting, early.absent),
        (1, 0),
        "no early repeat: {early:?}"
    );
    t.clock.advance(RECHECK);
    let due = restarted.sweep().await.unwrap();
    assert_eq!(
        due.requeued.len(),
        1,
        "the first check was not forgotten: {due:?}"
    );
}

#[tokio::test]
async fn a_check_read_before_another_sweeper_wrote_counts_for_nothing() {
    let t = Setup::flagged("Hello").await;
    let stale = t.store.in_doubt_replies().await.unwrap().remove(0);
    assert_eq!(t.sweep_after(WAIT).await.absent, 1);
    let counted = InDoubtChecks {
        made: 1,
        absent: 1,
        ..InDoubtChecks::default()
    };
    assert!(
        !t.store
            .record_in_doubt_check(&stale, &counted)
            .await
            .unwrap()
    );
    assert!(
        !t.store
            .settle_in_doubt(
                &stale,
                &SendOutcome::Requeued {
                    reason: "stale".into()
                }
            )
            .await
            .unwrap()
    );
    assert_eq!(t.state(), "in_doubt");
}
