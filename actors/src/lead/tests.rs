//! Lead actor tests: turns, bursts, opt-out and the outbox, on in-memory ports.

use std::time::Duration;

use crate::ports::{LeadId, SmsError};
use crate::supervisor::tests::tree;
use crate::testing::*;

fn lead() -> LeadId {
    LeadId::new("+13125550100")
}

#[tokio::test]
async fn a_burst_during_a_turn_is_answered_by_one_reply() {
    let t = tree(FakeModel::answering("reply").with_latency(Duration::from_millis(200))).await;
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.model.in_flight() == 1).await;
    t.inbound(&lead(), "SM2", "is the 2BR free?");
    t.inbound(&lead(), "SM3", "price?");
    wait_for(|| t.acker.acks() == 3).await;
    assert_eq!(
        t.sms.sent_to(&lead()).len(),
        2,
        "first message, then the burst together"
    );
    assert_eq!(t.model.calls(), 2);
    assert!(!t.model.saw_same_lead_overlap());
    let second = &t.model.prompts()[1];
    assert_eq!(second.new_messages, 2);
    let texts: Vec<_> = second.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["Hi", "reply", "is the 2BR free?", "price?"]);
    assert_eq!(t.store.inbound_states(&lead()), vec!["answered"; 3]);
}

#[tokio::test]
async fn an_opted_out_lead_gets_no_model_call_and_no_sms() {
    let t = tree(FakeModel::answering("reply")).await;
    t.store.set_opted_out(&lead(), true);
    t.inbound(&lead(), "SM1", "hello?");
    wait_for(|| t.acker.acks() == 1).await;
    assert_eq!(t.model.calls(), 0);
    assert!(t.sms.sent().is_empty());
    assert_eq!(t.store.inbound_states(&lead()), vec!["no_reply"]);
}

#[tokio::test]
async fn a_stop_during_the_turn_suppresses_the_reply() {
    let t = tree(FakeModel::answering("reply").with_latency(Duration::from_millis(100))).await;
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.model.in_flight() == 1).await;
    t.store.set_opted_out(&lead(), true);
    wait_for(|| t.acker.acks() == 1).await;
    assert!(t.sms.sent().is_empty());
    assert_eq!(
        t.store.outbound(&lead()),
        vec![("reply".into(), "suppressed".into())]
    );
}

#[tokio::test]
async fn an_unknown_send_outcome_is_flagged_in_doubt_and_never_resent() {
    let t = tree(FakeModel::answering("reply")).await;
    t.sms
        .fail_next(SmsError::Unknown("timed out after sending".into()));
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.sink.events().contains(&"sms_in_doubt".to_string())).await;
    t.inbound(&lead(), "SM2", "hello?");
    wait_for(|| t.sms.sent_to(&lead()).len() == 1).await;
    let out = t.store.outbound(&lead());
    assert_eq!(out[0].1, "in_doubt");
    assert_eq!(out[1].1, "sent");
}

#[tokio::test]
async fn a_temporary_sms_failure_is_retried_and_sent_once() {
    let t = tree(FakeModel::answering("reply")).await;
    t.sms.fail_next(SmsError::Retryable("429".into()));
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.acker.acks() == 1).await;
    assert_eq!(t.sms.sent_to(&lead()), vec!["reply".to_string()]);
}

#[tokio::test]
async fn a_permanent_sms_failure_is_recorded_and_alerted_not_retried() {
    let t = tree(FakeModel::answering("reply")).await;
    t.sms.fail_next(SmsError::Permanent {
        code: Some(21211),
        message: "invalid To".into(),
    });
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.sink.events().contains(&"sms_rejected".to_string())).await;
    wait_for(|| t.acker.acks() == 1).await;
    assert_eq!(
        t.store.outbound(&lead()),
        vec![("reply".into(), "failed".into())]
    );
}

#[tokio::test]
async fn a_store_outage_hands_the_task_back_and_nothing_is_half_written() {
    let t = tree(FakeModel::answering("reply")).await;
    t.store.set_failing(true);
    t.inbound_unchecked();
    wait_for(|| t.acker.requeues() >= 1).await;
    t.store.set_failing(false);
    assert_eq!(t.store.inbound_states(&lead()), vec!["pending"]);
    assert!(t.sms.sent().is_empty());
}

impl crate::supervisor::tests::TestTree {
    fn inbound_unchecked(&self) {
        self.store.set_failing(false);
        assert!(self.store.insert_inbound(&lead(), "SM1", "Hi"));
        self.store.set_failing(true);
        self.registry.dispatch(self.acker.delivery(&lead()));
    }
}

#[tokio::test]
async fn a_long_history_gives_a_prompt_within_the_window() {
    let t = tree(FakeModel::answering("reply")).await;
    for i in 0..10_000 {
        t.store
            .insert_inbound(&lead(), &format!("SMold{i}"), &format!("old message {i}"));
    }
    let ids: Vec<i64> = (1..=10_000).collect();
    crate::ports::Store::mark_no_reply(&*t.store, &ids, "seed")
        .await
        .unwrap();
    t.inbound(&lead(), "SMnew", "Hi");
    wait_for(|| t.acker.acks() == 1).await;
    let p = &t.model.prompts()[0];
    assert!(p.lines.len() <= 20);
    assert!(p.text_bytes() <= 4096);
    assert_eq!(p.lines.last().unwrap().text, "Hi");
}

#[tokio::test]
async fn a_lead_locked_by_another_worker_is_handed_back_and_answered_once_the_lock_frees() {
    let t = tree(FakeModel::answering("reply")).await;
    // Another worker holds the lead.
    let other = crate::ports::Store::try_lock_lead(&*t.store, &lead())
        .await
        .unwrap()
        .expect("free at first");
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.acker.requeues() >= 1).await;
    assert!(
        t.sms.sent().is_empty(),
        "no turn while another worker holds the lead"
    );
    other.release().await;
    wait_for(|| t.sms.sent_to(&lead()).len() == 1).await;
}

#[tokio::test]
async fn with_hitl_the_reply_is_held_and_sent_only_once_approved() {
    let t = crate::supervisor::tests::hitl_tree(FakeModel::answering("draft reply")).await;
    t.inbound(&lead(), "SM1", "Is the 2BR free?");
    wait_for(|| t.acker.acks() == 1).await;
    assert!(t.sms.sent().is_empty(), "a held reply is not sent");
    assert_eq!(t.store.inbound_states(&lead()), vec!["answered"]);
    let holds = t.store.holds(&lead());
    assert_eq!(
        holds,
        vec![(1, "draft reply".to_string(), "held".to_string())]
    );
    let held = t
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "reply_held" && a.reply_hold.is_some())
        .expect("a HITL alert asks for a decision");
    assert_eq!(held.kind, crate::alert_router::AlertKind::HitlFeedback);
    assert_eq!(held.reply_hold, Some(1));
    assert!(held.text.contains("draft reply") && held.text.contains("Is the 2BR free?"));

    // Approval writes a queued reply; the next wake-up sends it through the normal path.
    assert!(t.store.approve_hold(1));
    assert!(!t.store.approve_hold(1), "a hold is decided once");
    t.registry.dispatch(t.acker.delivery(&lead()));
    wait_for(|| t.sms.sent_to(&lead()).len() == 1).await;
    assert_eq!(t.sms.sent_to(&lead()), vec!["draft reply".to_string()]);
}

#[tokio::test]
async fn a_failing_turn_posts_one_error_event_per_streak() {
    let t = tree(FakeModel::answering("reply")).await;
    t.store.set_failing(true);
    t.inbound(&lead(), "SM1", "Hi");
    wait_for(|| t.acker.requeues() >= 3).await;
    let errors = t.sink.events().iter().filter(|e| *e == "error").count();
    assert_eq!(errors, 1, "{:?}", t.sink.events());
    t.store.set_failing(false);
    wait_for(|| t.sms.sent_to(&lead()).len() == 1).await;
    let events = t.sink.events();
    for e in ["message_received", "ai_response", "sms_sent"] {
        assert!(
            events.contains(&e.to_string()),
            "{e} missing from {events:?}"
        );
    }
}

#[tokio::test]
async fn a_reply_left_unsent_by_a_crash_goes_out_before_the_next_reply_and_once() {
    let t = tree(FakeModel::answering("new reply")).await;
    // A turn that crashed after its commit: the reply is `queued`, its message answered.
    assert!(t.store.insert_inbound(&lead(), "SM1", "Hi"));
    crate::ports::Store::commit_reply(&*t.store, &lead(), &[1], "old reply", "rules")
        .await
        .unwrap()
        .expect("committed");
    t.inbound(&lead(), "SM2", "still there?");
    wait_for(|| t.acker.acks() == 1).await;
    assert_eq!(
        t.sms.sent_to(&lead()),
        vec!["old reply".to_string(), "new reply".to_string()],
        "our answers reach the lead in order"
    );
    assert_eq!(t.model.calls(), 1, "the old reply needs no model call");
    assert_eq!(t.store.inbound_states(&lead()), vec!["answered"; 2]);
    let window = &t.model.prompts()[0];
    let texts: Vec<_> = window.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["Hi", "old reply", "still there?"]);
}

#[tokio::test]
async fn a_draft_that_asks_about_children_is_held_for_a_person_without_hitl() {
    let t = tree(FakeModel::answering(
        "Sure! Do you have any kids moving in?",
    ))
    .await;
    t.inbound(&lead(), "SM1", "Is the 2BR free?");
    wait_for(|| t.acker.acks() == 1).await;
    assert!(t.sms.sent().is_empty(), "a held draft is not sent");
    assert_eq!(
        t.store.holds(&lead()),
        vec![(
            1,
            "Sure! Do you have any kids moving in?".to_string(),
            "held".to_string()
        )]
    );
    let alerts = t.sink.alerts();
    let check = alerts
        .iter()
        .find(|a| a.event == "reply_fair_housing")
        .expect("a SANITY_CHECK alert names the reason");
    assert_eq!(check.kind, crate::alert_router::AlertKind::SanityCheck);
    assert!(
        check.text.contains("familial status") && check.text.contains("held for a person"),
        "{}",
        check.text
    );
    let held = alerts
        .iter()
        .find(|a| a.reply_hold == Some(1))
        .expect("the hold asks for a decision");
    assert!(
        held.text.contains("Held because: fair housing"),
        "{}",
        held.text
    );
}

#[tokio::test]
async fn an_ordinary_draft_is_sent_as_before() {
    let t = tree(FakeModel::answering("Kids are welcome; the 2BR is $1,850.")).await;
    t.inbound(&lead(), "SM1", "Is the 2BR free?");
    wait_for(|| t.sms.sent_to(&lead()).len() == 1).await;
    assert!(t.store.holds(&lead()).is_empty());
    assert!(!t.sink.events().contains(&"reply_fair_housing".to_string()));
}
