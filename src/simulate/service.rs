//! The service under test: `serve` processes of this very binary on a fresh database
//! (and queue), seeded with history if asked, or a running one (`--url`); their memory
//! read from `/proc`, and everything removed afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::ports::{ChatLine, LeadId, Role as ChatRole};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use testkit::fake_anthropic::FakeAnthropic;
use testkit::fake_twilio::FakeTwilio;

use crate::config::read_var;
use crate::dev_sms::new_message_sid;
use crate::queue::rabbitmq::{QueueNames, delete_topology};
use crate::store::SqlStore;

use super::args::{Backend, SimulateArgs};
use super::burst::*;
use super::report::ProcessMemory;

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

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A process of the service this run started.
pub(super) struct ServiceProcess {
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) log: PathBuf,
    pub(super) memory: ProcessMemory,
    /// Its ops listener (`/metrics`).
    pub(super) ops_url: String,
}

/// What the load generator talks to, and what must be cleaned up afterwards.
pub(super) struct Target {
    pub(super) web_url: String,
    /// The web process's ops listener (`/metrics`).
    pub(super) ops_url: String,
    /// Signing key and the URL Twilio would sign; `None`: post unsigned (loopback).
    pub(super) signing: Option<(String, String)>,
    pub(super) processes: Vec<ServiceProcess>,
    /// Processes of a service started elsewhere (`--url --pid`).
    pub(super) foreign: Vec<ProcessMemory>,
    pub(super) dir: Option<PathBuf>,
    pub(super) database: Option<(String, String)>,
    pub(super) queue: Option<(String, String)>,
}

impl Target {
    pub(super) fn memory_mut(&mut self) -> Vec<&mut ProcessMemory> {
        self.processes
            .iter_mut()
            .map(|p| &mut p.memory)
            .chain(self.foreign.iter_mut())
            .collect()
    }

    pub(super) fn sample(&mut self, what: fn(&mut ProcessMemory) -> &mut Option<u64>) {
        for m in self.memory_mut() {
            let (rss, hwm) = read_memory(m.pid);
            *what(m) = rss;
            if hwm.is_some() {
                m.peak_rss_kib = hwm;
            }
        }
    }

    /// Stops what this run started and removes its database, queue and files.
    pub(super) async fn teardown(&mut self, keep_files: bool) {
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
    pub(super) fn log_tails(&self) -> String {
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

pub(super) async fn create_database(admin_url: &str) -> anyhow::Result<(String, String)> {
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

pub(super) async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
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
pub(super) fn budget_env(args: &SimulateArgs) -> Vec<(&'static str, String)> {
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
pub(super) async fn spawn_serve(
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

/// Stores `per_lead` answered/sent lines for each lead, ~200 bytes each (40 of them fill
/// the default 8 KiB window), as if each lead had a long conversation behind it.
pub(super) async fn seed_history(
    database_url: &str,
    leads: usize,
    per_lead: usize,
) -> anyhow::Result<()> {
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

pub(super) async fn start_target(
    args: &SimulateArgs,
    twilio: &FakeTwilio,
    model: &FakeAnthropic,
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

#[cfg(test)]
mod tests {
    use super::*;

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
