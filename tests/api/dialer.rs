//! The dialer hand-off end to end: a lead asking to be called is posted to the operator's
//! dialer (the README contract, bearer `VOICE_AI_API_KEY`) once per day; without
//! `HOMEEASY_DIALER_URL` it is a recorded dry run; a dialer that keeps failing is retried
//! and alerted.

use actors::ports::LeadId;
use serde_json::json;

use crate::helpers::{TestOptions, spawn_app_with, wait_until};
use testkit::fake_dialer::FakeDialer;

const LEAD: &str = "+13125550171";

#[tokio::test]
async fn a_lead_asking_to_be_called_is_posted_to_the_dialer_once_a_day() {
    let dialer = FakeDialer::start().await;
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("HOMEEASY_DIALER_URL", dialer.url.clone()),
            ("VOICE_AI_API_KEY", "voice-test-key".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(LEAD, "can you call me?").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the hand-off at the dialer", || async {
        !dialer.requests().is_empty()
    })
    .await;
    let (auth, body) = dialer.requests()[0].clone();
    assert_eq!(auth, "Bearer voice-test-key");
    assert_eq!(body["phone"], LEAD);
    assert_eq!(body["lead_id"], LEAD);
    assert_eq!(body["client_id"], LEAD);
    assert_eq!(body["reason"], "asked_for_call");
    assert_eq!(body["name"], json!(null));
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("can you call me?")
    );
    wait_until(10, "the outcome recorded", || async {
        app.store.dialer_handoffs(&LeadId::new(LEAD)).await.unwrap()[0].2 == "sent"
    })
    .await;

    app.post_sms(LEAD, "please give me a call when you can")
        .await;
    app.wait_for_sms(LEAD, 2).await;
    wait_until(10, "the dialer_handoff alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "dialer_handoff")
    })
    .await;
    assert_eq!(dialer.requests().len(), 1, "once per lead per day");
    app.stop().await;
}

#[tokio::test]
async fn without_a_dialer_url_the_hand_off_is_a_recorded_dry_run() {
    let dialer = FakeDialer::start().await;
    let app = spawn_app_with(TestOptions::default()).await;
    app.post_sms(LEAD, "Can someone phone me?").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the dry run recorded", || async {
        app.store
            .dialer_handoffs(&LeadId::new(LEAD))
            .await
            .unwrap()
            .first()
            .is_some_and(|h| h.1 == "asked_for_call" && h.2 == "dry_run")
    })
    .await;
    assert!(dialer.requests().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_dialer_that_keeps_failing_is_retried_then_alerted() {
    let dialer = FakeDialer::start().await;
    dialer.answer_next(vec![503, 503, 503]);
    let app = spawn_app_with(TestOptions {
        env: vec![("HOMEEASY_DIALER_URL", dialer.url.clone())],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(LEAD, "give me a call").await;
    wait_until(15, "the dialer_handoff_failed alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "dialer_handoff_failed")
    })
    .await;
    assert_eq!(dialer.requests().len(), 3, "three tries");
    assert_eq!(
        dialer.requests()[0].0,
        "",
        "no key: no Authorization header"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_lead_the_brain_marks_hot_is_handed_to_the_dialer() {
    use crate::llm_fakes::*;
    let dialer = FakeDialer::start().await;
    let anthropic = FakeProvider::anthropic().await;
    anthropic.script(vec![
        Canned::ok(anthropic_tool_use(
            "toolu_01H",
            "mark_hot_lead",
            json!({"reason": "approved voucher, wants to sign this week"}),
        )),
        Canned::ok(anthropic_text("Great, someone will call you today.")),
    ]);
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("USE_AGENT_CORE", "true".to_string()),
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("ANTHROPIC_MODEL", "claude-test".to_string()),
            ("HOMEEASY_DIALER_URL", dialer.url.clone()),
            ("VOICE_AI_API_KEY", "voice-test-key".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(LEAD, "My voucher got approved, I want to sign this week")
        .await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the hot lead at the dialer", || async {
        !dialer.requests().is_empty()
    })
    .await;
    let (auth, body) = dialer.requests()[0].clone();
    assert_eq!(auth, "Bearer voice-test-key");
    assert_eq!(body["reason"], "hot_lead");
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("approved voucher, wants to sign this week"),
        "{body}"
    );
    app.stop().await;
}

/// A probe number (the watch's or verify's signed `LeadAgentSynthetic=1`) is answered, but
/// nothing it says reaches a person's system: asking to be called hands nothing to the
/// dialer, asking for a tour creates no Asana task. A real lead saying the same, after it,
/// reaches both — so the probe's absence is not a hand-off that had not happened yet.
#[tokio::test]
async fn a_synthetic_lead_is_never_handed_to_the_dialer_nor_given_an_sla_task() {
    const PROBE: &str = "+13125550199";
    let dialer = FakeDialer::start().await;
    let asana = testkit::fake_asana::FakeAsana::start().await;
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("HOMEEASY_DIALER_URL", dialer.url.clone()),
            ("ASANA_ACCESS_TOKEN", "asana-test-pat".into()),
            ("ASANA_API_BASE", asana.url.clone()),
            ("ASANA_PROJECT_GID", "1201000000001".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let text = "can you call me? and can I tour one of your apartments?";
    let (status, _) = app.post_synthetic_sms(PROBE, text).await;
    assert_eq!(status, 200);
    app.wait_for_sms(PROBE, 1).await;
    assert!(app.store.is_synthetic(&LeadId::new(PROBE)).await.unwrap());

    app.post_sms(LEAD, text).await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the real lead's hand-off and task", || async {
        !dialer.requests().is_empty() && !asana.tasks().is_empty()
    })
    .await;
    let dialed: Vec<_> = dialer
        .requests()
        .iter()
        .map(|(_, b)| b["phone"].clone())
        .collect();
    assert_eq!(dialed, vec![json!(LEAD)], "the probe was not dialed");
    let tasks: Vec<String> = asana.tasks().iter().map(|t| t.name().to_string()).collect();
    assert!(
        tasks.iter().all(|t| !t.contains(PROBE)) && tasks.iter().any(|t| t.contains(LEAD)),
        "{tasks:?}"
    );
    assert!(
        app.store
            .dialer_handoffs(&LeadId::new(PROBE))
            .await
            .unwrap()
            .is_empty(),
        "no hand-off claimed for the probe"
    );
    app.stop().await;
}

/// Once the CRM has named the lead (the text log records FUB's name on it), the dialer's
/// caller gets the name with the hand-off.
#[tokio::test]
async fn the_hand_off_carries_the_name_the_crm_gave_the_lead() {
    let dialer = FakeDialer::start().await;
    let app = spawn_app_with(TestOptions {
        env: vec![("HOMEEASY_DIALER_URL", dialer.url.clone())],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(LEAD, "Hi").await;
    app.wait_for_sms(LEAD, 1).await;
    let named = lead_agent::store::LeadIdentity {
        client_id: Some("42".into()),
        name: Some("Dana Reyes".into()),
    };
    assert!(
        app.store
            .record_lead_identity(&LeadId::new(LEAD), &named)
            .await
            .unwrap()
    );
    app.post_sms(LEAD, "can you call me?").await;
    app.wait_for_sms(LEAD, 2).await;
    wait_until(10, "the hand-off at the dialer", || async {
        !dialer.requests().is_empty()
    })
    .await;
    let (_, body) = dialer.requests()[0].clone();
    assert_eq!(body["name"], "Dana Reyes");
    assert_eq!(
        body["client_id"], LEAD,
        "the contract's client_id is the phone"
    );
    app.stop().await;
}
