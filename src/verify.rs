//! `lead-agent verify`: the seed's 7-step post-deploy checklist as one command — a table of
//! PASS/FAIL/SKIP and a non-zero exit on any FAIL. Cloud Build runs it after every rollout
//! and rolls back on failure; an operator runs it by hand after anything else.
//!
//! Owns: the checks and their verdicts. Through `kubectl` (only when a context is given
//! and kubectl runs; otherwise SKIP, never PASS): the pods run with 0 restarts, no
//! container is in CrashLoopBackOff/Error or was OOMKilled, the Ingress in front of the
//! webhook has an external address. Over HTTP: `/health` answers 200 on the public URL
//! (with the expected commit, when given); on the ops listener (`--ops-url`, e.g. a
//! `kubectl port-forward` of the internal Service) the scheduler has upcoming jobs
//! (`/ops/scheduled`) and workers are consuming (a fresh heartbeat at `/ops/heartbeats`);
//! and a synthetic SMS from a test number, posted as a signed Twilio webhook to the public
//! URL, is answered with a sent reply. `--record` appends the result to DEPLOYMENT_STATE.md
//! (the ground truth outside the code) and reports it to the service (`POST
//! /ops/verifications`, shown on the `/ops` page).
//! Must not: change the cluster (rollback is the pipeline's decision), or print a secret.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::read_var;
use crate::probe;

/// A worker heartbeat older than this means the worker is not consuming.
pub const HEARTBEAT_FRESH_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepResult {
    pub step: String,
    pub status: Status,
    pub detail: String,
}

fn step(name: &str, status: Status, detail: impl Into<String>) -> StepResult {
    StepResult {
        step: name.to_string(),
        status,
        detail: detail.into(),
    }
}

/// The checks, in the seed's order.
pub const STEPS: [&str; 7] = [
    "pods running",
    "containers healthy",
    "service address",
    "health",
    "scheduler jobs",
    "workers consuming",
    "end-to-end sms",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub url: String,
    pub at: DateTime<Utc>,
    pub passed: bool,
    pub steps: Vec<StepResult>,
}

impl Report {
    pub fn new(url: &str, at: DateTime<Utc>, steps: Vec<StepResult>) -> Self {
        let passed = steps.iter().all(|s| s.status != Status::Fail);
        Self {
            url: url.to_string(),
            at,
            passed,
            steps,
        }
    }

    pub fn status(&self, name: &str) -> Option<Status> {
        self.steps.iter().find(|s| s.step == name).map(|s| s.status)
    }

    pub fn verdict(&self) -> &'static str {
        if self.passed { "PASS" } else { "FAIL" }
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = format!("{:<20} {:<6} {}\n", "STEP", "RESULT", "DETAIL");
        for s in &self.steps {
            out.push_str(&format!(
                "{:<20} {:<6} {}\n",
                s.step,
                s.status.as_str(),
                s.detail
            ));
        }
        let skipped = self
            .steps
            .iter()
            .filter(|s| s.status == Status::Skip)
            .count();
        out.push_str(&format!(
            "verify {}: {} at {}{}\n",
            self.verdict(),
            self.url,
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            if skipped > 0 {
                format!(" ({skipped} skipped: not verified)")
            } else {
                String::new()
            }
        ));
        out
    }

    /// The block `--record` appends to DEPLOYMENT_STATE.md.
    pub fn record_text(&self, commit: Option<&str>) -> String {
        let mut out = format!(
            "\n### {} — {} — {}{}\n\n",
            self.at.format("%Y-%m-%d %H:%M UTC"),
            self.verdict(),
            self.url,
            commit.map(|c| format!(" (commit {c})")).unwrap_or_default()
        );
        for s in &self.steps {
            out.push_str(&format!(
                "- {}: {} — {}\n",
                s.step,
                s.status.as_str(),
                s.detail
            ));
        }
        out
    }
}

/// Everything `verify` needs; the CLI fills it from flags and the environment.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The public URL: /health and the webhook.
    pub url: String,
    /// The ops listener: /ops/* and the record.
    pub ops_url: String,
    /// The URL Twilio calls (what signatures cover); defaults to `url`.
    pub public_url: Option<String>,
    pub kube_context: Option<String>,
    pub namespace: String,
    pub kubectl: String,
    pub selector: String,
    /// The Ingress whose external address step 3 checks.
    pub ingress: String,
    pub test_phone: String,
    pub to: String,
    pub wait: Duration,
    pub ops_token: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub expect_commit: Option<String>,
}

impl VerifyOptions {
    /// Defaults for a URL (the ops listener: its host on `OPS_PORT`); tokens from
    /// `OPS_TOKEN` and `TWILIO_AUTH_TOKEN`.
    pub fn for_url(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            ops_url: probe::ops_url_for(url, crate::config::local_ops_port()),
            public_url: None,
            kube_context: None,
            namespace: "default".into(),
            kubectl: "kubectl".into(),
            selector: "app=lead-agent".into(),
            ingress: "lead-agent".into(),
            test_phone: "+13125550199".into(),
            to: "+13125550000".into(),
            wait: Duration::from_secs(60),
            ops_token: read_var("OPS_TOKEN"),
            twilio_auth_token: read_var("TWILIO_AUTH_TOKEN"),
            expect_commit: None,
        }
    }
}

/// Runs every step; never fails itself (an unreachable service is a FAIL in the report).
pub async fn run(options: &VerifyOptions) -> Report {
    let at = Utc::now();
    let mut steps = kube_steps(options).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default HTTP client builds");
    steps.push(check_health(&http, options).await);
    steps.push(check_scheduler(&http, options, at).await);
    steps.push(check_workers(&http, options).await);
    steps.push(check_end_to_end(&http, options).await);
    Report::new(&options.url, at, steps)
}

// ------------------------------------------------------------------ kubectl ---------- //

async fn kubectl_json(
    options: &VerifyOptions,
    context: &str,
    args: &[&str],
) -> Result<Value, String> {
    let output = tokio::process::Command::new(&options.kubectl)
        .arg("--context")
        .arg(context)
        .arg("--namespace")
        .arg(&options.namespace)
        .args(args)
        .args(["-o", "json"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .map_err(|_| "kubectl did not answer within 30 s".to_string())?
        .map_err(|e| format!("kubectl could not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("kubectl printed no JSON: {e}"))
}

/// The three cluster steps: SKIP unless a context is given and kubectl runs; a context
/// that was given but cannot be reached is a FAIL.
async fn kube_steps(options: &VerifyOptions) -> Vec<StepResult> {
    let names = &STEPS[..3];
    let skip = |why: &str| {
        names
            .iter()
            .map(|n| step(n, Status::Skip, why))
            .collect::<Vec<_>>()
    };
    let Some(context) = options.kube_context.as_deref() else {
        return skip("no --kube-context given: the cluster was not checked");
    };
    let runs = tokio::process::Command::new(&options.kubectl)
        .args(["version", "--client"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !runs {
        return skip(&format!(
            "{} cannot be run: the cluster was not checked",
            options.kubectl
        ));
    }
    let mut out =
        match kubectl_json(options, context, &["get", "pods", "-l", &options.selector]).await {
            Ok(pods) => evaluate_pods(&pods).to_vec(),
            Err(e) => vec![
                step(names[0], Status::Fail, &e),
                step(names[1], Status::Fail, &e),
            ],
        };
    out.push(
        match kubectl_json(options, context, &["get", "ingress", &options.ingress]).await {
            Ok(service) => evaluate_service(&service),
            Err(e) => step(names[2], Status::Fail, e),
        },
    );
    out
}

/// Container states that mean "not healthy" (the seed's step 2 list, and the image pull
/// failures that a bad tag causes).
const BAD_REASONS: [&str; 6] = [
    "CrashLoopBackOff",
    "Error",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// Steps 1 and 2 from `kubectl get pods -o json`.
pub fn evaluate_pods(pods: &Value) -> [StepResult; 2] {
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        let why = "no pod matches the selector";
        return [
            step(STEPS[0], Status::Fail, why),
            step(STEPS[1], Status::Fail, why),
        ];
    }
    let mut not_running = Vec::new();
    let mut restarts = 0;
    let mut unhealthy = Vec::new();
    let mut containers = 0;
    for pod in &items {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
        if phase != "Running" {
            not_running.push(format!("{name} is {phase}"));
        }
        for c in pod["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            containers += 1;
            let cname = c["name"].as_str().unwrap_or("?");
            let n = c["restartCount"].as_i64().unwrap_or(0);
            restarts += n;
            if n > 0 {
                not_running.push(format!("{name}/{cname} restarted {n} time(s)"));
            }
            if c["ready"].as_bool() != Some(true) && phase == "Running" {
                not_running.push(format!("{name}/{cname} is not ready"));
            }
            for (when, reason) in [
                ("now", &c["state"]["waiting"]["reason"]),
                ("now", &c["state"]["terminated"]["reason"]),
                ("last", &c["lastState"]["terminated"]["reason"]),
            ] {
                if let Some(reason) = reason.as_str()
                    && BAD_REASONS.contains(&reason)
                {
                    unhealthy.push(format!("{name}/{cname} {reason} ({when})"));
                }
            }
        }
    }
    let running = if not_running.is_empty() {
        step(
            STEPS[0],
            Status::Pass,
            format!("{} pod(s) Running, all ready, 0 restarts", items.len()),
        )
    } else {
        step(
            STEPS[0],
            Status::Fail,
            format!("{} ({restarts} restart(s) in all)", not_running.join("; ")),
        )
    };
    let healthy = if unhealthy.is_empty() {
        step(
            STEPS[1],
            Status::Pass,
            format!("{containers} container(s), none crashed or OOMKilled"),
        )
    } else {
        step(STEPS[1], Status::Fail, unhealthy.join("; "))
    };
    [running, healthy]
}

/// Step 3 from `kubectl get ingress -o json`: the load balancer in front of the webhook has
/// an address (an Ingress reports it where a LoadBalancer Service did).
pub fn evaluate_service(service: &Value) -> StepResult {
    let addresses: Vec<&str> = service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
        .collect();
    if addresses.is_empty() {
        step(
            STEPS[2],
            Status::Fail,
            "the Ingress has no external address yet (<pending>)",
        )
    } else {
        step(
            STEPS[2],
            Status::Pass,
            format!("external address {}", addresses.join(", ")),
        )
    }
}

// --------------------------------------------------------------------- HTTP ---------- //

async fn get_json(
    http: &reqwest::Client,
    options: &VerifyOptions,
    path: &str,
) -> Result<Value, String> {
    probe::get_json(http, &options.ops_url, path, options.ops_token.as_deref()).await
}

async fn check_health(http: &reqwest::Client, options: &VerifyOptions) -> StepResult {
    let name = STEPS[3];
    let body = match http.get(format!("{}/health", options.url)).send().await {
        Err(e) => return step(name, Status::Fail, format!("GET /health failed: {e}")),
        Ok(r) if r.status() != reqwest::StatusCode::OK => {
            return step(
                name,
                Status::Fail,
                format!("GET /health answered {}", r.status()),
            );
        }
        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
    };
    let commit = body["commit"].as_str().unwrap_or("?");
    match &options.expect_commit {
        Some(expected)
            if !(expected.starts_with(commit) || commit.starts_with(expected.as_str()))
                || commit.is_empty() =>
        {
            step(
                name,
                Status::Fail,
                format!("200, but serving commit {commit}, expected {expected}"),
            )
        }
        _ => step(
            name,
            Status::Pass,
            format!(
                "200, version {} commit {commit}",
                body["version"].as_str().unwrap_or("?")
            ),
        ),
    }
}

/// Step 5 from `GET /ops/scheduled`: at least one job, every one due in the future.
pub fn evaluate_scheduled(jobs: &Value, now: DateTime<Utc>) -> StepResult {
    let name = STEPS[4];
    let Some(list) = jobs.as_array() else {
        return step(name, Status::Fail, "/ops/scheduled is not a JSON array");
    };
    if list.is_empty() {
        return step(
            name,
            Status::Fail,
            "no scheduled jobs: the scheduler is not running",
        );
    }
    let mut late = Vec::new();
    let mut next: Option<(DateTime<Utc>, &str)> = None;
    for job in list {
        let job_name = job["name"].as_str().unwrap_or("?");
        match job["next_fire_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) if t.with_timezone(&Utc) > now => {
                let t = t.with_timezone(&Utc);
                if next.is_none_or(|(n, _)| t < n) {
                    next = Some((t, job_name));
                }
            }
            Some(t) => late.push(format!("{job_name} due {t} is in the past")),
            None => late.push(format!("{job_name} has no next_fire_at")),
        }
    }
    match (late.is_empty(), next) {
        (true, Some((t, job))) => step(
            name,
            Status::Pass,
            format!(
                "{} job(s) upcoming; next: {job} at {}",
                list.len(),
                t.format("%H:%M:%S UTC")
            ),
        ),
        _ => step(name, Status::Fail, late.join("; ")),
    }
}

async fn check_scheduler(
    http: &reqwest::Client,
    options: &VerifyOptions,
    now: DateTime<Utc>,
) -> StepResult {
    match get_json(http, options, "/ops/scheduled").await {
        Ok(jobs) => evaluate_scheduled(&jobs, now),
        Err(e) => step(STEPS[4], Status::Fail, e),
    }
}

/// Step 6 from `GET /ops/heartbeats`: a worker (or all-in-one) heartbeat younger than
/// [`HEARTBEAT_FRESH_MS`].
pub fn evaluate_heartbeats(beats: &Value) -> StepResult {
    let name = STEPS[5];
    let Some(list) = beats.as_array() else {
        return step(name, Status::Fail, "/ops/heartbeats is not a JSON array");
    };
    let consumers: Vec<&Value> = list
        .iter()
        .filter(|b| matches!(b["role"].as_str(), Some("worker" | "all")))
        .collect();
    let fresh: Vec<String> = consumers
        .iter()
        .filter(|b| b["age_ms"].as_i64().is_some_and(|a| a < HEARTBEAT_FRESH_MS))
        .map(|b| {
            format!(
                "{} ({} ms ago)",
                b["instance"].as_str().unwrap_or("?"),
                b["age_ms"]
            )
        })
        .collect();
    if fresh.is_empty() {
        step(
            name,
            Status::Fail,
            format!(
                "no worker heartbeat younger than {} s ({} worker heartbeat(s) in all)",
                HEARTBEAT_FRESH_MS / 1000,
                consumers.len()
            ),
        )
    } else {
        step(
            name,
            Status::Pass,
            format!("{} consuming: {}", fresh.len(), fresh.join(", ")),
        )
    }
}

/// Polls within `--wait`: right after a rollout a worker's consumer may still be connecting,
/// and its first heartbeat follows within a second of consuming. A failure reports the last
/// answer seen.
async fn check_workers(http: &reqwest::Client, options: &VerifyOptions) -> StepResult {
    let started = std::time::Instant::now();
    loop {
        let result = match get_json(http, options, "/ops/heartbeats").await {
            Ok(beats) => evaluate_heartbeats(&beats),
            Err(e) => step(STEPS[5], Status::Fail, e),
        };
        if result.status == Status::Pass || started.elapsed() >= options.wait {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Step 7: what Twilio does for an inbound SMS — a signed webhook from the test number,
/// marked synthetic — then the conversation until the reply to that very message is sent.
async fn check_end_to_end(http: &reqwest::Client, options: &VerifyOptions) -> StepResult {
    let text = format!(
        "lead-agent verify {}: is the 2BR still available?",
        Utc::now().format("%Y-%m-%d %H:%M:%S")
    );
    let sms = probe::SyntheticSms {
        url: &options.url,
        ops_url: &options.ops_url,
        public_url: options.public_url.as_deref().unwrap_or(&options.url),
        twilio_auth_token: options.twilio_auth_token.as_deref(),
        ops_token: options.ops_token.as_deref(),
        from: &options.test_phone,
        to: &options.to,
        text: &text,
        wait: options.wait,
    };
    match probe::send_and_await_reply(http, &sms).await {
        Ok(detail) => step(STEPS[6], Status::Pass, detail),
        Err(why) => step(STEPS[6], Status::Fail, why),
    }
}

// ------------------------------------------------------------------- record ---------- //

/// The heading under which `--record` appends; created at the end when missing.
pub const LOG_HEADING: &str = "## Verification log";

/// Appends the report to the state file under [`LOG_HEADING`].
pub fn append_record(file: &Path, report: &Report, commit: Option<&str>) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(file).unwrap_or_default();
    if !text.contains(LOG_HEADING) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "\n{LOG_HEADING}\n\nAppended by `lead-agent verify --record`, newest last.\n"
        ));
    }
    text.push_str(&report.record_text(commit));
    std::fs::write(file, text).with_context(|| format!("Failed to write {}", file.display()))
}

/// Tells the service the result, for the `/ops` page; failure to do so is reported, not
/// fatal (the file is the record).
pub async fn post_record(options: &VerifyOptions, report: &Report) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut request = http
        .post(format!("{}/ops/verifications", options.ops_url))
        .json(report);
    if let Some(token) = &options.ops_token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("the service answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_crash_looping_or_oom_killed_container_fails_and_restarts_are_counted() {
        let pods = json!({"items": [
            {"metadata": {"name": "web-1"}, "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}]}},
            {"metadata": {"name": "worker-1"}, "status": {"phase": "Running", "containerStatuses": [
                {"name": "worker", "ready": false, "restartCount": 2,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}
        ]});
        let [running, healthy] = evaluate_pods(&pods);
        assert_eq!(running.status, Status::Fail);
        assert!(
            running.detail.contains("worker-1/worker restarted 2"),
            "{}",
            running.detail
        );
        assert_eq!(healthy.status, Status::Fail);
        assert!(
            healthy.detail.contains("CrashLoopBackOff") && healthy.detail.contains("OOMKilled"),
            "{}",
            healthy.detail
        );
    }

    #[test]
    fn running_ready_pods_without_restarts_pass() {
        let pods = json!({"items": [
            {"metadata": {"name": "web-1"}, "status": {"phase": "Running", "containerStatuses": [
                {"name": "web", "ready": true, "restartCount": 0, "state": {"running": {}}}]}}]});
        let [running, healthy] = evaluate_pods(&pods);
        assert_eq!(
            (running.status, healthy.status),
            (Status::Pass, Status::Pass)
        );
        assert_eq!(evaluate_pods(&json!({"items": []}))[0].status, Status::Fail);
    }

    #[test]
    fn a_pending_load_balancer_fails_and_an_address_passes() {
        assert_eq!(
            evaluate_service(&json!({"status": {"loadBalancer": {}}})).status,
            Status::Fail
        );
        let ok = evaluate_service(
            &json!({"status": {"loadBalancer": {"ingress": [{"ip": "34.1.2.3"}]}}}),
        );
        assert_eq!(ok.status, Status::Pass);
        assert!(ok.detail.contains("34.1.2.3"));
    }

    #[test]
    fn scheduled_jobs_must_exist_and_all_be_due_in_the_future() {
        let now = Utc::now();
        let soon = (now + chrono::Duration::minutes(5)).to_rfc3339();
        let past = (now - chrono::Duration::minutes(5)).to_rfc3339();
        assert_eq!(evaluate_scheduled(&json!([]), now).status, Status::Fail);
        assert_eq!(
            evaluate_scheduled(&json!({"jobs": []}), now).status,
            Status::Fail
        );
        assert_eq!(
            evaluate_scheduled(&json!([{"name": "followups", "next_fire_at": soon}]), now).status,
            Status::Pass
        );
        let mixed = json!([{"name": "followups", "next_fire_at": soon}, {"name": "report", "next_fire_at": past}]);
        let r = evaluate_scheduled(&mixed, now);
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.contains("report"));
    }

    #[test]
    fn only_a_fresh_worker_heartbeat_counts() {
        let stale = json!([{"instance": "w1", "role": "worker", "at": "x", "age_ms": 120000},
                           {"instance": "s1", "role": "scheduler", "at": "x", "age_ms": 10}]);
        assert_eq!(evaluate_heartbeats(&stale).status, Status::Fail);
        let fresh = json!([{"instance": "w1", "role": "worker", "at": "x", "age_ms": 1500}]);
        assert_eq!(evaluate_heartbeats(&fresh).status, Status::Pass);
    }

    #[test]
    fn a_skip_does_not_fail_the_report_but_is_never_shown_as_passed() {
        let report = Report::new(
            "http://x",
            Utc::now(),
            vec![
                step("pods running", Status::Skip, "no context"),
                step("health", Status::Pass, "200"),
            ],
        );
        assert!(report.passed);
        assert!(report.table().contains("SKIP") && report.table().contains("1 skipped"));
        let failed = Report::new(
            "http://x",
            Utc::now(),
            vec![step("health", Status::Fail, "down")],
        );
        assert!(!failed.passed);
    }

    #[test]
    fn record_appends_under_the_log_heading_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("DEPLOYMENT_STATE.md");
        std::fs::write(&file, "# DEPLOYMENT_STATE\n\nhand-written truth\n").unwrap();
        let report = Report::new(
            "http://x",
            Utc::now(),
            vec![step("health", Status::Fail, "down")],
        );
        append_record(&file, &report, Some("abc123")).unwrap();
        append_record(&file, &report, None).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# DEPLOYMENT_STATE\n\nhand-written truth\n"));
        assert_eq!(text.matches(LOG_HEADING).count(), 1);
        assert_eq!(text.matches("— FAIL — http://x").count(), 2);
        assert!(text.contains("(commit abc123)") && text.contains("- health: FAIL — down"));
    }
}
