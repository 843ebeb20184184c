//! `lead-agent simulate`: the batch-drop load bench. Starts the service as child processes
//! of this very binary (or targets a running one with `--url`), starts a fake Twilio and a
//! fake Anthropic on loopback, fires N signed webhooks from N distinct leads with keep-alive
//! clients, waits until every lead has its reply, and reports acceptance rate, ack latency,
//! drain time against the bound N·L/C, first-response latency, lost and duplicated replies,
//! the most model calls seen at once and the service's resident memory.
//!
//! Why child processes, not the service in this process: the service's peak RSS
//! (`/proc/PID/status` VmHWM) and CPU must be its own, not mixed with the load generator's
//! and the fakes'. The child is the real binary with the real `serve` path.
//!
//! Owns: the run's orchestration (processes, fakes, seeding, the burst, the wait). Must not:
//! reach into the service other than through its public HTTP interface and the store it
//! would find on disk (history seeding happens before the service starts).

pub mod fakes;
pub mod report;
pub mod slowloris;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actors::ports::{ChatLine, LeadId, Role as ChatRole};
use anyhow::{Context, bail};
use futures_util::StreamExt;

use crate::channels::twilio::compute_signature;
use crate::channels::twilio::new_message_sid;
use crate::config::read_var;
use crate::queue::rabbitmq::{QueueNames, delete_topology};
use crate::store::SqlStore;
use fakes::{FakeModel, FakeTwilio};
use report::{Burst, Latency, ProcessMemory, SimConfig, SimReport};

/// Where the service under test comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// One `serve` process on the embedded defaults: SQLite and the in-process queue.
    Embedded,
    /// `serve --role web` plus `--workers` × `serve --role worker` on a fresh PostgreSQL
    /// database and a fresh RabbitMQ queue (both removed afterwards).
    PostgresRabbitmq,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// How many leads text at once (one webhook each, each from its own number).
    #[arg(long, default_value_t = 600)]
    pub leads: usize,
    /// The fake model's latency L, per call.
    #[arg(long, default_value_t = 1000)]
    pub model_latency_ms: u64,
    /// Uniform jitter added to each call's latency, ± this much (the mean stays L).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// C: the model calls the service may run at once, in total (split evenly over
    /// `--workers` with the PostgreSQL + RabbitMQ backend).
    #[arg(long, default_value_t = 12)]
    pub concurrency: usize,
    /// Webhook requests in flight at once from the load generator (keep-alive connections).
    #[arg(long, default_value_t = 64)]
    pub client_concurrency: usize,
    /// Which service to start; ignored with `--url`.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    /// Worker processes for `--backend postgres-rabbitmq`.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// `--backend postgres-rabbitmq`: a PostgreSQL URL allowed to CREATE DATABASE; the run
    /// uses a fresh database made through it and drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub admin_database_url: String,
    /// `--backend postgres-rabbitmq`: the broker; the run declares its own queue and deletes
    /// it at the end.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Target a service that is already running instead of starting one. Start it with
    /// TWILIO_API_BASE and ANTHROPIC_BASE_URL pointing at `--fake-twilio-addr` and
    /// `--fake-model-addr`; webhooks are signed with its TWILIO_AUTH_TOKEN (read from this
    /// environment) against PUBLIC_BASE_URL (or `--public-url`).
    #[arg(long)]
    pub url: Option<String>,
    /// With `--url`: the URL Twilio would sign (default PUBLIC_BASE_URL, else `--url`).
    #[arg(long)]
    pub public_url: Option<String>,
    /// With `--url`: process ids of the service whose memory to report (repeatable).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Where the fake Twilio listens (fix it for `--url`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub fake_twilio_addr: SocketAddr,
    /// Where the fake Anthropic listens (fix it for `--url`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub fake_model_addr: SocketAddr,
    /// Stored history per lead before the run (answered/sent lines of ~200 bytes, so 40
    /// fill the default window): the memory scenarios. Not with `--url`.
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// Open-loop pacing: send webhook i at i/RATE seconds (at most `--client-concurrency`
    /// in flight). Without it the clients send back to back (closed loop), which measures
    /// throughput, and by Little's law their ack latency is then concurrency / throughput.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measure acceptance only: fire the webhooks and do not wait for replies.
    #[arg(long)]
    pub ack_only: bool,
    /// Skip the load generator's ceiling (the same burst against an endpoint that does
    /// nothing).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Give up waiting for replies after this long (default: 60 s + 3 × N·L/C).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write replies over time against the ideal line as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The lead-agent binary to start (default: this one).
    #[arg(long, hide = true)]
    pub binary: Option<PathBuf>,
    /// Run the slow-loris test instead of the batch drop: hold this many connections that
    /// trickle a request head (reopened when the service cuts them) while `/health` and
    /// signed webhooks are measured, before the attack and during it (`slowloris.rs`).
    #[arg(long)]
    pub slow_loris: Option<usize>,
    /// `--slow-loris`: seconds each phase (before, during) measures.
    #[arg(long, default_value_t = 20)]
    pub phase_secs: u64,
    /// `--slow-loris`: requests per second of each kind (`/health`, a signed webhook), each
    /// on a new connection, as the kubelet's probes and Twilio make them.
    #[arg(long, default_value_t = 10.0)]
    pub probe_rate: f64,
    /// `--slow-loris`: each slow connection sends one more byte of its head this often.
    #[arg(long, default_value_t = 1000)]
    pub trickle_ms: u64,
    /// More environment for the service this run starts, `NAME=VALUE` (repeatable), e.g.
    /// `--service-env HTTP_MAX_CONNECTIONS=512`.
    #[arg(long = "service-env", value_name = "NAME=VALUE")]
    pub service_env: Vec<String>,
}

impl SimulateArgs {
    fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.leads == 0 {
            problems.push("--leads must be at least 1".to_string());
        }
        if self.concurrency == 0 || self.client_concurrency == 0 {
            problems.push("--concurrency and --client-concurrency must be at least 1".into());
        }
        if self.backend == Backend::PostgresRabbitmq && self.url.is_none() {
            if self.workers == 0 {
                problems.push("--workers must be at least 1".into());
            } else if !self.concurrency.is_multiple_of(self.workers) {
                problems.push(format!(
                    "--concurrency {} does not split evenly over --workers {}",
                    self.concurrency, self.workers
                ));
            }
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            problems.push("--rate must be a positive number of webhooks per second".into());
        }
        if self.slow_loris == Some(0) {
            problems.push("--slow-loris must be at least 1".into());
        }
        if !(self.probe_rate.is_finite() && self.probe_rate > 0.0) || self.phase_secs == 0 {
            problems.push("--probe-rate and --phase-secs must be positive".into());
        }
        if self.service_env.iter().any(|e| !e.contains('=')) {
            problems.push("--service-env takes NAME=VALUE".into());
        }
        if self.url.is_some() && self.history > 0 {
            problems
                .push("--history seeds the store before the service starts: not with --url".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(problems.join("\n"))
        }
    }

    fn ideal_drain_secs(&self) -> f64 {
        self.leads as f64 * self.model_latency_ms as f64 / 1000.0 / self.concurrency as f64
    }
}

/// VmRSS and VmHWM of a process, in KiB (Linux; `None` elsewhere or once it is gone).
pub fn read_memory(pid: u32) -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A process of the service this run started.
struct ServiceProcess {
    name: String,
    child: Child,
    log: PathBuf,
    memory: ProcessMemory,
    /// Its ops listener (`/metrics`).
    ops_url: String,
}

/// What the load generator talks to, and what must be cleaned up afterwards.
struct Target {
    web_url: String,
    /// The web process's ops listener (`/metrics`).
    ops_url: String,
    /// Signing key and the URL Twilio would sign; `None`: post unsigned (loopback).
    signing: Option<(String, String)>,
    processes: Vec<ServiceProcess>,
    /// Processes of a service started elsewhere (`--url --pid`).
    foreign: Vec<ProcessMemory>,
    dir: Option<PathBuf>,
    database: Option<(String, String)>,
    queue: Option<(String, String)>,
}

impl Target {
    fn memory_mut(&mut self) -> Vec<&mut ProcessMemory> {
        self.processes
            .iter_mut()
            .map(|p| &mut p.memory)
            .chain(self.foreign.iter_mut())
            .collect()
    }

    fn sample(&mut self, what: fn(&mut ProcessMemory) -> &mut Option<u64>) {
        for m in self.memory_mut() {
            let (rss, hwm) = read_memory(m.pid);
            *what(m) = rss;
            if hwm.is_some() {
                m.peak_rss_kib = hwm;
            }
        }
    }

    /// Stops what this run started and removes its database, queue and files.
    async fn teardown(&mut self, keep_files: bool) {
        for p in &mut self.processes {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Some((admin, name)) = self.database.take()
            && let Err(e) = drop_database(&admin, &name).await
        {
            eprintln!("warning: could not drop the simulation database {name}: {e:#}");
        }
        if let Some((url, queue)) = self.queue.take()
            && let Err(e) = delete_topology(&url, &QueueNames::new(&queue)).await
        {
            eprintln!("warning: could not delete the simulation queue {queue}: {e}");
        }
        if let Some(dir) = self.dir.take() {
            if keep_files {
                eprintln!("service logs kept in {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    /// The tail of each started process's log, for an error message.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for p in &self.processes {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("\n--- {} ({}) ---\n", p.name, p.log.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

async fn create_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!(
        "lead_agent_sim_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| "Failed to reach PostgreSQL through --admin-database-url")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("Failed to create the database {name}"))?;
    let mut url = url::Url::parse(admin_url).context("--admin-database-url is not a URL")?;
    url.set_path(&name);
    Ok((url.to_string(), name))
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Model budgets that a slow fake model (a large `--model-latency-ms`) stays inside, so
/// the run measures the pipeline and not fallbacks.
fn budget_env(args: &SimulateArgs) -> Vec<(&'static str, String)> {
    let worst = (args.model_latency_ms + args.jitter_ms) as f64 / 1000.0;
    let soft = (worst * 4.0).max(20.0);
    let hard = soft * 2.0 + 5.0;
    let turn = hard * 2.0;
    vec![
        ("LLM_SOFT_TIMEOUT_SECS", format!("{soft}")),
        ("LLM_HARD_TIMEOUT_SECS", format!("{hard}")),
        ("LEAD_TURN_TIMEOUT_SECS", format!("{turn}")),
    ]
}

/// Starts one `serve` process and waits until it answers `/ready`.
async fn spawn_serve(
    binary: &Path,
    dir: &Path,
    name: &str,
    role: &str,
    env: &[(&'static str, String)],
    http: &reqwest::Client,
) -> anyhow::Result<(ServiceProcess, String)> {
    let port = free_port()?;
    // Several processes on one machine: each its own ops listener too.
    let ops_port = free_port()?;
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let child = Command::new(binary)
        .args(["serve", "--role", role])
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PORT", port.to_string())
        .env("OPS_PORT", ops_port.to_string())
        .env("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}"))
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("Failed to start {}", binary.display()))?;
    let pid = child.id();
    let mut process = ServiceProcess {
        name: name.to_string(),
        child,
        log,
        memory: ProcessMemory {
            name: name.to_string(),
            pid,
            ..ProcessMemory::default()
        },
        ops_url: format!("http://127.0.0.1:{ops_port}"),
    };
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = process.child.try_wait()? {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            bail!("{name} exited at start ({status}):\n{log}");
        }
        if let Ok(r) = http.get(format!("{url}/ready")).send().await
            && r.status().is_success()
        {
            return Ok((process, url));
        }
        if Instant::now() > deadline {
            let _ = process.child.kill();
            bail!(
                "{name} was not ready within 60 s (log: {})",
                process.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lead numbers of a run: distinct, valid-looking, stable.
pub fn lead_number(i: usize) -> String {
    format!("+1555{i:07}")
}

/// Stores `per_lead` answered/sent lines for each lead, ~200 bytes each (40 of them fill
/// the default 8 KiB window), as if each lead had a long conversation behind it.
async fn seed_history(database_url: &str, leads: usize, per_lead: usize) -> anyhow::Result<()> {
    let store = SqlStore::connect(database_url)
        .await
        .context("Failed to open the store to seed history")?;
    let filler = "Looking for a 2BR near the lake, pets allowed, parking, in-unit laundry; \
                  moving in March, budget around 1500, can you tell me about fees and the \
                  application, and which weekday afternoons work for a tour? ";
    let lines: Vec<ChatLine> = (0..per_lead)
        .map(|n| ChatLine {
            role: if n % 2 == 0 {
                ChatRole::Lead
            } else {
                ChatRole::Agent
            },
            text: format!("{n:05} {}", &filler[..194]),
        })
        .collect();
    let lines = Arc::new(lines);
    let mut jobs = futures_util::stream::iter(0..leads)
        .map(|i| {
            let (store, lines) = (store.clone(), lines.clone());
            async move {
                store
                    .import_history(&LeadId::new(lead_number(i)), &lines)
                    .await
            }
        })
        // SQLite has one writer: parallel imports only meet its lock.
        .buffer_unordered(if store.backend() == "sqlite" { 1 } else { 8 });
    while let Some(done) = jobs.next().await {
        done?;
    }
    Ok(())
}

async fn start_target(
    args: &SimulateArgs,
    twilio: &FakeTwilio,
    model: &FakeModel,
    http: &reqwest::Client,
) -> anyhow::Result<Target> {
    if let Some(url) = &args.url {
        let url = url.trim_end_matches('/').to_string();
        let signing = read_var("TWILIO_AUTH_TOKEN").map(|token| {
            let public = args
                .public_url
                .clone()
                .or_else(|| read_var("PUBLIC_BASE_URL"))
                .unwrap_or_else(|| url.clone());
            (
                token,
                format!("{}/twilio/sms", public.trim_end_matches('/')),
            )
        });
        return Ok(Target {
            ops_url: crate::probe::ops_url_for(&url, crate::config::local_ops_port()),
            web_url: url,
            signing,
            processes: Vec::new(),
            foreign: args
                .pid
                .iter()
                .map(|&pid| ProcessMemory {
                    name: format!("pid {pid}"),
                    pid,
                    ..ProcessMemory::default()
                })
                .collect(),
            dir: None,
            database: None,
            queue: None,
        });
    }

    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("Failed to find this binary")?,
    };
    let dir = std::env::temp_dir().join(format!(
        "lead-agent-simulate-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&dir)?;
    let token = new_message_sid(); // 34 random characters: as good a secret as any here
    let mut target = Target {
        web_url: String::new(),
        ops_url: String::new(),
        signing: None,
        processes: Vec::new(),
        foreign: Vec::new(),
        dir: Some(dir.clone()),
        database: None,
        queue: None,
    };
    let mut env: Vec<(&'static str, String)> = vec![
        ("BIND_ADDRESS", "127.0.0.1".into()),
        (
            "TWILIO_ACCOUNT_SID",
            "ACsimulator0000000000000000000000".into(),
        ),
        ("TWILIO_AUTH_TOKEN", token.clone()),
        ("TWILIO_FROM_NUMBER", "+13125550000".into()),
        ("TWILIO_API_BASE", twilio.url.clone()),
        ("ANTHROPIC_API_KEY", "simulated".into()),
        ("ANTHROPIC_BASE_URL", model.url.clone()),
        ("LOG_FORMAT", "json".into()),
        ("RUST_LOG", "warn".into()),
    ];
    env.extend(budget_env(args));
    for pair in &args.service_env {
        if let Some((name, value)) = pair.split_once('=') {
            // A command-line tool's few names, for the life of the run.
            let name: &'static str = Box::leak(name.trim().to_string().into_boxed_str());
            env.push((name, value.to_string()));
        }
    }

    let result: anyhow::Result<()> = async {
        match args.backend {
            Backend::Embedded => {
                let database_url = format!("sqlite://{}", dir.join("lead-agent.db").display());
                if args.history > 0 {
                    seed_history(&database_url, args.leads, args.history).await?;
                }
                env.push(("DATABASE_URL", database_url));
                env.push(("LLM_CONCURRENCY", args.concurrency.to_string()));
                let (p, url) = spawn_serve(&binary, &dir, "serve", "all", &env, http).await?;
                target.ops_url = p.ops_url.clone();
                target.processes.push(p);
                target.web_url = url;
            }
            Backend::PostgresRabbitmq => {
                let (database_url, name) = create_database(&args.admin_database_url).await?;
                target.database = Some((args.admin_database_url.clone(), name));
                if args.history > 0 {
                    seed_history(&database_url, args.leads, args.history).await?;
                }
                let queue = format!(
                    "lead-agent.simulate.{}.{}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_millis()
                );
                target.queue = Some((args.amqp_url.clone(), queue.clone()));
                env.push(("DATABASE_URL", database_url));
                env.push(("AMQP_URL", args.amqp_url.clone()));
                env.push(("AMQP_QUEUE", queue));
                env.push((
                    "LLM_CONCURRENCY",
                    (args.concurrency / args.workers).to_string(),
                ));
                // Workers first: the web role's publishes then meet consumers at once.
                for w in 0..args.workers {
                    let name = format!("worker-{}", w + 1);
                    let (p, _) = spawn_serve(&binary, &dir, &name, "worker", &env, http).await?;
                    target.processes.push(p);
                }
                let (p, url) = spawn_serve(&binary, &dir, "web", "web", &env, http).await?;
                target.ops_url = p.ops_url.clone();
                target.processes.push(p);
                target.web_url = url;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let tails = target.log_tails();
        target.teardown(true).await;
        return Err(if tails.is_empty() {
            e
        } else {
            e.context(tails)
        });
    }
    target.signing = Some((token, format!("{}/twilio/sms", target.web_url)));
    Ok(target)
}

/// One prepared webhook: its form body and signature, computed before the clock starts so
/// that the load generator only sends.
struct Webhook {
    body: String,
    signature: Option<String>,
}

fn prepare_webhooks(leads: usize, signing: Option<&(String, String)>) -> Vec<Webhook> {
    (0..leads)
        .map(|i| {
            let sid = new_message_sid();
            let from = lead_number(i);
            let params: Vec<(String, String)> = [
                ("ToCountry", "US"),
                ("SmsMessageSid", sid.as_str()),
                ("NumMedia", "0"),
                ("MessageSid", sid.as_str()),
                ("AccountSid", "ACsimulator0000000000000000000000"),
                ("From", from.as_str()),
                ("To", "+13125550000"),
                ("Body", "Hi, is the 2BR still available? When can I tour?"),
                ("NumSegments", "1"),
                ("ApiVersion", "2010-04-01"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let signature = signing.map(|(token, url)| compute_signature(token, url, &params));
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                form.append_pair(k, v);
            }
            Webhook {
                body: form.finish(),
                signature,
            }
        })
        .collect()
}

/// Opens `concurrency` keep-alive connections to `base` before a burst, so the burst
/// measures requests and not TCP handshakes.
async fn warm_up(http: &reqwest::Client, base: &str, concurrency: usize) {
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, url) = (http.clone(), format!("{base}/health"));
        tasks.push(tokio::spawn(async move {
            let _ = http.get(url).send().await.map(|r| r.bytes());
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Posts every webhook to `base`/twilio/sms with `concurrency` requests in flight. Returns
/// the burst summary and, per webhook, when it was sent.
async fn fire(
    http: &reqwest::Client,
    base: &str,
    webhooks: Arc<Vec<Webhook>>,
    concurrency: usize,
    rate: Option<f64>,
    accepted_counter: Arc<AtomicUsize>,
) -> (Burst, Vec<Instant>) {
    let url = Arc::new(format!("{base}/twilio/sms"));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(webhooks.len()) {
        let (http, url, next, webhooks, accepted) = (
            http.clone(),
            url.clone(),
            next.clone(),
            webhooks.clone(),
            accepted_counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(w) = webhooks.get(i) else {
                    return results;
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut request = http
                    .post(url.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(w.body.clone());
                if let Some(sig) = &w.signature {
                    request = request.header("X-Twilio-Signature", sig);
                }
                let sent = Instant::now();
                let ok = match request.send().await {
                    // The body is read so the connection goes back to the pool.
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let took = sent.elapsed();
                if ok {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                results.push((i, sent, took, ok));
            }
        }));
    }
    let mut sent_at = vec![started; webhooks.len()];
    let mut acks = Vec::with_capacity(webhooks.len());
    let mut accepted = 0;
    for t in tasks {
        for (i, sent, took, ok) in t.await.unwrap_or_default() {
            sent_at[i] = sent;
            if ok {
                accepted += 1;
                acks.push(took);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let burst = Burst {
        requests: webhooks.len(),
        accepted,
        rejected: webhooks.len() - accepted,
        elapsed_secs: elapsed,
        webhooks_per_sec: accepted as f64 / elapsed.max(1e-9),
        ack: Latency::of(&mut acks),
    };
    (burst, sent_at)
}

fn load_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The fake Twilio and the fake model every run's service talks to.
async fn start_fakes(args: &SimulateArgs) -> anyhow::Result<(FakeTwilio, FakeModel)> {
    let twilio = FakeTwilio::start(args.fake_twilio_addr)
        .await
        .context("Failed to start the fake Twilio")?;
    let model = FakeModel::start(
        args.fake_model_addr,
        Duration::from_millis(args.model_latency_ms),
        Duration::from_millis(args.jitter_ms),
    )
    .await
    .context("Failed to start the fake model")?;
    Ok((twilio, model))
}

/// Runs one simulation and returns its report; `simulate`'s command line wraps this.
pub async fn run(args: &SimulateArgs) -> anyhow::Result<SimReport> {
    args.check()?;
    let (twilio, model) = start_fakes(args).await?;
    if args.url.is_some() {
        eprintln!(
            "fakes: TWILIO_API_BASE={} ANTHROPIC_BASE_URL={} (the service must use them)",
            twilio.url, model.url
        );
    }
    let http = load_client(args.client_concurrency)?;
    let mut target = start_target(args, &twilio, &model, &http).await?;
    let outcome = drive(args, &mut target, &twilio, &model, &http).await;
    let failed = outcome.is_err();
    let outcome = outcome.map_err(|e| e.context(target.log_tails()));
    target.teardown(failed).await;
    outcome
}

async fn drive(
    args: &SimulateArgs,
    target: &mut Target,
    twilio: &FakeTwilio,
    model: &FakeModel,
    http: &reqwest::Client,
) -> anyhow::Result<SimReport> {
    // Settle, as a freshly started pod would before its first request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    target.sample(|m| &mut m.idle_rss_kib);

    let webhooks = Arc::new(prepare_webhooks(args.leads, target.signing.as_ref()));
    let generator_ceiling = if args.no_ceiling {
        None
    } else {
        let trivial = fakes::start_trivial_endpoint().await?;
        warm_up(http, &trivial, args.client_concurrency).await;
        let (burst, _) = fire(
            http,
            &trivial,
            webhooks.clone(),
            args.client_concurrency,
            args.rate,
            Arc::default(),
        )
        .await;
        Some(burst)
    };

    warm_up(http, &target.web_url, args.client_concurrency).await;
    target.sample(|m| &mut m.before_burst_rss_kib);

    let bar = progress_bar(args);
    let accepted = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let (bar, accepted, twilio, leads) =
            (bar.clone(), accepted.clone(), twilio.clone(), args.leads);
        tokio::spawn(async move {
            loop {
                bar.set_position(twilio.total().min(leads) as u64);
                bar.set_message(format!(
                    "webhooks accepted {}/{leads}",
                    accepted.load(Ordering::Relaxed)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (webhooks_burst, sent_at) = fire(
        http,
        &target.web_url,
        webhooks,
        args.client_concurrency,
        args.rate,
        accepted,
    )
    .await;
    let t0 = sent_at.iter().min().copied().unwrap_or_else(Instant::now);

    let leads: Vec<String> = (0..args.leads).map(lead_number).collect();
    if !args.ack_only {
        let timeout = Duration::from_secs(
            args.timeout_secs
                .unwrap_or(60 + (3.0 * args.ideal_drain_secs()).ceil() as u64),
        );
        let deadline = t0 + timeout;
        loop {
            if twilio.total() >= args.leads && count_answered(&twilio.sends(), &leads) == args.leads
            {
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A late duplicate would come within a turn or two: wait that long for one.
        let grace = Duration::from_millis((2 * (args.model_latency_ms + args.jitter_ms)).max(1000));
        tokio::time::sleep(grace).await;
    }
    ticker.abort();
    bar.finish_and_clear();
    target.sample(|m| &mut m.after_rss_kib);

    Ok(build_report(
        args,
        target,
        twilio,
        model,
        generator_ceiling,
        webhooks_burst,
        &sent_at,
        t0,
    ))
}

fn progress_bar(args: &SimulateArgs) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(args.leads as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} replies · {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

fn count_answered(sends: &[(String, Instant)], leads: &[String]) -> usize {
    let seen: std::collections::HashSet<&str> = sends.iter().map(|(to, _)| to.as_str()).collect();
    leads.iter().filter(|l| seen.contains(l.as_str())).count()
}

/// What the fake Twilio's log says about the leads of a run.
#[derive(Debug, Default)]
struct Tally {
    /// Leads with at least one reply.
    answered: usize,
    /// Replies beyond each lead's first.
    duplicated: usize,
    /// Per answered lead: its webhook sent → its first reply.
    first_response: Vec<Duration>,
    /// Per answered lead: seconds from `t0` to its first reply.
    reply_times: Vec<f64>,
}

/// `sent_at[i]` is when lead `i`'s webhook went out; sends to numbers that are not leads
/// of this run are ignored.
fn tally(sends: &[(String, Instant)], sent_at: &[Instant], t0: Instant) -> Tally {
    let mut per_lead: HashMap<&str, (usize, Instant)> = HashMap::new();
    for (to, at) in sends {
        per_lead
            .entry(to.as_str())
            .and_modify(|(n, first)| {
                *n += 1;
                *first = (*first).min(*at);
            })
            .or_insert((1, *at));
    }
    let mut t = Tally::default();
    for (i, sent) in sent_at.iter().enumerate() {
        if let Some((n, first)) = per_lead.get(lead_number(i).as_str()) {
            t.answered += 1;
            t.duplicated += n - 1;
            t.first_response
                .push(first.saturating_duration_since(*sent));
            t.reply_times
                .push(first.saturating_duration_since(t0).as_secs_f64());
        }
    }
    t
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &SimulateArgs,
    target: &Target,
    twilio: &FakeTwilio,
    model: &FakeModel,
    generator_ceiling: Option<Burst>,
    webhooks: Burst,
    sent_at: &[Instant],
    t0: Instant,
) -> SimReport {
    let Tally {
        answered,
        duplicated,
        mut first_response,
        reply_times,
    } = tally(&twilio.sends(), sent_at, t0);
    let lost = if args.ack_only {
        0
    } else {
        args.leads - answered
    };
    let drain_secs =
        (!args.ack_only && answered > 0).then(|| reply_times.iter().copied().fold(0.0, f64::max));
    let ideal = args.ideal_drain_secs();
    let memory: Vec<ProcessMemory> = target
        .processes
        .iter()
        .map(|p| p.memory.clone())
        .chain(target.foreign.iter().cloned())
        .collect();
    let sum = |f: fn(&ProcessMemory) -> Option<u64>| -> Option<u64> {
        memory
            .iter()
            .map(f)
            .sum::<Option<u64>>()
            .filter(|_| !memory.is_empty())
    };
    let before = sum(|m| m.before_burst_rss_kib);
    let after = sum(|m| m.after_rss_kib);
    let peak = sum(|m| m.peak_rss_kib);
    let rss_growth_per_lead_kib = match (before, after) {
        // With --ack-only the leads were not waited for: no per-lead figure.
        (Some(b), Some(a)) if answered > 0 && !args.ack_only => {
            Some((a as f64 - b as f64) / answered as f64)
        }
        _ => None,
    };
    SimReport {
        config: SimConfig {
            backend: match (&args.url, args.backend) {
                (Some(_), _) => "external".into(),
                (None, Backend::Embedded) => "embedded".into(),
                (None, Backend::PostgresRabbitmq) => "postgres-rabbitmq".into(),
            },
            target: target.web_url.clone(),
            leads: args.leads,
            history_per_lead: args.history,
            model_latency_ms: args.model_latency_ms,
            jitter_ms: args.jitter_ms,
            concurrency: args.concurrency,
            workers: match (&args.url, args.backend) {
                (None, Backend::PostgresRabbitmq) => args.workers,
                _ => 1,
            },
            client_concurrency: args.client_concurrency,
            rate: args.rate,
            ack_only: args.ack_only,
        },
        generator_ceiling,
        webhooks,
        answered,
        lost,
        duplicated,
        drain_secs,
        ideal_drain_secs: ideal,
        // With L = 0 there is no bound to compare with.
        drain_ratio: drain_secs.filter(|_| ideal > 0.0).map(|d| d / ideal),
        observed_model_latency_ms: model.mean_call_ms(),
        drain_ratio_observed: match (drain_secs, model.mean_call_ms()) {
            (Some(d), Some(l)) if l > 0.0 => {
                Some(d / (args.leads as f64 * l / 1000.0 / args.concurrency as f64))
            }
            _ => None,
        },
        first_response: Latency::of(&mut first_response),
        model_calls: model.calls(),
        max_model_concurrency: model.max_in_flight(),
        memory,
        peak_rss_kib: peak,
        rss_growth_per_lead_kib,
        peak_growth_kib: match (before, peak) {
            (Some(b), Some(p)) => Some(p.saturating_sub(b)),
            _ => None,
        },
        reply_times,
    }
}

/// `lead-agent simulate`: run, print the summary, write the JSON and the plot.
pub async fn main(args: SimulateArgs) -> anyhow::Result<()> {
    if args.slow_loris.is_some() {
        return slowloris::main(&args).await;
    }
    let report = run(&args).await?;
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("Failed to write {}", path.display()))?;
        println!("  JSON: {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, report.svg())
            .with_context(|| format!("Failed to write {}", path.display()))?;
        println!("  plot: {}", path.display());
    }
    if !args.ack_only && (report.lost > 0 || report.duplicated > 0) {
        bail!(
            "{} leads lost, {} duplicate replies",
            report.lost,
            report.duplicated
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_and_duplicated_replies_are_counted_per_lead() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let sent_at = vec![at(0), at(5), at(10)];
        let sends = vec![
            (lead_number(0), at(1000)),
            (lead_number(2), at(1500)),
            (lead_number(0), at(900)), // a duplicate, earlier in the log order's terms
            (lead_number(0), at(2000)),
            ("+19999999999".to_string(), at(10)), // not a lead of this run
        ];
        let t = tally(&sends, &sent_at, t0);
        assert_eq!(t.answered, 2, "lead 1 got nothing");
        assert_eq!(t.duplicated, 2, "lead 0 got three replies");
        let mut first: Vec<u128> = t.first_response.iter().map(|d| d.as_millis()).collect();
        first.sort();
        assert_eq!(first, vec![900, 1490]);
        assert!(t.reply_times.contains(&0.9) && t.reply_times.contains(&1.5));
    }

    #[test]
    fn bad_combinations_of_arguments_are_refused_together() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "lead-agent",
            "simulate",
            "--leads",
            "0",
            "--backend",
            "postgres-rabbitmq",
            "--concurrency",
            "5",
            "--workers",
            "2",
        ])
        .unwrap();
        let crate::cli::Command::Simulate(args) = cli.command else {
            panic!("simulate parses as simulate");
        };
        let err = args.check().unwrap_err().to_string();
        assert!(
            err.contains("--leads") && err.contains("split evenly"),
            "{err}"
        );
    }

    #[test]
    fn memory_is_read_from_proc_status() {
        let (rss, hwm) = read_memory(std::process::id());
        if cfg!(target_os = "linux") {
            let (rss, hwm) = (rss.unwrap(), hwm.unwrap());
            assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
        }
        assert_eq!(read_memory(u32::MAX), (None, None));
    }
}
