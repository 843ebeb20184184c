//! Opt-out: STOP and consent revoked in plain words opt out (no reply, nothing later), START opts back in.

use actors::ports::Store;

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

/// Consent revoked in plain words (47 CFR 64.1200(a)(10): any reasonable means) opts the
/// lead out at once, as STOP does — through the real webhook, in English and Spanish — and
/// an ambiguous text beside it is answered as ever.
#[tokio::test]
async fn plain_language_revocations_opt_out_and_ambiguous_texts_are_answered() {
    let app = spawn_app().await;
    for (n, text) in [
        "please stop texting me",
        "Wrong number, don't text me",
        "take me off your list",
        "Por favor no me escriban más",
        "stop please",
    ]
    .iter()
    .enumerate()
    {
        let lead = format!("+1312555041{n}");
        app.post_sms(&lead, "Hi").await;
        app.wait_for_sms(&lead, 1).await;
        assert_eq!(app.post_sms(&lead, text).await.0, 200);
        app.post_sms(&lead, "hello?").await;
        app.wait_settled(&lead).await;
        let conv = app.conversation(&lead).await;
        let revoked = conv.iter().find(|m| m.body == *text).unwrap();
        assert_eq!(revoked.state, "no_reply", "{text}");
        assert!(
            app.store
                .is_opted_out(&actors::ports::LeadId::new(&lead))
                .await
                .unwrap(),
            "{text} opts out"
        );
        let sent = app.twilio.sent_to(&lead);
        assert_eq!(
            sent.len(),
            2,
            "the confirmation, nothing else, after {text:?}"
        );
        assert!(sent[1].contains("you are opted out"), "{sent:?}");
    }
    let lead = "+13125550419";
    app.post_sms(lead, "Can I stop by tomorrow at 5?").await;
    assert_eq!(
        app.wait_for_sms(lead, 1).await,
        vec!["Reply to: Can I stop by tomorrow at 5?"]
    );
    assert!(
        !app.store
            .is_opted_out(&actors::ports::LeadId::new(lead))
            .await
            .unwrap()
    );
}

/// HELP gets CTIA's answer from us, once — a Twilio retry of the same message adds
/// nothing — and arms no followup (it is not a conversation turn); with Twilio's Advanced
/// Opt-Out answering HELP, we send nothing.
#[tokio::test]
async fn help_is_answered_once_with_ctias_parts_unless_twilio_answers_it() {
    let app = spawn_app_with(TestOptions {
        env: vec![("OFFICE_CONTACT", "(312) 555-0100".to_string())],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550431";
    let sid = lead_agent::channels::twilio::new_message_sid();
    assert_eq!(app.post_sms_with_sid(&sid, lead, "HELP").await.0, 200);
    let sent = app.wait_for_sms(lead, 1).await;
    for part in [
        "Reply STOP to opt out",
        "Msg & data rates may apply",
        "Msg frequency varies",
        "(312) 555-0100",
    ] {
        assert!(sent[0].contains(part), "{part}: {}", sent[0]);
    }
    assert_eq!(app.post_sms_with_sid(&sid, lead, "HELP").await.0, 200);
    app.post_sms(lead, "info").await;
    app.wait_for_sms(lead, 2).await;
    app.wait_settled(lead).await;
    assert_eq!(
        app.twilio.sent_to(lead).len(),
        2,
        "one answer per HELP message, none for the retry"
    );
    assert!(
        app.store
            .followup_of(&actors::ports::LeadId::new(lead))
            .await
            .unwrap()
            .is_none(),
        "a HELP answer arms no followup"
    );
    app.stop().await;

    let app = spawn_app_with(TestOptions {
        env: vec![("TWILIO_ADVANCED_OPT_OUT", "true".to_string())],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(lead, "HELP").await;
    app.post_sms(lead, "Is the 2BR available?").await;
    let sent = app.wait_for_sms(lead, 1).await;
    app.wait_settled(lead).await;
    assert_eq!(
        app.twilio.sent_to(lead).len(),
        1,
        "Twilio answered HELP: {sent:?}"
    );
    assert!(
        sent[0].contains("Is the 2BR available?") && !sent[0].contains("Reply STOP"),
        "{sent:?}"
    );
    app.stop().await;
}

/// A revocation in plain words gets exactly one confirmation — through the send path's one
/// exception to the opt-out — and nothing after it: not the reply to a later text, not a
/// second confirmation for a second revocation. STOP itself gets none from us (Twilio
/// confirms its keywords).
#[tokio::test]
async fn a_plain_language_revocation_is_confirmed_once_and_stop_is_not() {
    let app = spawn_app().await;
    let lead = "+13125550441";
    app.post_sms(lead, "Hi").await;
    app.wait_for_sms(lead, 1).await;
    app.post_sms(lead, "please stop texting me").await;
    let sent = app.wait_for_sms(lead, 2).await;
    assert!(
        sent[1].starts_with("The leasing office: you are opted out"),
        "{sent:?}"
    );
    app.post_sms(lead, "take me off your list").await;
    app.post_sms(lead, "hello?").await;
    app.wait_settled(lead).await;
    assert_eq!(
        app.twilio.sent_to(lead).len(),
        2,
        "one confirmation, nothing else"
    );
    assert!(
        app.store
            .followup_of(&actors::ports::LeadId::new(lead))
            .await
            .unwrap()
            .is_none(),
        "the confirmation arms no followup"
    );

    let keyword = "+13125550442";
    app.post_sms(keyword, "Hi").await;
    app.wait_for_sms(keyword, 1).await;
    app.post_sms(keyword, "STOP").await;
    app.post_sms(keyword, "hello?").await;
    app.wait_settled(keyword).await;
    assert_eq!(
        app.twilio.sent_to(keyword).len(),
        1,
        "Twilio confirms STOP, not us"
    );
    app.stop().await;
}
