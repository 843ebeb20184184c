//! The harness: `spawn_app` starts the real application on 127.0.0.1:0 with a fresh SQLite
//! database and fake Twilio and Anthropic servers on loopback, and returns handles to
//! drive it over HTTP and to observe what a user would see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::ports::{ChatModel, LeadId};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use lead_agent::channels::twilio::compute_signature;
use lead_agent::config::Settings;
use lead_agent::dev_sms::new_message_sid;
use lead_agent::startup::{Application, Overrides};
use lead_agent::store::{MessageView, SqlStore, fresh_test_database_url};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const AUTH_TOKEN: &str = "test-auth-token";
pub const PUBLIC_URL: &str = "https://leads.example.com";
pub const OUR_NUMBER: &str = "+13125550000";

/// Polls `cond` every 20 ms for up to `secs` seconds (never less than 15: CI shares two
/// cores with whatever else runs, and a bound is a failure detector, not a timing
/// assertion); panics with `what` if it never holds.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let secs = secs.max(15);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------- fake Twilio ---------- //

#[derive(Clone, Debug)]
pub struct SentSms {
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub authorization: String,
}

#[derive(Default)]
pub struct FakeTwilioState {
    sent: Mutex<Vec<SentSms>>,
    /// Statuses to answer with before succeeding (e.g. [429, 503]).
    failures: Mutex<Vec<u16>>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    state: Arc<FakeTwilioState>,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let state = Arc::new(FakeTwilioState::default());
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages).get(twilio_list),
            )
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }
    pub fn sent(&self) -> Vec<SentSms> {
        self.state.sent.lock().unwrap().clone()
    }
    pub fn sent_to(&self, to: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.to == to)
            .map(|s| s.body)
            .collect()
    }
    /// Pretends a message went out earlier (e.g. just before a crash).
    pub fn record_existing(&self, to: &str, body: &str) {
        self.state.sent.lock().unwrap().push(SentSms {
            to: to.into(),
            from: Some(OUR_NUMBER.into()),
            body: body.into(),
            authorization: String::new(),
        });
    }

    pub fn fail_next_with(&self, statuses: &[u16]) {
        *self.state.failures.lock().unwrap() = statuses.to_vec();
    }
}

async fn twilio_messages(
    State(state): State<Arc<FakeTwilioState>>,
    Path(_sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    {
        let mut failures = state.failures.lock().unwrap();
        if !failures.is_empty() {
            let status = failures.remove(0);
            return (
                StatusCode::from_u16(status).unwrap(),
                Json(
                    json!({"code": if status == 429 { 20429 } else { 21211 }, "message": "fake failure", "status": status}),
                ),
            );
        }
    }
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    let sms = SentSms {
        to: form.get("To").cloned().unwrap_or_default(),
        from: form.get("From").cloned(),
        body: form.get("Body").cloned().unwrap_or_default(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let mut sent = state.sent.lock().unwrap();
    sent.push(sms);
    (
        StatusCode::CREATED,
        Json(json!({"sid": format!("SM{:032}", sent.len()), "status": "queued"})),
    )
}

/// Twilio's Messages list, filtered by `To` (one page).
async fn twilio_list(
    State(state): State<Arc<FakeTwilioState>>,
    Path(_sid): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let to = query.get("To").cloned().unwrap_or_default();
    let messages: Vec<Value> = state
        .sent
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.to == to)
        .map(|(i, m)| {
            json!({"sid": format!("SM{:032}", i + 1), "to": m.to, "body": m.body,
                   "direction": "outbound-api", "status": "delivered"})
        })
        .collect();
    Json(json!({"messages": messages, "next_page_uri": null}))
}

fn serde_urlencoded_pairs(body: &str) -> HashMap<String, String> {
    lead_agent::http::twilio::parse_form(body.as_bytes())
        .unwrap()
        .into_iter()
        .collect()
}

// ------------------------------------------------------------- fake Anthropic ---------- //

#[derive(Default)]
pub struct FakeLlmState {
    requests: Mutex<Vec<(HeaderMap, Value)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    per_user: Mutex<HashMap<String, usize>>,
    same_user_overlap: AtomicBool,
    latency_ms: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeAnthropic {
    pub url: String,
    state: Arc<FakeLlmState>,
}

struct InFlight(Arc<FakeLlmState>, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(n) = self.0.per_user.lock().unwrap().get_mut(&self.1) {
            *n -= 1;
        }
    }
}

impl FakeAnthropic {
    pub async fn start(latency: Duration) -> Self {
        let state = Arc::new(FakeLlmState::default());
        state
            .latency_ms
            .store(latency.as_millis() as usize, Ordering::SeqCst);
        let router = Router::new()
            .route("/v1/messages", post(anthropic_messages))
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
    pub fn saw_same_lead_overlap(&self) -> bool {
        self.state.same_user_overlap.load(Ordering::SeqCst)
    }
}

/// Answers "Reply to: <last user message>"; hangs (until the client gives up) when that
/// message contains HANG; answers 529 when it contains OVERLOAD.
async fn anthropic_messages(
    State(state): State<Arc<FakeLlmState>>,
    headers: HeaderMap,
    Json(request): Json<Value>,
) -> impl IntoResponse {
    let user = request["metadata"]["user_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    state
        .requests
        .lock()
        .unwrap()
        .push((headers, request.clone()));
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    {
        let mut per = state.per_user.lock().unwrap();
        let n = per.entry(user.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            state.same_user_overlap.store(true, Ordering::SeqCst);
        }
    }
    let _guard = InFlight(state.clone(), user);
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if last.contains("HANG") {
        std::future::pending::<()>().await;
    }
    let latency = state.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency as u64)).await;
    }
    if last.contains("OVERLOAD") {
        return (
            StatusCode::from_u16(529).unwrap(),
            Json(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        );
    }
    (
        StatusCode::OK,
        Json(json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [{"type": "text", "text": format!("Reply to: {last}")}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 5}
        })),
    )
}

// --------------------------------------------------------------------- the app ---------- //

/// The settings that point the app at the fake Twilio and Anthropic, with webhook
/// signatures checked against [`PUBLIC_URL`].
pub fn fake_vendor_env(twilio: &FakeTwilio, llm: &FakeAnthropic) -> [(&'static str, String); 7] {
    [
        ("PUBLIC_BASE_URL", PUBLIC_URL.to_string()),
        ("TWILIO_ACCOUNT_SID", "ACtest".to_string()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
        ("TWILIO_FROM_NUMBER", OUR_NUMBER.to_string()),
        ("TWILIO_API_BASE", twilio.url.clone()),
        ("ANTHROPIC_API_KEY", "test-anthropic-key".to_string()),
        ("ANTHROPIC_BASE_URL", llm.url.clone()),
    ]
}

pub struct TestOptions {
    pub env: Vec<(&'static str, String)>,
    pub chat_models: Option<Vec<Arc<dyn ChatModel>>>,
    pub llm_latency: Duration,
    /// Reuse a database (restart tests): a `DATABASE_URL`.
    pub database: Option<String>,
    /// Leave Twilio and Anthropic unconfigured: the embedded defaults of `serve`.
    pub embedded_defaults: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            chat_models: None,
            llm_latency: Duration::ZERO,
            database: None,
            embedded_defaults: false,
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    pub store: SqlStore,
    /// The app's alert handle: tests raise alerts through the real router.
    pub alerts: actors::alert_router::AlertHandle,
    pub twilio: FakeTwilio,
    pub llm: FakeAnthropic,
    pub http: reqwest::Client,
    /// The app's SLA engine: tests run its sweep at a time of their choosing.
    pub sla: Arc<lead_agent::sla::SlaEngine>,
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
        ("DATABASE_URL", database_url),
        ("LLM_SOFT_TIMEOUT_SECS", "2".to_string()),
        ("LLM_HARD_TIMEOUT_SECS", "5".to_string()),
        ("LEAD_TURN_TIMEOUT_SECS", "10".to_string()),
    ]);
    if !options.embedded_defaults {
        env.extend(fake_vendor_env(&twilio, &llm));
    }
    // With TEST_AMQP_URL set (as .ci/run's second pass does), the suite runs through the
    // real broker: each app gets a queue of its own, deleted with the app.
    let mut amqp_queue = None;
    if let (Ok(broker), false) = (std::env::var("TEST_AMQP_URL"), options.embedded_defaults) {
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
    let store = app.state().store.clone();
    let alerts = app.state().alerts.clone();
    let sla = app.state().sla.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base_url: format!("http://{address}"),
        store,
        alerts,
        twilio,
        llm,
        http: reqwest::Client::new(),
        sla,
        shutdown: Some(tx),
        server: Some(server),
        _dir: dir,
        _amqp_queue: amqp_queue,
    }
}

/// A form as Twilio sends it for an inbound SMS.
pub fn sms_params(sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("MessageSid", sid),
        ("AccountSid", "ACtest"),
        ("From", from),
        ("To", OUR_NUMBER),
        ("Body", body),
        ("NumSegments", "1"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn encode_form(params: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

impl TestApp {
    /// Posts a correctly signed webhook with a fresh MessageSid; returns (status, body).
    pub async fn post_sms(&self, from: &str, body: &str) -> (u16, String) {
        self.post_sms_with_sid(&new_message_sid(), from, body).await
    }

    pub async fn post_sms_with_sid(&self, sid: &str, from: &str, body: &str) -> (u16, String) {
        let params = sms_params(sid, from, body);
        let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
        self.post_form(
            &encode_form(&params),
            Some(&signature),
            "application/x-www-form-urlencoded",
        )
        .await
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

    /// GETs a path of the app and decodes its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base_url))
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
        wait_until(15, "the conversation to settle", || async {
            let c = self.conversation(lead).await;
            !c.is_empty()
                && c.iter()
                    .all(|m| !matches!(m.state.as_str(), "pending" | "queued" | "sending"))
        })
        .await;
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

// ------------------------------------------------------------ network faults ---------- //

/// A loopback TCP forwarder (to PostgreSQL, RabbitMQ…) that can drop every connection and refuse new
/// ones, like a network partition, then let them through again.
pub struct CuttableProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    links: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
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
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        Self { port, cut, links }
    }

    pub async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
