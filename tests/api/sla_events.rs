//! SLAs that open and close by themselves, end to end: a lead asking for a tour opens the
//! showing SLA with its Asana task and the brain booking the tour resolves it; documents
//! posted to /ops open the doc review, whose complete review opens the application
//! decision; a move-in date reached opens the invoice from the running scheduler; and the
//! sweep's nags comment on the task each SLA was given.

use actors::brain::context::{LeadContext, LeadContextStore, Requirements};
use actors::ports::LeadId;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;
use testkit::fake_asana::FakeAsana;

const LEAD: &str = "+13125550161";
const PROJECT: &str = "1201000000001";
const SECTION: &str = "1201000000002";

fn asana_env(asana: &FakeAsana) -> Vec<(&'static str, String)> {
    vec![
        ("ASANA_ACCESS_TOKEN", "asana-test-pat".into()),
        ("ASANA_API_BASE", asana.url.clone()),
        ("ASANA_PROJECT_GID", PROJECT.into()),
        ("ASANA_SECTION_GID", SECTION.into()),
        ("OWNER_TZ", "UTC".into()),
    ]
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
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

async fn open_sla(app: &TestApp, kind: &str) -> Option<Value> {
    app.get_json("/ops/sla").await["open"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["lead"] == LEAD && s["kind"] == kind)
        .cloned()
}

#[tokio::test]
async fn a_tour_request_opens_the_showing_sla_with_an_asana_task_and_booking_resolves_it() {
    let asana = FakeAsana::start().await;
    let anthropic = FakeProvider::anthropic().await;
    anthropic.script(vec![
        Canned::ok(anthropic_text("Sure! Which day works for you?")),
        Canned::ok(anthropic_tool_use(
            "toolu_01B",
            "schedule_tour",
            json!({"building": "lakeview-lofts", "when": "2026-12-05T11:00"}),
        )),
        Canned::ok(anthropic_text("Tour requested for Saturday at 11.")),
    ]);
    let mut env = asana_env(&asana);
    env.extend([
        ("USE_AGENT_CORE", "true".to_string()),
        ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
        ("ANTHROPIC_MODEL", "claude-test".to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;

    app.post_sms(LEAD, "Hi, can I tour one of your apartments?")
        .await;
    app.wait_for_sms(LEAD, 1).await;
    wait_until(10, "the showing task at Asana", || async {
        !asana.tasks().is_empty()
    })
    .await;
    let task = asana.tasks()[0].clone();
    assert_eq!(task.auth, "Bearer asana-test-pat");
    assert_eq!(task.name(), format!("Showing schedule: {LEAD}"));
    assert_eq!(task.body["data"]["projects"], json!([PROJECT]));
    assert_eq!(
        task.body["data"]["memberships"],
        json!([{"project": PROJECT, "section": SECTION}])
    );
    assert!(
        task.body["data"]["notes"]
            .as_str()
            .unwrap()
            .contains("asked for a tour"),
        "{task:?}"
    );
    wait_until(10, "the task gid stored on the SLA", || async {
        open_sla(&app, "showing_schedule")
            .await
            .is_some_and(|s| s["ticket_id"] == task.gid)
    })
    .await;
    wait_until(10, "the showing_requested alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "showing_requested")
    })
    .await;

    // The sweep's gentle nag (24 h of 48) is a comment on that task.
    let r = app
        .sla
        .run_sla_sweep(Utc::now() + Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(r.ticket_comments, 1, "{r:?}");
    let stories = asana.stories();
    assert_eq!(stories[0].0, task.gid);
    assert!(stories[0].2.starts_with("Reminder: showing schedule"));

    // Asking again (a second message about touring) opens nothing new.
    app.post_sms(LEAD, "Saturday at 11 at Lakeview, can I see it then?")
        .await;
    app.wait_for_sms(LEAD, 2).await;
    wait_until(10, "the booked tour resolving the showing SLA", || async {
        open_sla(&app, "showing_schedule").await.is_none()
    })
    .await;
    assert_eq!(asana.tasks().len(), 1, "one task per SLA");
    app.stop().await;
}

#[tokio::test]
async fn documents_open_the_doc_review_and_a_complete_review_opens_the_application_decision() {
    let asana = FakeAsana::start().await;
    let app = spawn_app_with(TestOptions {
        env: asana_env(&asana),
        ..TestOptions::default()
    })
    .await;
    let docs = format!("/ops/leads/{LEAD}/documents");
    let (status, v) = post_json(&app, &docs, json!({"note": "pay stubs and ID"})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["sla"]["kind"], "doc_review");
    let tasks = asana.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(v["sla"]["ticket_id"], tasks[0].gid.as_str());
    assert_eq!(tasks[0].name(), format!("Doc review: {LEAD}"));
    assert!(
        tasks[0].body["data"]["notes"]
            .as_str()
            .unwrap()
            .contains("pay stubs and ID")
    );
    let (status, v) = post_json(&app, &docs, json!({})).await;
    assert_eq!(status, 200, "documents again: the same open review, {v}");
    assert_eq!(asana.tasks().len(), 1);

    let review = format!("/ops/leads/{LEAD}/documents/review");
    let (status, v) = post_json(&app, &review, json!({"complete": true})).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["doc_review"]["resolved_at"].is_string(), "{v}");
    assert_eq!(v["application_decision"]["kind"], "application_decision");
    let tasks = asana.tasks();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[1].name(), format!("Application decision: {LEAD}"));
    assert_eq!(
        v["application_decision"]["ticket_id"],
        tasks[1].gid.as_str()
    );
    assert!(open_sla(&app, "doc_review").await.is_none());

    // Its gentle nag (24 h of 48) comments on the decision's task.
    let r = app
        .sla
        .run_sla_sweep(Utc::now() + Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(r.ticket_comments, 1, "{r:?}");
    assert_eq!(asana.stories()[0].0, tasks[1].gid);
    assert!(
        asana.stories()[0]
            .2
            .starts_with("Reminder: application decision")
    );

    // An SLA an operator opens by hand without a ticket gets its task too.
    let (status, v) = post_json(
        &app,
        &format!("/ops/leads/{LEAD}/sla"),
        json!({"kind": "showing_schedule"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(asana.tasks().len(), 3);
    assert_eq!(v["sla"]["ticket_id"], asana.tasks()[2].gid.as_str());

    // Bad requests: a clear 4xx; no review to resolve: 404.
    let (status, _) = post_json(&app, &review, json!({"done": true})).await;
    assert_eq!(status, 400);
    let (status, _) = post_json(
        &app,
        "/ops/leads/+13125550199/documents/review",
        json!({"complete": false}),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn without_an_asana_token_a_task_is_a_dry_run_id_and_nothing_is_posted() {
    let asana = FakeAsana::start().await;
    let app = spawn_app_with(TestOptions {
        env: vec![("ASANA_API_BASE", asana.url.clone())],
        ..TestOptions::default()
    })
    .await;
    let (status, v) = post_json(&app, &format!("/ops/leads/{LEAD}/documents"), json!({})).await;
    assert_eq!(status, 201, "{v}");
    assert!(
        v["sla"]["ticket_id"]
            .as_str()
            .unwrap()
            .starts_with("dry-run-doc_review-"),
        "{v}"
    );
    let r = app
        .sla
        .run_sla_sweep(Utc::now() + Duration::hours(13))
        .await
        .unwrap();
    assert_eq!((r.staff_nags, r.ticket_comments), (1, 0));
    assert!(asana.tasks().is_empty() && asana.stories().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn the_running_scheduler_opens_the_invoice_when_the_move_in_date_is_reached() {
    let asana = FakeAsana::start().await;
    let mut env = asana_env(&asana);
    env.push(("SCHEDULE_SLA_SWEEP", "* * * * * *".to_string()));
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let moved_in = (Utc::now() - Duration::days(1)).date_naive();
    let later = (Utc::now() + Duration::days(20)).date_naive();
    let other = LeadId::new("+13125550162");
    for (lead, date) in [(LeadId::new(LEAD), moved_in), (other.clone(), later)] {
        app.store
            .save_context(
                &lead,
                &LeadContext {
                    requirements: Requirements {
                        move_in: Some(date.to_string()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    wait_until(30, "the invoice task from the scheduler", || async {
        asana
            .tasks()
            .iter()
            .any(|t| t.name() == format!("Invoice: {LEAD}"))
    })
    .await;
    // The task exists at Asana a moment before its id is stored on the SLA.
    let gid = asana.tasks()[0].gid.clone();
    wait_until(15, "the invoice's task id stored on the SLA", || async {
        open_sla(&app, "invoice")
            .await
            .is_some_and(|s| s["ticket_id"] == gid.as_str())
    })
    .await;
    let sla = open_sla(&app, "invoice").await.expect("invoice open");
    let started: chrono::DateTime<Utc> = sla["started_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(started.date_naive(), moved_in);
    // A few more sweeps: still one invoice, none for the lead who moves in later.
    let runs = || async {
        lead_agent::inspect::fetch_scheduled(&app.ops_url, None)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.name == "sla_sweep")
            .map_or(0, |j| j.runs)
    };
    let seen = runs().await;
    wait_until(30, "two more sweeps", || async { runs().await >= seen + 2 }).await;
    assert_eq!(asana.tasks().len(), 1, "{:?}", asana.tasks());
    app.stop().await;
}

/// The doc review's other door: documents arriving post REQUIREMENTS_NOTE to Discord with
/// two buttons; "Documents complete", pressed (a correctly signed interaction), resolves
/// the review and opens the application decision — the same path as the /ops review; an
/// unsigned press changes nothing.
#[tokio::test]
async fn the_documents_arrived_alert_carries_review_buttons_that_resolve_the_review() {
    const NOTES: &str = "6161";
    let discord = crate::fake_discord::FakeDiscord::start().await;
    let signer = crate::fake_discord::InteractionSigner::generate();
    let mut env = discord.env();
    env.extend([
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
        ("DISCORD_CHANNEL_REQUIREMENTS_NOTE", NOTES.to_string()),
        ("SCHEDULE_HEARTBEAT", "off".to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let docs = format!("/ops/leads/{LEAD}/documents");
    let (status, v) = post_json(&app, &docs, json!({"note": "pay stubs"})).await;
    assert_eq!(status, 201, "{v}");
    wait_until(15, "documents_arrived at the fake Discord", || async {
        !discord.created_in(NOTES).is_empty()
    })
    .await;
    let posted = discord.created_in(NOTES).remove(0);
    let text = posted["embeds"][0]["description"].as_str().unwrap();
    assert!(text.contains("pay stubs"), "{text}");
    let buttons: Vec<String> = posted["components"][0]["components"]
        .as_array()
        .expect("review buttons")
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(buttons.len(), 2, "{buttons:?}");

    let press = |custom_id: &str, signed: bool| {
        let body = crate::hitl::click(custom_id).to_string();
        let mut req = app
            .http
            .post(format!("{}/discord/interactions", app.base_url))
            .header("content-type", "application/json")
            .body(body.clone());
        if signed {
            let (sig, ts) = signer.sign(&body);
            req = req
                .header("X-Signature-Ed25519", sig)
                .header("X-Signature-Timestamp", ts);
        }
        req.send()
    };
    let unsigned = press(&buttons[0], false).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert!(open_sla(&app, "doc_review").await.is_some());

    let answer = press(&buttons[0], true).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["type"], 7, "the message is updated: {answer}");
    assert_eq!(answer["data"]["components"], json!([]));
    assert!(
        answer["data"]["content"]
            .as_str()
            .unwrap()
            .contains("complete"),
        "{answer}"
    );
    assert!(open_sla(&app, "doc_review").await.is_none());
    assert!(open_sla(&app, "application_decision").await.is_some());
    app.stop().await;
}
