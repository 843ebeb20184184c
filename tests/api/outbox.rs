//! The outbox through real HTTP: Twilio's temporary and permanent failures, and shutdown.

use crate::helpers::*;

#[tokio::test]
async fn a_twilio_429_is_retried_and_the_reply_is_sent_once() {
    let app = spawn_app().await;
    app.twilio.fail_next_with(&[429, 503]);
    let lead = "+13125551101";
    app.post_sms(lead, "Hi").await;
    app.wait_settled(lead).await;
    assert_eq!(app.twilio.sent_to(lead), vec!["Reply to: Hi"]);
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].state, "sent");
}

#[tokio::test]
async fn a_permanent_twilio_error_is_recorded_and_alerted_not_retried() {
    let app = spawn_app().await;
    app.twilio.fail_next_with(&[400]);
    let lead = "+13125551102";
    app.post_sms(lead, "Hi").await;
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].state, "failed");
    assert!(app.twilio.sent_to(lead).is_empty());
    wait_until(5, "the sms_rejected alert", || async {
        app.alert_events()
            .await
            .contains(&"sms_rejected".to_string())
    })
    .await;
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_running_turn() {
    let app = spawn_app_with(TestOptions {
        llm_latency: std::time::Duration::from_millis(500),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125551103";
    app.post_sms(lead, "Hi").await;
    wait_until(5, "the model call", || async {
        !app.llm.requests().is_empty()
    })
    .await;
    let twilio = app.twilio.clone();
    app.stop().await;
    assert_eq!(
        twilio.sent_to(lead),
        vec!["Reply to: Hi"],
        "the in-flight turn completed"
    );
}
