//! Refused webhooks are loud: every refusal is counted by reason at `/metrics`; a refused
//! signature reaches the UNAUTHORIZED channel at a fake Discord at once, then as one
//! summary per period with the count, and names the URL Twilio signs when the request's
//! own URL explains it; refused with none accepted for a while is an ERROR `inbound_down`.
//! All through the real HTTP path, with the application's own alert path to Discord.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;
use tower::ServiceExt;

use crate::fake_discord::FakeDiscord;
use crate::helpers::*;

const UNAUTHORIZED_CHANNEL: &str = "8001";
const ERROR_CHANNEL: &str = "8002";
/// What an operator typed: one letter off the URL Twilio is configured with.
const TYPO_URL: &str = "https://leads.exmaple.com";

fn rejected(reason: &str) -> String {
    format!(r#"lead_agent_webhooks_rejected_total{{reason="{reason}"}}"#)
}

/// A webhook as Twilio sends it through a load balancer: signed for [`PUBLIC_URL`], with
/// the forwarded headers the balancer adds.
async fn post_through_balancer(app: &TestApp, sid: &str, from: &str) -> u16 {
    let params = sms_params(sid, from, "Hi, is the 2BR available?");
    let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
    app.http
        .post(format!("{}/twilio/sms", app.base_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "leads.example.com")
        .body(encode_form(&params))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_wrong_public_base_url_is_loud_names_the_url_twilio_signs_and_stores_nothing() {
    let discord = FakeDiscord::start().await;
    let mut env = vec![
        ("PUBLIC_BASE_URL", TYPO_URL.to_string()),
        ("WEBHOOK_ALERT_SECS", "3".to_string()),
        ("INBOUND_DOWN_SECS", "4".to_string()),
        (
            "DISCORD_CHANNEL_UNAUTHORIZED",
            UNAUTHORIZED_CHANNEL.to_string(),
        ),
        ("DISCORD_CHANNEL_ERROR", ERROR_CHANNEL.to_string()),
    ];
    env.extend(discord.env());
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let before = app.metric(&rejected("signature")).await;

    let leads: Vec<String> = (0..20)
        .map(|i| format!("+1312555{:04}", 1600 + i))
        .collect();
    for lead in &leads {
        assert_eq!(
            post_through_balancer(&app, &new_message_sid(), lead).await,
            403
        );
    }
    for lead in &leads {
        assert!(
            app.conversation(lead).await.is_empty(),
            "a refused webhook stores nothing"
        );
    }
    // At least: the recorder is the test process's, shared with tests running alongside.
    assert!(app.metric(&rejected("signature")).await >= before + 20.0);

    let unauthorized = || discord.created_in(UNAUTHORIZED_CHANNEL);
    wait_until(15, "the first UNAUTHORIZED alert", || async {
        !unauthorized().is_empty()
    })
    .await;
    let first = &unauthorized()[0]["embeds"][0];
    assert_eq!(first["title"], "UNAUTHORIZED · webhook_signature_rejected");
    let text = first["description"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Twilio signs {PUBLIC_URL}/twilio/sms; PUBLIC_BASE_URL is {TYPO_URL}."
        )),
        "{text}"
    );

    // The other 19 in summaries with their count (one, unless this machine took longer
    // than a period to post them), each once its period has passed.
    let summed = || {
        unauthorized()
            .iter()
            .skip(1)
            .map(|m| {
                let text = m["embeds"][0]["description"].as_str().unwrap_or("");
                assert!(
                    text.contains(" more webhooks refused (signature)"),
                    "{text}"
                );
                assert!(text.contains("Twilio signs"), "{text}");
                text.split(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum::<u64>()
    };
    wait_until(15, "the summary with the count", || async {
        summed() == 19
    })
    .await;

    // Nothing accepted since: inbound is down, said once on the ERROR channel.
    wait_until(15, "the inbound_down alert", || async {
        discord
            .created_in(ERROR_CHANNEL)
            .iter()
            .any(|m| m["embeds"][0]["title"] == "ERROR · inbound_down")
    })
    .await;
    let down = discord
        .created_in(ERROR_CHANNEL)
        .into_iter()
        .find(|m| m["embeds"][0]["title"] == "ERROR · inbound_down")
        .unwrap();
    let down = down["embeds"][0]["description"].as_str().unwrap();
    assert!(down.contains("20 signed webhooks refused"), "{down}");
    assert!(down.contains("Twilio signs"), "the cause is named: {down}");
    let posts = unauthorized().len();
    assert!(
        (2..=3).contains(&posts),
        "one alert and at most two summaries for 20 refusals: {posts}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_refused_webhook_is_counted_by_its_reason() {
    let app = spawn_app().await;
    let lead = "+13125551700";
    let count = |r: &'static str| {
        let app = &app;
        async move { app.metric(&rejected(r)).await }
    };
    let (sig, form, size, kind) = (
        count("signature").await,
        count("form").await,
        count("size").await,
        count("type").await,
    );

    let params = sms_params(&new_message_sid(), lead, "Hi");
    let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
    let (status, _) = app
        .post_form(&encode_form(&params), Some(&signature), "text/plain")
        .await;
    assert_eq!(status, 415);
    let (status, _) = app
        .post_form(
            "Body=%ZZ",
            Some(&signature),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 400);
    // Signed, but without a MessageSid: a form problem, not a signature one.
    let no_sid: Vec<_> = params
        .iter()
        .filter(|(k, _)| k != "MessageSid")
        .cloned()
        .collect();
    let no_sid_signature =
        compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &no_sid);
    let (status, _) = app
        .post_form(
            &encode_form(&no_sid),
            Some(&no_sid_signature),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 400);
    let huge = format!("Body={}", "x".repeat(70 * 1024));
    let (status, _) = app
        .post_form(&huge, Some(&signature), "application/x-www-form-urlencoded")
        .await;
    assert_eq!(status, 413);
    let (status, _) = app
        .post_form(
            &encode_form(&params),
            None,
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, 403);

    assert!(count("type").await >= kind + 1.0);
    assert!(count("form").await >= form + 2.0);
    assert!(count("size").await >= size + 1.0);
    assert!(count("signature").await >= sig + 1.0);
    assert!(app.conversation(lead).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn without_an_auth_token_a_remote_peer_is_refused_counted_and_alerted() {
    // No TWILIO_AUTH_TOKEN: only this machine may post. A peer elsewhere is what a service
    // deployed without its token sees from Twilio: a silent outage unless it is loud.
    let app = spawn_app_with(TestOptions {
        embedded_defaults: true,
        ..TestOptions::default()
    })
    .await;
    let before = app.metric(&rejected("loopback-only")).await;
    let remote: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let router = lead_agent::http::public_router(app.state.clone()).layer(MockConnectInfo(remote));
    let params = sms_params(&new_message_sid(), "+13125551701", "Hi");
    let response = router
        .oneshot(
            axum::http::Request::post("/twilio/sms")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(encode_form(&params)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(app.metric(&rejected("loopback-only")).await >= before + 1.0);
    wait_until(
        15,
        "the UNAUTHORIZED alert naming the missing token",
        || async {
            app.alerts().await.iter().any(|a| {
                a["kind"] == "unauthorized"
                    && a["text"].as_str().is_some_and(|t| {
                        t.contains("TWILIO_AUTH_TOKEN is not set") && t.contains("203.0.113.7")
                    })
            })
        },
    )
    .await;
    assert!(app.conversation("+13125551701").await.is_empty());
    app.stop().await;
}
