//! HITL_ENABLED: replies are held and posted to Discord with buttons; a correctly signed
//! interaction decides; a bad signature changes nothing; an unanswered hold is escalated.

use actors::ports::LeadId;
use lead_agent::config::Settings;
use serde_json::{Value, json};

use crate::fake_discord::{FakeDiscord, InteractionSigner};
use crate::helpers::*;

const HITL_CHANNEL: &str = "555";
const LEAD: &str = "+13125550177";

struct Hitl {
    app: TestApp,
    discord: FakeDiscord,
    signer: InteractionSigner,
}

async fn hitl_app(extra: Vec<(&'static str, String)>) -> Hitl {
    let discord = FakeDiscord::start().await;
    let signer = InteractionSigner::generate();
    let mut env = discord.env();
    env.extend([
        ("HITL_ENABLED", "true".to_string()),
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
        ("DISCORD_CHANNEL_HITL_FEEDBACK", HITL_CHANNEL.to_string()),
        ("DISCORD_DEFAULT_CHANNEL", "900".to_string()),
    ]);
    env.extend(extra);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    Hitl {
        app,
        discord,
        signer,
    }
}

impl Hitl {
    /// Texts the lead and waits for the held reply's message in the HITL channel; returns
    /// the `custom_id`s of its buttons (approve, edit, reject).
    async fn held_reply(&self, text: &str) -> Vec<String> {
        let (status, _) = self.app.post_sms(LEAD, text).await;
        assert_eq!(status, 200);
        wait_until(15, "the held reply in the HITL channel", || async {
            self.discord
                .created_in(HITL_CHANNEL)
                .iter()
                .any(|b| b["components"].is_array())
        })
        .await;
        let body = self
            .discord
            .created_in(HITL_CHANNEL)
            .into_iter()
            .find(|b| b["components"].is_array())
            .unwrap();
        let description = body["embeds"][0]["description"].as_str().unwrap();
        assert!(description.contains(text), "{description}");
        assert!(
            description.contains(&format!("Reply to: {text}")),
            "the draft: {description}"
        );
        body["components"][0]["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["custom_id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn post_interaction(
        &self,
        body: &Value,
        signature: Option<(String, String)>,
    ) -> (u16, Value) {
        let text = body.to_string();
        let mut req = self
            .app
            .http
            .post(format!("{}/discord/interactions", self.app.base_url))
            .header("content-type", "application/json")
            .body(text.clone());
        if let Some((sig, ts)) = signature {
            req = req
                .header("X-Signature-Ed25519", sig)
                .header("X-Signature-Timestamp", ts);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    async fn signed(&self, body: &Value) -> (u16, Value) {
        let sig = self.signer.sign(&body.to_string());
        self.post_interaction(body, Some(sig)).await
    }

    async fn hold_states(&self) -> Vec<String> {
        self.app
            .store
            .holds_of(&LeadId::new(LEAD))
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.state)
            .collect()
    }
}

pub(crate) fn click(custom_id: &str) -> Value {
    json!({
        "type": 3, "id": "1", "application_id": "2", "token": "tok", "version": 1,
        "member": {"user": {"id": "3", "username": "operator"}},
        "data": {"custom_id": custom_id, "component_type": 2}
    })
}

#[tokio::test]
async fn a_held_reply_is_sent_once_when_approved_by_a_correctly_signed_interaction() {
    let h = hitl_app(vec![]).await;
    let (status, pong) = h.signed(&json!({"type": 1})).await;
    assert_eq!(
        (status, pong),
        (200, json!({"type": 1})),
        "PING is answered"
    );

    let buttons = h.held_reply("Is the 2BR still free?").await;
    assert!(buttons[0].starts_with("hitl:approve:"));
    assert!(h.app.twilio.sent_to(LEAD).is_empty(), "held, not sent");
    let conversation = h.app.conversation(LEAD).await;
    assert_eq!(conversation.len(), 1, "no outbound row while held");
    assert_eq!(conversation[0].state, "answered");
    assert_eq!(h.hold_states().await, vec!["held"]);

    let (status, answer) = h.signed(&click(&buttons[0])).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 7, "the message is updated");
    assert_eq!(answer["data"]["components"], json!([]), "buttons removed");
    let sent = h.app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Reply to: Is the 2BR still free?".to_string()]);

    // A second click decides nothing and sends nothing.
    let (status, answer) = h.signed(&click(&buttons[0])).await;
    assert_eq!(status, 200);
    assert_eq!(answer["data"]["flags"], 64, "ephemeral");
    h.app.wait_settled(LEAD).await;
    assert_eq!(h.app.twilio.sent_to(LEAD).len(), 1);
    assert_eq!(h.hold_states().await, vec!["approved"]);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_401_and_nothing_is_sent() {
    let h = hitl_app(vec![]).await;
    let buttons = h.held_reply("hello?").await;
    let approve = click(&buttons[0]);

    let stranger = InteractionSigner::generate();
    let forged = stranger.sign(&approve.to_string());
    assert_eq!(h.post_interaction(&approve, Some(forged)).await.0, 401);
    assert_eq!(h.post_interaction(&approve, None).await.0, 401);
    // Signed for one body, sent with another.
    let signed_for_reject = h.signer.sign(&click(&buttons[2]).to_string());
    assert_eq!(
        h.post_interaction(&approve, Some(signed_for_reject))
            .await
            .0,
        401
    );
    // A garbage signature header.
    let (_, ts) = h.signer.sign(&approve.to_string());
    assert_eq!(
        h.post_interaction(&approve, Some(("zz".into(), ts)))
            .await
            .0,
        401
    );
    // A PING with a bad signature is refused too (Discord checks this when the URL is saved).
    let bad_ping = stranger.sign(&json!({"type": 1}).to_string());
    assert_eq!(
        h.post_interaction(&json!({"type": 1}), Some(bad_ping))
            .await
            .0,
        401
    );

    assert_eq!(h.hold_states().await, vec!["held"], "nothing decided");
    assert!(h.app.twilio.sent_to(LEAD).is_empty(), "nothing sent");
    assert!(
        h.app
            .conversation(LEAD)
            .await
            .iter()
            .all(|m| m.direction == "inbound")
    );
}

#[tokio::test]
async fn edit_opens_a_modal_and_its_submit_sends_the_edited_text() {
    let h = hitl_app(vec![]).await;
    let buttons = h.held_reply("pets allowed?").await;
    let (status, modal) = h.signed(&click(&buttons[1])).await;
    assert_eq!(status, 200);
    assert_eq!(modal["type"], 9);
    let input = &modal["data"]["components"][0]["components"][0];
    assert_eq!(input["value"], "Reply to: pets allowed?");
    let submit = json!({
        "type": 5, "id": "1", "application_id": "2", "token": "tok", "version": 1,
        "member": {"user": {"id": "3", "username": "operator"}},
        "data": {
            "custom_id": modal["data"]["custom_id"],
            "components": [{"type": 1, "components": [
                {"type": 4, "custom_id": input["custom_id"], "value": "Cats yes, dogs under 25 lb."}
            ]}]
        }
    });
    let (status, answer) = h.signed(&submit).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 7);
    assert_eq!(
        h.app.wait_for_sms(LEAD, 1).await,
        vec!["Cats yes, dogs under 25 lb.".to_string()]
    );
}

#[tokio::test]
async fn reject_sends_nothing_and_raises_an_alert() {
    let h = hitl_app(vec![]).await;
    let buttons = h.held_reply("what's the rent?").await;
    let (status, answer) = h.signed(&click(&buttons[2])).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 7);
    assert_eq!(h.hold_states().await, vec!["rejected"]);
    wait_until(10, "the rejection alert", || async {
        h.app
            .alert_events()
            .await
            .contains(&"reply_rejected".to_string())
    })
    .await;
    assert!(h.app.twilio.sent_to(LEAD).is_empty());
    assert!(
        h.app
            .conversation(LEAD)
            .await
            .iter()
            .all(|m| m.direction == "inbound")
    );
}

#[tokio::test]
async fn an_unanswered_hold_is_escalated_once_with_an_alert_and_a_holding_message() {
    let h = hitl_app(vec![("HITL_HOLD_TIMEOUT_SECS", "1".to_string())]).await;
    let buttons = h.held_reply("anyone there?").await;
    let holding = Settings::from_map(&Default::default())
        .unwrap()
        .hitl
        .holding_message;
    let sent = h.app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec![holding.clone()], "the neutral holding message");
    wait_until(10, "the escalation alert in Discord", || async {
        h.discord.created_in("900").iter().any(|b| {
            b["embeds"][0]["title"] == "ERROR · hitl_hold_expired"
                && b["embeds"][0]["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Reply to: anyone there?"))
        })
    })
    .await;
    assert_eq!(
        h.hold_states().await,
        vec!["held"],
        "still held for a person"
    );

    // Later passes escalate nothing again.
    let again = lead_agent::hitl::escalate_expired_holds(
        &h.app.store,
        &h.app.alerts,
        &lead_agent::queue::InProcessQueue::default(),
        &Settings::from_map(&Default::default()).unwrap().hitl,
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    assert_eq!(again, 0);
    h.app.wait_settled(LEAD).await;
    assert_eq!(h.app.twilio.sent_to(LEAD), vec![holding.clone()]);

    // A person can still approve; the real reply follows the holding message.
    let (status, _) = h.signed(&click(&buttons[0])).await;
    assert_eq!(status, 200);
    let sent = h.app.wait_for_sms(LEAD, 2).await;
    assert_eq!(sent, vec![holding, "Reply to: anyone there?".to_string()]);
}

#[tokio::test]
async fn an_approved_reply_to_a_lead_who_texted_stop_meanwhile_is_suppressed() {
    let h = hitl_app(vec![]).await;
    let buttons = h.held_reply("tell me more").await;
    assert_eq!(h.app.post_sms(LEAD, "STOP").await.0, 200);
    let (status, _) = h.signed(&click(&buttons[0])).await;
    assert_eq!(status, 200);
    wait_until(15, "the approved reply to be suppressed", || async {
        h.app
            .conversation(LEAD)
            .await
            .iter()
            .any(|m| m.direction == "outbound" && m.state == "suppressed")
    })
    .await;
    assert!(h.app.twilio.sent_to(LEAD).is_empty(), "the opt-out wins");
}

#[tokio::test]
async fn the_feedback_form_link_is_on_the_held_reply_and_its_escalation_only() {
    let form = "https://forms.example.com/agent-feedback";
    let h = hitl_app(vec![
        ("HITL_HOLD_TIMEOUT_SECS", "1".to_string()),
        ("FEEDBACK_FORM_URL", form.to_string()),
    ])
    .await;
    h.held_reply("is it still available?").await;
    let feedback = format!("Feedback: {form}");
    let held = h
        .discord
        .created_in(HITL_CHANNEL)
        .into_iter()
        .find(|b| b["components"].is_array())
        .unwrap();
    assert!(
        held["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .ends_with(&feedback),
        "{held}"
    );
    wait_until(10, "the escalation with the link", || async {
        h.discord.created_in("900").iter().any(|b| {
            b["embeds"][0]["title"] == "ERROR · hitl_hold_expired"
                && b["embeds"][0]["description"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(&feedback))
        })
    })
    .await;
    let others: Vec<Value> = h
        .discord
        .created_in("900")
        .into_iter()
        .filter(|b| b["embeds"][0]["title"] != "ERROR · hitl_hold_expired")
        .collect();
    assert!(!others.is_empty());
    assert!(
        others.iter().all(|b| !b.to_string().contains(form)),
        "{others:?}"
    );
}
