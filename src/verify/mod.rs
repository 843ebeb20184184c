//! `lead-agent verify`: the seed's 7-step post-deploy checklist as one command — a table of
//! PASS/FAIL/SKIP and a non-zero exit on any FAIL. Cloud Build runs it after every rollout
//! and rolls back on failure; an operator runs it by hand after anything else.
//!
//! Owns: the checks and their verdicts. Through `kubectl` (only when a context is given
//! and kubectl runs; otherwise SKIP, never PASS; `cluster.rs`): the pods run with 0
//! restarts and none is older than the seed's 5 minutes after a deploy, no
//! container is in CrashLoopBackOff/Error or was OOMKilled, the Ingress in front of the
//! webhook has an external address. Over HTTP: `/health` answers 200 on the public URL
//! (with the expected commit, when given); on the ops listener (`--ops-url`, e.g. a
//! `kubectl port-forward` of the internal Service) the scheduler has upcoming jobs
//! (`/ops/scheduled`) and workers are consuming (a fresh heartbeat at `/ops/heartbeats`);
//! and a synthetic SMS from a test number, posted as a signed Twilio webhook to the public
//! URL, is answered with a sent reply (`service.rs`), and its event trace reached the
//! EVENT channel in Discord (`trace.rs`). `--record` (`record.rs`) appends the result to DEPLOYMENT_STATE.md
//! (the ground truth outside the code) and reports it to the service (`POST
//! /ops/verifications`, shown on the `/ops` page).
//! Must not: change the cluster (rollback is the pipeline's decision), or print a secret.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::read_var;
use crate::probe;

mod cluster;
mod record;
mod service;
mod trace;

pub use cluster::{evaluate_pods, evaluate_service};
pub use record::{LOG_HEADING, append_record, post_record};
pub use service::{HEARTBEAT_FRESH_MS, evaluate_heartbeats, evaluate_scheduled};
pub use trace::{EventChannel, TRACE, find_trace, parse_page, snowflake_at};

use cluster::kube_steps;
use service::{check_end_to_end, check_health, check_scheduler, check_workers};

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

/// The seed's step 1 after a deploy: "age < 5m".
pub const DEFAULT_MAX_POD_AGE_SECS: u64 = 300;

/// The checks, in the seed's order.
pub const STEPS: [&str; 8] = [
    "pods running",
    "containers healthy",
    "service address",
    "health",
    "scheduler jobs",
    "workers consuming",
    "end-to-end sms",
    // The second half of the seed's step 7: "check Discord channels for the event trace".
    "event trace",
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
    /// Step 1 fails for a pod older than this (`None`: any age passes).
    pub max_pod_age: Option<chrono::Duration>,
    /// Where the event trace is read (`Err`: why it cannot be, and the step is SKIP).
    pub event_channel: Result<EventChannel, String>,
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
            event_channel: EventChannel::from_env(),
            max_pod_age: Some(chrono::Duration::seconds(DEFAULT_MAX_POD_AGE_SECS as i64)),
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
    let sent_at = Utc::now();
    let text = format!(
        "lead-agent verify {}: is the 2BR still available?",
        sent_at.format("%Y-%m-%d %H:%M:%S%.3f")
    );
    let end_to_end = check_end_to_end(&http, options, &text).await;
    let answered = end_to_end.status == Status::Pass;
    steps.push(end_to_end);
    steps.push(
        trace::check_event_trace(
            options.event_channel.as_ref().map_err(String::as_str),
            answered,
            &options.test_phone,
            &text,
            sent_at,
            options.wait,
        )
        .await,
    );
    Report::new(&options.url, at, steps)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
