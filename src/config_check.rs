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
//! replicated roles have a disruption budget. What the network can reach (the Ingress, the
//! Services, the ops port, the binds and the tokens they need) is checked by
//! [`crate::deploy_lint::check_exposure`], which this runs too. Also the redacted view of
//! the effective configuration (`config print`) and the keys to paste (`config env-yaml`).
//! Must not: talk to a cluster (it checks files; `kubectl kustomize` renders offline), or
//! print a secret's value.

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

/// The objects of a manifest directory: what each kustomization in it renders (`kubectl
/// kustomize`, the real renderer: a check of a copy of its merge rules would pass on what
/// Kubernetes never sees), plus every YAML file no kustomization uses, which is applied by
/// hand (the examples of the ConfigMap and Secret, the Ingress, the watch). Without a
/// kustomization, every document of every YAML file. A file that does not parse, or a
/// kustomization that does not render, is an error naming it: a check that skipped it would
/// pass on a broken manifest.
pub fn load_manifests(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let mut files = Vec::new();
    yaml_files(dir, &mut files)
        .with_context(|| format!("Failed to read the manifest directory {}", dir.display()))?;
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no *.yaml manifests in {}", dir.display());
    }
    let is_kustomization = |p: &Path| p.file_name().is_some_and(|n| n == "kustomization.yaml");
    // Everything a kustomization names: its resources, components and patches.
    let mut used = BTreeSet::new();
    for k in files.iter().filter(|p| is_kustomization(p)) {
        let text = std::fs::read_to_string(k)
            .with_context(|| format!("Failed to read {}", k.display()))?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", k.display()))?;
        let here = k.parent().unwrap_or(dir);
        let named = ["resources", "components", "patchesStrategicMerge"]
            .iter()
            .flat_map(|f| doc[*f].as_sequence().into_iter().flatten())
            .filter_map(Value::as_str)
            .chain(
                doc["patches"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["path"].as_str()),
            );
        for n in named {
            if let Ok(path) = here.join(n).canonicalize() {
                used.insert(path);
            }
        }
    }
    let mut out = Vec::new();
    for path in &files {
        let canonical = path.canonicalize()?;
        if is_kustomization(path) {
            let root = path.parent().unwrap_or(dir);
            if !used.contains(&root.canonicalize()?) {
                out.extend(render_kustomization(root)?);
            }
        } else if !used.contains(&canonical) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            out.extend(parse_manifests(&path.display().to_string(), &text)?);
        }
    }
    Ok(out)
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// `kubectl kustomize DIR` (README "Deploy": kubectl is needed, and `.ci/run` installs it).
fn render_kustomization(dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    let output = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .with_context(|| {
            format!(
                "Failed to run `kubectl kustomize {}`: kubectl renders the kustomization (README \"Deploy\")",
                dir.display()
            )
        })?;
    if !output.status.success() {
        anyhow::bail!(
            "`kubectl kustomize {}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_manifests(
        &format!("kustomize {}", dir.display()),
        &String::from_utf8_lossy(&output.stdout),
    )
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

/// Where one `env` entry of a container takes its value.
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

/// One `envFrom` entry: every key of the object becomes a variable of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvFrom {
    ConfigMap(String),
    Secret(String),
    /// A `prefix` (it renames every key) or neither reference.
    Other,
}

impl EnvFrom {
    fn object(&self) -> Option<(&'static str, &str)> {
        match self {
            EnvFrom::ConfigMap(n) => Some(("ConfigMap", n)),
            EnvFrom::Secret(n) => Some(("Secret", n)),
            EnvFrom::Other => None,
        }
    }
}

/// The `envFrom` entries of one container, in order (a later one wins a key both hold).
pub fn container_env_from(container: &Value) -> Vec<EnvFrom> {
    container["envFrom"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = |r: &Value| r["name"].as_str().unwrap_or("").to_string();
            if !e["prefix"].is_null() {
                EnvFrom::Other
            } else if let Some(r) = e.get("configMapRef") {
                EnvFrom::ConfigMap(name(r))
            } else if let Some(r) = e.get("secretRef") {
                EnvFrom::Secret(name(r))
            } else {
                EnvFrom::Other
            }
        })
        .collect()
}

/// The keys of a ConfigMap (`data`) or Secret (`stringData` and `data`).
pub fn object_keys(m: &Manifest) -> Vec<String> {
    let fields: &[&str] = if m.kind() == "Secret" {
        &["stringData", "data"]
    } else {
        &["data"]
    };
    fields
        .iter()
        .flat_map(|f| m.doc[*f].as_mapping().into_iter().flat_map(|m| m.keys()))
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect()
}

/// The value a container gives the non-secret `name`: its literal `env` value, else the
/// last ConfigMap it takes through `envFrom` that sets the key; `None` when unset or empty
/// (the default applies: `config::read_var` treats "" as unset) or from a Secret.
pub(crate) fn configured_value(
    container: &Value,
    name: &str,
    config_maps: &BTreeMap<&str, &Manifest>,
) -> Option<String> {
    let non_empty = |v: &str| (!v.trim().is_empty()).then(|| v.to_string());
    if let Some(entry) = container["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some(name))
    {
        if let Some(v) = entry["value"].as_str() {
            return non_empty(v);
        }
        let r = &entry["valueFrom"]["configMapKeyRef"];
        return config_maps.get(r["name"].as_str()?)?.doc["data"][r["key"].as_str()?]
            .as_str()
            .and_then(non_empty);
    }
    container_env_from(container)
        .iter()
        .rev()
        .find_map(|f| match f {
            EnvFrom::ConfigMap(object) => config_maps
                .get(object.as_str())
                .and_then(|m| m.doc["data"][name].as_str()),
            _ => None,
        })
        .and_then(non_empty)
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

/// The keys of the ConfigMap `lead-agent-config` and the Secret `lead-agent-secrets` for
/// `vars`: every variable with its default ("" when it has none, or when the default is
/// derived from another variable), secrets in the Secret. `config env-yaml` prints them, so
/// a new variable is added to the ConfigMap or the Secret by pasting its line; every
/// container takes both whole (`envFrom`).
pub fn env_yaml(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, false),
        indent,
        "lead-agent-config",
        "lead-agent-secrets",
    )
}

/// The keys of the watch's own ConfigMap and Secret (`config env-yaml --watch`:
/// `lead-agent-watch-config`, `lead-agent-watch-secrets`), so a mistake in the service's
/// configuration — a wrong PUBLIC_BASE_URL above all — is not copied into the watchdog
/// that must catch it.
pub fn env_yaml_watch(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, true),
        indent,
        "lead-agent-watch-config",
        "lead-agent-watch-secrets",
    )
}

/// The variables a Deployment sets itself, as literal values: they decide who can reach the
/// pod (base/deployment.yaml, watch.yaml), so they are no key of a ConfigMap.
const SET_IN_THE_DEPLOYMENT: [&str; 3] = ["BIND_ADDRESS", "OPS_BIND_ADDRESS", "ALLOW_INSECURE"];

fn env_yaml_from(vars: &[&EnvVar], indent: usize, config_map: &str, secret: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for (secrets, header) in [
        (false, format!("# ConfigMap {config_map}, data:\n")),
        (true, format!("# Secret {secret}, stringData:\n")),
    ] {
        out.push_str(&header);
        for v in vars
            .iter()
            .filter(|v| v.secret == secrets && !SET_IN_THE_DEPLOYMENT.contains(&v.name))
        {
            let value = v.default.filter(|d| !v.secret && !d.contains('$'));
            let quoted = value
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            out.push_str(&format!("{pad}{}: \"{quoted}\"\n", v.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_yaml_ng::Mapping;

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

    fn object<'a>(manifests: &'a mut [Manifest], kind: &str, name: &str) -> &'a mut Value {
        &mut manifests
            .iter_mut()
            .find(|m| m.kind() == kind && m.name() == name)
            .unwrap_or_else(|| panic!("{kind}/{name} is shipped"))
            .doc
    }

    fn keys<'a>(manifests: &'a mut [Manifest], kind: &str, name: &str) -> &'a mut Mapping {
        let field = if kind == "Secret" {
            "stringData"
        } else {
            "data"
        };
        object(manifests, kind, name)[field]
            .as_mapping_mut()
            .unwrap()
    }

    #[test]
    fn a_container_without_envfrom_for_the_secret_is_named_with_its_container() {
        let mut manifests = shipped();
        first_container(deployment(&mut manifests, "lead-agent-worker"))["envFrom"]
            .as_sequence_mut()
            .unwrap()
            .retain(|f| f.get("secretRef").is_none());
        let problems = check(ENV_VARS, &manifests);
        assert!(
            problems.contains(&"deployment/lead-agent-worker container worker: takes no Secret through envFrom: every container takes its variables from the ConfigMap and the Secret, not from entries of its own".to_string()),
            "{problems:?}"
        );
        // Every secret it no longer gets is named with it, and nothing with another container.
        assert!(
            problems.iter().any(|p| p.starts_with("deployment/lead-agent-worker container worker: OPS_TOKEN is read by the code (config::ENV_VARS) but is a key of no ConfigMap or Secret it takes")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("deployment/lead-agent-worker container worker")),
            "{problems:?}"
        );
    }

    /// The shipped directory, copied (kustomizations and all) into a temporary one.
    fn copy_tree(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                std::fs::create_dir(&target).unwrap();
                copy_tree(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    #[test]
    fn removing_a_variable_from_a_manifest_file_makes_the_command_fail() {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&shipped_dir(), dir.path());
        assert_eq!(
            check(ENV_VARS, &load_manifests(dir.path()).unwrap()),
            Vec::<String>::new(),
            "the copy renders like the original"
        );
        let file = dir.path().join("secret.example.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let line = "  OPS_TOKEN: \"\"\n";
        assert!(text.contains(line));
        std::fs::write(&file, text.replace(line, "")).unwrap();
        let problems = check(ENV_VARS, &load_manifests(dir.path()).unwrap());
        assert!(
            problems.iter().any(|p| p.contains("OPS_TOKEN")),
            "{problems:?}"
        );
        assert!(run_check(dir.path()).is_err());
    }

    #[test]
    fn the_kustomization_is_rendered_and_its_parts_are_not_read_as_manifests() {
        let manifests = shipped();
        let files: BTreeSet<&str> = manifests.iter().map(|m| m.file.as_str()).collect();
        // The roles' patches and the base are parts of the rendering, not objects.
        assert!(
            files
                .iter()
                .all(|f| !f.contains("patch") && !f.contains("base")),
            "{files:?}"
        );
        let rendered: BTreeSet<(&str, &str)> = manifests
            .iter()
            .filter(|m| m.file.starts_with("kustomize "))
            .map(|m| (m.kind(), m.name()))
            .collect();
        for d in [
            "lead-agent-web",
            "lead-agent-worker",
            "lead-agent-scheduler",
        ] {
            assert!(rendered.contains(&("Deployment", d)), "{rendered:?}");
        }
        // What is applied by hand is read beside it, once.
        for (kind, name) in [
            ("ConfigMap", "lead-agent-config"),
            ("Secret", "lead-agent-secrets"),
            ("Ingress", "lead-agent"),
            ("Deployment", "lead-agent-watch"),
        ] {
            assert!(!rendered.contains(&(kind, name)), "{kind} {name}");
            assert_eq!(
                manifests
                    .iter()
                    .filter(|m| m.kind() == kind && m.name() == name)
                    .count(),
                1,
                "{kind} {name}"
            );
        }
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
    fn an_unknown_key_a_secret_in_the_config_map_and_per_container_entries_are_named() {
        let mut manifests = shipped();
        let config = keys(&mut manifests, "ConfigMap", "lead-agent-config");
        config.insert("CELERY_RESULT_BACKEND".into(), "redis://x".into());
        config.insert("ANTHROPIC_API_KEY".into(), "sk-x".into());
        config.insert("BIND_ADDRESS".into(), "127.0.0.1".into());
        keys(&mut manifests, "Secret", "lead-agent-secrets").remove("ANTHROPIC_API_KEY");
        let env = first_container(deployment(&mut manifests, "lead-agent-web"))["env"]
            .as_sequence_mut()
            .unwrap();
        env.push(
            serde_yaml_ng::from_str(
                "{name: OFFICE_NAME, valueFrom: {configMapKeyRef: {name: lead-agent-config, key: OFFICE_NAME}}}",
            )
            .unwrap(),
        );
        env.push(serde_yaml_ng::from_str("{name: OPS_TOKEN, value: hunter2}").unwrap());
        let problems = check(ENV_VARS, &manifests).join("\n");
        for needle in [
            "has the key CELERY_RESULT_BACKEND, which the code does not read",
            "has the key ANTHROPIC_API_KEY, a secret: it belongs in the Secret",
            "container web: OFFICE_NAME comes from a per-container configMapKeyRef",
            "container web: OPS_TOKEN is a secret but comes from a literal value",
            "container web: OPS_TOKEN is set in the container and is also a key of Secret lead-agent-secrets",
            "container worker: BIND_ADDRESS is set in the container and is also a key of ConfigMap lead-agent-config, whose value it hides",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
    }

    #[test]
    fn a_config_map_key_that_no_container_reads_is_named() {
        let mut manifests = shipped();
        keys(&mut manifests, "ConfigMap", "lead-agent-config")
            .insert("GOOGLE_API_KEY_TYPO".into(), "x".into());
        let problems = check(ENV_VARS, &manifests);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("GOOGLE_API_KEY_TYPO") && p.contains("does not read")),
            "{problems:?}"
        );
        // A ConfigMap that no container takes: none of its keys reaches a pod.
        let mut manifests = shipped();
        object(&mut manifests, "ConfigMap", "lead-agent-config")["metadata"]["name"] =
            "lead-agent-config-2".into();
        let problems = check(ENV_VARS, &manifests).join("\n");
        assert!(
            problems.contains("ConfigMap lead-agent-config-2")
                && problems.contains("which no container reads"),
            "{problems}"
        );
        assert!(
            problems.contains("takes ConfigMap lead-agent-config through envFrom, which no manifest in the directory defines"),
            "{problems}"
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
                // The ConfigMap and the Secret whole; no entry but the literal binds.
                assert_eq!(
                    container_env_from(c),
                    [
                        EnvFrom::ConfigMap("lead-agent-config".into()),
                        EnvFrom::Secret("lead-agent-secrets".into())
                    ]
                );
                assert!(
                    container_env(c).iter().all(|(n, s)| *s == Source::Literal
                        && SET_IN_THE_DEPLOYMENT.contains(&n.as_str()))
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
    fn env_yaml_prints_the_keys_of_the_shipped_config_maps_and_secrets() {
        for (watch, config_map, secret) in [
            (false, "lead-agent-config", "lead-agent-secrets"),
            (true, "lead-agent-watch-config", "lead-agent-watch-secrets"),
        ] {
            let text = if watch {
                env_yaml_watch(ENV_VARS, 2)
            } else {
                env_yaml(ENV_VARS, 2)
            };
            let (config_part, secret_part) = text.split_once("# Secret").unwrap();
            let printed = |part: &str| -> BTreeSet<String> {
                let doc: Value = serde_yaml_ng::from_str(&format!("data:\n{part}")).unwrap();
                doc["data"]
                    .as_mapping()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect()
            };
            let (config_keys, secret_keys) = (
                printed(config_part),
                printed(secret_part.split_once('\n').unwrap().1),
            );
            for v in expected_vars(ENV_VARS, watch) {
                let set_here = SET_IN_THE_DEPLOYMENT.contains(&v.name);
                assert_eq!(
                    config_keys.contains(v.name),
                    !v.secret && !set_here,
                    "{}",
                    v.name
                );
                assert_eq!(secret_keys.contains(v.name), v.secret, "{}", v.name);
            }
            // The shipped examples have exactly those keys.
            let mut manifests = shipped();
            let shipped_keys = |m: &mut [Manifest], kind: &str, name: &str| -> BTreeSet<String> {
                keys(m, kind, name)
                    .keys()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(
                shipped_keys(&mut manifests, "ConfigMap", config_map),
                config_keys
            );
            assert_eq!(shipped_keys(&mut manifests, "Secret", secret), secret_keys);
        }
        assert!(env_yaml(ENV_VARS, 2).contains("\n  PORT: \"5012\"\n"));
        assert!(env_yaml(ENV_VARS, 2).contains("\n  PUBLIC_BASE_URL: \"\"\n"));
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
        assert_eq!(
            container_env_from(c),
            [
                EnvFrom::ConfigMap("lead-agent-watch-config".into()),
                EnvFrom::Secret("lead-agent-watch-secrets".into())
            ]
        );

        // A service variable in the watch's Secret, a watch variable missing from it, a
        // watch variable in the service's ConfigMap, the service's Secret in the watch:
        // each named.
        let mut broken = shipped();
        let watch_secret = keys(&mut broken, "Secret", "lead-agent-watch-secrets");
        watch_secret.remove("DISCORD_WEBHOOK");
        watch_secret.insert("DATABASE_URL".into(), "postgres://x".into());
        keys(&mut broken, "ConfigMap", "lead-agent-config")
            .insert("WATCH_URL".into(), "https://x".into());
        let problems = check(ENV_VARS, &broken).join("\n");
        for needle in [
            "Secret lead-agent-watch-secrets (",
            "has the key DATABASE_URL, which the watch does not read",
            "lead-agent-watch container watch: DISCORD_WEBHOOK is read by the watch",
            "has the key WATCH_URL, which only the watch reads",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        let mut broken = shipped();
        first_container(deployment(&mut broken, "lead-agent-watch"))["envFrom"][1]["secretRef"]["name"] =
            "lead-agent-secrets".into();
        let problems = check(ENV_VARS, &broken).join("\n");
        assert!(
            problems.contains("is taken by the watch and by the service's containers"),
            "{problems}"
        );
    }
}
