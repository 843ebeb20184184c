//! One scenario's service: web, two workers, a scheduler and the watchdog as separate
//! processes of the real binary, on a fresh database of the suite's PostgreSQL and a queue
//! of its own on the suite's RabbitMQ node, with fake Twilio (sends it can hold), Anthropic
//! and Discord (the service's bot channel and the watchdog's channel webhook) in this test
//! process.
//!
//! The timers are production's mechanisms with CI-sized periods (heartbeats, the
//! response-gap watch, the scheduler lease, the outbox sweep), so a scenario sees a fault's
//! consequences in seconds; nothing is mocked inside the processes.
//! Must not: inject faults (scenarios do) or judge outcomes (the verdict does).

use std::collections::HashMap;
use std::time::Duration;

use lead_agent::store::{SqlStore, fresh_postgres_database};

use crate::Infra;
use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::fake_discord::FakeDiscord;
use crate::support::fake_twilio::FakeTwilio;
use crate::support::processes::Processes;
use crate::support::{AUTH_TOKEN, PUBLIC_URL, fake_vendor_env};

/// Where every alert of the service goes (`DISCORD_DEFAULT_CHANNEL`).
pub const ALERT_CHANNEL: &str = "4242";
/// The watchdog's synthetic lead.
pub const WATCH_PHONE: &str = "+14155550199";
/// The fake model's latency: a real call is ~1 s; shorter keeps bursts short.
const MODEL_LATENCY: Duration = Duration::from_millis(300);
/// Workers and the scheduler write a heartbeat this often (`HEARTBEAT_SECS`).
pub const HEARTBEAT_SECS: u64 = 2;
/// How long the watchdog gets to answer its `/ready` (its first cycle has run and it can
/// reach its webhook).
const WATCH_READY_WITHIN: Duration = Duration::from_secs(30);

pub const WORKERS: [&str; 2] = ["worker-a", "worker-b"];

pub struct Cluster {
    pub processes: Processes,
    pub twilio: FakeTwilio,
    pub discord: FakeDiscord,
    pub store: SqlStore,
    pub web_url: String,
    /// `Err` with the watchdog's exit and log when it is not running.
    pub watch: Result<(), String>,
    env: HashMap<&'static str, String>,
    web_env: HashMap<&'static str, String>,
    watch_interval_secs: u64,
    _llm: FakeAnthropic,
}

impl Cluster {
    /// Starts every process (web with `web_env` over the common settings) and waits until
    /// each serve role is ready.
    pub async fn start(
        infra: &Infra,
        scenario: &str,
        web_env: &[(&'static str, String)],
        watch_interval_secs: u64,
    ) -> Self {
        let database = fresh_postgres_database(&infra.pg.admin_url()).await;
        let twilio = FakeTwilio::start().await;
        let llm = FakeAnthropic::start(MODEL_LATENCY).await;
        let discord = FakeDiscord::start().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let mut env: HashMap<&'static str, String> = HashMap::from([
            ("BIND_ADDRESS", "127.0.0.1".to_string()),
            ("DATABASE_URL", database.clone()),
            ("AMQP_URL", infra.rabbit.url()),
            (
                "AMQP_QUEUE",
                format!("lead-agent.faults.{scenario}.{nanos:x}"),
            ),
            ("LLM_CONCURRENCY", "4".to_string()),
            ("LLM_SOFT_TIMEOUT_SECS", "2".to_string()),
            ("LLM_HARD_TIMEOUT_SECS", "4".to_string()),
            ("LEAD_TURN_TIMEOUT_SECS", "6".to_string()),
            ("OUTBOX_SWEEP_SECS", "1".to_string()),
            ("DISCORD_DEFAULT_CHANNEL", ALERT_CHANNEL.to_string()),
            // The clock's periods, CI-sized: a dead process is seen in seconds, a lost
            // wake-up is re-driven 20 s after its message arrived, a killed scheduler's
            // lease lapses in 6 s.
            ("HEARTBEAT_SECS", HEARTBEAT_SECS.to_string()),
            ("SCHEDULE_HEARTBEAT", "*/2 * * * * *".to_string()),
            ("SCHEDULE_RESPONSE_GAP_WATCH", "*/5 * * * * *".to_string()),
            ("FIRST_RESPONSE_SLA_SECS", "20".to_string()),
            ("SCHEDULER_LEASE_SECS", "6".to_string()),
            // An in-doubt send is checked after 5 s, and again 2 s later before any resend
            // (minutes in production).
            ("OUTBOX_IN_DOUBT_WAIT_SECS", "5".to_string()),
            ("OUTBOX_RECHECK_SECS", "2".to_string()),
            // A dead alert poster's channels are taken over by another process in 6 s.
            ("DISCORD_LEASE_SECS", "6".to_string()),
            ("LOG_FORMAT", "json".to_string()),
            ("RUST_LOG", "info".to_string()),
        ]);
        env.extend(fake_vendor_env(&twilio, &llm));
        env.extend(discord.env());
        // Discord back from an outage is noticed within a second.
        env.insert("DISCORD_RETRY_MAX_SECS", "1".to_string());
        let mut cluster = Self {
            processes: Processes::new(env!("CARGO_BIN_EXE_lead-agent")),
            twilio,
            discord,
            store: SqlStore::connect(&database).await.unwrap(),
            web_url: String::new(),
            watch: Ok(()),
            env,
            web_env: web_env.iter().cloned().collect(),
            watch_interval_secs,
            _llm: llm,
        };
        cluster.web_url = cluster.start_role("web", "web").await;
        for w in WORKERS {
            cluster.start_role(w, "worker").await;
        }
        cluster.start_role("scheduler", "scheduler").await;
        cluster.start_watch().await;
        cluster
    }

    /// Starts `name` as `serve --role role` and waits until it is ready.
    pub async fn start_role(&mut self, name: &str, role: &str) -> String {
        let mut env = self.env.clone();
        if role == "web" {
            env.extend(self.web_env.clone());
        }
        self.processes
            .start_ready(
                name,
                &["serve", "--role", role],
                env.iter().map(|(k, v)| (*k, v.as_str())),
            )
            .await
    }

    /// Restarts web with `overrides` over its settings (an operator's fix).
    pub async fn restart_web(&mut self, overrides: &[(&'static str, String)]) {
        self.processes.signal("web", "-TERM");
        self.web_env.extend(overrides.iter().cloned());
        self.start_role("web", "web").await;
    }

    pub fn kill(&mut self, name: &str) {
        self.processes.signal(name, "-KILL");
    }

    /// The watchdog (`lead-agent watch`), outside the blast radius: it knows the service
    /// only by its URL, and alerts through its own webhook.
    async fn start_watch(&mut self) {
        let web = self.web_url.clone();
        let web_ops = self.processes.ops_url("web");
        let env = [
            ("BIND_ADDRESS", "127.0.0.1".to_string()),
            ("WATCH_URL", web.clone()),
            ("WATCH_INTERVAL_SECS", self.watch_interval_secs.to_string()),
            ("WATCH_E2E_SECS", (self.watch_interval_secs * 6).to_string()),
            ("WATCH_TEST_PHONE", WATCH_PHONE.to_string()),
            ("DISCORD_WEBHOOK", self.discord.webhook_url()),
            // To sign its synthetic SMS as Twilio would.
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_string()),
            ("PUBLIC_BASE_URL", PUBLIC_URL.to_string()),
            ("LOG_FORMAT", "json".to_string()),
            ("RUST_LOG", "info".to_string()),
        ];
        self.processes.start(
            "watch",
            &["watch", "--url", &web, "--ops-url", &web_ops],
            env.iter().map(|(k, v)| (*k, v.as_str())),
        );
        let ready = format!("{}/ready", self.processes.url("watch"));
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WATCH_READY_WITHIN;
        loop {
            let last = match http.get(&ready).send().await {
                Ok(r) if r.status() == 200 => return,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => format!("no answer: {e}"),
            };
            let exited = self.processes.exit_status("watch");
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                self.watch = Err(format!(
                    "`lead-agent watch` not ready (exit status {exited:?}, last /ready: {last})\n{}",
                    self.processes.log_tail("watch", 15)
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process (by name) whose open turn is working `lead`, if any: the turn row
    /// names its worker as `host:pid`.
    pub async fn worker_holding(&self, lead: &str) -> Option<String> {
        let turns = self
            .store
            .turns(&actors::ports::LeadId::new(lead.to_string()))
            .await
            .ok()?;
        let open = turns.iter().rev().find(|t| t.finished_at.is_none())?;
        let pid: u32 = open.worker.rsplit(':').next()?.parse().ok()?;
        self.processes.name_of(pid)
    }
}
