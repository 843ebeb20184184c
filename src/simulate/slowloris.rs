//! `lead-agent simulate --slow-loris N`: the slow-loris load test. Starts the service as
//! `simulate` does (a child process of this binary on a fresh store, with the fake Twilio and
//! model), or targets one with `--url`, then measures `/health` and real signed webhooks
//! (`POST /twilio/sms`, signed with the service's TWILIO_AUTH_TOKEN) for `--phase-secs`
//! before any attack and again while N connections trickle request heads a byte at a time —
//! each kept as long as the service allows and reopened at once when cut — and reports the
//! two phases side by side, with what the attack got (how long its connections lived, how
//! many were cut or answered) and, for a service this run started, its open file
//! descriptors and its `lead_agent_http_*` counters.
//!
//! Every probe is a new connection (as the kubelet's probes and, mostly, Twilio make them)
//! and open-loop: sent at its time whatever the earlier ones are doing, so a stalled service
//! shows as latency and failures, not as fewer samples.
//!
//! Owns: the attack and the probes. Must not: reach into the service except over HTTP and
//! `/proc` (its descriptors and memory).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::args::SimulateArgs;
use super::burst::{Webhook, prepare_webhooks};
use super::report::Latency;
use super::service::{Target, read_memory};

/// One kind of probe over one phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Probe {
    pub sent: usize,
    /// Answered 200 (latency is over these).
    pub ok: usize,
    /// Answered otherwise (by status) or not at all (`0`: no answer within 30 s, or the
    /// connection failed).
    pub failed: BTreeMap<u16, usize>,
    pub latency: Latency,
    pub p90_ms: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Phase {
    pub health: Probe,
    pub webhook: Probe,
    /// Slow connections open at the phase's samples (min, max); 0 before the attack.
    pub attack_open_min: usize,
    pub attack_open_max: usize,
    /// The service's open file descriptors (max over the phase), when it is ours.
    pub service_fds_max: Option<usize>,
    pub service_rss_kib_max: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Attack {
    pub connections: usize,
    pub trickle_ms: u64,
    /// Connections opened in all (the first N, then every reopening).
    pub opened: usize,
    /// Closed by the service without a word (timeouts, eviction).
    pub cut: usize,
    /// Closed by the service after an answer (a 503 past the cap, a 408).
    pub answered: usize,
    pub connect_failures: usize,
    /// How long a slow connection lived before the service closed it.
    pub lifetime_p50_secs: f64,
    pub lifetime_max_secs: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SlowLorisReport {
    pub url: String,
    pub phase_secs: u64,
    pub probe_rate: f64,
    pub service_env: Vec<String>,
    pub before: Phase,
    pub during: Phase,
    pub attack: Attack,
    /// `lead_agent_http_*` at the end, for a service that lets us read `/metrics`.
    pub service_counters: BTreeMap<String, f64>,
}

impl SlowLorisReport {
    pub fn summary(&self) -> String {
        let row = |name: &str, b: &Probe, d: &Probe| {
            let failed = |p: &Probe| p.failed.values().sum::<usize>();
            format!(
                "  {name:<8} {:>6}/{:<6} {:>8.2} {:>8.2} {:>8.2} {:>9.2} |  {:>6}/{:<6} {:>8.2} {:>8.2} {:>8.2} {:>9.2}\n",
                b.ok,
                failed(b),
                b.latency.p50_ms,
                b.p90_ms,
                b.latency.p99_ms,
                b.latency.max_ms,
                d.ok,
                failed(d),
                d.latency.p50_ms,
                d.p90_ms,
                d.latency.p99_ms,
                d.latency.max_ms,
            )
        };
        let a = &self.attack;
        let mut out = format!(
            "slow-loris against {} — {} s per phase, {} probes/s of each kind, each on a new connection\n\
             \x20                  before the attack                  |  during: {} slow connections (open {}–{})\n\
             \x20 probe      ok/failed   p50 ms   p90 ms   p99 ms    max ms |      ok/failed   p50 ms   p90 ms   p99 ms    max ms\n",
            self.url,
            self.phase_secs,
            self.probe_rate,
            a.connections,
            self.during.attack_open_min,
            self.during.attack_open_max,
        );
        out += &row("/health", &self.before.health, &self.during.health);
        out += &row("webhook", &self.before.webhook, &self.during.webhook);
        for (phase, p) in [("before", &self.before), ("during", &self.during)] {
            if !p.health.failed.is_empty() || !p.webhook.failed.is_empty() {
                out += &format!(
                    "  failures {phase}: /health {:?}, webhook {:?} (status: count; 0 = no answer)\n",
                    p.health.failed, p.webhook.failed
                );
            }
        }
        out += &format!(
            "  attack: {} connections opened ({} reopenings), {} cut without an answer, {} answered and closed, {} failed to connect; a slow connection lived p50 {:.1} s, max {:.1} s\n",
            a.opened,
            a.opened.saturating_sub(a.connections),
            a.cut,
            a.answered,
            a.connect_failures,
            a.lifetime_p50_secs,
            a.lifetime_max_secs,
        );
        if let (Some(b), Some(d)) = (self.before.service_fds_max, self.during.service_fds_max) {
            out += &format!(
                "  service: open file descriptors max {b} before, {d} during; RSS max {} / {} KiB\n",
                self.before.service_rss_kib_max.unwrap_or(0),
                self.during.service_rss_kib_max.unwrap_or(0),
            );
        }
        if !self.service_counters.is_empty() {
            out += "  service counters:";
            for (k, v) in &self.service_counters {
                out += &format!(" {k}={v}");
            }
            out += "\n";
        }
        out
    }
}

/// What the slow connections share.
#[derive(Default)]
struct AttackState {
    open: AtomicUsize,
    opened: AtomicUsize,
    cut: AtomicUsize,
    answered: AtomicUsize,
    connect_failures: AtomicUsize,
    lifetimes: Mutex<Vec<Duration>>,
}

/// One slow-loris client: opens a connection, sends a request line, then one byte of a
/// header every `trickle` and never ends the head; when the service closes it, opens another.
async fn slow_client(addr: String, trickle: Duration, state: Arc<AttackState>, n: usize) {
    let line = format!("x-loris-{n}: {}\r\n", "k".repeat(16));
    loop {
        let mut stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(_) => {
                state.connect_failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        state.opened.fetch_add(1, Ordering::Relaxed);
        state.open.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        let head = format!("POST /twilio/sms HTTP/1.1\r\nhost: {addr}\r\n");
        let mut answered = false;
        if stream.write_all(head.as_bytes()).await.is_ok() {
            let mut buf = [0u8; 1024];
            let mut next = line.bytes().cycle();
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => {
                        answered = matches!(read, Ok(n) if n > 0);
                        break;
                    }
                    () = tokio::time::sleep(trickle) => {
                        let byte = next.next().unwrap_or(b'k');
                        if stream.write_all(&[byte]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        state.open.fetch_sub(1, Ordering::Relaxed);
        let counter = if answered {
            &state.answered
        } else {
            &state.cut
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = state.lifetimes.lock() {
            l.push(began.elapsed());
        }
        // Reopen at once, as an attacker would; a short pause keeps a refusing service from
        // turning this loop into a spin.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `/health` and webhook probes at `rate` each for `secs`, open-loop; samples the
/// attack and the service meanwhile.
async fn measure(
    target: &Target,
    webhooks: &[Webhook],
    rate: f64,
    secs: u64,
    attack: &AttackState,
    pid: Option<u32>,
) -> anyhow::Result<Phase> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .http1_only()
        .timeout(Duration::from_secs(30))
        .build()?;
    let count = ((secs as f64) * rate).ceil() as usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        let health = {
            let (client, url) = (client.clone(), format!("{}/health", target.web_url));
            tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let status = match client.get(url).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        if r.bytes().await.is_ok() { s } else { 0 }
                    }
                    Err(_) => 0,
                };
                (status, sent.elapsed())
            })
        };
        let w = &webhooks[i % webhooks.len()];
        let webhook = {
            let mut request = client
                .post(format!("{}/twilio/sms", target.web_url))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(w.body.clone());
            if let Some(sig) = &w.signature {
                request = request.header("X-Twilio-Signature", sig);
            }
            tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let status = match request.send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        if r.bytes().await.is_ok() { s } else { 0 }
                    }
                    Err(_) => 0,
                };
                (status, sent.elapsed())
            })
        };
        tasks.push((health, webhook));
    }
    let mut phase = Phase {
        attack_open_min: usize::MAX,
        ..Phase::default()
    };
    let end = started + Duration::from_secs(secs);
    while Instant::now() < end {
        let open = attack.open.load(Ordering::Relaxed);
        phase.attack_open_min = phase.attack_open_min.min(open);
        phase.attack_open_max = phase.attack_open_max.max(open);
        if let Some(pid) = pid {
            if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                let n = fds.count();
                phase.service_fds_max = Some(phase.service_fds_max.unwrap_or(0).max(n));
            }
            if let (Some(rss), _) = read_memory(pid) {
                phase.service_rss_kib_max = Some(phase.service_rss_kib_max.unwrap_or(0).max(rss));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if phase.attack_open_min == usize::MAX {
        phase.attack_open_min = 0;
    }
    let (mut health, mut webhook) = (Vec::new(), Vec::new());
    for (h, w) in tasks {
        health.push(h.await.unwrap_or((0, Duration::ZERO)));
        webhook.push(w.await.unwrap_or((0, Duration::ZERO)));
    }
    phase.health = probe_of(health);
    phase.webhook = probe_of(webhook);
    Ok(phase)
}

fn probe_of(results: Vec<(u16, Duration)>) -> Probe {
    let mut probe = Probe {
        sent: results.len(),
        ..Probe::default()
    };
    let mut ok = Vec::new();
    for (status, took) in results {
        if status == 200 {
            ok.push(took);
        } else {
            *probe.failed.entry(status).or_default() += 1;
        }
    }
    probe.ok = ok.len();
    probe.latency = Latency::of(&mut ok);
    if !ok.is_empty() {
        let rank = ((0.9 * ok.len() as f64).ceil() as usize).clamp(1, ok.len());
        probe.p90_ms = ok[rank - 1].as_secs_f64() * 1000.0;
    }
    probe
}

/// The service's `lead_agent_http_*` series, if `/metrics` answers us.
async fn service_counters(base: &str) -> BTreeMap<String, f64> {
    let Ok(r) = reqwest::get(format!("{base}/metrics")).await else {
        return BTreeMap::new();
    };
    if !r.status().is_success() {
        return BTreeMap::new();
    }
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("lead_agent_http_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Runs the slow-loris test and returns its report.
pub async fn run(args: &SimulateArgs) -> anyhow::Result<SlowLorisReport> {
    args.check()?;
    let connections = args.slow_loris.unwrap_or(1000);
    let soft = crate::http::server::descriptor_limit();
    if (soft as usize) < connections + 256 {
        anyhow::bail!(
            "this process may open {soft} files: too few for {connections} slow connections and the probes (`ulimit -n`)"
        );
    }
    let (twilio, model) = super::start_fakes(args).await?;
    let http = super::burst::load_client(16)?;
    let mut target = super::service::start_target(args, &twilio, &model, &http).await?;
    let outcome = attack(args, connections, &target).await;
    let failed = outcome.is_err();
    let outcome = outcome.map_err(|e| e.context(target.log_tails()));
    target.teardown(failed).await;
    outcome
}

async fn attack(
    args: &SimulateArgs,
    connections: usize,
    target: &Target,
) -> anyhow::Result<SlowLorisReport> {
    tokio::time::sleep(Duration::from_secs(2)).await; // settle, as a fresh pod would
    let pid = target.processes.first().map(|p| p.memory.pid);
    let per_phase = ((args.phase_secs as f64) * args.probe_rate).ceil() as usize;
    let webhooks = prepare_webhooks(per_phase * 2, target.signing.as_ref());
    let (first, second) = webhooks.split_at(per_phase);
    let state = Arc::new(AttackState::default());

    let before = measure(target, first, args.probe_rate, args.phase_secs, &state, pid).await?;

    let addr = target
        .web_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let trickle = Duration::from_millis(args.trickle_ms);
    let mut clients = Vec::with_capacity(connections);
    for n in 0..connections {
        clients.push(tokio::spawn(slow_client(
            addr.clone(),
            trickle,
            state.clone(),
            n,
        )));
        if n % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let ramp = Instant::now();
    while state.open.load(Ordering::Relaxed) < connections
        && ramp.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = measure(
        target,
        second,
        args.probe_rate,
        args.phase_secs,
        &state,
        pid,
    )
    .await?;
    for c in &clients {
        c.abort();
    }
    let mut lifetimes = state
        .lifetimes
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lifetimes.sort_unstable();
    let attack = Attack {
        connections,
        trickle_ms: args.trickle_ms,
        opened: state.opened.load(Ordering::Relaxed),
        cut: state.cut.load(Ordering::Relaxed),
        answered: state.answered.load(Ordering::Relaxed),
        connect_failures: state.connect_failures.load(Ordering::Relaxed),
        lifetime_p50_secs: lifetimes
            .get(lifetimes.len() / 2)
            .map_or(0.0, Duration::as_secs_f64),
        lifetime_max_secs: lifetimes.last().map_or(0.0, Duration::as_secs_f64),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(SlowLorisReport {
        url: target.web_url.clone(),
        phase_secs: args.phase_secs,
        probe_rate: args.probe_rate,
        service_env: args.service_env.clone(),
        before,
        during,
        attack,
        service_counters: service_counters(&target.ops_url).await,
    })
}

/// `simulate --slow-loris`: runs, prints the table, writes the JSON.
pub async fn main(args: &SimulateArgs) -> anyhow::Result<()> {
    let report = run(args).await?;
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("Failed to write {}", path.display()))?;
        println!("  JSON: {}", path.display());
    }
    Ok(())
}
