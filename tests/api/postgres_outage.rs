//! PostgreSQL going away and coming back. Always runs against PostgreSQL
//! (`TEST_DATABASE_URL`, else the local server), through a TCP proxy the test can cut.

use lead_agent::dev_sms::new_message_sid;
use lead_agent::store::fresh_postgres_database;

use crate::helpers::*;

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[tokio::test]
async fn while_postgres_is_unreachable_webhooks_answer_503_and_service_resumes_by_itself() {
    let direct = url::Url::parse(&fresh_postgres_database(&admin_url()).await).unwrap();
    let upstream = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let proxy = CuttableProxy::start(upstream).await;
    let mut via_proxy = direct.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(TestOptions {
        database: Some(via_proxy.to_string()),
        ..TestOptions::default()
    })
    .await;

    let lead = "+13125551201";
    assert_eq!(app.post_sms(lead, "Hi").await.0, 200);
    app.wait_for_sms(lead, 1).await;
    // Cut only once the first reply is recorded as sent (a cut between Twilio's answer and
    // that record leaves the reply in doubt until the outbox sweep: another test's subject).
    app.wait_settled(lead).await;

    proxy.cut().await;
    let sid = new_message_sid();
    let (status, _) = app.post_sms_with_sid(&sid, lead, "anyone there?").await;
    assert_eq!(status, 503, "Twilio must be told to retry");
    let ready = app
        .http
        .get(format!("{}/ready", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    proxy.restore();
    // Twilio's retry of the same message: stored once now, and answered.
    wait_until(15, "the webhook to be accepted again", || async {
        app.post_sms_with_sid(&sid, lead, "anyone there?").await.0 == 200
    })
    .await;
    let sent = app.wait_for_sms(lead, 2).await;
    assert_eq!(sent[1], "Reply to: anyone there?");
    app.wait_settled(lead).await;
    let conv = app.conversation(lead).await;
    assert_eq!(
        conv.len(),
        4,
        "nothing half-stored, nothing doubled: {conv:?}"
    );
}
