//! The CRM texting log (`FUB_API`): every inbound SMS and every reply sent reaches the fake
//! Follow Up Boss's `POST /v1/textMessages` once, with the right direction and numbers and
//! the registered-system headers, from the scheduler's `crm_text_log` job (never on the
//! reply's path); FUB down → retried with backoff and logged once it is back; no `FUB_API`
//! → nothing is attempted.

use testkit::fake_fub::{FakeFub, LoggedText};

use crate::helpers::{OUR_NUMBER, TestApp, TestOptions, spawn_app_with, wait_until};

const LEAD: &str = "+13125550171";

async fn app_with(fub: &FakeFub, keyed: bool) -> TestApp {
    let mut env = vec![
        ("FUB_API_BASE", fub.url.clone()),
        ("FUB_SYSTEM_KEY", "test-system-key".to_string()),
        // Every second, so the tests wait for runs, not for the default 10 s.
        ("SCHEDULE_CRM_TEXT_LOG", "* * * * * *".to_string()),
    ];
    if keyed {
        env.push(("FUB_API", "test-fub-key".to_string()));
    }
    spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await
}

async fn wait_texts(fub: &FakeFub, n: usize) -> Vec<LoggedText> {
    wait_until(20, &format!("{n} texts at the fake FUB"), || async {
        fub.text_messages().len() >= n
    })
    .await;
    fub.text_messages()
}

async fn job_runs(app: &TestApp) -> i64 {
    app.store
        .scheduled_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.name == "crm_text_log")
        .map(|j| j.runs)
        .unwrap_or(0)
}

/// Waits until the job has run `more` times past now.
async fn wait_runs(app: &TestApp, more: i64) {
    let start = job_runs(app).await;
    wait_until(20, "more crm_text_log runs", || async {
        job_runs(app).await >= start + more
    })
    .await;
}

#[tokio::test]
async fn an_inbound_sms_and_its_reply_each_reach_the_crm_timeline_once() {
    let fub = FakeFub::start(LEAD).await;
    let app = app_with(&fub, true).await;
    app.post_sms(LEAD, "Any 2 bedrooms near the lake?").await;
    let reply = app.wait_for_sms(LEAD, 1).await.remove(0);
    let texts = wait_texts(&fub, 2).await;
    let inbound = texts
        .iter()
        .find(|t| t.body["isIncoming"] == true)
        .expect("the inbound SMS was logged");
    assert_eq!(inbound.body["message"], "Any 2 bedrooms near the lake?");
    assert_eq!(inbound.body["fromNumber"], LEAD);
    assert_eq!(inbound.body["toNumber"], OUR_NUMBER);
    assert_eq!(inbound.body["personId"], 42);
    assert_eq!(inbound.system, "lead-agent");
    assert_eq!(inbound.system_key, "test-system-key");
    assert!(inbound.authorization.starts_with("Basic "));
    let outbound = texts
        .iter()
        .find(|t| t.body["isIncoming"] == false)
        .expect("the reply was logged");
    assert_eq!(outbound.body["message"], reply.as_str());
    assert_eq!(outbound.body["fromNumber"], OUR_NUMBER);
    assert_eq!(outbound.body["toNumber"], LEAD);

    // Later runs log nothing again; the next exchange adds exactly its two texts.
    wait_runs(&app, 2).await;
    assert_eq!(fub.text_messages().len(), 2, "each message once");
    app.post_sms(LEAD, "And a dog?").await;
    app.wait_for_sms(LEAD, 2).await;
    wait_texts(&fub, 4).await;
    wait_runs(&app, 2).await;
    assert_eq!(fub.text_messages().len(), 4);
    let rows = app.store.text_log_rows().await.unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r.state == "logged" && r.attempts == 1),
        "{rows:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn texts_are_logged_once_fub_is_back_after_an_outage() {
    let fub = FakeFub::start(LEAD).await;
    fub.fail_texts(Some(503));
    let app = app_with(&fub, true).await;
    app.post_sms(LEAD, "Is the studio still free?").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(20, "retried attempts against the failing FUB", || async {
        app.store
            .text_log_rows()
            .await
            .unwrap()
            .iter()
            .any(|r| r.state == "retry" && r.attempts >= 2)
    })
    .await;
    assert!(fub.text_messages().is_empty());
    assert!(fub.refused() >= 2);

    fub.fail_texts(None);
    let texts = wait_texts(&fub, 2).await;
    wait_runs(&app, 3).await;
    assert_eq!(fub.text_messages().len(), 2, "logged once each: {texts:?}");
    let rows = app.store.text_log_rows().await.unwrap();
    assert!(rows.iter().all(|r| r.state == "logged"), "{rows:?}");
    app.stop().await;
}

#[tokio::test]
async fn without_fub_api_nothing_is_attempted() {
    let fub = FakeFub::start(LEAD).await;
    let app = app_with(&fub, false).await;
    app.post_sms(LEAD, "Hello").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_runs(&app, 2).await;
    assert!(fub.text_messages().is_empty());
    assert!(fub.requests().is_empty());
    assert!(app.store.text_log_rows().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_refused_text_is_not_retried_and_is_alerted_once() {
    let fub = FakeFub::start(LEAD).await;
    fub.fail_texts(Some(401));
    let app = app_with(&fub, true).await;
    app.post_sms(LEAD, "Hi").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(20, "both texts failed", || async {
        let rows = app.store.text_log_rows().await.unwrap();
        rows.len() == 2 && rows.iter().all(|r| r.state == "failed" && r.attempts == 1)
    })
    .await;
    wait_until(10, "crm_text_log_failed", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "crm_text_log_failed")
    })
    .await;
    let refused = fub.refused();
    wait_runs(&app, 2).await;
    assert_eq!(fub.refused(), refused, "a 401 is not retried");
    let alerts = app.alerts().await;
    let failed: Vec<_> = alerts
        .iter()
        .filter(|a| a["event"] == "crm_text_log_failed")
        .collect();
    assert_eq!(failed.len(), 1, "paced");
    assert_eq!(failed[0]["kind"], "error");
    app.stop().await;
}

/// The typed events carry who the lead is once FUB has said so: the people search of the
/// text log records FUB's person id and name on the lead, and the next turn's
/// `message_received` reaches the fake Discord with the phone, the name and the client id.
#[tokio::test]
async fn once_fub_knows_the_lead_its_events_carry_the_client_id_and_name() {
    const EVENTS: &str = "5151";
    let fub = FakeFub::start(LEAD).await;
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let mut env = discord.env();
    env.extend([
        ("FUB_API", "test-fub-key".to_string()),
        ("FUB_API_BASE", fub.url.clone()),
        ("SCHEDULE_CRM_TEXT_LOG", "* * * * * *".to_string()),
        ("SCHEDULE_HEARTBEAT", "off".to_string()),
        ("DISCORD_CHANNEL_EVENT", EVENTS.to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let lead = actors::ports::LeadId::new(LEAD);
    app.post_sms(LEAD, "Hi").await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(20, "the lead identified from FUB", || async {
        app.store
            .lead_identity(&lead)
            .await
            .unwrap()
            .client_id
            .is_some()
    })
    .await;
    let identity = app.store.lead_identity(&lead).await.unwrap();
    assert_eq!(identity.client_id.as_deref(), Some("42"));
    assert_eq!(
        identity.name.as_deref(),
        Some(testkit::fake_fub::PERSON_NAME)
    );

    // Before: the first message's event had the phone only (nothing was known yet).
    let field = |body: &serde_json::Value, name: &str| {
        body["embeds"][0]["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == name)
            .and_then(|f| f["value"].as_str().map(str::to_string))
    };
    let received = |bodies: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        bodies
            .into_iter()
            .filter(|b| {
                b["embeds"][0]["title"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("message_received"))
            })
            .collect()
    };
    wait_until(
        15,
        "the first message_received at the fake Discord",
        || async { !received(discord.created_in(EVENTS)).is_empty() },
    )
    .await;
    let first = received(discord.created_in(EVENTS)).remove(0);
    assert_eq!(field(&first, "Lead (phone)").as_deref(), Some(LEAD));
    assert_eq!(field(&first, "Client"), None);

    app.post_sms(LEAD, "Is the 2BR still open?").await;
    app.wait_for_sms(LEAD, 2).await;
    wait_until(
        15,
        "the second message_received at the fake Discord",
        || async { received(discord.created_in(EVENTS)).len() >= 2 },
    )
    .await;
    let second = received(discord.created_in(EVENTS)).remove(1);
    assert_eq!(field(&second, "Lead (phone)").as_deref(), Some(LEAD));
    assert_eq!(field(&second, "Client").as_deref(), Some("42"));
    assert_eq!(
        field(&second, "Name").as_deref(),
        Some(testkit::fake_fub::PERSON_NAME)
    );
    app.stop().await;
}
