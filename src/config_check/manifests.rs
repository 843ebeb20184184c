//! Reading a manifest directory for `config check`: every kustomization no other one
//! includes, rendered by `kubectl kustomize`, and every YAML file no kustomization uses; and
//! the questions the checks ask of one object (its containers, their `env` and `envFrom`,
//! the keys of a ConfigMap or Secret, a probe's path, whether it runs the watch). Must not:
//! judge what it reads (that is the parent's `check`), or talk to a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use serde_yaml_ng::Value;

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
    pub(crate) fn object(&self) -> Option<(&'static str, &str)> {
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
pub(crate) fn probe_path<'a>(container: &'a Value, probe: &str) -> Option<&'a str> {
    container[probe]["httpGet"]["path"].as_str()
}

/// A YAML scalar as a number of seconds (`30` or `"30"`).
pub(crate) fn seconds_of(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// True for a container running `lead-agent watch`: it reads the watch's variables
/// ([`watch::settings::VARS`]), not the service's.
pub fn runs_watch(container: &Value) -> bool {
    container["args"][0].as_str() == Some("watch")
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
