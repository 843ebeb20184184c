//! The outbox through real HTTP: Twilio's temporary and permanent failures, shutdown, and
//! in-doubt sends (a timed-out send Twilio has, has rewritten, or never got).

use actors::ports::LeadId;

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

// ------------------------------------------------------------ in-doubt sends ---------- //

/// The app with a one-second Twilio timeout and the in-doubt policy in seconds instead of
/// minutes: sweep every 0.2 s, first check after 1 s in doubt, checks 0.5 s apart.
async fn spawn_quick_in_doubt_app() -> TestApp {
    spawn_app_with(TestOptions {
        env: vec![
            ("TWILIO_TIMEOUT_SECS", "1".into()),
            ("OUTBOX_SWEEP_SECS", "0.2".into()),
            ("OUTBOX_IN_DOUBT_WAIT_SECS", "1".into()),
            ("OUTBOX_RECHECK_SECS", "0.5".into()),
        ],
        ..TestOptions::default()
    })
    .await
}

/// Waits until `lead`'s reply (the conversation's second line) is in `state`.
async fn wait_reply_state(app: &TestApp, lead: &str, state: &str) {
    wait_until(
        20,
        &format!("the reply to {lead} to be {state}"),
        || async {
            app.conversation(lead)
                .await
                .get(1)
                .is_some_and(|m| m.state == state)
        },
    )
    .await;
}

async fn wait_alert(app: &TestApp, event: &str) {
    wait_until(20, &format!("the {event} alert"), || async {
        app.alert_events().await.iter().any(|e| e == event)
    })
    .await;
}

async fn count_alerts(app: &TestApp, event: &str) -> usize {
    app.alert_events()
        .await
        .iter()
        .filter(|e| *e == event)
        .count()
}

#[tokio::test]
async fn a_send_whose_answer_times_out_and_twilio_lists_queued_is_recorded_sent_never_resent() {
    let app = spawn_quick_in_doubt_app().await;
    app.twilio.hang_next_sends(1);
    let lead = "+13125551111";
    app.post_sms(lead, "Hi").await;
    wait_alert(&app, "sms_in_doubt").await;
    let listed = app.twilio.sent();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].status.as_str(), listed[0].date_sent),
        ("queued", None),
        "accepted, not sent yet: what a DateSent filter cannot see"
    );
    wait_reply_state(&app, lead, "sent").await;
    wait_alert(&app, "in_doubt_resolved").await;
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].message_sid.as_deref(), Some(listed[0].sid.as_str()));
    assert_eq!(
        app.twilio.sent_to(lead),
        vec!["Reply to: Hi"],
        "never resent"
    );
    assert!(app.twilio.list_requests() >= 1);
    assert_eq!(count_alerts(&app, "in_doubt_resent").await, 0);
}

#[tokio::test]
async fn a_reply_whose_quotes_twilio_rewrote_is_found_and_not_resent() {
    let app = spawn_quick_in_doubt_app().await;
    app.twilio.hang_next_sends(1);
    app.twilio.rewrite_listed_quotes(true);
    let lead = "+13125551112";
    let text = "“Hi” — is it still available…";
    app.post_sms(lead, text).await;
    wait_reply_state(&app, lead, "sent").await;
    wait_alert(&app, "in_doubt_resolved").await;
    assert_eq!(
        app.twilio.sent_to(lead),
        vec![format!("Reply to: {text}")],
        "never resent"
    );
    assert_eq!(count_alerts(&app, "in_doubt_ambiguous").await, 0);
}

#[tokio::test]
async fn a_reply_twilio_never_got_is_resent_exactly_once_after_two_absent_checks() {
    let app = spawn_quick_in_doubt_app().await;
    app.twilio.lose_next_sends(1);
    let lead = "+13125551113";
    app.post_sms(lead, "Hi").await;
    wait_alert(&app, "sms_in_doubt").await;
    wait_alert(&app, "in_doubt_resent").await;
    assert!(
        app.twilio.list_requests() >= 2,
        "resent only after two checks: {} list requests",
        app.twilio.list_requests()
    );
    let sent = app.wait_for_sms(lead, 1).await;
    assert_eq!(sent, vec!["Reply to: Hi"]);
    wait_reply_state(&app, lead, "sent").await;
    assert_eq!(
        app.twilio.sent_to(lead),
        vec!["Reply to: Hi"],
        "exactly once"
    );
    assert_eq!(count_alerts(&app, "in_doubt_resent").await, 1);
}

#[tokio::test]
async fn an_outbound_text_we_cannot_account_for_leaves_the_reply_in_doubt_alerted_once() {
    let app = spawn_quick_in_doubt_app().await;
    let lead = "+13125551114";
    app.twilio.lose_next_sends(1);
    app.post_sms(lead, "Hi").await;
    wait_alert(&app, "sms_in_doubt").await;
    // Someone texted the lead from our account meanwhile (the office, by hand).
    app.twilio
        .record_existing(lead, "This is Dana from the office, call me back");
    wait_alert(&app, "in_doubt_ambiguous").await;
    let checks = app.twilio.list_requests();
    wait_until(20, "two more checks", || async {
        app.twilio.list_requests() >= checks + 2
    })
    .await;
    assert_eq!(app.conversation(lead).await[1].state, "in_doubt");
    assert_eq!(
        app.twilio.sent_to(lead),
        vec!["This is Dana from the office, call me back"],
        "not resent"
    );
    assert_eq!(count_alerts(&app, "in_doubt_ambiguous").await, 1);
}

#[tokio::test]
async fn a_list_twilio_cannot_serve_leaves_the_reply_in_doubt_until_it_can() {
    let app = spawn_quick_in_doubt_app().await;
    app.twilio.hang_next_sends(1);
    app.twilio.fail_list_page(Some(0));
    let lead = "+13125551115";
    app.post_sms(lead, "Hi").await;
    wait_alert(&app, "in_doubt_unresolved").await;
    let checks = app.twilio.list_requests();
    wait_until(20, "two more checks", || async {
        app.twilio.list_requests() >= checks + 2
    })
    .await;
    assert_eq!(app.conversation(lead).await[1].state, "in_doubt");
    assert_eq!(count_alerts(&app, "in_doubt_unresolved").await, 1);
    app.twilio.fail_list_page(None);
    wait_reply_state(&app, lead, "sent").await;
    assert_eq!(app.twilio.sent_to(lead), vec!["Reply to: Hi"]);
}

/// The adapter on its own against the fake: the window is read to its end over several
/// pages, and a page that fails makes the whole answer an error (never a partial "absent").
#[tokio::test]
async fn the_twilio_client_reads_every_page_of_the_window_and_a_failed_page_is_an_error() {
    use actors::ports::{ProviderStatus, SmsSender};
    use lead_agent::channels::twilio::TwilioClient;
    use lead_agent::config::{Secret, TwilioSender, TwilioSettings};

    let twilio = FakeTwilio::start().await;
    let client = TwilioClient::new(
        &TwilioSettings {
            account_sid: "ACtest".into(),
            auth_token: Secret::new(AUTH_TOKEN),
            sender: TwilioSender::From(OUR_NUMBER.into()),
        },
        &twilio.url,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let lead = LeadId::new("+13125551116");
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    twilio.record_existing_with(lead.as_str(), "one", "queued");
    twilio.record_existing_with(lead.as_str(), "two", "undelivered");
    twilio.record_existing(lead.as_str(), "three");
    twilio.record_existing("+13125559999", "someone else");
    twilio.cap_page_size(1);
    let listed = client.find_sent(&lead, since).await.unwrap();
    let seen: Vec<(&str, &ProviderStatus)> = listed
        .iter()
        .map(|m| (m.body.as_str(), &m.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("three", &ProviderStatus::Delivered),
            ("two", &ProviderStatus::Undelivered),
            ("one", &ProviderStatus::Queued),
        ],
        "newest first, every page, only this lead"
    );
    assert!(
        listed.iter().all(|m| m.created_at.is_some()),
        "RFC 2822 dates read"
    );
    twilio.fail_list_page(Some(2));
    assert!(
        client.find_sent(&lead, since).await.is_err(),
        "a page of the window failed: nothing can be ruled out"
    );
    twilio.fail_list_page(None);
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(
        client.find_sent(&lead, later).await.unwrap().is_empty(),
        "outside the window"
    );
}
