//! Split roles as separate processes of the real binary — web, two workers, scheduler — on
//! PostgreSQL and RabbitMQ, with fake Twilio and Anthropic servers in this test process.
//! Workers are killed with SIGKILL or stopped with SIGTERM mid-burst; every lead must end
//! with exactly one reply.

use std::collections::HashMap;
use std::time::Duration;

use actors::ports::LeadId;
use lead_agent::channels::twilio::compute_signature;
use lead_agent::channels::twilio::new_message_sid;
use lead_agent::store::{SqlStore, fresh_postgres_database};

use crate::helpers::*;
use crate::rabbitmq::{BROKER_URL, Cleanup, unique_queue};
use crate::support::processes::Processes;

/// Also the watch tests' service (`watch.rs`): the roles as separate processes.
pub(crate) struct Cluster {
    env: HashMap<&'static str, String>,
    pub(crate) web_url: String,
    processes: Processes,
    pub(crate) twilio: FakeTwilio,
    pub(crate) store: SqlStore,
    pub(crate) http: reqwest::Client,
    _queue: Cleanup,
}

impl Cluster {
    async fn start(test: &str) -> Self {
        Self::start_with_broker(test, BROKER_URL.to_string()).await
    }

    /// Like `start`, with these variables added to every process's environment.
    pub(crate) async fn start_with_env(test: &str, extra: &[(&'static str, String)]) -> Self {
        let mut cluster = Self::prepare(test, BROKER_URL.to_string(), extra.to_vec()).await;
        cluster.spawn_all().await;
        cluster
    }

    /// Web, two workers and a scheduler, in that order.
    async fn spawn_all(&mut self) {
        self.web_url = self.spawn("web", "web").await;
        self.spawn("worker-a", "worker").await;
        self.spawn("worker-b", "worker").await;
        self.spawn("scheduler", "scheduler").await;
    }

    /// Like `start`, with every process reaching RabbitMQ through `broker_url`.
    async fn start_with_broker(test: &str, broker_url: String) -> Self {
        let mut cluster = Self::prepare(test, broker_url, Vec::new()).await;
        cluster.spawn_all().await;
        cluster
    }

    /// The database, queue, fakes and environment of a cluster, with `extra` variables on
    /// top, and no process yet: the caller spawns them in the order its test needs.
    pub(crate) async fn prepare(
        test: &str,
        broker_url: String,
        extra: Vec<(&'static str, String)>,
    ) -> Self {
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let database = fresh_postgres_database(&admin).await;
        let twilio = FakeTwilio::start().await;
        let llm = FakeAnthropic::start(Duration::from_millis(300)).await;
        let queue = unique_queue(test);
        let mut env: HashMap<&'static str, String> = HashMap::from([
            ("BIND_ADDRESS", "127.0.0.1".to_string()),
            ("DATABASE_URL", database.clone()),
            ("AMQP_URL", broker_url),
            ("AMQP_QUEUE", queue.clone()),
            ("LLM_CONCURRENCY", "4".to_string()),
            ("LLM_SOFT_TIMEOUT_SECS", "2".to_string()),
            ("LLM_HARD_TIMEOUT_SECS", "4".to_string()),
            ("LEAD_TURN_TIMEOUT_SECS", "6".to_string()),
            ("OUTBOX_SWEEP_SECS", "1".to_string()),
            // A killed worker's claim is in doubt: checked after 2 s, resent only when two
            // checks 1 s apart find nothing at the fake Twilio (minutes in production).
            ("OUTBOX_IN_DOUBT_WAIT_SECS", "2".to_string()),
            ("OUTBOX_RECHECK_SECS", "1".to_string()),
            ("LOG_FORMAT", "json".to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]);
        env.extend(fake_vendor_env(&twilio, &llm));
        env.extend(extra);
        Self {
            env,
            web_url: String::new(),
            processes: Processes::new(env!("CARGO_BIN_EXE_lead-agent")),
            twilio,
            store: SqlStore::connect(&database).await.unwrap(),
            http: reqwest::Client::new(),
            _queue: Cleanup(queue),
        }
    }

    /// The base URL of `name`'s ops listener (/ops, /metrics).
    pub(crate) fn ops_url(&mut self, name: &str) -> String {
        self.processes.ops_url(name)
    }

    /// Starts one process of the binary and waits until it is ready; returns the base URL
    /// of its public listener.
    pub(crate) async fn spawn(&mut self, name: &'static str, role: &str) -> String {
        let env = self.env.iter().map(|(k, v)| (*k, v.as_str()));
        self.processes
            .start_ready(name, &["serve", "--role", role], env)
            .await
    }

    pub(crate) fn signal(&mut self, name: &'static str, signal: &str) {
        self.processes.signal(name, signal);
    }

    pub(crate) async fn post_sms(&self, from: &str, body: &str) -> u16 {
        self.post_sms_with_sid(&new_message_sid(), from, body).await
    }

    async fn post_sms_with_sid(&self, sid: &str, from: &str, body: &str) -> u16 {
        let params = sms_params(sid, from, body);
        let signature = compute_signature(AUTH_TOKEN, &format!("{PUBLIC_URL}/twilio/sms"), &params);
        self.http
            .post(format!("{}/twilio/sms", self.web_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(encode_form(&params))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// Waits until every lead has a reply at Twilio and nothing is left in flight.
    async fn wait_all_answered(&self, leads: &[String], secs: u64) {
        wait_until(secs, "every lead to be answered", || async {
            leads.iter().all(|l| !self.twilio.sent_to(l).is_empty())
        })
        .await;
        wait_until(secs, "the outbox to settle", || async {
            let mut settled = true;
            for l in leads {
                let conv = self
                    .store
                    .conversation(&LeadId::new(l.clone()), 100)
                    .await
                    .unwrap();
                settled &= conv.iter().all(|m| {
                    !matches!(
                        m.state.as_str(),
                        "pending" | "queued" | "sending" | "in_doubt"
                    )
                });
            }
            settled
        })
        .await;
    }

    fn assert_exactly_one_reply_each(&self, leads: &[String]) {
        for l in leads {
            let sent = self.twilio.sent_to(l);
            assert_eq!(sent.len(), 1, "{l} got {sent:?}");
        }
    }

    async fn workers_of_turns(&self, leads: &[String]) -> HashMap<String, usize> {
        let mut by_worker = HashMap::new();
        for l in leads {
            let turns = self.store.turns(&LeadId::new(l.clone())).await.unwrap();
            for pair in turns.windows(2) {
                if let Some(end) = &pair[0].finished_at {
                    assert!(
                        end <= &pair[1].started_at || pair[0].outcome.is_none(),
                        "{l}: {turns:?}"
                    );
                }
            }
            for t in turns {
                if t.outcome.is_none() {
                    // A turn its process never finished: cut by a kill.
                    *by_worker.entry("(cut)".to_string()).or_insert(0) += 1;
                }
                *by_worker.entry(t.worker).or_insert(0) += 1;
            }
        }
        by_worker
    }
}

fn leads(n: usize, base: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1312{:07}", base + i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_burst_and_never_work_one_lead_at_once() {
    let cluster = Cluster::start("share").await;
    let leads = leads(200, 2_000_000);
    for chunk in leads.chunks(20) {
        let posts = chunk
            .iter()
            .map(|l| cluster.post_sms(l, "Hi, is the 2BR available?"));
        for status in futures::future::join_all(posts).await {
            assert_eq!(status, 200);
        }
    }
    cluster.wait_all_answered(&leads, 90).await;
    cluster.assert_exactly_one_reply_each(&leads);
    let by_worker = cluster.workers_of_turns(&leads).await;
    assert_eq!(
        by_worker.len(),
        2,
        "both workers took turns, none was cut: {by_worker:?}"
    );
    assert!(
        by_worker.values().all(|n| *n >= 20),
        "a real share each: {by_worker:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_burst_lose_nothing_and_duplicate_nothing() {
    let mut cluster = Cluster::start("kill9").await;
    let leads = leads(80, 3_000_000);
    // Kill moments spread over the burst, fixed so a failure can be replayed.
    let kills: [(usize, &'static str); 3] = [(15, "worker-a"), (40, "worker-b"), (60, "worker-a")];
    for (i, lead) in leads.iter().enumerate() {
        assert_eq!(
            cluster.post_sms(lead, "Hi, is the 2BR available?").await,
            200
        );
        if let Some((_, victim)) = kills.iter().find(|(at, _)| *at == i) {
            tokio::time::sleep(Duration::from_millis(150)).await; // let turns get under way
            cluster.signal(victim, "-KILL");
            cluster.spawn(victim, "worker").await;
        }
    }
    cluster.wait_all_answered(&leads, 120).await;
    cluster.assert_exactly_one_reply_each(&leads);
    let by_worker = cluster.workers_of_turns(&leads).await;
    eprintln!("turns by worker process: {by_worker:?}");
    assert!(
        by_worker.keys().filter(|k| *k != "(cut)").count() >= 3,
        "restarted workers took turns too: {by_worker:?}"
    );
    assert!(
        by_worker.get("(cut)").is_some_and(|n| *n > 0),
        "the kills landed mid-turn (else this test proves little): {by_worker:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_mid_burst_loses_nothing() {
    let mut cluster = Cluster::start("sigterm").await;
    let leads = leads(60, 4_000_000);
    for (i, lead) in leads.iter().enumerate() {
        assert_eq!(
            cluster.post_sms(lead, "Hi, is the 2BR available?").await,
            200
        );
        if i == 30 {
            cluster.signal("worker-a", "-TERM");
        }
    }
    cluster.wait_all_answered(&leads, 120).await;
    cluster.assert_exactly_one_reply_each(&leads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_connection_cut_mid_burst_loses_nothing_and_processing_resumes() {
    let proxy = CuttableProxy::start("127.0.0.1:5672".to_string()).await;
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut cluster = Cluster::start_with_broker("cut", via_proxy).await;
    let leads = leads(40, 5_000_000);
    for (i, lead) in leads.iter().enumerate() {
        if i == 15 {
            proxy.cut().await;
        }
        if i == 25 {
            proxy.restore();
        }
        // The store takes every message; a wake-up the broker cannot take is deferred and
        // published when it is back — a 503 here would be a lost message (Twilio does not
        // retry a 5xx by default).
        assert_eq!(
            cluster.post_sms(lead, "Hi, is the 2BR available?").await,
            200,
            "message {i} during the broker cut"
        );
    }
    let web_ops = cluster.ops_url("web");
    let deferred = scrape_metric(&cluster.http, &web_ops, "lead_agent_wake_deferred_total").await;
    assert!(deferred > 0.0, "the cut was felt by the web process");
    // And said, by its cause: the web process's alert, at its /ops/alerts.
    let web_alerts: Vec<serde_json::Value> = cluster
        .http
        .get(format!("{web_ops}/ops/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        web_alerts.iter().any(|a| a["event"] == "queue_unavailable"),
        "{web_alerts:?}"
    );
    cluster.wait_all_answered(&leads, 120).await;
    cluster.assert_exactly_one_reply_each(&leads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_twilio_holds_its_send_is_recorded_sent_never_resent() {
    let mut cluster = Cluster::start("inflight").await;
    let lead = "+13126000001";
    // Twilio accepts the send (listed `queued`, no `date_sent`) and never answers it.
    cluster.twilio.hang_sends_to(lead);
    assert_eq!(
        cluster.post_sms(lead, "Hi, is the 2BR available?").await,
        200
    );
    wait_until(30, "the send to be in flight at Twilio", || async {
        cluster.twilio.sends_in_flight() == 1
    })
    .await;
    // The worker whose turn is sending: its turn record names it `host:pid`.
    let turns = cluster.store.turns(&LeadId::new(lead)).await.unwrap();
    let pid: u32 = turns[0].worker.rsplit(':').next().unwrap().parse().unwrap();
    let victim = ["worker-a", "worker-b"]
        .into_iter()
        .find(|w| cluster.processes.pid(w) == Some(pid))
        .expect("one of the workers runs the turn");
    cluster.signal(victim, "-KILL");
    cluster.spawn(victim, "worker").await;
    wait_until(60, "the in-doubt reply to be found at Twilio", || async {
        let conv = cluster
            .store
            .conversation(&LeadId::new(lead), 10)
            .await
            .unwrap();
        conv.get(1).is_some_and(|m| m.state == "sent")
    })
    .await;
    assert_eq!(
        cluster.twilio.sent_to(lead),
        vec!["Reply to: Hi, is the 2BR available?"],
        "recorded sent, never resent"
    );
    assert_eq!(cluster.twilio.sent()[0].status, "queued");
}
