//! Failure handling through the real HTTP path: panicking actors, hung model calls, root
//! actors that die in a running app (killed through the app's root supervisor handle, as a
//! crash would), and a real `serve` process whose root supervisor gives up.

use std::sync::Arc;
use std::time::Duration;

use actors::ports::ChatModel;
use actors::testing::FakeModel;
use serde_json::Value;
use sqlx::Connection;

use crate::helpers::*;

#[tokio::test]
async fn a_lead_actor_that_panics_is_restarted_and_the_next_message_is_answered() {
    let model: Arc<dyn ChatModel> = Arc::new(FakeModel::panicking_once_on("boom", "All good"));
    let app = spawn_app_with(TestOptions {
        chat_models: Some(vec![model]),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550501";
    app.post_sms(lead, "boom").await;
    // The handed-back task reaches the restarted actor, which answers.
    assert_eq!(app.wait_for_sms(lead, 1).await, vec!["All good"]);
    app.post_sms(lead, "and now?").await;
    app.wait_for_sms(lead, 2).await;
    assert!(
        app.alert_events()
            .await
            .contains(&"lead_restarted".to_string())
    );
}

#[tokio::test]
async fn a_lead_that_keeps_failing_is_parked_with_an_alert_not_restarted_forever() {
    let model: Arc<dyn ChatModel> = Arc::new(FakeModel::panicking_on("poison", "fine"));
    let app = spawn_app_with(TestOptions {
        chat_models: Some(vec![model]),
        env: vec![("LEAD_RESTART_MAX", "2".into())],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550502";
    app.post_sms(lead, "poison").await;
    wait_until(10, "the lead to be parked", || async {
        app.alert_events()
            .await
            .contains(&"lead_parked".to_string())
    })
    .await;
    let restarts = app
        .alert_events()
        .await
        .iter()
        .filter(|e| *e == "lead_restarted")
        .count();
    assert_eq!(restarts, 2);
    let status = app.get_json("/ops/status").await;
    // The park is in the store (every worker's view), with its reason.
    assert_eq!(status["parked"][0]["lead"], lead);
    assert_eq!(status["parked"][0]["reason"], "restarts");
    // Other leads are unaffected.
    app.post_sms("+13125550503", "hello").await;
    assert_eq!(app.wait_for_sms("+13125550503", 1).await, vec!["fine"]);
    assert!(app.twilio.sent_to(lead).is_empty());
}

#[tokio::test]
async fn a_hung_model_call_does_not_hold_the_pool_and_the_lead_gets_the_fallback() {
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("LLM_CONCURRENCY", "1".into()),
            ("LLM_SOFT_TIMEOUT_SECS", "1".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let stuck = "+13125550601";
    app.post_sms(stuck, "HANG please").await;
    wait_until(5, "the hung call", || async {
        !app.llm.requests().is_empty()
    })
    .await;
    let others: Vec<String> = (0..3).map(|i| format!("+1312555070{i}")).collect();
    for o in &others {
        app.post_sms(o, "hello").await;
    }
    // With a cap of 1, the others are answered only because the hung call was cut.
    for o in &others {
        assert_eq!(app.wait_for_sms(o, 1).await, vec!["Reply to: hello"]);
    }
    let reply = app.wait_for_sms(stuck, 1).await;
    assert!(
        !reply[0].starts_with("Reply to:"),
        "the rules responder answered: {reply:?}"
    );
    app.wait_settled(stuck).await;
    let conv = app.conversation(stuck).await;
    assert_eq!(conv[1].provider.as_deref(), Some("rules"));
    assert!(
        app.alert_events()
            .await
            .contains(&"model_fallback".to_string())
    );
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn an_overloaded_model_falls_back_to_the_rules_responder() {
    let app = spawn_app().await;
    let lead = "+13125550801";
    app.post_sms(lead, "OVERLOAD hi").await;
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    assert_eq!(conv[1].provider.as_deref(), Some("rules"));
    assert_eq!(app.twilio.sent_to(lead).len(), 1);
}

// ------------------------------------------------------------ root supervision ---------- //

/// Makes the store refuse (or accept again) the scheduler's job registration, which every
/// scheduler start writes: a dependency refusing the child, on either engine.
async fn refuse_scheduler_start(database_url: &str, refuse: bool) {
    let sql: &[&'static str] = match (database_url.starts_with("postgres"), refuse) {
        (false, true) => &[
            "CREATE TRIGGER refuse_scheduler BEFORE INSERT ON scheduled_jobs \
             BEGIN SELECT RAISE(ABORT, 'the test refuses the scheduler'); END",
        ],
        (false, false) => &["DROP TRIGGER refuse_scheduler"],
        (true, true) => &[
            "CREATE FUNCTION refuse_scheduler() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'the test refuses the scheduler'; END $$",
            "CREATE TRIGGER refuse_scheduler BEFORE INSERT ON scheduled_jobs \
             FOR EACH ROW EXECUTE FUNCTION refuse_scheduler()",
        ],
        (true, false) => &["DROP TRIGGER refuse_scheduler ON scheduled_jobs"],
    };
    if database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
        for q in sql {
            sqlx::raw_sql(*q).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await.unwrap();
        for q in sql {
            sqlx::raw_sql(*q).execute(&mut conn).await.unwrap();
        }
    }
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let resp = app
        .http
        .get(format!("{}/ready", app.base_url))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn alerts_named<'a>(alerts: &'a [Value], event: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["event"] == event).collect()
}

#[tokio::test]
async fn a_lead_supervisor_killed_mid_turn_is_restarted_alerted_and_the_lead_answered_once() {
    let app = spawn_app_with(TestOptions {
        llm_latency: Duration::from_millis(700),
        ..TestOptions::default()
    })
    .await;
    // On RabbitMQ the consumer connects in the background: ready within the bound.
    wait_until(15, "/ready before the fault", || async {
        ready(&app).await.0 == 200
    })
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actors"]["lead_supervisor"], "up");
    let before = "+13125550911";
    assert_eq!(app.post_sms(before, "hello").await.0, 200);
    assert_eq!(app.wait_for_sms(before, 1).await.len(), 1);

    let lead = "+13125550912";
    assert_eq!(app.post_sms(lead, "is the 2BR free?").await.0, 200);
    wait_until(5, "the lead's model call", || async {
        app.llm
            .requests()
            .iter()
            .any(|r| r.to_string().contains("is the 2BR free?"))
    })
    .await;
    assert!(app.twilio.sent_to(lead).is_empty(), "killed mid-turn");
    let killed = app.roots.child("lead_supervisor").expect("it runs");
    killed.kill();
    wait_until(10, "the restart alert", || async {
        !alerts_named(&app.alerts().await, "root_child_restarted").is_empty()
    })
    .await;
    let alerts = app.alerts().await;
    let restarted = alerts_named(&alerts, "root_child_restarted");
    assert_eq!(restarted[0]["kind"], "error");
    assert!(
        restarted[0]["text"]
            .as_str()
            .unwrap()
            .contains("lead_supervisor"),
        "{}",
        restarted[0]
    );
    assert_ne!(
        app.roots.child("lead_supervisor").unwrap().get_id(),
        killed.get_id()
    );

    // The task the dead tree held was handed back and the new tree answers it, once.
    app.wait_for_sms(lead, 1).await;
    app.wait_settled(lead).await;
    let after = "+13125550913";
    assert_eq!(app.post_sms(after, "hi again").await.0, 200);
    assert_eq!(app.wait_for_sms(after, 1).await.len(), 1);
    assert_eq!(app.twilio.sent_to(lead).len(), 1);
    let replies = app
        .conversation(lead)
        .await
        .into_iter()
        .filter(|m| m.direction == "outbound")
        .count();
    assert_eq!(replies, 1, "one reply committed for the lead");
    wait_until(15, "/ready after the restart", || async {
        ready(&app).await.0 == 200
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_llm_pool_killed_mid_call_is_restarted_alerted_and_the_model_answers_after() {
    let app = spawn_app_with(TestOptions {
        llm_latency: Duration::from_millis(700),
        ..TestOptions::default()
    })
    .await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actors"]["llm_pool"], "up");

    let lead = "+13125550921";
    assert_eq!(app.post_sms(lead, "any studios?").await.0, 200);
    wait_until(5, "the lead's model call", || async {
        app.llm
            .requests()
            .iter()
            .any(|r| r.to_string().contains("any studios?"))
    })
    .await;
    // The call runs in the lead's task, not in the pool's actor: it outlives the actor.
    let killed = app.roots.child("llm_pool").expect("it runs");
    killed.kill();
    wait_until(10, "the restart alert", || async {
        alerts_named(&app.alerts().await, "root_child_restarted")
            .iter()
            .any(|a| a["text"].as_str().unwrap().contains("llm_pool"))
    })
    .await;
    assert_ne!(
        app.roots.child("llm_pool").unwrap().get_id(),
        killed.get_id()
    );
    app.wait_for_sms(lead, 1).await;
    app.wait_settled(lead).await;
    assert_eq!(app.twilio.sent_to(lead).len(), 1, "answered once");

    // The next lead is answered by the model through the new incarnation, not a fallback.
    let asked = app.llm.requests().len();
    let after = "+13125550922";
    assert_eq!(app.post_sms(after, "and a 1BR?").await.0, 200);
    assert_eq!(app.wait_for_sms(after, 1).await.len(), 1);
    assert!(app.llm.requests().len() > asked, "the model was asked");
    wait_until(15, "/ready after the restart", || async {
        let (status, body) = ready(&app).await;
        status == 200 && body["actors"]["llm_pool"] == "up"
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn while_a_root_child_is_down_ready_answers_503_naming_it_and_200_once_it_is_back() {
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("ROOT_RESTART_MAX", "100".into()),
            ("SCHEDULE_HEARTBEAT", "* * * * * *".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    // On RabbitMQ the consumer connects in the background: ready within the bound.
    wait_until(15, "/ready before the fault", || async {
        ready(&app).await.0 == 200
    })
    .await;
    // The scheduler dies while its store refuses it: every restart attempt fails until the
    // store takes it again.
    refuse_scheduler_start(&app.database_url, true).await;
    app.roots.child("scheduler").expect("it runs").kill();
    wait_until(10, "/ready to name the scheduler", || async {
        let (status, body) = ready(&app).await;
        status == 503 && body["actors_down"] == serde_json::json!(["scheduler"])
    })
    .await;
    let (_, body) = ready(&app).await;
    let said = body["actors"]["scheduler"].as_str().unwrap().to_string();
    assert!(said.starts_with("down: "), "{said}");
    assert_eq!(body["actors"]["alert_router"], "up");
    wait_until(10, "a failed restart's alert", || async {
        !alerts_named(&app.alerts().await, "root_child_start_failed").is_empty()
    })
    .await;

    // Webhooks are answered while the scheduler is down.
    let lead = "+13125550921";
    assert_eq!(app.post_sms(lead, "hello?").await.0, 200);
    assert_eq!(app.wait_for_sms(lead, 1).await.len(), 1);

    refuse_scheduler_start(&app.database_url, false).await;
    wait_until(15, "/ready 200 again", || async {
        ready(&app).await.0 == 200
    })
    .await;
    assert_eq!(ready(&app).await.1["actors"]["scheduler"], "up");
    wait_until(5, "the restart alert", || async {
        alerts_named(&app.alerts().await, "root_child_restarted")
            .iter()
            .any(|a| a["text"].as_str().unwrap().contains("scheduler"))
    })
    .await;
    // The restarted scheduler runs its jobs: a heartbeat tick claimed after it came back.
    let back = chrono::Utc::now();
    wait_until(10, "a tick of the restarted scheduler", || async {
        app.store
            .job_ticks("heartbeat")
            .await
            .unwrap()
            .iter()
            .any(|t| t.claimed_at > back)
    })
    .await;
    let lead = "+13125550922";
    assert_eq!(app.post_sms(lead, "still there?").await.0, 200);
    assert_eq!(app.wait_for_sms(lead, 1).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn alerts_raised_while_the_alert_router_restarts_reach_ops_alerts_and_webhooks_are_answered()
{
    let app = spawn_app().await;
    app.roots.child("alert_router").expect("it runs").kill();
    app.alerts.raise(actors::alert_router::Alert::error(
        "raised_during_restart",
        "raised while the router was down",
    ));
    let lead = "+13125550931";
    assert_eq!(app.post_sms(lead, "hello").await.0, 200);
    assert_eq!(app.wait_for_sms(lead, 1).await.len(), 1);
    wait_until(10, "the router's restart alert", || async {
        alerts_named(&app.alerts().await, "root_child_restarted")
            .iter()
            .any(|a| a["text"].as_str().unwrap().contains("alert_router"))
    })
    .await;
    assert!(
        app.alert_events()
            .await
            .contains(&"raised_during_restart".to_string())
    );
    wait_until(15, "/ready after the restart", || async {
        ready(&app).await.0 == 200
    })
    .await;
    wait_until(10, "every alert through the new router", || async {
        app.alerts.undelivered() == 0
    })
    .await;
    app.stop().await;
}

/// The process-level promise: a real `lead-agent serve` whose root supervisor gives up
/// exits non-zero (so Kubernetes restarts it). The honest trigger: its store refuses the
/// scheduler's start, every attempt, until the restart budget is spent.
#[tokio::test]
async fn a_serve_process_whose_scheduler_cannot_start_gives_up_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = lead_agent::store::fresh_test_database_url(dir.path()).await;
    // Migrated first, so the refusal is the scheduler's alone.
    lead_agent::store::SqlStore::connect(&database_url)
        .await
        .unwrap();
    refuse_scheduler_start(&database_url, true).await;
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let err_path = dir.path().join("serve.err");
    let err = std::fs::File::create(&err_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", &database_url)
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("OPS_PORT", "0")
        .env("ROOT_RESTART_MAX", "2")
        .env("SHUTDOWN_GRACE_SECS", "2")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("the binary starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "serve did not exit; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(status.code(), Some(1), "stderr: {stderr}\nlog: {log}");
    assert!(
        stderr.contains("the root supervisor gave up: scheduler"),
        "stderr: {stderr}"
    );
    // Each failed attempt was alerted (to the log: no Discord here), then the give-up.
    assert!(log.contains("root_child_start_failed"), "{log}");
    assert!(log.contains("root_gave_up"), "{log}");
    assert!(log.contains("the test refuses the scheduler"), "{log}");
}
