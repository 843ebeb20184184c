//! PostgreSQL going away and coming back. Always runs against PostgreSQL
//! (`TEST_DATABASE_URL`, else the local server), through a TCP proxy the test can cut.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lead_agent::dev_sms::new_message_sid;
use lead_agent::store::fresh_postgres_database;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::helpers::*;

/// A loopback TCP forwarder to PostgreSQL that can drop every connection and refuse new
/// ones, like a network partition, then let them through again.
struct CuttableProxy {
    port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (c, l) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let upstream = upstream.clone();
                l.lock().await.push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self { port, cut, links }
    }

    async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn admin_url() -> String {
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
