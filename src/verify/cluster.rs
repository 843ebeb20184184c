//! `verify`'s cluster steps (1–3) through `kubectl`: pods running, containers healthy, the
//! Ingress's address. SKIP unless a context is given and kubectl runs.
//! Must not: change the cluster.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{STEPS, Status, StepResult, VerifyOptions, step};

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
pub(super) async fn kube_steps(options: &VerifyOptions) -> Vec<StepResult> {
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
            Ok(pods) => evaluate_pods(&pods, Utc::now(), options.max_pod_age).to_vec(),
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

/// "2h 03m", "4m 10s", "12s": a pod's age as an operator reads it.
fn age_text(age: chrono::Duration) -> String {
    let s = age.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Steps 1 and 2 from `kubectl get pods -o json`. With `max_age` (the seed's "age < 5m"
/// after a deploy), a pod created longer ago than that fails step 1: the rollout did not
/// replace it, so what runs is not what was just deployed. A terminating pod (one with a
/// `deletionTimestamp`, the old replica a rollout is stopping) is not held to the age.
pub fn evaluate_pods(
    pods: &Value,
    now: DateTime<Utc>,
    max_age: Option<chrono::Duration>,
) -> [StepResult; 2] {
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
        let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
        if let (Some(max), false) = (max_age, terminating) {
            let created = pod["metadata"]["creationTimestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            match created {
                Some(created) if now - created.with_timezone(&Utc) > max => {
                    not_running.push(format!(
                        "{name} is {} old (over {}: not replaced by this rollout)",
                        age_text(now - created.with_timezone(&Utc)),
                        age_text(max)
                    ));
                }
                Some(_) => {}
                None => not_running.push(format!("{name} has no creationTimestamp")),
            }
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
            format!(
                "{} pod(s) Running, all ready, 0 restarts{}",
                items.len(),
                max_age
                    .map(|m| format!(", none older than {}", age_text(m)))
                    .unwrap_or_default()
            ),
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
        let [running, healthy] = evaluate_pods(&pods, Utc::now(), None);
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
        let [running, healthy] = evaluate_pods(&pods, Utc::now(), None);
        assert_eq!(
            (running.status, healthy.status),
            (Status::Pass, Status::Pass)
        );
        assert_eq!(
            evaluate_pods(&json!({"items": []}), Utc::now(), None)[0].status,
            Status::Fail
        );
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
    fn after_a_deploy_a_pod_older_than_the_limit_fails_unless_terminating_or_relaxed() {
        let now: DateTime<Utc> = "2026-12-03T10:00:00Z".parse().unwrap();
        let pod = |name: &str, created: &str, deleting: bool| {
            let mut p = json!({"metadata": {"name": name, "creationTimestamp": created},
                "status": {"phase": "Running", "containerStatuses": [
                    {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-12-03T09:59:30Z");
            }
            p
        };
        let five = Some(chrono::Duration::seconds(300));
        let fresh = json!({"items": [pod("web-new", "2026-12-03T09:57:10Z", false),
                                     pod("web-old", "2026-12-01T08:00:00Z", true)]});
        let [running, _] = evaluate_pods(&fresh, now, five);
        assert_eq!(running.status, Status::Pass, "{}", running.detail);
        assert!(
            running.detail.contains("none older than 5m 00s"),
            "{}",
            running.detail
        );

        let stale = json!({"items": [pod("worker-1", "2026-12-03T07:57:00Z", false)]});
        let [running, _] = evaluate_pods(&stale, now, five);
        assert_eq!(running.status, Status::Fail);
        assert!(
            running
                .detail
                .contains("worker-1 is 2h 03m old (over 5m 00s"),
            "{}",
            running.detail
        );
        // `--any-pod-age`: an operator verifying long after the deploy.
        let [running, _] = evaluate_pods(&stale, now, None);
        assert_eq!(running.status, Status::Pass, "{}", running.detail);
    }
}
