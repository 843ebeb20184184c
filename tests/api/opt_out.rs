//! Carrier keywords: STOP opts out (no reply, nothing later), START opts back in.

use crate::helpers::*;

#[tokio::test]
async fn stop_opts_out_and_start_opts_back_in() {
    let app = spawn_app().await;
    let lead = "+13125550401";
    app.post_sms(lead, "Hi").await;
    app.wait_for_sms(lead, 1).await;

    assert_eq!(app.post_sms(lead, "STOP").await.0, 200);
    app.post_sms(lead, "are you there?").await;
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    let states: Vec<_> = conv
        .iter()
        .map(|m| (m.body.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(states[2], ("STOP", "no_reply"));
    assert_eq!(states[3], ("are you there?", "no_reply"));
    assert_eq!(app.twilio.sent_to(lead).len(), 1, "nothing after STOP");

    // "Yes" from an opted-out lead opts back in, with no reply of ours (Twilio confirms).
    app.post_sms(lead, "start").await;
    app.post_sms(lead, "I'd like a tour").await;
    let sent = app.wait_for_sms(lead, 2).await;
    assert_eq!(sent[1], "Reply to: I'd like a tour");
    app.wait_settled(lead).await;
    assert_eq!(app.twilio.sent_to(lead).len(), 2);
}

#[tokio::test]
async fn yes_from_a_lead_who_never_opted_out_is_an_ordinary_answer() {
    let app = spawn_app().await;
    let lead = "+13125550402";
    app.post_sms(lead, "Yes").await;
    assert_eq!(app.wait_for_sms(lead, 1).await, vec!["Reply to: Yes"]);
}

#[tokio::test]
async fn a_stop_sent_while_a_turn_runs_suppresses_its_reply() {
    let app = spawn_app_with(TestOptions {
        llm_latency: std::time::Duration::from_millis(500),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550403";
    app.post_sms(lead, "Hi").await;
    wait_until(5, "the model call", || async {
        !app.llm.requests().is_empty()
    })
    .await;
    app.post_sms(lead, "STOP").await;
    app.wait_settled(lead).await;
    assert!(app.twilio.sent_to(lead).is_empty());
    let conv = app.conversation(lead).await;
    assert!(
        conv.iter()
            .any(|m| m.direction == "outbound" && m.state == "suppressed")
    );
}
