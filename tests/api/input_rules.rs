//! The webhook's input rules (issue 12), on the real HTTP path and whichever store the pass
//! runs on: `From`/`To` must be E.164 (400, counted as `phone`, nothing stored), control
//! characters are removed from the body before it is stored (a NUL once made PostgreSQL
//! refuse the row forever), and a body over `INBOUND_BODY_MAX_CHARS` is stored cut with a
//! marker — and only the cut text reaches the model.

use std::sync::Arc;

use actors::ports::ChatModel;
use actors::testing::FakeModel;
use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;

use crate::helpers::*;

/// A signed webhook with `From` and `To` as given.
async fn post_numbers(app: &TestApp, from: &str, to: &str) -> (u16, String) {
    let mut params = sms_params(&new_message_sid(), from, "Hi, is the 2BR free?");
    for (k, v) in params.iter_mut() {
        if k == "To" {
            *v = to.to_string();
        }
    }
    let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
    app.post_form(
        &encode_form(&params),
        Some(&signature),
        "application/x-www-form-urlencoded",
    )
    .await
}

#[tokio::test]
async fn a_from_or_to_that_is_not_e164_is_refused_by_name_counted_as_phone_and_not_stored() {
    let app = spawn_app().await;
    let series = r#"lead_agent_webhooks_rejected_total{reason="phone"}"#;
    let before = app.metric(series).await;
    for from in ["whatsapp:+44 <b>x</b>", "+1312\u{202E}5550123", ""] {
        let (status, body) = post_numbers(&app, from, OUR_NUMBER).await;
        assert_eq!(status, 400, "{from:?}: {body}");
        assert!(body.contains("From must be an E.164 number"), "{body}");
        assert!(app.conversation(from).await.is_empty(), "{from:?} stored");
    }
    let (status, body) = post_numbers(&app, "+13125550710", "our number").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("To must be an E.164 number"), "{body}");
    assert!(app.conversation("+13125550710").await.is_empty());
    // The recorder is the process's, shared by every test running beside this one: at
    // least our four refusals (the other tests' refusals are theirs to count).
    let counted = app.metric(series).await - before;
    assert!(counted >= 4.0, "4 phone refusals counted, got {counted}");
    // The numbers Twilio really sends pass: SMS and WhatsApp.
    for from in ["+13125550711", "whatsapp:+447700900123"] {
        let (status, body) = post_numbers(&app, from, OUR_NUMBER).await;
        assert_eq!(status, 200, "{from}: {body}");
        assert_eq!(app.conversation(from).await.len(), 1);
    }
}

#[tokio::test]
async fn a_nul_and_other_control_characters_are_removed_and_the_message_is_stored() {
    let app = spawn_app().await;
    let lead = "+13125550712";
    let (status, body) = app
        .post_sms(lead, "Hi\u{0} there\u{7}\r\nis the\t2BR\u{1b} free?")
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = app.conversation(lead).await;
    assert_eq!(stored[0].body, "Hi there\nis the\t2BR free?");
    app.wait_settled(lead).await;
}

#[tokio::test]
async fn a_long_body_is_stored_cut_with_a_marker_and_only_the_cut_text_reaches_the_model() {
    let model = Arc::new(FakeModel::answering("Thanks!"));
    let app = spawn_app_with(TestOptions {
        chat_models: Some(vec![model.clone() as Arc<dyn ChatModel>]),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550713";
    // 2,000 four-byte characters: over the default 1,600 in characters (8,000 bytes), so a
    // cut by bytes would land inside one.
    let (status, body) = app.post_sms(lead, &"😀".repeat(2000)).await;
    assert_eq!(status, 200, "{body}");
    let expected = format!("{}… [truncated: 400 characters]", "😀".repeat(1600));
    assert_eq!(app.conversation(lead).await[0].body, expected);
    app.wait_for_sms(lead, 1).await;
    let prompts = model.prompts();
    let seen = &prompts[0].lines.last().unwrap().text;
    assert_eq!(seen, &expected, "the model saw the stored, cut text");
}

#[tokio::test]
async fn the_body_cap_is_a_setting() {
    let app = spawn_app_with(TestOptions {
        env: vec![("INBOUND_BODY_MAX_CHARS", "5".into())],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550714";
    assert_eq!(app.post_sms(lead, "héllo wörld").await.0, 200);
    assert_eq!(
        app.conversation(lead).await[0].body,
        "héllo… [truncated: 6 characters]"
    );
    app.wait_settled(lead).await;
}
