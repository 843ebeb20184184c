//! `lead-agent verify` against a running local server (and a stopped one), in process and
//! as the real binary: HTTP steps pass or fail on what the server does; the cluster steps
//! are SKIPPED without a kube context and never reported as passed.

use std::process::Command;
use std::time::Duration;

use lead_agent::verify::{self, STEPS, Status, VerifyOptions};
use serde_json::Value;

use crate::fake_discord::FakeDiscord;
use crate::helpers::*;

fn options_for(app: &TestApp) -> VerifyOptions {
    let mut options = VerifyOptions::for_url(&app.base_url);
    options.ops_url = app.ops_url.clone();
    options.public_url = Some(PUBLIC_URL.into());
    options.twilio_auth_token = Some(AUTH_TOKEN.into());
    options.ops_token = None; // loopback, OPS_TOKEN unset
    options.test_phone = "+13125550177".into();
    options.wait = Duration::from_secs(15);
    // The trace is read only where a test points it at its fake Discord.
    options.event_channel = Err("no event channel in this test".into());
    options
}

#[tokio::test]
async fn verify_passes_health_scheduler_workers_and_end_to_end_against_a_running_server() {
    let app = spawn_app().await;
    let report = verify::run(&options_for(&app)).await;
    println!("{}", report.table());
    for step in [
        "health",
        "scheduler jobs",
        "workers consuming",
        "end-to-end sms",
    ] {
        assert_eq!(
            report.status(step),
            Some(Status::Pass),
            "{step}:\n{}",
            report.table()
        );
    }
    for step in &STEPS[..3] {
        assert_eq!(report.status(step), Some(Status::Skip), "{step}");
    }
    assert!(report.passed);
    // The synthetic SMS really went through the whole path: Twilio got the reply.
    assert_eq!(app.twilio.sent_to("+13125550177").len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn kubectl_steps_are_skipped_without_a_context_or_kubectl_and_fail_on_an_unreachable_cluster()
{
    let app = spawn_app().await;
    let mut options = options_for(&app);
    options.wait = Duration::from_secs(1);

    options.kubectl = "/nonexistent/kubectl".into();
    options.kube_context = Some("prod".into());
    let report = verify::run(&options).await;
    for step in &STEPS[..3] {
        assert_eq!(
            report.status(step),
            Some(Status::Skip),
            "{step}:\n{}",
            report.table()
        );
    }

    // kubectl runs but the context does not exist: the operator asked for the cluster, so
    // not reaching it is a failure, not a skip.
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        options.kubectl = "kubectl".into();
        options.kube_context = Some("lead-agent-no-such-context".into());
        let report = verify::run(&options).await;
        for step in &STEPS[..3] {
            assert_eq!(
                report.status(step),
                Some(Status::Fail),
                "{step}:\n{}",
                report.table()
            );
        }
        assert!(!report.passed);
    }
    app.stop().await;
}

fn run_binary(args: &[&str]) -> (bool, String) {
    run_binary_with(args, &[])
}

fn run_binary_with(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .arg("verify")
        .args(args)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
        .env_remove("OPS_TOKEN")
        .env_remove("DISCORD_BOT_TOKEN")
        .env_remove("DISCORD_CHANNEL_EVENT")
        .env_remove("DISCORD_DEFAULT_CHANNEL")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test]
async fn verify_against_a_stopped_server_fails_with_a_non_zero_exit_and_skips_the_cluster() {
    let app = spawn_app().await;
    let url = app.base_url.clone();
    app.stop().await;

    let (ok, table) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_binary(&["--url", &url, "--wait-secs", "1"])
    })
    .await
    .unwrap();
    println!("{table}");
    assert!(!ok, "verify must exit non-zero:\n{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("health") && l.contains("FAIL")),
        "{table}"
    );
    assert!(table.contains("verify FAIL"));

    let (ok, json) = tokio::task::spawn_blocking(move || {
        run_binary(&["--url", &url, "--wait-secs", "1", "--json"])
    })
    .await
    .unwrap();
    assert!(!ok);
    let report: Value = serde_json::from_str(&json).expect("--json prints JSON");
    assert_eq!(report["passed"], false);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), STEPS.len());
    for s in steps {
        // The cluster steps without a context, the trace without a Discord token to read it.
        let skipped = STEPS[..3].contains(&s["step"].as_str().unwrap()) || s["step"] == STEPS[7];
        let expected = if skipped { "SKIP" } else { "FAIL" };
        assert_eq!(s["status"], expected, "{s}");
    }
}

#[tokio::test]
async fn verify_record_appends_to_the_state_file_and_reports_to_the_service() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("DEPLOYMENT_STATE.md");
    std::fs::write(&state, "# DEPLOYMENT_STATE\n").unwrap();
    let (url, ops_url, file) = (
        app.base_url.clone(),
        app.ops_url.clone(),
        state.display().to_string(),
    );
    let (_, table) = tokio::task::spawn_blocking(move || {
        run_binary(&[
            "--url",
            &url,
            "--ops-url",
            &ops_url,
            "--public-url",
            PUBLIC_URL,
            "--test-phone",
            "+13125550178",
            "--wait-secs",
            "15",
            "--record",
            &file,
        ])
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.starts_with("# DEPLOYMENT_STATE\n") && text.contains(verify::LOG_HEADING),
        "{text}"
    );
    assert!(text.contains("- end-to-end sms: PASS"), "{text}\n{table}");
    let stored = app
        .store
        .last_verification()
        .await
        .unwrap()
        .expect("the service got the record");
    assert_eq!(stored.url, app.base_url);
    assert_eq!(stored.passed, table.contains("verify PASS"));
    app.stop().await;
}

/// The seed's step 7 reads Discord for the event trace: run as the pipeline runs it (the
/// binary, the service's DISCORD_* variables), against an app whose EVENT stream posts to
/// the fake Discord.
#[tokio::test]
async fn verify_reads_the_synthetic_smss_event_trace_back_from_the_event_channel() {
    let discord = FakeDiscord::start().await;
    let mut env = discord.env();
    env.push(("DISCORD_CHANNEL_EVENT", EVENT_CHANNEL.to_string()));
    let app = spawn_app_with(TestOptions {
        env: env.clone(),
        ..TestOptions::default()
    })
    .await;
    let (url, ops_url) = (app.base_url.clone(), app.ops_url.clone());
    let (ok, table) = tokio::task::spawn_blocking(move || {
        run_binary_with(
            &[
                "--url",
                &url,
                "--ops-url",
                &ops_url,
                "--public-url",
                PUBLIC_URL,
                "--test-phone",
                "+13125550179",
                "--wait-secs",
                "20",
            ],
            &env,
        )
    })
    .await
    .unwrap();
    println!("{table}");
    let trace = table
        .lines()
        .find(|l| l.starts_with("event trace"))
        .unwrap_or_default()
        .to_string();
    assert!(
        trace.contains("PASS") && trace.contains("message_received → ai_response → sms_sent"),
        "{table}"
    );
    assert!(ok, "{table}");
    app.stop().await;
}

/// A deploy whose alerts do not reach Discord fails the trace even though the SMS was
/// answered: here the app posts its events to the log while verify reads the channel.
#[tokio::test]
async fn verify_fails_the_event_trace_when_the_events_never_reach_the_channel() {
    let discord = FakeDiscord::start().await;
    let app = spawn_app().await;
    let mut options = options_for(&app);
    options.wait = Duration::from_secs(4);
    options.event_channel = Ok(verify::EventChannel {
        api_base: discord.url.clone(),
        bot_token: crate::fake_discord::BOT_TOKEN.to_string(),
        channel: EVENT_CHANNEL.to_string(),
    });
    let report = verify::run(&options).await;
    println!("{}", report.table());
    assert_eq!(report.status("end-to-end sms"), Some(Status::Pass));
    assert_eq!(report.status("event trace"), Some(Status::Fail));
    let detail = &report.steps.last().unwrap().detail;
    assert!(detail.contains("missing message_received"), "{detail}");
    assert!(!report.passed);

    // A token Discord refuses is a FAIL that says so, not a wait.
    options.event_channel = Ok(verify::EventChannel {
        bot_token: "wrong".into(),
        ..options.event_channel.clone().unwrap()
    });
    let report = verify::run(&options).await;
    let detail = &report.steps.last().unwrap().detail;
    assert_eq!(report.status("event trace"), Some(Status::Fail));
    assert!(detail.contains("401"), "{detail}");
    app.stop().await;
}

const EVENT_CHANNEL: &str = "7001";

/// A release refused by verify must page someone now: the service that takes the FAIL
/// report (the old release, still serving, in a rollout) raises `verification_failed` in
/// the ERROR channel, naming the failed steps; a PASS raises nothing.
#[tokio::test]
async fn a_failed_verification_recorded_with_the_service_alerts_the_error_channel() {
    const ERROR: &str = "7002";
    let discord = FakeDiscord::start().await;
    let mut env = discord.env();
    env.push(("DISCORD_CHANNEL_ERROR", ERROR.to_string()));
    env.push(("DISCORD_DEFAULT_CHANNEL", "7003".to_string()));
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    let report = |passed: bool| {
        let steps = vec![
            verify::StepResult {
                step: "health".into(),
                status: Status::Pass,
                detail: "200".into(),
            },
            verify::StepResult {
                step: "end-to-end sms".into(),
                status: if passed { Status::Pass } else { Status::Fail },
                detail: "no reply was sent within 45 s".into(),
            },
        ];
        verify::Report::new("http://127.0.0.1:18212", chrono::Utc::now(), steps)
    };
    for passed in [true, false] {
        let r = app
            .http
            .post(format!("{}/ops/verifications", app.ops_url))
            .json(&report(passed))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let alerted = poll_until(15, || async { !discord.texts_in(ERROR).is_empty() }).await;
    assert!(alerted, "{:?}", discord.created());
    let texts = discord.texts_in(ERROR);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("verify FAILED against http://127.0.0.1:18212")
            && texts[0].contains("end-to-end sms: no reply was sent within 45 s")
            && !texts[0].contains("health"),
        "{texts:?}"
    );
    assert!(!app.store.last_verification().await.unwrap().unwrap().passed);
    app.stop().await;
}
