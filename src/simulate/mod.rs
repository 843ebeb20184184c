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
//!
//! The fakes are the workspace's one copy (`testkit/`); the whole module, with them and
//! the progress bar, is in the binary only with the `simulate` feature (README, "Load
//! test").

mod args;
mod burst;
pub mod report;
mod service;
pub mod slowloris;
mod tally;

pub use args::{Backend, SimulateArgs};
pub use burst::lead_number;
pub use service::read_memory;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use testkit::fake_anthropic::FakeAnthropic;
use testkit::fake_twilio::FakeTwilio;

use burst::*;
use report::SimReport;
use service::*;
use tally::*;

/// The fake Twilio and the fake model every run's service talks to.
async fn start_fakes(args: &SimulateArgs) -> anyhow::Result<(FakeTwilio, FakeAnthropic)> {
    let twilio = FakeTwilio::start_on(args.fake_twilio_addr)
        .await
        .context("Failed to start the fake Twilio")?;
    let model = FakeAnthropic::start_bench(
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
    model: &FakeAnthropic,
    http: &reqwest::Client,
) -> anyhow::Result<SimReport> {
    // Settle, as a freshly started pod would before its first request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    target.sample(|m| &mut m.idle_rss_kib);

    let webhooks = Arc::new(prepare_webhooks(args.leads, target.signing.as_ref()));
    let generator_ceiling = if args.no_ceiling {
        None
    } else {
        let trivial = start_trivial_endpoint().await?;
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
            if twilio.total() >= args.leads
                && count_answered(&twilio.sends_at(), &leads) == args.leads
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
