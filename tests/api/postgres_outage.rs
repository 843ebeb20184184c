//! PostgreSQL going away and coming back, through a TCP proxy the test cuts (the machine's
//! PostgreSQL is never stopped). A correctly signed webhook is answered 200 during the
//! outage — kept by the local journal or by RabbitMQ's inbound queue — and its SMS is
//! answered exactly once after the store returns; only with no durable path at all is it
//! answered 503, counted and alerted. Always on PostgreSQL (`TEST_DATABASE_URL`, else the
//! local server).

use lead_agent::channels::twilio::new_message_sid;
use lead_agent::store::fresh_postgres_database;

use crate::helpers::*;
use crate::rabbitmq::{BROKER_URL, Cleanup, unique_queue};

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh database, and the same URL through a proxy the test can cut.
async fn database_behind_proxy() -> (String, String, CuttableProxy) {
    let direct = url::Url::parse(&fresh_postgres_database(&admin_url()).await).unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::start(upstream).await;
    let mut via_proxy = direct.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    (direct.to_string(), via_proxy.to_string(), proxy)
}

async fn ready(app: &TestApp) -> (u16, serde_json::Value) {
    let resp = app
        .http
        .get(format!("{}/ready", app.base_url))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Posts one message per lead while the store is cut, and Twilio's retry of the first one
/// (a connection-failure retry carries the same MessageSid); every answer must be 200.
async fn post_during_outage(app: &TestApp, leads: &[String]) -> Vec<String> {
    let mut sids = Vec::new();
    for lead in leads {
        let sid = new_message_sid();
        let (status, body) = app.post_sms_with_sid(&sid, lead, "anyone there?").await;
        assert_eq!(
            status, 200,
            "a verified webhook is kept, not refused: {body}"
        );
        sids.push(sid);
    }
    let (status, _) = app
        .post_sms_with_sid(&sids[0], &leads[0], "anyone there?")
        .await;
    assert_eq!(status, 200, "a retry during the outage is kept too");
    sids
}

/// Each lead: exactly one reply at Twilio, and one inbound + one outbound in the store.
async fn assert_each_answered_once(app: &TestApp, leads: &[String]) {
    for lead in leads {
        app.wait_for_sms(lead, 1).await;
        app.wait_settled(lead).await;
    }
    for lead in leads {
        let sent = app.twilio.sent_to(lead);
        assert_eq!(sent, vec!["Reply to: anyone there?".to_string()], "{lead}");
        let conv = app.conversation(lead).await;
        assert_eq!(
            conv.len(),
            2,
            "one message stored once, one reply: {conv:?}"
        );
    }
}

fn leads(base: u32, n: u32) -> Vec<String> {
    (0..n).map(|i| format!("+1312555{:04}", base + i)).collect()
}

#[tokio::test]
async fn while_postgres_is_down_webhooks_are_kept_in_the_journal_and_answered_once_after() {
    let (_direct, via_proxy, proxy) = database_behind_proxy().await;
    let app = spawn_app_with(TestOptions {
        database: Some(via_proxy),
        no_broker: true,
        ..TestOptions::default()
    })
    .await;
    let kept_before = app
        .metric(r#"lead_agent_inbound_fallback_total{path="journal"}"#)
        .await;

    proxy.cut().await;
    let leads = leads(1201, 4);
    post_during_outage(&app, &leads).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "still takes webhooks durably: {body}");
    assert_eq!(body["inbound"], "fallback: journal", "{body}");
    assert!(app.twilio.sent().is_empty(), "nothing can be answered yet");
    assert!(
        app.metric(r#"lead_agent_inbound_fallback_total{path="journal"}"#)
            .await
            >= kept_before + 5.0
    );

    // Survived is not silent: the outage is alerted by its cause, once, and its end too.
    wait_until(
        15,
        "the store_unavailable alert naming the fallback",
        || async {
            let alerts = app.alerts().await;
            alerts
                .iter()
                .filter(|a| a["event"] == "store_unavailable")
                .count()
                == 1
                && alerts.iter().any(|a| {
                    a["event"] == "store_unavailable"
                        && a["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("journal fallback"))
                })
        },
    )
    .await;

    proxy.restore();
    assert_each_answered_once(&app, &leads).await;
    wait_until(15, "the store_recovered alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "store_recovered")
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn while_postgres_is_down_webhooks_are_kept_by_rabbitmq_and_answered_once_after() {
    let (_direct, via_proxy, proxy) = database_behind_proxy().await;
    let queue = unique_queue("pg-outage");
    let _cleanup = Cleanup(queue.clone());
    let app = spawn_app_with(TestOptions {
        database: Some(via_proxy),
        env: vec![
            ("AMQP_URL", BROKER_URL.to_string()),
            ("AMQP_QUEUE", queue.clone()),
            ("INBOUND_JOURNAL_PATH", "off".to_string()),
        ],
        ..TestOptions::default()
    })
    .await;

    proxy.cut().await;
    let leads = leads(1301, 4);
    post_during_outage(&app, &leads).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["inbound"], "fallback: rabbitmq", "{body}");

    proxy.restore();
    assert_each_answered_once(&app, &leads).await;
    app.stop().await;
}

#[tokio::test]
async fn messages_journalled_before_a_restart_are_replayed_at_start_and_answered_once() {
    let (direct, via_proxy, proxy) = database_behind_proxy().await;
    let journal = tempfile::tempdir().unwrap();
    let journal_path = journal.path().join("inbound.jsonl").display().to_string();
    let app = spawn_app_with(TestOptions {
        database: Some(via_proxy),
        no_broker: true,
        env: vec![("INBOUND_JOURNAL_PATH", journal_path.clone())],
        ..TestOptions::default()
    })
    .await;
    proxy.cut().await;
    let leads = leads(1401, 3);
    post_during_outage(&app, &leads).await;
    // The process goes away before the store comes back (a deploy, a crash).
    app.stop().await;
    drop(proxy);

    let app = spawn_app_with(TestOptions {
        database: Some(direct),
        no_broker: true,
        env: vec![("INBOUND_JOURNAL_PATH", journal_path.clone())],
        ..TestOptions::default()
    })
    .await;
    assert_each_answered_once(&app, &leads).await;
    let left = std::fs::read_dir(journal.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        .count();
    assert_eq!(left, 0, "a replayed journal is emptied");
    app.stop().await;
}

#[tokio::test]
async fn with_no_durable_path_a_webhook_is_answered_503_counted_and_alerted() {
    let (_direct, via_proxy, proxy) = database_behind_proxy().await;
    let app = spawn_app_with(TestOptions {
        database: Some(via_proxy),
        no_broker: true,
        env: vec![("INBOUND_JOURNAL_PATH", "off".to_string())],
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125551501";
    assert_eq!(app.post_sms(lead, "Hi").await.0, 200);
    app.wait_settled(lead).await;
    let refused_before = app.metric("lead_agent_webhooks_unavailable_total").await;

    proxy.cut().await;
    let sid = new_message_sid();
    let (status, _) = app.post_sms_with_sid(&sid, lead, "anyone there?").await;
    assert_eq!(status, 503);
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["inbound"], "unavailable", "{body}");
    assert!(app.metric("lead_agent_webhooks_unavailable_total").await >= refused_before + 1.0);
    wait_until(15, "the inbound_unavailable alert", || async {
        app.alerts().await.iter().any(|a| {
            a["event"] == "inbound_unavailable"
                && a["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("no fallback"))
        })
    })
    .await;

    proxy.restore();
    // A retry by hand (Twilio would not retry a 5xx by default): stored once, answered.
    wait_until(15, "the webhook to be accepted again", || async {
        app.post_sms_with_sid(&sid, lead, "anyone there?").await.0 == 200
    })
    .await;
    let sent = app.wait_for_sms(lead, 2).await;
    assert_eq!(sent[1], "Reply to: anyone there?");
    app.wait_settled(lead).await;
    assert_eq!(app.conversation(lead).await.len(), 4);
    app.stop().await;
}
