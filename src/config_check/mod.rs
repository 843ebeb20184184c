//! `lead-agent config check` and `config print`: the guard against configuration drift
//! between the code and the Kubernetes manifests — the seed lost hours to "I added the key
//! to the ConfigMap, why isn't the pod seeing it?".
//!
//! Owns: reading a manifest directory — every kustomization no other one includes,
//! rendered by `kubectl kustomize` (the real renderer, never a copy of its rules), and every
//! YAML file no kustomization uses (the files applied by hand) — and comparing it with
//! [`ENV_VARS`]: every container takes a ConfigMap and a Secret through `envFrom` and has
//! no per-container `configMapKeyRef`/`secretKeyRef` entry; each variable the code reads is
//! a key of what it takes or a literal of the container, and no literal hides a key; every
//! key of every ConfigMap and Secret is a variable its containers read, a secret only in a
//! Secret, the watch's objects only the watch's; every container has resources, `/health`
//! and `/ready` probes; the pod's grace period holds the shutdown budget (preStop sleep +
//! `HTTP_SHUTDOWN_SECS` + `SHUTDOWN_GRACE_SECS` + a margin; the watch: no turns);
//! replicated roles have a disruption budget; each service container's AGENT_PROFILE is a
//! built-in profile. What the network can reach (the Ingress, the
//! Services, the ops port, the binds and the tokens they need) is checked by
//! [`crate::deploy_lint::check_exposure`], which this runs too. Also the redacted view of
//! the effective configuration (`config print`) and the keys to paste (`config env-yaml`).
//! Must not: talk to a cluster (it checks files; `kubectl kustomize` renders offline), or
//! print a secret's value.

//!
//! Layout: [`manifests`] reads and renders the directory and answers questions about one
//! object; `grace` holds the shutdown budget and disruption budgets; [`print`] is `config
//! print` and `config env-yaml`; this file is the check itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::{ENV_VARS, EnvVar};
use crate::watch;

mod grace;
pub mod manifests;
pub mod print;
#[cfg(test)]
mod tests;

pub use manifests::*;
pub use print::*;

pub use grace::GRACE_MARGIN_SECS;
use grace::{check_budgets, check_grace};

/// The variables a container must be given: the watch's own list for a watch container;
/// for the service's, every variable but those only the watch reads.
fn expected_vars(vars: &[EnvVar], watch: bool) -> Vec<&EnvVar> {
    vars.iter()
        .filter(|v| {
            if watch {
                watch::settings::VARS.contains(&v.name)
            } else {
                !watch::settings::WATCH_ONLY.contains(&v.name)
            }
        })
        .collect()
}

/// Every mismatch between `vars` (the code) and `manifests`, one readable line each;
/// empty means the manifests are consistent with the code.
pub fn check(vars: &[EnvVar], manifests: &[Manifest]) -> Vec<String> {
    let mut problems = Vec::new();
    let deployments: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.kind() == "Deployment")
        .collect();
    if deployments.is_empty() {
        problems.push("no Deployment found among the manifests".to_string());
    }
    let config_maps: BTreeMap<&str, &Manifest> = manifests
        .iter()
        .filter(|m| m.kind() == "ConfigMap")
        .map(|m| (m.name(), m))
        .collect();
    let secrets: BTreeMap<&str, &Manifest> = manifests
        .iter()
        .filter(|m| m.kind() == "Secret")
        .map(|m| (m.name(), m))
        .collect();
    let object = |kind: &str, name: &str| -> Option<&Manifest> {
        if kind == "ConfigMap" {
            config_maps.get(name).copied()
        } else {
            secrets.get(name).copied()
        }
    };
    // Which (kind, object) each kind of container (watch or not) takes through envFrom.
    let mut taken: BTreeMap<(&'static str, String), BTreeSet<bool>> = BTreeMap::new();

    for d in &deployments {
        let list = containers(d);
        if list.is_empty() {
            problems.push(format!(
                "deployment/{} ({}): no containers",
                d.name(),
                d.file
            ));
        }
        for c in list {
            let at = format!(
                "deployment/{} container {}",
                d.name(),
                c["name"].as_str().unwrap_or("?")
            );
            let watch = runs_watch(c);
            let expected = expected_vars(vars, watch);
            let declared: BTreeMap<&str, &EnvVar> = expected.iter().map(|v| (v.name, *v)).collect();

            // Its variables come from a ConfigMap and a Secret, whole: no per-container list.
            let from = container_env_from(c);
            for kind in ["ConfigMap", "Secret"] {
                if !from
                    .iter()
                    .any(|f| f.object().is_some_and(|(k, _)| k == kind))
                {
                    problems.push(format!(
                        "{at}: takes no {kind} through envFrom: every container takes its variables from the ConfigMap and the Secret, not from entries of its own"
                    ));
                }
            }
            // Who gives each variable: a key of an envFrom object, or an env entry.
            let mut givers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in &from {
                let Some((kind, name)) = f.object() else {
                    problems.push(format!(
                        "{at}: an envFrom entry has a prefix or names neither a ConfigMap nor a Secret: each key must be the variable's own name"
                    ));
                    continue;
                };
                taken
                    .entry((kind, name.to_string()))
                    .or_default()
                    .insert(watch);
                match object(kind, name) {
                    None => problems.push(format!(
                        "{at}: takes {kind} {name} through envFrom, which no manifest in the directory defines"
                    )),
                    Some(m) => {
                        for key in object_keys(m) {
                            givers.entry(key).or_default().push(format!("{kind} {name}"));
                        }
                    }
                }
            }

            let env = container_env(c);
            let mut seen = BTreeSet::new();
            for (name, source) in &env {
                if !seen.insert(name.as_str()) {
                    problems.push(format!("{at}: {name} is declared twice"));
                }
                let Some(var) = declared.get(name.as_str()) else {
                    problems.push(if !vars.iter().any(|v| v.name == name) {
                        format!(
                            "{at}: {name} is declared in the manifest but the code does not read it (not in config::ENV_VARS)"
                        )
                    } else if watch {
                        format!(
                            "{at}: {name} is declared but the watch does not read it (not in watch::settings::VARS)"
                        )
                    } else {
                        format!(
                            "{at}: {name} is read only by the watch (watch::settings::WATCH_ONLY): declare it in the watch's Deployment, not here"
                        )
                    });
                    continue;
                };
                match source {
                    Source::ConfigMap { .. } | Source::Secret { .. } => problems.push(format!(
                        "{at}: {name} comes from a per-container {}: make it a key of the {} the container takes through envFrom",
                        if matches!(source, Source::ConfigMap { .. }) {
                            "configMapKeyRef"
                        } else {
                            "secretKeyRef"
                        },
                        if var.secret { "Secret" } else { "ConfigMap" }
                    )),
                    Source::Literal if var.secret => problems.push(format!(
                        "{at}: {name} is a secret but comes from a literal value; make it a key of the Secret"
                    )),
                    _ => {}
                }
                if let Some(objects) = givers.get(name.as_str()) {
                    problems.push(format!(
                        "{at}: {name} is set in the container and is also a key of {}, whose value it hides",
                        objects.join(" and ")
                    ));
                }
            }
            for (key, objects) in &givers {
                if objects.len() > 1 {
                    problems.push(format!(
                        "{at}: {key} is a key of both {}: which value wins depends on the order of envFrom",
                        objects.join(" and ")
                    ));
                }
            }
            for var in &expected {
                if !seen.contains(var.name) && !givers.contains_key(var.name) {
                    problems.push(format!(
                        "{at}: {} is read by the {} but is a key of no ConfigMap or Secret it takes, nor set in this container",
                        var.name,
                        if watch {
                            "watch (watch::settings::VARS)"
                        } else {
                            "code (config::ENV_VARS)"
                        }
                    ));
                }
            }
            // Who the container is: a profile the binary has, or it would not start.
            if !watch
                && let Some(name) = configured_value(c, "AGENT_PROFILE", &config_maps)
                && crate::config::profile::builtin(name.trim()).is_none()
            {
                problems.push(format!(
                    "{at}: AGENT_PROFILE={name:?} is not a built-in profile ({}): the service would refuse to start",
                    crate::config::profile::BUILTIN_PROFILES.join(", ")
                ));
            }
            for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
                if probe_path(c, probe) != Some(path) {
                    problems.push(format!("{at}: {probe} must be an httpGet of {path}"));
                }
            }
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    if c["resources"][bound][resource].is_null() {
                        problems.push(format!("{at}: resources.{bound}.{resource} is not set"));
                    }
                }
            }
        }
        check_grace(d, &config_maps, &mut problems);
    }

    check_budgets(manifests, &deployments, &mut problems);
    problems.extend(crate::deploy_lint::check_exposure(manifests));

    // A Secret mounted as a volume is read whole, as files.
    let mounted: BTreeSet<&str> = deployments
        .iter()
        .flat_map(|d| {
            d.doc["spec"]["template"]["spec"]["volumes"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|v| v["secret"]["secretName"].as_str())
        })
        .collect();
    // The keys of every ConfigMap and Secret: each one reaches every container taking the
    // object, so each must be a variable those containers read, and a secret only in a Secret.
    for (kind, objects) in [("ConfigMap", &config_maps), ("Secret", &secrets)] {
        for (name, m) in objects.iter() {
            let at = format!("{kind} {name} ({})", m.file);
            let Some(takers) = taken.get(&(kind, name.to_string())) else {
                if kind == "Secret" && mounted.contains(name) {
                    continue;
                }
                for key in object_keys(m) {
                    problems.push(format!(
                        "{at} has the key {key}, which no container reads: no container takes the {kind} through envFrom, so its keys never reach a pod"
                    ));
                }
                continue;
            };
            if takers.len() > 1 {
                problems.push(format!(
                    "{at} is taken by the watch and by the service's containers: the watch has its own objects, so a mistake in the service's cannot blind it"
                ));
            }
            for watch in takers {
                let expected = expected_vars(vars, *watch);
                for key in object_keys(m) {
                    match vars.iter().find(|v| v.name == key) {
                        None => problems.push(format!(
                            "{at} has the key {key}, which the code does not read (not in config::ENV_VARS): a misspelt variable is silently ignored"
                        )),
                        Some(_) if !expected.iter().any(|v| v.name == key) => {
                            problems.push(if *watch {
                                format!(
                                    "{at} has the key {key}, which the watch does not read (not in watch::settings::VARS)"
                                )
                            } else {
                                format!(
                                    "{at} has the key {key}, which only the watch reads (watch::settings::WATCH_ONLY): it belongs in the watch's own {kind}"
                                )
                            })
                        }
                        Some(v) if v.secret && kind == "ConfigMap" => problems.push(format!(
                            "{at} has the key {key}, a secret: it belongs in the Secret"
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    problems
}

/// `config check`: prints each problem and fails when there is any.
pub fn run_check(dir: &Path) -> anyhow::Result<()> {
    let manifests = load_manifests(dir)?;
    let mut problems = check(ENV_VARS, &manifests);
    problems.extend(crate::deploy_lint::check_repo_files(dir));
    if problems.is_empty() {
        let deployments = manifests
            .iter()
            .filter(|m| m.kind() == "Deployment")
            .count();
        println!(
            "config check: OK — {} variables given to every service container, {} to every watch container (envFrom: their ConfigMap and Secret), of {deployments} Deployment(s) in {}",
            expected_vars(ENV_VARS, false).len(),
            expected_vars(ENV_VARS, true).len(),
            dir.display()
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("MISMATCH {p}");
        }
        anyhow::bail!("config check found {} problem(s)", problems.len())
    }
}
