//! `lead-agent simulate` end to end with tiny bursts: the real binary as the service, the
//! simulator's own fakes, and its JSON report. Correctness only (every lead answered once,
//! the report's fields present); no timing is asserted.

use std::path::Path;

use clap::Parser;
use lead_agent::cli::{Cli, Command};
use lead_agent::simulate::SimulateArgs;
use serde_json::Value;

fn simulate_args(extra: &[&str]) -> SimulateArgs {
    let binary = env!("CARGO_BIN_EXE_lead-agent");
    let mut argv = vec!["lead-agent", "simulate", "--binary", binary];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)
        .expect("the arguments parse")
        .command
    {
        Command::Simulate(args) => *args,
        other => panic!("parsed as {other:?}"),
    }
}

/// Runs `simulate` writing JSON and SVG into `dir`; returns the JSON.
async fn run_simulate(dir: &Path, extra: &[&str]) -> Value {
    let json = dir.join("result.json");
    let plot = dir.join("replies.svg");
    let mut argv: Vec<&str> = extra.to_vec();
    let (json_s, plot_s) = (json.display().to_string(), plot.display().to_string());
    argv.extend(["--json", &json_s, "--plot", &plot_s]);
    lead_agent::simulate::main(simulate_args(&argv))
        .await
        .expect("the simulation succeeds");
    let svg = std::fs::read_to_string(&plot).expect("the plot is written");
    assert!(
        svg.starts_with("<svg") && svg.contains("ideal N·L/C"),
        "{svg}"
    );
    serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON is written"))
        .expect("the JSON parses")
}

fn assert_every_lead_answered_once(v: &Value, leads: u64) {
    assert_eq!(v["webhooks"]["accepted"], leads, "{v:#}");
    assert_eq!(v["webhooks"]["rejected"], 0, "{v:#}");
    assert_eq!(v["answered"], leads, "{v:#}");
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicated"], 0, "{v:#}");
    assert_eq!(v["model_calls"], leads, "one model call per lead: {v:#}");
    for key in [
        "generator_ceiling",
        "drain_secs",
        "ideal_drain_secs",
        "drain_ratio",
        "first_response",
        "max_model_concurrency",
        "memory",
        "peak_rss_kib",
        "rss_growth_per_lead_kib",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v:#}");
    }
    for key in ["webhooks_per_sec", "elapsed_secs"] {
        assert!(v["webhooks"][key].as_f64().unwrap() > 0.0, "{key}: {v:#}");
    }
    for key in ["p50_ms", "p99_ms", "max_ms"] {
        assert!(v["webhooks"]["ack"][key].is_number(), "{key}: {v:#}");
        assert!(v["first_response"][key].is_number(), "{key}: {v:#}");
    }
    assert!(v["drain_secs"].as_f64().unwrap() > 0.0, "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_embedded_burst_is_answered_once_per_lead_and_fully_reported() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_simulate(
        dir.path(),
        &[
            "--leads",
            "5",
            "--model-latency-ms",
            "10",
            "--concurrency",
            "2",
            "--client-concurrency",
            "3",
        ],
    )
    .await;
    assert_every_lead_answered_once(&v, 5);
    let max = v["max_model_concurrency"].as_u64().unwrap();
    assert!((1..=2).contains(&max), "the cap C = 2 holds: {v:#}");
    assert_eq!(v["config"]["backend"], "embedded");
    let memory = v["memory"].as_array().unwrap();
    assert_eq!(memory.len(), 1, "one service process: {v:#}");
    if cfg!(target_os = "linux") {
        assert!(memory[0]["peak_rss_kib"].as_u64().unwrap() > 0, "{v:#}");
        assert!(memory[0]["idle_rss_kib"].as_u64().unwrap() > 0, "{v:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_history_is_loaded_and_the_leads_still_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_simulate(
        dir.path(),
        &[
            "--leads",
            "3",
            "--history",
            "50",
            "--model-latency-ms",
            "0",
            "--concurrency",
            "2",
            "--no-ceiling",
        ],
    )
    .await;
    assert_every_lead_answered_once(&v, 3);
    assert_eq!(v["config"]["history_per_lead"], 50);
    assert!(v["generator_ceiling"].is_null(), "--no-ceiling: {v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_burst_on_postgres_and_rabbitmq_with_two_workers_is_answered_once_per_lead() {
    let dir = tempfile::tempdir().unwrap();
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let v = run_simulate(
        dir.path(),
        &[
            "--backend",
            "postgres-rabbitmq",
            "--workers",
            "2",
            "--admin-database-url",
            &admin,
            "--leads",
            "6",
            "--model-latency-ms",
            "20",
            "--concurrency",
            "4",
            "--client-concurrency",
            "3",
            "--no-ceiling",
        ],
    )
    .await;
    assert_every_lead_answered_once(&v, 6);
    assert_eq!(v["config"]["backend"], "postgres-rabbitmq");
    let names: Vec<&str> = v["memory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["worker-1", "worker-2", "web"], "{v:#}");
}

#[tokio::test]
async fn the_slow_loris_mode_measures_both_phases_and_the_service_cuts_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("slowloris.json");
    let json_s = json.display().to_string();
    let args = simulate_args(&[
        "--slow-loris",
        "20",
        "--phase-secs",
        "3",
        "--probe-rate",
        "4",
        "--trickle-ms",
        "200",
        "--service-env",
        "HTTP_HEADER_TIMEOUT_SECS=1",
        "--json",
        &json_s,
    ]);
    lead_agent::simulate::main(args)
        .await
        .expect("the slow-loris run succeeds");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for phase in ["before", "during"] {
        for probe in ["health", "webhook"] {
            let p = &v[phase][probe];
            assert_eq!(p["sent"], 12, "{phase} {probe}: {v:#}");
            assert_eq!(
                p["ok"], 12,
                "every probe answered 200, {phase} {probe}: {v:#}"
            );
        }
    }
    assert_eq!(v["during"]["attack_open_max"], 20, "{v:#}");
    assert!(v["attack"]["cut"].as_u64().unwrap() > 0, "{v:#}");
    assert!(
        v["attack"]["opened"].as_u64().unwrap() > 20,
        "cut connections are reopened: {v:#}"
    );
    // Its connections lived about the header timeout, not the whole run.
    assert!(
        v["attack"]["lifetime_p50_secs"].as_f64().unwrap() < 3.0,
        "{v:#}"
    );
}
