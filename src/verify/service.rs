//! `verify`'s service steps (4–7) over HTTP: `/health` on the public URL, the scheduler's
//! upcoming jobs and the workers' heartbeats on the ops listener, and the synthetic SMS.
//! Must not: send anything but the one synthetic SMS from the test number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STEPS, Status, StepResult, VerifyOptions, step};
use crate::probe;

/// A worker heartbeat older than this means the worker is not consuming.
pub const HEARTBEAT_FRESH_MS: i64 = 60_000;

async fn get_json(
    http: &reqwest::Client,
    options: &VerifyOptions,
    path: &str,
) -> Result<Value, String> {
    probe::get_json(http, &options.ops_url, path, options.ops_token.as_deref()).await
}

pub(super) async fn check_health(http: &reqwest::Client, options: &VerifyOptions) -> StepResult {
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

/// A job due this very moment is being run, not late: the scheduler moves its next fire
/// time on only once the run has started, so a verify that lands on a minute's boundary
/// sees every `* * * * *` job "due" a few milliseconds ago (CI caught it at 00:52:00). Late
/// is beyond this; a scheduler that stopped is past it within half a minute of any job.
pub const DUE_GRACE_SECS: i64 = 30;

/// Step 5 from `GET /ops/scheduled`: at least one job, every one due in the future (or
/// within [`DUE_GRACE_SECS`] of now: firing).
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
            Some(t) if t.with_timezone(&Utc) > now - chrono::Duration::seconds(DUE_GRACE_SECS) => {
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

pub(super) async fn check_scheduler(
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
pub(super) async fn check_workers(http: &reqwest::Client, options: &VerifyOptions) -> StepResult {
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
pub(super) async fn check_end_to_end(
    http: &reqwest::Client,
    options: &VerifyOptions,
    text: &str,
) -> StepResult {
    let sms = probe::SyntheticSms {
        url: &options.url,
        ops_url: &options.ops_url,
        public_url: options.public_url.as_deref().unwrap_or(&options.url),
        twilio_auth_token: options.twilio_auth_token.as_deref(),
        ops_token: options.ops_token.as_deref(),
        from: &options.test_phone,
        to: &options.to,
        text,
        wait: options.wait,
    };
    match probe::send_and_await_reply(http, &sms).await {
        Ok(detail) => step(STEPS[6], Status::Pass, detail),
        Err(why) => step(STEPS[6], Status::Fail, why),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
        // Due this instant (the run under way) is not late; due past the grace is.
        let firing = (now - chrono::Duration::milliseconds(5)).to_rfc3339();
        let stuck = (now - chrono::Duration::seconds(DUE_GRACE_SECS + 1)).to_rfc3339();
        assert_eq!(
            evaluate_scheduled(&json!([{"name": "heartbeat", "next_fire_at": firing}]), now).status,
            Status::Pass
        );
        assert_eq!(
            evaluate_scheduled(&json!([{"name": "heartbeat", "next_fire_at": stuck}]), now).status,
            Status::Fail
        );
    }

    #[test]
    fn only_a_fresh_worker_heartbeat_counts() {
        let stale = json!([{"instance": "w1", "role": "worker", "at": "x", "age_ms": 120000},
                           {"instance": "s1", "role": "scheduler", "at": "x", "age_ms": 10}]);
        assert_eq!(evaluate_heartbeats(&stale).status, Status::Fail);
        let fresh = json!([{"instance": "w1", "role": "worker", "at": "x", "age_ms": 1500}]);
        assert_eq!(evaluate_heartbeats(&fresh).status, Status::Pass);
    }
}
