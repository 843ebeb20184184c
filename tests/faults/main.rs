//! The fault suite (issue 11, item 8): the service's promises — never lost, never twice,
//! never silent — tried under the faults that actually happen, on real processes. The
//! suite starts its own PostgreSQL instance and its own RabbitMQ node (so it may crash
//! them; the machine's services are never touched), then for each scenario web, two
//! workers, a scheduler and the watchdog as separate processes of the real binary, with
//! fake Twilio, Anthropic and Discord in this process; it posts a burst of inbound SMS as
//! Twilio would, injects the fault mid-burst, and checks that every message was answered
//! exactly once (counted at the fake Twilio) and that the fault's alert arrived within its
//! bound. It prints one table row per scenario and fails naming what was lost, doubled or
//! late.
//!
//! One test drives the scenarios one at a time (they share the two instances and two
//! cores); a scenario whose harness panics is reported as such and the next one runs.
//! Sized for CI by default; for longer runs, set:
//!
//! - `FAULTS_BURST` — messages per scenario (default 30)
//! - `FAULTS_OUTAGE_SECS` — how long PostgreSQL and RabbitMQ stay down (default 10)
//! - `FAULTS_DISCORD_OUTAGE_SECS` — how long Discord answers 503 (default 60)
//! - `FAULTS_WATCH_INTERVAL_SECS` — the watchdog's `WATCH_INTERVAL_SECS` (default 5)
//! - `FAULTS_SCENARIOS` — a comma-separated subset of `postgres, rabbitmq, worker_kill,
//!   discord, scheduler, public_url` (default all)
//!
//! Must not: touch the machine's PostgreSQL (5432) or RabbitMQ (5672), skip a scenario
//! because something is missing (that is a failure), or leave instances running.

#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod inbound;
mod postgres;
mod rabbitmq;
mod scenarios;
mod verdict;

use std::time::Duration;

use futures::FutureExt;

use crate::scenarios::Scenario;
use crate::verdict::Verdict;

/// The two instances every scenario's cluster runs on.
pub struct Infra {
    pub pg: postgres::Postgres,
    pub rabbit: rabbitmq::Rabbit,
}

impl Infra {
    /// Starts again whatever a scenario left down (one that panicked mid-fault).
    async fn heal(&mut self) {
        if !self.pg.is_up() {
            self.pg.start_server();
        }
        if !self.rabbit.is_up() {
            self.rabbit.boot().await;
        }
    }
}

/// The suite's size, from the environment.
pub struct Knobs {
    pub burst: usize,
    pub outage: Duration,
    pub discord_outage: Duration,
    pub watch_interval_secs: u64,
    pub scenarios: Vec<Scenario>,
}

impl Knobs {
    fn from_env() -> Self {
        let number = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Err(_) => default,
                Ok(v) => v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| panic!("{name}={v:?}: expected a positive integer")),
            }
        };
        let scenarios = match std::env::var("FAULTS_SCENARIOS") {
            Err(_) => Scenario::ALL.to_vec(),
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    Scenario::ALL
                        .into_iter()
                        .find(|s| s.key() == k)
                        .unwrap_or_else(|| {
                            panic!(
                                "FAULTS_SCENARIOS: no scenario {k:?} (known: {:?})",
                                Scenario::ALL.map(Scenario::key)
                            )
                        })
                })
                .collect(),
        };
        Self {
            burst: number("FAULTS_BURST", 30) as usize,
            outage: Duration::from_secs(number("FAULTS_OUTAGE_SECS", 10)),
            discord_outage: Duration::from_secs(number("FAULTS_DISCORD_OUTAGE_SECS", 60)),
            watch_interval_secs: number("FAULTS_WATCH_INTERVAL_SECS", 5),
            scenarios,
        }
    }
}

/// (uid, gid) of a system user, e.g. the one PostgreSQL or RabbitMQ must run as.
pub fn system_user(name: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "FATAL: no system user {name:?} (is its server package installed?)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_promise_holds_under_real_faults() {
    let knobs = Knobs::from_env();
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "FATAL: the fault suite must run as root: it starts its own servers as the postgres \
         and rabbitmq users"
    );
    let started = std::time::Instant::now();
    let mut infra = Infra {
        pg: postgres::Postgres::start(),
        rabbit: rabbitmq::Rabbit::start().await,
    };
    eprintln!(
        "faults: PostgreSQL on {} and RabbitMQ on {} up in {:.1} s",
        infra.pg.port,
        infra.rabbit.port,
        started.elapsed().as_secs_f64()
    );
    let mut verdicts: Vec<Verdict> = Vec::new();
    for scenario in &knobs.scenarios {
        let title = scenario.title(&knobs);
        eprintln!("faults: {title} …");
        let t = std::time::Instant::now();
        infra.heal().await;
        let run = std::panic::AssertUnwindSafe(scenario.run(&mut infra, &knobs))
            .catch_unwind()
            .await;
        let verdict = run.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Verdict::broken(&title, why)
        });
        eprintln!(
            "faults: {title}: {} in {:.0} s",
            if verdict.passed() { "pass" } else { "FAIL" },
            t.elapsed().as_secs_f64()
        );
        verdicts.push(verdict);
    }
    let table = format!(
        "fault suite (burst {}, outages {} s, Discord {} s, watch interval {} s), {:.0} s in all:\n\n{}",
        knobs.burst,
        knobs.outage.as_secs(),
        knobs.discord_outage.as_secs(),
        knobs.watch_interval_secs,
        started.elapsed().as_secs_f64(),
        verdict::table(&verdicts)
    );
    assert!(
        verdicts.iter().all(Verdict::passed),
        "a promise broke under a fault.\n\n{table}"
    );
    println!("\n{table}");
}
