//! Human takeover (issue 15 item 6) through the real HTTP path: an operator takes a lead
//! over (`/ops`, or the "Take over" button on a HITL alert); the lead's messages then get no
//! AI reply, are stored and forwarded to the HITL channel with a Reply button whose modal
//! sends the operator's text once (fake Twilio); no followup fires while taken; a release
//! hands the next message back to the AI; the running scheduler releases an idle takeover
//! with an alert at the fake Discord; the refusals are 400/404/409.

use serde_json::{Value, json};

use crate::fake_discord::{FakeDiscord, InteractionSigner};
use crate::helpers::*;
use crate::hitl::click;

const HITL_CHANNEL: &str = "556";
const LEAD: &str = "+13125550181";

struct Desk {
    app: TestApp,
    discord: FakeDiscord,
    signer: InteractionSigner,
}

async fn desk(extra: Vec<(&'static str, String)>) -> Desk {
    let discord = FakeDiscord::start().await;
    let signer = InteractionSigner::generate();
    let mut env = discord.env();
    env.extend([
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
        ("DISCORD_CHANNEL_HITL_FEEDBACK", HITL_CHANNEL.to_string()),
        ("DISCORD_DEFAULT_CHANNEL", "901".to_string()),
    ]);
    env.extend(extra);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    Desk {
        app,
        discord,
        signer,
    }
}

async fn post_json(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url_for(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl Desk {
    async fn interaction(&self, body: &Value, signed: bool) -> (u16, Value) {
        let text = body.to_string();
        let mut req = self
            .app
            .http
            .post(format!("{}/discord/interactions", self.app.base_url))
            .header("content-type", "application/json")
            .body(text.clone());
        if signed {
            let (sig, ts) = self.signer.sign(&text);
            req = req
                .header("X-Signature-Ed25519", sig)
                .header("X-Signature-Timestamp", ts);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The HITL channel's messages titled `HITL_FEEDBACK · event`.
    fn hitl_posts(&self, event: &str) -> Vec<Value> {
        let title = format!("HITL_FEEDBACK · {event}");
        self.discord
            .created_in(HITL_CHANNEL)
            .into_iter()
            .filter(|b| b["embeds"][0]["title"] == title.as_str())
            .collect()
    }

    async fn wait_hitl(&self, event: &str, n: usize) -> Vec<Value> {
        wait_until(15, &format!("{n} {event} in the HITL channel"), || async {
            self.hitl_posts(event).len() >= n
        })
        .await;
        self.hitl_posts(event)
    }

    async fn takeovers(&self) -> Vec<Value> {
        self.app
            .get_json("/ops/takeovers")
            .await
            .as_array()
            .cloned()
            .unwrap()
    }
}

fn button_ids(post: &Value) -> Vec<String> {
    post["components"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["custom_id"].as_str().map(str::to_string))
        .collect()
}

fn modal_submit(custom_id: &str, text: &str) -> Value {
    json!({
        "type": 5, "id": "1", "application_id": "2", "token": "tok", "version": 1,
        "member": {"user": {"id": "3", "username": "ana"}},
        "data": {"custom_id": custom_id, "components": [{"type": 1, "components": [
            {"type": 4, "custom_id": "reply", "value": text}]}]}
    })
}

#[tokio::test]
async fn a_taken_lead_gets_no_ai_reply_its_messages_reach_the_operator_whose_reply_goes_once_and_release_hands_back()
 {
    // The response-gap watch every second with a 1 s SLA: a taken lead's unanswered
    // message must not look like a stalled pipeline to it.
    let d = desk(vec![
        ("FIRST_RESPONSE_SLA_SECS", "1".into()),
        ("SCHEDULE_RESPONSE_GAP_WATCH", "* * * * * *".into()),
    ])
    .await;
    let app = &d.app;
    let (status, _) = app.post_sms(LEAD, "Hi, is the 2BR on Lake St free?").await;
    assert_eq!(status, 200);
    let before = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(before.len(), 1, "the AI answers before the takeover");
    app.wait_settled(LEAD).await;

    let path = format!("/ops/leads/{LEAD}/takeover");
    let (status, body) = post_json(app, &path, r#"{"operator": "ana"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["takeover"]["operator"], "ana");
    assert_eq!(body["takeover"]["via"], "ops");
    let (status, body) = post_json(app, &path, r#"{"operator": "bo"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("ana"), "{body}");
    let listed = d.takeovers().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["lead"].as_str(), listed[0]["operator"].as_str()),
        (Some(LEAD), Some("ana"))
    );
    d.wait_hitl("lead_taken_over", 1).await;

    // While taken: stored, forwarded with Reply / Release, not answered by the AI.
    let llm_calls = app.llm.requests().len();
    let (status, _) = app.post_sms(LEAD, "Can I see it Saturday?").await;
    assert_eq!(status, 200);
    let forwarded = d.wait_hitl("takeover_inbound", 1).await;
    let description = forwarded[0]["embeds"][0]["description"].as_str().unwrap();
    assert!(
        description.contains("Can I see it Saturday?"),
        "{description}"
    );
    assert!(description.contains("ana"), "{description}");
    let ids = button_ids(&forwarded[0]);
    assert_eq!(
        ids,
        [
            format!("takeover:reply:{LEAD}"),
            format!("takeover:release:{LEAD}")
        ]
    );
    app.wait_settled(LEAD).await;
    let inbound = app
        .conversation(LEAD)
        .await
        .into_iter()
        .find(|m| m.body == "Can I see it Saturday?")
        .unwrap();
    assert_eq!(inbound.state, "no_reply", "stored, not waiting for the AI");
    assert_eq!(
        app.llm.requests().len(),
        llm_calls,
        "no model call while taken"
    );
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1, "no AI reply while taken");

    // The Reply button opens the reply box; an unsigned submit sends nothing; the signed
    // one sends the operator's text, once.
    let (status, modal) = d.interaction(&click(&ids[0]), true).await;
    assert_eq!(status, 200);
    assert_eq!(modal["type"], 9, "{modal}");
    let submit_id = modal["data"]["custom_id"].as_str().unwrap().to_string();
    assert_eq!(submit_id, format!("takeover:reply_submit:{LEAD}"));
    let submit = modal_submit(&submit_id, "Ana here: yes, Saturday 10am works.");
    let (status, _) = d.interaction(&submit, false).await;
    assert_eq!(status, 401);
    let (status, answer) = d.interaction(&submit, true).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4, "{answer}");
    let sent = app.wait_for_sms(LEAD, 2).await;
    assert_eq!(sent[1], "Ana here: yes, Saturday 10am works.");
    // And from /ops, the same path.
    let (status, body) = post_json(
        app,
        &format!("/ops/leads/{LEAD}/reply"),
        r#"{"operator": "ana", "body": "See you there."}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let sent = app.wait_for_sms(LEAD, 3).await;
    assert_eq!(sent[2], "See you there.");
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 3, "each operator text once");
    let operator_rows = app
        .conversation(LEAD)
        .await
        .into_iter()
        .filter(|m| m.provider.as_deref() == Some("operator"))
        .count();
    assert_eq!(operator_rows, 2);

    // Release: the next message is the AI's again; the one of the takeover stays answered
    // by the operator only.
    let release = format!("/ops/leads/{LEAD}/release");
    let (status, body) = post_json(app, &release, r#"{"operator": "ana"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["released"]["release_reason"], "operator");
    assert_eq!(body["released"]["released_by"], "ana");
    let (status, body) = post_json(app, &release, "{}").await;
    assert_eq!(status, 404, "{body}");
    assert!(d.takeovers().await.is_empty());
    let (status, _) = app
        .post_sms(LEAD, "Great, thanks! Is parking included?")
        .await;
    assert_eq!(status, 200);
    let sent = app.wait_for_sms(LEAD, 4).await;
    assert_eq!(sent.len(), 4);
    app.wait_settled(LEAD).await;
    let conversation = app.conversation(LEAD).await;
    let during = conversation
        .iter()
        .find(|m| m.body == "Can I see it Saturday?")
        .unwrap();
    assert_eq!(during.state, "no_reply", "not answered retroactively");
    let last = conversation.last().unwrap();
    assert_eq!(last.direction, "outbound");
    assert_ne!(
        last.provider.as_deref(),
        Some("operator"),
        "the AI answered"
    );
    assert_eq!(
        app.twilio.sent_to(LEAD).len(),
        4,
        "one AI answer, nothing more"
    );
}

#[tokio::test]
async fn no_followup_fires_while_a_lead_is_taken_over() {
    // A followup ~3.6 s after our reply, a sweep every second, quiet hours elsewhere.
    let d = desk(vec![
        ("OWNER_TZ", "UTC".into()),
        ("SCHEDULE_FOLLOWUP_SWEEP", "* * * * * *".into()),
        ("FOLLOWUP_HOURS", "0.001".into()),
        (
            "QUIET_HOURS",
            crate::scheduler::quiet_window_in(chrono_tz::America::Chicago, 180, 60),
        ),
    ])
    .await;
    let app = &d.app;
    app.post_sms(LEAD, "Hi, any 1BR?").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the followup timer armed by the reply", || async {
        app.store
            .followup_of(&actors::ports::LeadId::new(LEAD))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let (status, body) = post_json(
        app,
        &format!("/ops/leads/{LEAD}/takeover"),
        r#"{"operator": "ana"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The sweep meets the due timer and drops it for the taken lead instead of sending.
    wait_until(20, "the sweep to drop the taken lead's timer", || async {
        app.store
            .followup_of(&actors::ports::LeadId::new(LEAD))
            .await
            .unwrap()
            .is_none()
    })
    .await;
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1, "no followup while taken");
    assert!(
        !app.alert_events()
            .await
            .iter()
            .any(|e| e == "followup_queued"),
        "none queued either"
    );
}

#[tokio::test]
async fn the_take_over_button_on_a_held_reply_takes_the_lead_and_the_running_scheduler_releases_it_when_idle()
 {
    let d = desk(vec![
        ("HITL_ENABLED", "true".into()),
        ("TAKEOVER_IDLE_HOURS", "0.001".into()),
        ("SCHEDULE_TAKEOVER_IDLE_RELEASE", "* * * * * *".into()),
    ])
    .await;
    let app = &d.app;
    app.post_sms(LEAD, "Do you take pets?").await;
    let held = d.wait_hitl("reply_held", 1).await;
    let ids = button_ids(&held[0]);
    let take = format!("takeover:take:{LEAD}");
    assert!(ids.contains(&take), "{ids:?}");
    assert!(
        ids[0].starts_with("hitl:approve:"),
        "decision buttons first: {ids:?}"
    );

    let (status, _) = d.interaction(&click(&take), false).await;
    assert_eq!(status, 401, "unsigned: refused");
    assert!(d.takeovers().await.is_empty(), "and nothing taken");
    let (status, answer) = d.interaction(&click(&take), true).await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4, "{answer}");
    let listed = d.takeovers().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["via"], "discord");
    assert_eq!(listed[0]["operator"], "operator");
    // Pressed again: already taken, an ephemeral answer, nothing changes.
    let (_, again) = d.interaction(&click(&take), true).await;
    assert_eq!(again["data"]["flags"], 64, "{again}");

    // No operator activity for TAKEOVER_IDLE_HOURS (3.6 s): the scheduler releases it.
    let released = d.wait_hitl("takeover_idle_released", 1).await;
    let text = released[0]["embeds"][0]["description"].as_str().unwrap();
    assert!(text.contains(LEAD) && text.contains("operator"), "{text}");
    assert!(d.takeovers().await.is_empty());
    let job = app.get_json("/ops/scheduled").await;
    let runs = job
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "takeover_idle_release")
        .map(|j| j["runs"].as_i64().unwrap_or(0))
        .unwrap_or(0);
    assert!(runs > 0, "released by the scheduler's job: {job}");
    // The release alert offers to take it again.
    assert_eq!(button_ids(&released[0]), [take]);
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_change_nothing() {
    let d = desk(vec![]).await;
    let app = &d.app;
    for action in ["takeover", "release", "reply"] {
        let (status, body) = post_json(
            app,
            &format!("/ops/leads/3125550181/{action}"),
            r#"{"operator": "ana", "body": "x"}"#,
        )
        .await;
        assert_eq!(status, 400, "{action}: {body}");
        assert!(body.as_str().unwrap().contains("E.164"), "{body}");
    }
    let take = format!("/ops/leads/{LEAD}/takeover");
    let (status, body) = post_json(app, &take, r#"{"operator": "ana"}"#).await;
    assert_eq!(status, 404, "never texted us: {body}");
    app.post_sms(LEAD, "hello").await;
    app.wait_for_sms(LEAD, 1).await;
    for bad in [
        "{}",
        r#"{"operator": ""}"#,
        r#"{"operator": 7}"#,
        "not json",
    ] {
        let (status, body) = post_json(app, &take, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = post_json(app, &format!("/ops/leads/{LEAD}/release"), "{}").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not taken over"),
        "{body}"
    );
    let reply = format!("/ops/leads/{LEAD}/reply");
    let (status, body) = post_json(app, &reply, r#"{"operator": "ana", "body": "hi"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("take it over first"),
        "{body}"
    );
    // The ops guard stands in front, as for unpark: a form post and a foreign origin.
    let form = app
        .http
        .post(app.url_for(&take))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("operator=ana")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    let foreign = app
        .http
        .post(app.url_for(&take))
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(r#"{"operator": "ana"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    assert!(d.takeovers().await.is_empty(), "nothing was taken");
    // Taken: an empty reply is refused, nothing queued.
    let (status, _) = post_json(app, &take, r#"{"operator": "ana"}"#).await;
    assert_eq!(status, 200);
    let (status, body) = post_json(app, &reply, r#"{"operator": "ana", "body": "  "}"#).await;
    assert_eq!(status, 400, "{body}");
    // A Reply button for a lead no longer taken answers ephemerally, opening no box.
    post_json(app, &format!("/ops/leads/{LEAD}/release"), "{}").await;
    let (status, answer) = d
        .interaction(&click(&format!("takeover:reply:{LEAD}")), true)
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["type"], 4, "no modal: {answer}");
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1);
}

#[tokio::test]
async fn the_cli_takes_a_lead_over_lists_it_and_releases_it() {
    let app = spawn_app().await;
    app.post_sms(LEAD, "hello").await;
    app.wait_for_sms(LEAD, 1).await;
    // The real binary, talking to the app's ops listener like an operator's terminal.
    let cli = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"));
        command
            .args(args)
            .args(["--url", &app.ops_url])
            .env_remove("OPS_TOKEN");
        async move {
            let out = command.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (ok, out, _) = cli(&["takeovers"]).await;
    assert!(ok && out.contains("no lead is taken over"), "{out}");
    let (ok, out, err) = cli(&["takeover", LEAD, "--operator", "ana"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("taken over by ana"), "{out}");
    let (ok, _, err) = cli(&["takeover", LEAD, "--operator", "bo"]).await;
    assert!(!ok && err.contains("already taken over by ana"), "{err}");
    let (ok, out, err) = cli(&["takeovers"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(LEAD) && out.contains("ana"), "{out}");
    let (ok, out, err) = cli(&["release", LEAD, "--operator", "ana"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("released"), "{out}");
    let (ok, _, err) = cli(&["release", LEAD]).await;
    assert!(!ok && err.contains("not taken over"), "{err}");
}
