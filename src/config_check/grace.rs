//! The shutdown budget (the pod's grace period holds preStop + `HTTP_SHUTDOWN_SECS` +
//! `SHUTDOWN_GRACE_SECS` + a margin; the watch runs no turns) and the disruption budgets of
//! replicated roles. Must not: read files (it is handed the parsed manifests).

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::config::ENV_VARS;

use super::manifests::*;

/// Every Deployment with more than one replica has a PodDisruptionBudget selecting its
/// pods. (Who can reach the pods — Ingress, Services, binds — is
/// [`crate::deploy_lint::check_exposure`].)
pub(super) fn check_budgets(
    manifests: &[Manifest],
    deployments: &[&Manifest],
    problems: &mut Vec<String>,
) {
    let budgets: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.kind() == "PodDisruptionBudget")
        .collect();
    for d in deployments {
        if d.doc["spec"]["replicas"].as_u64().unwrap_or(1) > 1
            && !budgets.iter().any(|b| {
                labels_match(
                    &b.doc["spec"]["selector"]["matchLabels"],
                    &d.doc["spec"]["template"]["metadata"]["labels"],
                )
            })
        {
            problems.push(format!(
                "deployment/{} has more than one replica but no PodDisruptionBudget selects its pods",
                d.name()
            ));
        }
    }
}

/// Kubernetes kills a pod `terminationGracePeriodSeconds` after it starts terminating, and
/// that clock includes the preStop hook. After the hook, SIGTERM: the listener drains for at
/// most `HTTP_SHUTDOWN_SECS`, then running turns get `SHUTDOWN_GRACE_SECS`, then the actor tree
/// stops (this margin). So the pod's grace must hold their sum; the watch has no turns.
pub const GRACE_MARGIN_SECS: f64 = 3.0;

/// The value of `var` the pod will see: the largest its containers are configured with
/// ([`configured_value`]), else the default.
fn configured_seconds(d: &Manifest, config_maps: &BTreeMap<&str, &Manifest>, var: &str) -> f64 {
    let default: f64 = ENV_VARS
        .iter()
        .find(|v| v.name == var)
        .and_then(|v| v.default)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    containers(d)
        .iter()
        .filter_map(|c| configured_value(c, var, config_maps))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .reduce(f64::max)
        .unwrap_or(default)
}

/// The longest preStop hook of the pod's containers, in seconds: `sleep N` as an exec
/// command, or the `sleep` action. A hook of another kind has no known length: a problem.
pub(super) fn pre_stop_seconds(d: &Manifest, problems: &mut Vec<String>) -> f64 {
    let mut longest: f64 = 0.0;
    for c in containers(d) {
        let hook = &c["lifecycle"]["preStop"];
        if hook.is_null() {
            continue;
        }
        let command: Vec<&str> = hook["exec"]["command"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let secs = match command.as_slice() {
            ["sleep", n] | ["/bin/sleep", n] => n.parse::<f64>().ok(),
            _ => seconds_of(&hook["sleep"]["seconds"]),
        };
        match secs {
            Some(s) => longest = longest.max(s),
            None => problems.push(format!(
                "deployment/{} container {}: its preStop hook is not a sleep, so its length cannot be counted in the shutdown budget",
                d.name(),
                c["name"].as_str().unwrap_or("?")
            )),
        }
    }
    longest
}

pub(super) fn check_grace(
    d: &Manifest,
    config_maps: &BTreeMap<&str, &Manifest>,
    problems: &mut Vec<String>,
) {
    let pre_stop = pre_stop_seconds(d, problems);
    let http = configured_seconds(d, config_maps, "HTTP_SHUTDOWN_SECS");
    let watch = list_runs_watch(d);
    // The watch keeps no work to finish: SHUTDOWN_GRACE_SECS is the service's.
    let turns = if watch {
        0.0
    } else {
        configured_seconds(d, config_maps, "SHUTDOWN_GRACE_SECS")
    };
    let needed = pre_stop + http + turns + GRACE_MARGIN_SECS;
    let sum = if watch {
        format!(
            "preStop ({pre_stop}) + HTTP_SHUTDOWN_SECS ({http}) + {GRACE_MARGIN_SECS} = {needed}"
        )
    } else {
        format!(
            "preStop ({pre_stop}) + HTTP_SHUTDOWN_SECS ({http}) + SHUTDOWN_GRACE_SECS ({turns}) + {GRACE_MARGIN_SECS} = {needed}"
        )
    };
    match seconds_of(&d.doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) {
        None => problems.push(format!(
            "deployment/{}: terminationGracePeriodSeconds is not set (the shutdown needs {sum} s)",
            d.name()
        )),
        Some(pod) if pod < needed => problems.push(format!(
            "deployment/{}: terminationGracePeriodSeconds ({pod}) must be at least {sum}: Kubernetes would kill the process before its ordered stop ends",
            d.name()
        )),
        Some(_) => {}
    }
}
