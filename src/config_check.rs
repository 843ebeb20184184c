//! `lead-agent config check` and `config print`: the guard against configuration drift
//! between the code and the Kubernetes manifests — the seed lost hours to "I added the key
//! to the ConfigMap, why isn't the pod seeing it?".
//!
//! Owns: reading the manifests of a directory (every `*.yaml`/`*.yml`, every document in
//! each) and comparing every container of every Deployment with [`ENV_VARS`]: each variable
//! the code reads is declared in each container and nothing else is; a secret comes from a
//! `secretKeyRef`, never a literal or a ConfigMap; a reference's key is the variable's own
//! name and points at a ConfigMap/Secret the directory defines; every key those define is
//! read by the containers; every container has resources, `/health` and `/ready` probes;
//! the pod's grace period holds the shutdown budget (preStop sleep + `HTTP_SHUTDOWN_SECS` +
//! `SHUTDOWN_GRACE_SECS` + a margin; the watch: no turns); replicated roles have a
//! disruption budget. What the network can reach (the Ingress, the Services, the ops port,
//! the binds and the tokens they need) is checked by [`crate::deploy_lint::check_exposure`],
//! which this runs too. Also the redacted view of the effective configuration (`config
//! print`).
//! Must not: talk to a cluster (it checks files), or print a secret's value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde_yaml_ng::Value;

use crate::config::{ENV_VARS, EnvVar, read_var};
use crate::watch;

/// One manifest document, with the file it came from (for messages).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: String,
    pub doc: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.doc["kind"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.doc["metadata"]["name"].as_str().unwrap_or("?")
    }
}

/// Every document of every YAML file in `dir`, in file-name order. A file that does not
/// parse is an error naming it: a check that skipped it would pass on a broken manifest.
pub fn load_manifests(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("Failed to read the manifest directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no *.yaml manifests in {}", dir.display());
    }
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("Failed to read {}", path.display()))?;
        out.extend(parse_manifests(&path.display().to_string(), &text)?);
    }
    Ok(out)
}

/// The documents of one YAML text (`---`-separated); empty documents are skipped.
pub fn parse_manifests(file: &str, text: &str) -> anyhow::Result<Vec<Manifest>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let doc =
            Value::deserialize(document).with_context(|| format!("{file} is not valid YAML"))?;
        if !doc.is_null() {
            out.push(Manifest {
                file: file.to_string(),
                doc,
            });
        }
    }
    Ok(out)
}

/// Where one container's variable comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Literal,
    ConfigMap {
        name: String,
        key: String,
    },
    Secret {
        name: String,
        key: String,
    },
    /// fieldRef / resourceFieldRef: the Downward API.
    Other,
}

/// The env entries of one container, in order (duplicates kept, so they can be reported).
pub fn container_env(container: &Value) -> Vec<(String, Source)> {
    let Some(env) = container["env"].as_sequence() else {
        return Vec::new();
    };
    env.iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap_or("").to_string();
            let from = &e["valueFrom"];
            let source = if let Some(r) = from.get("configMapKeyRef") {
                Source::ConfigMap {
                    name: r["name"].as_str().unwrap_or("").into(),
                    key: r["key"].as_str().unwrap_or("").into(),
                }
            } else if let Some(r) = from.get("secretKeyRef") {
                Source::Secret {
                    name: r["name"].as_str().unwrap_or("").into(),
                    key: r["key"].as_str().unwrap_or("").into(),
                }
            } else if from.is_mapping() {
                Source::Other
            } else {
                Source::Literal
            };
            (name, source)
        })
        .collect()
}

/// The pod template's containers of a workload manifest.
pub fn containers(manifest: &Manifest) -> Vec<&Value> {
    manifest.doc["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

/// The probe path of `probe` (`livenessProbe`/`readinessProbe`), when it is an HTTP GET.
fn probe_path<'a>(container: &'a Value, probe: &str) -> Option<&'a str> {
    container[probe]["httpGet"]["path"].as_str()
}

/// A YAML scalar as a number of seconds (`30` or `"30"`).
fn seconds_of(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// True for a container running `lead-agent watch`: it reads the watch's variables
/// ([`watch::settings::VARS`]), not the service's.
pub fn runs_watch(container: &Value) -> bool {
    container["args"][0].as_str() == Some("watch")
}

/// The variables a container must declare: the watch's own list for a watch container;
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
    // Every (kind, object, key) some container reads, to find keys nobody reads.
    let mut referenced: BTreeSet<(&'static str, String, String)> = BTreeSet::new();

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
            let env = container_env(c);
            let watch = runs_watch(c);
            let expected = expected_vars(vars, watch);
            let declared: BTreeMap<&str, &EnvVar> = expected.iter().map(|v| (v.name, *v)).collect();
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
                    Source::Literal | Source::ConfigMap { .. } if var.secret => {
                        problems.push(format!(
                            "{at}: {name} is a secret but comes from {}; use a secretKeyRef",
                            if *source == Source::Literal {
                                "a literal value"
                            } else {
                                "a ConfigMap"
                            }
                        ))
                    }
                    Source::ConfigMap { name: object, key }
                    | Source::Secret { name: object, key } => {
                        let (kind, defined) = match source {
                            Source::ConfigMap { .. } => {
                                ("ConfigMap", config_maps.contains_key(object.as_str()))
                            }
                            _ => ("Secret", secrets.contains_key(object.as_str())),
                        };
                        if key != name {
                            problems.push(format!(
                                "{at}: {name} reads the key {key:?} of {kind} {object}; the key must be the variable's name"
                            ));
                        }
                        if !defined {
                            problems.push(format!(
                                "{at}: {name} reads {kind} {object}, which no manifest in the directory defines"
                            ));
                        }
                        referenced.insert((kind, object.clone(), key.clone()));
                    }
                    _ => {}
                }
            }
            for var in &expected {
                if !seen.contains(var.name) {
                    problems.push(format!(
                        "{at}: {} is read by the {} but not declared in this container",
                        var.name,
                        if watch {
                            "watch (watch::settings::VARS)"
                        } else {
                            "code (config::ENV_VARS)"
                        }
                    ));
                }
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
    for (kind, objects) in [("ConfigMap", &config_maps), ("Secret", &secrets)] {
        for (object, m) in objects.iter() {
            if kind == "Secret" && mounted.contains(object) {
                continue;
            }
            let data = if kind == "Secret" && m.doc.get("stringData").is_some() {
                &m.doc["stringData"]
            } else {
                &m.doc["data"]
            };
            for key in data.as_mapping().into_iter().flat_map(|m| m.keys()) {
                let key = key.as_str().unwrap_or("").to_string();
                if !referenced.contains(&(kind, object.to_string(), key.clone())) {
                    problems.push(format!(
                        "{kind} {object} ({}) has the key {key}, which no container reads: a key in a {kind} alone never reaches the pod",
                        m.file
                    ));
                }
            }
        }
    }
    problems
}

/// Every container of the Deployment runs the watch.
pub(crate) fn list_runs_watch(d: &Manifest) -> bool {
    let list = containers(d);
    !list.is_empty() && list.iter().all(|c| runs_watch(c))
}

pub(crate) fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Every Deployment with more than one replica has a PodDisruptionBudget selecting its
/// pods. (Who can reach the pods — Ingress, Services, binds — is
/// [`crate::deploy_lint::check_exposure`].)
fn check_budgets(manifests: &[Manifest], deployments: &[&Manifest], problems: &mut Vec<String>) {
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

/// The value of `var` the pod will see: the largest a container reads from a ConfigMap of the
/// directory, else the default.
fn configured_seconds(d: &Manifest, config_maps: &BTreeMap<&str, &Manifest>, var: &str) -> f64 {
    let default: f64 = ENV_VARS
        .iter()
        .find(|v| v.name == var)
        .and_then(|v| v.default)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let mut seen: Option<f64> = None;
    for c in containers(d) {
        for (name, source) in container_env(c) {
            if name == var
                && let Source::ConfigMap { name: object, key } = source
                && let Some(v) = config_maps
                    .get(object.as_str())
                    .and_then(|m| seconds_of(&m.doc["data"][key.as_str()]))
            {
                seen = Some(seen.map_or(v, |s| s.max(v)));
            }
        }
    }
    seen.unwrap_or(default)
}

/// The longest preStop hook of the pod's containers, in seconds: `sleep N` as an exec
/// command, or the `sleep` action. A hook of another kind has no known length: a problem.
fn pre_stop_seconds(d: &Manifest, problems: &mut Vec<String>) -> f64 {
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

fn check_grace(d: &Manifest, config_maps: &BTreeMap<&str, &Manifest>, problems: &mut Vec<String>) {
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
            "config check: OK — {} variables declared in every service container, {} in every watch container, of {deployments} Deployment(s) in {}",
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

/// One line of `config print`.
pub fn print_line(var: &EnvVar, value: Option<&str>) -> String {
    match (value, var.secret) {
        (Some(_), true) => format!("{}=[REDACTED] (secret, set)", var.name),
        (Some(v), false) => format!("{}={v}", var.name),
        (None, _) => match var.default {
            Some(d) => format!("{}={d} (default)", var.name),
            None => format!("{} (unset)", var.name),
        },
    }
}

/// `config print`: the effective configuration, secrets redacted, then whether it is valid.
pub fn run_print() -> anyhow::Result<()> {
    for var in ENV_VARS {
        println!("{}", print_line(var, read_var(var.name).as_deref()));
    }
    match crate::config::Settings::from_env() {
        Ok(_) => {
            println!("# valid");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The env entries of a container for `vars`, as they belong in a Deployment: secrets from
/// the Secret `lead-agent-secrets`, the rest from the ConfigMap `lead-agent-config`, each
/// optional (an unset variable takes its default). `config env-yaml` prints it, so a new
/// variable is added to every container by pasting, not by hand-typing six lines thrice.
pub fn env_yaml(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, false),
        indent,
        "lead-agent-config",
        "lead-agent-secrets",
    )
}

/// The watch container's entries (`config env-yaml --watch`): its own variables, from its
/// own ConfigMap and Secret (`lead-agent-watch-config`, `lead-agent-watch-secrets`), so a
/// mistake in the service's configuration — a wrong PUBLIC_BASE_URL above all — is not
/// copied into the watchdog that must catch it.
pub fn env_yaml_watch(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, true),
        indent,
        "lead-agent-watch-config",
        "lead-agent-watch-secrets",
    )
}

fn env_yaml_from(vars: &[&EnvVar], indent: usize, config_map: &str, secret: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for v in vars {
        let (kind, object) = if v.secret {
            ("secretKeyRef", secret)
        } else {
            ("configMapKeyRef", config_map)
        };
        out.push_str(&format!(
            "{pad}- name: {n}\n{pad}  valueFrom:\n{pad}    {kind}:\n{pad}      name: {object}\n{pad}      key: {n}\n{pad}      optional: true\n",
            n = v.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn shipped_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s")
    }

    fn shipped() -> Vec<Manifest> {
        load_manifests(&shipped_dir()).expect("the shipped manifests parse as YAML")
    }

    fn deployment<'a>(manifests: &'a mut [Manifest], name: &str) -> &'a mut Value {
        &mut manifests
            .iter_mut()
            .find(|m| m.kind() == "Deployment" && m.name() == name)
            .unwrap_or_else(|| panic!("deployment/{name} is shipped"))
            .doc
    }

    fn first_container(d: &mut Value) -> &mut Value {
        &mut d["spec"]["template"]["spec"]["containers"][0]
    }

    #[test]
    fn the_shipped_manifests_pass_the_check() {
        assert_eq!(check(ENV_VARS, &shipped()), Vec::<String>::new());
        assert!(run_check(&shipped_dir()).is_ok());
    }

    #[test]
    fn a_variable_removed_from_one_container_is_named_with_its_container() {
        let victim = ENV_VARS[ENV_VARS.len() / 2].name;
        let mut manifests = shipped();
        let env = first_container(deployment(&mut manifests, "lead-agent-worker"))["env"]
            .as_sequence_mut()
            .unwrap();
        let before = env.len();
        env.retain(|e| e["name"].as_str() != Some(victim));
        assert_eq!(env.len(), before - 1);
        let problems = check(ENV_VARS, &manifests);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("deployment/lead-agent-worker container worker")
                && problems[0].contains(victim)
                && problems[0].contains("not declared"),
            "{problems:?}"
        );
    }

    #[test]
    fn removing_a_variable_from_a_manifest_file_makes_the_command_fail() {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(shipped_dir()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
        let file = dir.path().join("deployment.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        // Drop OPS_TOKEN's six lines from the first container only.
        let start = text.find("            - name: OPS_TOKEN\n").unwrap();
        let end =
            start + text[start..].find("optional: true\n").unwrap() + "optional: true\n".len();
        std::fs::write(&file, format!("{}{}", &text[..start], &text[end..])).unwrap();
        let problems = check(ENV_VARS, &load_manifests(dir.path()).unwrap());
        assert!(
            problems.iter().any(|p| p.contains("OPS_TOKEN")),
            "{problems:?}"
        );
        assert!(run_check(dir.path()).is_err());
    }

    #[test]
    fn a_variable_added_to_the_code_only_is_named_for_every_container() {
        let mut vars = ENV_VARS.to_vec();
        vars.push(EnvVar {
            name: "A_NEW_FEATURE_FLAG",
            default: None,
            secret: false,
            doc: "test",
        });
        let problems = check(&vars, &shipped());
        // Every service container; the watch reads its own list, which does not have it.
        let deployments = shipped()
            .iter()
            .filter(|m| m.kind() == "Deployment" && !list_runs_watch(m))
            .count();
        assert_eq!(problems.len(), deployments, "{problems:?}");
        assert!(
            problems
                .iter()
                .all(|p| p.contains("A_NEW_FEATURE_FLAG") && p.contains("read by the code"))
        );
    }

    #[test]
    fn a_variable_only_in_the_manifest_a_secret_in_a_config_map_and_a_key_typo_are_named() {
        let mut manifests = shipped();
        let container = first_container(deployment(&mut manifests, "lead-agent-web"));
        let env = container["env"].as_sequence_mut().unwrap();
        env.push(
            serde_yaml_ng::from_str("{name: CELERY_RESULT_BACKEND, value: redis://x}").unwrap(),
        );
        for e in env.iter_mut() {
            if e["name"] == "OPS_TOKEN" {
                *e = serde_yaml_ng::from_str(
                    "{name: OPS_TOKEN, valueFrom: {configMapKeyRef: {name: lead-agent-config, key: OPS_TOKEN}}}",
                )
                .unwrap();
            }
            if e["name"] == "OFFICE_NAME" {
                e["valueFrom"]["configMapKeyRef"]["key"] = "OFFICE".into();
            }
        }
        let problems = check(ENV_VARS, &manifests).join("\n");
        assert!(
            problems.contains(
                "CELERY_RESULT_BACKEND is declared in the manifest but the code does not read it"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("OPS_TOKEN is a secret but comes from a ConfigMap"),
            "{problems}"
        );
        assert!(
            problems.contains("OFFICE_NAME reads the key \"OFFICE\""),
            "{problems}"
        );
    }

    #[test]
    fn a_config_map_key_that_no_container_reads_is_named() {
        let mut manifests = shipped();
        let cm = manifests
            .iter_mut()
            .find(|m| m.kind() == "ConfigMap")
            .unwrap();
        cm.doc["data"]["GOOGLE_API_KEY_TYPO"] = "x".into();
        let problems = check(ENV_VARS, &manifests);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("GOOGLE_API_KEY_TYPO") && p.contains("no container reads")),
            "{problems:?}"
        );
    }

    #[test]
    fn every_container_carries_probes_limits_and_a_grace_period_that_holds_the_shutdown_budget() {
        let manifests = shipped();
        let config = |var: &str| -> f64 {
            manifests
                .iter()
                .find(|m| m.kind() == "ConfigMap" && m.name() == "lead-agent-config")
                .and_then(|m| seconds_of(&m.doc["data"][var]))
                .unwrap_or_else(|| panic!("the example ConfigMap sets {var}"))
        };
        let (http, turns) = (config("HTTP_SHUTDOWN_SECS"), config("SHUTDOWN_GRACE_SECS"));
        for d in manifests
            .iter()
            .filter(|m| m.kind() == "Deployment" && !list_runs_watch(m))
        {
            let pod =
                seconds_of(&d.doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
                    .unwrap();
            let pre_stop = pre_stop_seconds(d, &mut Vec::new());
            assert!(
                pod >= pre_stop + http + turns + GRACE_MARGIN_SECS,
                "{}: {pod}",
                d.name()
            );
            for c in containers(d) {
                assert_eq!(probe_path(c, "livenessProbe"), Some("/health"));
                assert_eq!(probe_path(c, "readinessProbe"), Some("/ready"));
                for bound in ["requests", "limits"] {
                    assert!(
                        !c["resources"][bound]["memory"].is_null()
                            && !c["resources"][bound]["cpu"].is_null()
                    );
                }
                assert_eq!(
                    container_env(c).len(),
                    expected_vars(ENV_VARS, runs_watch(c)).len()
                );
            }
        }
        // The web pod sleeps in preStop while the Service stops routing to it.
        assert_eq!(
            pre_stop_seconds(
                manifests
                    .iter()
                    .find(|m| m.kind() == "Deployment" && m.name() == "lead-agent-web")
                    .unwrap(),
                &mut Vec::new()
            ),
            5.0
        );
        // And the check enforces it: a longer service grace, a missing probe, a missing limit.
        let mut broken = shipped();
        broken
            .iter_mut()
            .find(|m| m.kind() == "ConfigMap" && m.name() == "lead-agent-config")
            .unwrap()
            .doc["data"]["SHUTDOWN_GRACE_SECS"] = "40".into();
        let c = first_container(deployment(&mut broken, "lead-agent-scheduler"));
        c.as_mapping_mut().unwrap().remove("readinessProbe");
        c["resources"]["limits"]
            .as_mapping_mut()
            .unwrap()
            .remove("memory");
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains(
                "deployment/lead-agent-scheduler: terminationGracePeriodSeconds (40) must be at least preStop (0) + HTTP_SHUTDOWN_SECS (10) + SHUTDOWN_GRACE_SECS (40) + 3 = 53"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("readinessProbe must be an httpGet of /ready"),
            "{problems}"
        );
        assert!(
            problems.contains("resources.limits.memory is not set"),
            "{problems}"
        );
    }

    #[test]
    fn the_listeners_drain_and_the_pre_stop_sleep_count_in_the_budget_of_every_deployment() {
        // The web pod: a longer preStop or a longer HTTP drain no longer fits its 45 s.
        let mut broken = shipped();
        broken
            .iter_mut()
            .find(|m| m.kind() == "ConfigMap" && m.name() == "lead-agent-config")
            .unwrap()
            .doc["data"]["HTTP_SHUTDOWN_SECS"] = "20".into();
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains(
                "deployment/lead-agent-web: terminationGracePeriodSeconds (45) must be at least preStop (5) + HTTP_SHUTDOWN_SECS (20) + SHUTDOWN_GRACE_SECS (25) + 3 = 53"
            ),
            "{problems}"
        );
        // The watch: its own drain in its own 10 s.
        let mut broken = shipped();
        broken
            .iter_mut()
            .find(|m| m.kind() == "ConfigMap" && m.name() == "lead-agent-watch-config")
            .unwrap()
            .doc["data"]["HTTP_SHUTDOWN_SECS"] = "10".into();
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains(
                "deployment/lead-agent-watch: terminationGracePeriodSeconds (10) must be at least preStop (0) + HTTP_SHUTDOWN_SECS (10) + 3 = 13"
            ),
            "{problems}"
        );
        // A preStop hook of unknown length is named.
        let mut broken = shipped();
        first_container(deployment(&mut broken, "lead-agent-web"))["lifecycle"]["preStop"] =
            serde_yaml_ng::from_str("{httpGet: {path: /drain, port: 5012}}").unwrap();
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains("preStop hook is not a sleep"),
            "{problems}"
        );
    }

    #[test]
    fn replicated_roles_have_a_disruption_budget() {
        let mut manifests = shipped();
        manifests.retain(|m| m.kind() != "PodDisruptionBudget");
        let problems = check(ENV_VARS, &manifests).join("\n");
        assert!(
            problems.contains(
                "deployment/lead-agent-web has more than one replica but no PodDisruptionBudget"
            ),
            "{problems}"
        );
    }

    #[test]
    fn print_redacts_secrets_and_marks_defaults() {
        let secret = ENV_VARS.iter().find(|v| v.secret).unwrap();
        let line = print_line(secret, Some("hunter2"));
        assert!(!line.contains("hunter2") && line.contains("REDACTED"));
        let port = ENV_VARS.iter().find(|v| v.name == "PORT").unwrap();
        assert_eq!(print_line(port, None), "PORT=5012 (default)");
        assert_eq!(print_line(port, Some("8080")), "PORT=8080");
    }

    #[test]
    fn env_yaml_declares_every_variable_with_the_right_source() {
        for watch in [false, true] {
            let entries = if watch {
                env_yaml_watch(ENV_VARS, 2)
            } else {
                env_yaml(ENV_VARS, 2)
            };
            let doc: Value = serde_yaml_ng::from_str(&format!("env:\n{entries}")).unwrap();
            let env = container_env(&doc);
            let expected = expected_vars(ENV_VARS, watch);
            assert_eq!(env.len(), expected.len());
            for (v, (name, source)) in expected.iter().zip(env) {
                assert_eq!(v.name, name);
                assert_eq!(v.secret, matches!(source, Source::Secret { .. }), "{name}");
                let object = match source {
                    Source::Secret { name, .. } | Source::ConfigMap { name, .. } => name,
                    other => panic!("{other:?}"),
                };
                assert_eq!(object.contains("watch"), watch, "{name}: {object}");
            }
        }
        let watch_names: Vec<String> = container_env(
            &serde_yaml_ng::from_str(&format!("env:\n{}", env_yaml_watch(ENV_VARS, 2))).unwrap(),
        )
        .into_iter()
        .map(|(n, _)| n)
        .collect();
        assert_eq!(watch_names, watch::settings::VARS);
    }

    #[test]
    fn a_watch_container_is_held_to_the_watchs_own_variables_and_the_service_to_the_rest() {
        let manifests = shipped();
        let watch_deployment = manifests
            .iter()
            .find(|m| m.kind() == "Deployment" && m.name() == "lead-agent-watch")
            .expect("deploy/k8s/watch.yaml ships the watch's Deployment");
        assert_eq!(watch_deployment.doc["spec"]["replicas"].as_u64(), Some(1));
        let c = containers(watch_deployment)[0];
        assert!(runs_watch(c));
        let names: BTreeSet<String> = container_env(c).into_iter().map(|(n, _)| n).collect();
        assert!(!names.contains("DATABASE_URL") && !names.contains("AMQP_URL"));

        // A service variable in the watch, a watch variable in the service, a watch
        // variable missing from the watch: each named.
        let mut broken = shipped();
        let watch_env = first_container(deployment(&mut broken, "lead-agent-watch"))["env"]
            .as_sequence_mut()
            .unwrap();
        watch_env.retain(|e| e["name"] != "DISCORD_WEBHOOK");
        watch_env.push(
            serde_yaml_ng::from_str(
                "{name: DATABASE_URL, valueFrom: {secretKeyRef: {name: lead-agent-secrets, key: DATABASE_URL}}}",
            )
            .unwrap(),
        );
        first_container(deployment(&mut broken, "lead-agent-web"))["env"]
            .as_sequence_mut()
            .unwrap()
            .push(
                serde_yaml_ng::from_str(
                    "{name: WATCH_URL, valueFrom: {configMapKeyRef: {name: lead-agent-watch-config, key: WATCH_URL}}}",
                )
                .unwrap(),
            );
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains("lead-agent-watch container watch: DATABASE_URL is declared but the watch does not read it"),
            "{problems}"
        );
        assert!(
            problems
                .contains("lead-agent-watch container watch: DISCORD_WEBHOOK is read by the watch"),
            "{problems}"
        );
        assert!(
            problems.contains("lead-agent-web container web: WATCH_URL is read only by the watch"),
            "{problems}"
        );
    }
}
