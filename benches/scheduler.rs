//! Scheduler benchmark (not a test): how late ticks fire while a burst of leads is being
//! answered, and how long a followup sweep takes over 100,000 leads in PostgreSQL.
//!
//! `cargo bench --bench scheduler` (needs PostgreSQL at BENCH_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test). Options through the environment:
//! BENCH_LEADS (600), BENCH_MODEL_MS (1000), BENCH_CONCURRENCY (12), BENCH_SWEEP_LEADS
//! (100000). Prints the figures BENCHMARKS.md records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::alert_router::AlertRouter;
use actors::ports::{ChatModel, SystemClock};
use actors::testing::{FakeModel, RecordingAlertSink};
use chrono::Utc;
use lead_agent::config::Settings;
use lead_agent::queue::{InProcessQueue, WorkQueue};
use lead_agent::scheduler::JobContext;
use lead_agent::scheduler::jobs::followup_sweep;
use lead_agent::startup::{Application, Overrides};
use lead_agent::store::{SqlStore, fresh_postgres_database};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn settings(pairs: &[(&str, String)]) -> Settings {
    let map: HashMap<&str, &str> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Settings::from_map(&map).expect("bench settings are valid")
}

async fn lateness_under_burst() {
    let leads = env_or("BENCH_LEADS", 600);
    let model_ms = env_or("BENCH_MODEL_MS", 1000);
    let cap = env_or("BENCH_CONCURRENCY", 12);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/bench.db", dir.path().display());
    let s = settings(&[
        ("PORT", "0".into()),
        ("BIND_ADDRESS", "127.0.0.1".into()),
        ("OPS_PORT", "0".into()),
        ("DATABASE_URL", db),
        ("LLM_CONCURRENCY", cap.to_string()),
        ("SCHEDULE_HEARTBEAT", "* * * * * *".into()),
        ("SCHEDULE_RESPONSE_GAP_WATCH", "* * * * * *".into()),
        ("SCHEDULE_FOLLOWUP_SWEEP", "* * * * * *".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    let model: Arc<dyn ChatModel> = Arc::new(
        FakeModel::answering("Thanks! When would you like to move in?")
            .with_latency(Duration::from_millis(model_ms)),
    );
    let app = Application::build(
        s,
        Overrides {
            chat_models: Some(vec![model]),
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}/twilio/sms", app.local_addr());
    let store = app.state().store.clone();
    let server = tokio::spawn(app.run_until_stopped(std::future::pending()));

    // Let the scheduler settle into its schedule before the burst.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let http = reqwest::Client::new();
    let started = Utc::now();
    let t0 = Instant::now();
    let mut posts = Vec::new();
    for i in 0..leads {
        let http = http.clone();
        let url = url.clone();
        posts.push(tokio::spawn(async move {
            let form = [
                ("MessageSid", format!("SM{i:032}")),
                ("AccountSid", "ACbench".to_string()),
                ("From", format!("+1555{i:07}")),
                ("To", "+13125550000".to_string()),
                ("Body", "Hi, is the 2BR still available?".to_string()),
            ];
            http.post(url)
                .form(&form)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for p in posts {
        assert_eq!(p.await.unwrap().unwrap(), 200);
    }
    // Every lead answered: nothing pending.
    loop {
        let waiting = store
            .waiting_since(Utc::now() + chrono::Duration::hours(1), 1)
            .await
            .unwrap();
        if waiting.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = t0.elapsed();
    let ended = Utc::now();
    // Give the last in-window ticks time to be recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut late = Vec::new();
    for job in ["heartbeat", "response_gap_watch", "followup_sweep"] {
        for t in store.job_ticks(job).await.unwrap() {
            if t.fire_at >= started && t.fire_at <= ended {
                late.push((t.claimed_at - t.fire_at).num_milliseconds());
            }
        }
    }
    late.sort_unstable();
    println!(
        "lateness during a burst of {leads} leads (model {model_ms} ms, cap {cap}; drain {:.2} s, ideal {:.2} s):",
        drain.as_secs_f64(),
        leads as f64 * model_ms as f64 / 1000.0 / cap as f64
    );
    println!(
        "  ticks {}  p50 {} ms  p99 {} ms  max {} ms",
        late.len(),
        percentile(&late, 0.50),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0)
    );
    server.abort();
}

async fn followup_sweep_over_postgres() {
    let n = env_or("BENCH_SWEEP_LEADS", 100_000) as i64;
    let admin = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    for due in [0, 1_000, 10_000].map(|d: i64| d.min(n)) {
        let db = fresh_postgres_database(&admin).await;
        let store = SqlStore::connect(&db).await.unwrap();
        let t = Instant::now();
        store.seed_followup_bench(n, due).await.unwrap();
        let seed = t.elapsed();
        let s = settings(&[
            ("DATABASE_URL", db.clone()),
            ("OWNER_TZ", "UTC".into()),
            // Quiet hours far from now, so every due timer is sent.
            ("QUIET_HOURS", {
                let h = (Utc::now() + chrono::Duration::hours(12))
                    .format("%H")
                    .to_string();
                format!("{h}:00-{h}:30")
            }),
        ]);
        let (alerts, _router) = AlertRouter::start(
            Arc::new(RecordingAlertSink::default()),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let queue: Arc<dyn WorkQueue> = Arc::new(InProcessQueue::default());
        let sms: Arc<dyn actors::ports::SmsSender> = Arc::new(actors::testing::FakeSms::default());
        let sla = Arc::new(
            lead_agent::sla::SlaEngine::new(&s, &store, queue.clone(), sms, alerts.clone())
                .unwrap(),
        );
        let ctx = JobContext {
            settings: Arc::new(s),
            store,
            queue,
            alerts,
            sla,
            instance: "bench".into(),
            crm_texts: None,
            doc_intake: None,
        };
        let t = Instant::now();
        let report = followup_sweep(&ctx, Utc::now()).await.unwrap();
        let took = t.elapsed();
        assert_eq!(report.sent as i64, due);
        println!(
            "followup sweep over {n} leads in PostgreSQL, {due} due: {:.1} ms ({} sent; seeding took {:.1} s){}",
            took.as_secs_f64() * 1000.0,
            report.sent,
            seed.as_secs_f64(),
            if due > 0 {
                format!(
                    "; {:.2} ms per followup queued",
                    took.as_secs_f64() * 1000.0 / due as f64
                )
            } else {
                String::new()
            }
        );
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; nothing else is understood.
    lateness_under_burst().await;
    followup_sweep_over_postgres().await;
}
