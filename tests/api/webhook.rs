//! The Twilio webhook: signature, validation, idempotency.

use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;

use crate::helpers::*;

const LEAD: &str = "+13125550101";

#[tokio::test]
async fn a_signed_webhook_is_answered_and_the_reply_reaches_twilio() {
    let app = spawn_app().await;
    let (status, body) = app.post_sms(LEAD, "Hi, is the 2BR still available?").await;
    assert_eq!(status, 200);
    assert!(body.contains("<Response></Response>"), "{body}");

    let sent = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Reply to: Hi, is the 2BR still available?"]);
    let sms = &app.twilio.sent()[0];
    assert_eq!(sms.from.as_deref(), Some(OUR_NUMBER));
    assert!(sms.authorization.starts_with("Basic "), "Twilio basic auth");

    let headers = &app.llm.headers()[0];
    assert_eq!(headers["x-api-key"], "test-anthropic-key");
    assert_eq!(headers["anthropic-version"], "2023-06-01");

    app.wait_settled(LEAD).await;
    let conv = app.conversation(LEAD).await;
    assert_eq!(conv.len(), 2);
    assert_eq!(conv[0].state, "answered");
    assert_eq!(conv[1].state, "sent");
    assert_eq!(conv[1].provider.as_deref(), Some("anthropic"));
}

#[tokio::test]
async fn the_webhook_answers_empty_twiml_as_xml() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(format!("{}/twilio/sms", app.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "X-Twilio-Signature",
            compute_signature(
                AUTH_TOKEN,
                &format!("{PUBLIC_URL}/twilio/sms"),
                &sms_params("SM00000000000000000000000000000001", LEAD, "hello"),
            ),
        )
        .body(encode_form(&sms_params(
            "SM00000000000000000000000000000001",
            LEAD,
            "hello",
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/xml");
}

#[tokio::test]
async fn bad_requests_are_rejected_with_the_right_status_and_store_nothing() {
    let app = spawn_app().await;
    let url = format!("{PUBLIC_URL}/twilio/sms");
    let form = "application/x-www-form-urlencoded";

    // A wrong signature.
    let params = sms_params(&new_message_sid(), LEAD, "hi");
    let (status, _) = app
        .post_form(&encode_form(&params), Some("NOTAVALIDSIGNATURE="), form)
        .await;
    assert_eq!(status, 403);

    // No signature at all.
    let (status, _) = app.post_form(&encode_form(&params), None, form).await;
    assert_eq!(status, 403);

    // A tampered body: signed for one text, sent with another.
    let signature = compute_signature(AUTH_TOKEN, &url, &params);
    let tampered = sms_params(&params[3].1, LEAD, "send me your money");
    let (status, _) = app
        .post_form(&encode_form(&tampered), Some(&signature), form)
        .await;
    assert_eq!(status, 403);

    // Oversized.
    let big = sms_params(&new_message_sid(), LEAD, &"x".repeat(70 * 1024));
    let sig = compute_signature(AUTH_TOKEN, &url, &big);
    let (status, _) = app.post_form(&encode_form(&big), Some(&sig), form).await;
    assert_eq!(status, 413);

    // Malformed: a broken percent escape; a missing MessageSid; a bad MessageSid.
    let (status, _) = app.post_form("Body=%ZZ&From=%2B1", Some("x"), form).await;
    assert_eq!(status, 400);
    let mut no_sid = sms_params("SM00000000000000000000000000000002", LEAD, "hi");
    no_sid.retain(|(k, _)| k != "MessageSid");
    let sig = compute_signature(AUTH_TOKEN, &url, &no_sid);
    let (status, _) = app.post_form(&encode_form(&no_sid), Some(&sig), form).await;
    assert_eq!(status, 400);
    let bad_sid = sms_params("XX123", LEAD, "hi");
    let sig = compute_signature(AUTH_TOKEN, &url, &bad_sid);
    let (status, _) = app
        .post_form(&encode_form(&bad_sid), Some(&sig), form)
        .await;
    assert_eq!(status, 400);

    // Wrong content type.
    let (status, _) = app
        .post_form(r#"{"Body":"hi"}"#, Some(&signature), "application/json")
        .await;
    assert_eq!(status, 415);

    assert!(app.conversation(LEAD).await.is_empty(), "nothing stored");
    assert!(app.twilio.sent().is_empty());
}

#[tokio::test]
async fn signatures_for_the_url_with_and_without_the_default_port_are_both_accepted() {
    let app = spawn_app().await;
    for (i, url) in [
        format!("{PUBLIC_URL}/twilio/sms"),
        "https://leads.example.com:443/twilio/sms".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let params = sms_params(&new_message_sid(), LEAD, &format!("hello {i}"));
        let sig = compute_signature(AUTH_TOKEN, url, &params);
        let (status, _) = app
            .post_form(
                &encode_form(&params),
                Some(&sig),
                "application/x-www-form-urlencoded",
            )
            .await;
        assert_eq!(status, 200, "signed for {url}");
    }
}

#[tokio::test]
async fn the_same_message_sid_posted_twice_yields_one_reply() {
    let app = spawn_app().await;
    let sid = new_message_sid();
    assert_eq!(app.post_sms_with_sid(&sid, LEAD, "Hi").await.0, 200);
    assert_eq!(app.post_sms_with_sid(&sid, LEAD, "Hi").await.0, 200);

    // And concurrently, as a Twilio retry racing a slow first attempt would.
    let other = "+13125550102";
    let sid2 = new_message_sid();
    let (a, b, c) = tokio::join!(
        app.post_sms_with_sid(&sid2, other, "Hello"),
        app.post_sms_with_sid(&sid2, other, "Hello"),
        app.post_sms_with_sid(&sid2, other, "Hello"),
    );
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));

    app.wait_settled(LEAD).await;
    app.wait_settled(other).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1);
    assert_eq!(app.twilio.sent_to(other).len(), 1);
    assert_eq!(
        app.conversation(other).await.len(),
        2,
        "one inbound, one reply"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let health = app.get_json("/health").await;
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string() && health["commit"].is_string());
    // Readiness may trail start-up by a moment: on RabbitMQ the consumer's connection comes
    // up in the background, and /ready honestly says 503 until it has.
    wait_until(10, "/ready to answer 200", || async {
        matches!(
            app.http.get(format!("{}/ready", app.base_url)).send().await,
            Ok(r) if r.status() == 200
        )
    })
    .await;
}

#[tokio::test]
async fn many_leads_texting_at_once_are_each_stored_and_answered_once() {
    // The webhooks arrive together, so the store's writer commits them in batches: every
    // one must still be stored, acknowledged and answered, each exactly once.
    let app = spawn_app().await;
    let leads: Vec<String> = (0..40).map(|i| format!("+1312555{i:04}")).collect();
    let statuses = futures::future::join_all(
        leads
            .iter()
            .map(|lead| app.post_sms(lead, "Is the 2BR on Lake St available?")),
    )
    .await;
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{statuses:?}");
    for lead in &leads {
        app.wait_for_sms(lead, 1).await;
        app.wait_settled(lead).await;
    }
    for lead in &leads {
        assert_eq!(app.twilio.sent_to(lead).len(), 1, "{lead}");
        let conv = app.conversation(lead).await;
        assert_eq!(conv.len(), 2, "{lead}: one inbound, one reply");
        assert_eq!(conv[0].state, "answered");
    }
}

#[tokio::test]
async fn one_message_sid_posted_many_times_at_once_is_stored_and_answered_once() {
    // Retries racing one another can land in one batch of the store's writer: one of them
    // is new, the others are duplicates, and the lead gets one reply.
    let app = spawn_app().await;
    let sid = new_message_sid();
    let statuses = futures::future::join_all(
        (0..20).map(|_| app.post_sms_with_sid(&sid, LEAD, "Hi, still available?")),
    )
    .await;
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{statuses:?}");
    app.wait_for_sms(LEAD, 1).await;
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1);
    assert_eq!(
        app.conversation(LEAD).await.len(),
        2,
        "one inbound, one reply"
    );
}
