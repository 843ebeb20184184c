//! The harness: `spawn_app` starts the real application with both listeners on
//! 127.0.0.1:0 (public: `base_url`, ops: `ops_url`) with a fresh SQLite database and fake
//! Twilio and Anthropic servers on loopback, and returns handles to drive it over HTTP and
//! to observe what a user would see. `/ops` and `/metrics` reads go to the ops listener. The fakes themselves are the
//! shared ones in `tests/support`, re-exported here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actors::ports::{ChatModel, LeadId};
use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;
use lead_agent::config::Settings;
use lead_agent::startup::{Application, Overrides};
use lead_agent::store::{MessageView, SqlStore, fresh_test_database_url};
use serde_json::Value;

pub use crate::support::fake_anthropic::FakeAnthropic;
pub use crate::support::fake_twilio::FakeTwilio;
pub use crate::support::proxy::CuttableProxy;
pub use crate::support::{
    AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL, encode_form, fake_vendor_env, poll_until, scrape_metric,
    sms_params, wait_until,
};

// --------------------------------------------------------------------- the app ---------- //

pub struct TestOptions {
    pub env: Vec<(&'static str, String)>,
    pub chat_models: Option<Vec<Arc<dyn ChatModel>>>,
    pub llm_latency: Duration,
    /// Reuse a database (restart tests): a `DATABASE_URL`.
    pub database: Option<String>,
    /// Leave Twilio and Anthropic unconfigured: the embedded defaults of `serve`.
    pub embedded_defaults: bool,
    /// Keep the in-process queue even in the suite's RabbitMQ pass (`TEST_AMQP_URL`).
    pub no_broker: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            chat_models: None,
            llm_latency: Duration::ZERO,
            database: None,
            embedded_defaults: false,
            no_broker: false,
        }
    }
}

pub struct TestApp {
    /// The public listener: webhooks, /health, /ready.
    pub base_url: String,
    /// The ops listener: /ops, /ops/*, /metrics.
    pub ops_url: String,
    pub store: SqlStore,
    /// The app's alert handle: tests raise alerts through the real router.
    pub alerts: actors::alert_router::AlertHandle,
    pub twilio: FakeTwilio,
    pub llm: FakeAnthropic,
    pub http: reqwest::Client,
    /// The app's SLA engine: tests run its sweep at a time of their choosing.
    pub sla: Arc<lead_agent::sla::SlaEngine>,
    /// The app's shared state: for tests that drive its router directly.
    pub state: lead_agent::http::AppState,
    /// The app's root supervisor: tests kill its children as a crash would.
    pub roots: actors::root::RootHandle,
    pub database_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    _amqp_queue: Option<crate::rabbitmq::Cleanup>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    spawn_app_with_twilio_history(options, &[]).await
}

/// Like [`spawn_app_with`], with messages the fake Twilio already sent before the app starts.
pub async fn spawn_app_with_twilio_history(
    options: TestOptions,
    history: &[(&str, &str)],
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let twilio = FakeTwilio::start().await;
    for (to, body) in history {
        twilio.record_existing(to, body);
    }
    let llm = FakeAnthropic::start(options.llm_latency).await;
    let database_url = match &options.database {
        Some(url) => url.clone(),
        None => fresh_test_database_url(dir.path()).await,
    };
    let mut env: HashMap<&str, String> = HashMap::from([
        ("PORT", "0".to_string()),
        ("BIND_ADDRESS", "127.0.0.1".to_string()),
        ("OPS_PORT", "0".to_string()),
        ("OPS_BIND_ADDRESS", "127.0.0.1".to_string()),
        ("DATABASE_URL", database_url.clone()),
        ("LLM_SOFT_TIMEOUT_SECS", "2".to_string()),
        ("LLM_HARD_TIMEOUT_SECS", "5".to_string()),
        ("LEAD_TURN_TIMEOUT_SECS", "10".to_string()),
        // The federal 08:00-21:00 sending window would make every test of a followup or
        // an SLA update depend on the hour CI runs at; those tests move QUIET_HOURS around
        // now instead, and the tests of the windows themselves set this variable.
        ("SEND_WINDOWS_BY_STATE", "FEDERAL=off".to_string()),
        // Never the working directory's default file: each app its own journal.
        (
            "INBOUND_JOURNAL_PATH",
            dir.path().join("inbound.jsonl").display().to_string(),
        ),
    ]);
    if !options.embedded_defaults {
        env.extend(fake_vendor_env(&twilio, &llm));
    }
    // With TEST_AMQP_URL set (as .ci/run's second pass does), the suite runs through the
    // real broker: each app gets a queue of its own, deleted with the app.
    let mut amqp_queue = None;
    if let (Ok(broker), false) = (
        std::env::var("TEST_AMQP_URL"),
        options.embedded_defaults || options.no_broker,
    ) {
        let queue = crate::rabbitmq::unique_queue("suite");
        env.insert("AMQP_URL", broker);
        env.insert("AMQP_QUEUE", queue.clone());
        amqp_queue = Some(crate::rabbitmq::Cleanup(queue));
    }
    for (k, v) in options.env {
        env.insert(k, v);
    }
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = Settings::from_map(&map).expect("test settings are valid");
    let app = Application::build(
        settings,
        Overrides {
            chat_models: options.chat_models,
        },
    )
    .await
    .expect("the app builds");
    let address = app.local_addr();
    let ops_address = app.ops_addr();
    let store = app.state().store.clone();
    let alerts = app.state().alerts.clone();
    let sla = app.state().sla.clone();
    let state = app.state().clone();
    let roots = app.state().roots.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base_url: format!("http://{address}"),
        ops_url: format!("http://{ops_address}"),
        store,
        alerts,
        twilio,
        llm,
        http: reqwest::Client::new(),
        sla,
        state,
        roots,
        database_url,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
        _amqp_queue: amqp_queue,
    }
}

impl TestApp {
    /// Posts a correctly signed webhook with a fresh MessageSid; returns (status, body).
    pub async fn post_sms(&self, from: &str, body: &str) -> (u16, String) {
        self.post_sms_with_sid(&new_message_sid(), from, body).await
    }

    pub async fn post_sms_with_sid(&self, sid: &str, from: &str, body: &str) -> (u16, String) {
        self.post_signed(&sms_params(sid, from, body)).await
    }

    /// The webhook's form, signed as Twilio signs it.
    async fn post_signed(&self, params: &[(String, String)]) -> (u16, String) {
        let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), params);
        self.post_form(
            &encode_form(params),
            Some(&signature),
            "application/x-www-form-urlencoded",
        )
        .await
    }

    /// An SMS from a probe number: signed, with `LeadAgentSynthetic=1` as the watch and
    /// `verify` send it.
    pub async fn post_synthetic_sms(&self, from: &str, body: &str) -> (u16, String) {
        let mut params = sms_params(&new_message_sid(), from, body);
        params.push(("LeadAgentSynthetic".to_string(), "1".to_string()));
        self.post_signed(&params).await
    }

    pub async fn post_form(
        &self,
        body: &str,
        signature: Option<&str>,
        content_type: &str,
    ) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/twilio/sms", self.base_url))
            .header("content-type", content_type)
            .body(body.to_string());
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        let resp = req.send().await.expect("request reaches the app");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    pub async fn conversation(&self, lead: &str) -> Vec<MessageView> {
        self.store
            .conversation(&LeadId::new(lead), 100_000)
            .await
            .unwrap()
    }

    /// The value of one Prometheus series at the app's `/metrics` (see [`scrape_metric`]).
    /// The recorder is global to the test process, so compare before and after rather
    /// than with an absolute number.
    pub async fn metric(&self, series: &str) -> f64 {
        scrape_metric(&self.http, &self.ops_url, series).await
    }

    /// The listener that serves `path`: the ops one for `/ops…` and `/metrics`, else the
    /// public one.
    pub fn url_for(&self, path: &str) -> String {
        if path.starts_with("/ops") || path.starts_with("/metrics") {
            format!("{}{path}", self.ops_url)
        } else {
            format!("{}{path}", self.base_url)
        }
    }

    /// GETs a path of the app (from the listener that serves it) and decodes its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url_for(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn alerts(&self) -> Vec<Value> {
        self.get_json("/ops/alerts")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn alert_events(&self) -> Vec<String> {
        self.alerts()
            .await
            .iter()
            .filter_map(|a| a["event"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits until `n` SMS have reached the fake Twilio for `lead`.
    pub async fn wait_for_sms(&self, lead: &str, n: usize) -> Vec<String> {
        let what = format!("{n} SMS to {lead}");
        wait_until(15, &what, || async { self.twilio.sent_to(lead).len() >= n }).await;
        self.twilio.sent_to(lead)
    }

    /// Waits until no inbound message of `lead` is pending and no reply is unsent.
    pub async fn wait_settled(&self, lead: &str) {
        let last = std::sync::Mutex::new(Vec::new());
        let settled = poll_until(15, || async {
            let c = self.conversation(lead).await;
            let done = !c.is_empty()
                && c.iter()
                    .all(|m| !matches!(m.state.as_str(), "pending" | "queued" | "sending"));
            *last.lock().unwrap() = c;
            done
        })
        .await;
        // Which message stayed in flight, and in what state: a flake here once said only
        // "timed out".
        let seen: Vec<String> = last
            .lock()
            .unwrap()
            .iter()
            .map(|m| format!("{} {} {:?}", m.direction, m.state, m.body))
            .collect();
        assert!(
            settled,
            "timed out after 15 s waiting for the conversation of {lead} to settle; last seen: {seen:#?}"
        );
    }

    /// Stops the app as SIGTERM would, and waits for its orderly shutdown.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}
