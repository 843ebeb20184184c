//! Fair-housing guardrails through the real HTTP path, HITL off: a draft that asks about a
//! protected characteristic is held for a person (a SANITY_CHECK alert with the reason, the
//! held reply with its buttons in the HITL channel), nothing reaches the lead until a
//! person approves, and an ordinary draft goes out as before. The draft corpus is
//! `actors::fair_housing::tests`.

use actors::ports::LeadId;

use crate::fake_discord::{FakeDiscord, InteractionSigner};
use crate::helpers::*;
use crate::hitl::click;

const HITL_CHANNEL: &str = "555";
const SANITY_CHANNEL: &str = "556";

#[tokio::test]
async fn a_draft_asking_about_children_is_held_with_hitl_off_and_sent_only_once_approved() {
    let discord = FakeDiscord::start().await;
    let signer = InteractionSigner::generate();
    let mut env = discord.env();
    env.extend([
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
        ("DISCORD_CHANNEL_HITL_FEEDBACK", HITL_CHANNEL.to_string()),
        ("DISCORD_CHANNEL_SANITY_CHECK", SANITY_CHANNEL.to_string()),
        ("DISCORD_DEFAULT_CHANNEL", "900".to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    // The fake model answers "Reply to: <the message>": this draft asks about children.
    let lead = "+13125550881";
    assert_eq!(
        app.post_sms(lead, "Do you have any kids rooms?").await.0,
        200
    );
    let ordinary = "+13125550882";
    assert_eq!(app.post_sms(ordinary, "Is the 2BR free?").await.0, 200);

    wait_until(15, "the SANITY_CHECK alert naming the reason", || async {
        discord.created_in(SANITY_CHANNEL).iter().any(|b| {
            let d = b["embeds"][0]["description"].as_str().unwrap_or("");
            b["embeds"][0]["title"] == "SANITY_CHECK · reply_fair_housing"
                && d.contains(lead)
                && d.contains("familial status")
                && d.contains("held for a person")
        })
    })
    .await;
    wait_until(15, "the held reply with its buttons", || async {
        discord
            .created_in(HITL_CHANNEL)
            .iter()
            .any(|b| b["components"].is_array())
    })
    .await;
    let held = discord
        .created_in(HITL_CHANNEL)
        .into_iter()
        .find(|b| b["components"].is_array())
        .unwrap();
    let description = held["embeds"][0]["description"].as_str().unwrap();
    assert!(
        description.contains("Held because: fair housing"),
        "{description}"
    );
    let approve = held["components"][0]["components"][0]["custom_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(approve.starts_with("hitl:approve:"), "{approve}");

    assert_eq!(
        app.wait_for_sms(ordinary, 1).await.len(),
        1,
        "ordinary drafts go"
    );
    app.wait_settled(lead).await;
    assert!(app.twilio.sent_to(lead).is_empty(), "held, not sent");
    let holds = app.store.holds_of(&LeadId::new(lead)).await.unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].state, "held");

    // A person reads it and approves: sent once, through the outbox.
    let body = click(&approve).to_string();
    let (signature, timestamp) = signer.sign(&body);
    let status = app
        .http
        .post(format!("{}/discord/interactions", app.base_url))
        .header("content-type", "application/json")
        .header("X-Signature-Ed25519", signature)
        .header("X-Signature-Timestamp", timestamp)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let sent = app.wait_for_sms(lead, 1).await;
    assert_eq!(
        sent,
        vec!["Reply to: Do you have any kids rooms?".to_string()]
    );
    app.wait_settled(lead).await;
    assert_eq!(app.twilio.sent_to(lead).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_plain_chain_s_prompt_carries_the_fair_housing_rule() {
    // The brain's prompt: brain::a_tour_the_model_schedules_updates_the_lead_and_posts_the_tour_request_alert.
    let app = spawn_app_with(TestOptions::default()).await;
    let lead = "+13125550883";
    app.post_sms(lead, "Hi, any 1BR?").await;
    app.wait_for_sms(lead, 1).await;
    let requests = app.llm.requests();
    let system = requests
        .last()
        .and_then(|r| r["system"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        system.contains(actors::fair_housing::PROMPT_RULE),
        "the plain chain's prompt: {system}"
    );
    app.stop().await;
}
