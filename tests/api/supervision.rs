//! Failure handling through the real HTTP path: panicking actors, hung model calls.

use std::sync::Arc;
use std::time::Duration;

use actors::ports::ChatModel;
use actors::testing::FakeModel;

use crate::helpers::*;

#[tokio::test]
async fn a_lead_actor_that_panics_is_restarted_and_the_next_message_is_answered() {
    let model: Arc<dyn ChatModel> = Arc::new(FakeModel::panicking_once_on("boom", "All good"));
    let app = spawn_app_with(TestOptions {
        chat_models: Some(vec![model]),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550501";
    app.post_sms(lead, "boom").await;
    // The handed-back task reaches the restarted actor, which answers.
    assert_eq!(app.wait_for_sms(lead, 1).await, vec!["All good"]);
    app.post_sms(lead, "and now?").await;
    app.wait_for_sms(lead, 2).await;
    assert!(
        app.alert_events()
            .await
            .contains(&"lead_restarted".to_string())
    );
}

#[tokio::test]
async fn a_lead_that_keeps_failing_is_parked_with_an_alert_not_restarted_forever() {
    let model: Arc<dyn ChatModel> = Arc::new(FakeModel::panicking_on("poison", "fine"));
    let app = spawn_app_with(TestOptions {
        chat_models: Some(vec![model]),
        env: vec![("LEAD_RESTART_MAX", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550502";
    app.post_sms(lead, "poison").await;
    wait_until(10, "the lead to be parked", || async {
        app.alert_events()
            .await
            .contains(&"lead_parked".to_string())
    })
    .await;
    let restarts = app
        .alert_events()
        .await
        .iter()
        .filter(|e| *e == "lead_restarted")
        .count();
    assert_eq!(restarts, 2);
    let status = app.get_json("/ops/status").await;
    assert_eq!(status["worker"]["supervisor"]["parked"][0], lead);
    // Other leads are unaffected.
    app.post_sms("+13125550503", "hello").await;
    assert_eq!(app.wait_for_sms("+13125550503", 1).await, vec!["fine"]);
    assert!(app.twilio.sent_to(lead).is_empty());
}

#[tokio::test]
async fn a_hung_model_call_does_not_hold_the_pool_and_the_lead_gets_the_fallback() {
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("LLM_CONCURRENCY", "1".into()),
            ("LLM_SOFT_TIMEOUT_SECS", "1".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let stuck = "+13125550601";
    app.post_sms(stuck, "HANG please").await;
    wait_until(5, "the hung call", || async {
        !app.llm.requests().is_empty()
    })
    .await;
    let others: Vec<String> = (0..3).map(|i| format!("+1312555070{i}")).collect();
    for o in &others {
        app.post_sms(o, "hello").await;
    }
    // With a cap of 1, the others are answered only because the hung call was cut.
    for o in &others {
        assert_eq!(app.wait_for_sms(o, 1).await, vec!["Reply to: hello"]);
    }
    let reply = app.wait_for_sms(stuck, 1).await;
    assert!(
        !reply[0].starts_with("Reply to:"),
        "the rules responder answered: {reply:?}"
    );
    app.wait_settled(stuck).await;
    let conv = app.conversation(stuck).await;
    assert_eq!(conv[1].provider.as_deref(), Some("rules"));
    assert!(
        app.alert_events()
            .await
            .contains(&"model_fallback".to_string())
    );
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn an_overloaded_model_falls_back_to_the_rules_responder() {
    let app = spawn_app().await;
    let lead = "+13125550801";
    app.post_sms(lead, "OVERLOAD hi").await;
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].provider.as_deref(), Some("rules"));
    assert_eq!(app.twilio.sent_to(lead).len(), 1);
}
