//! Checks of the deploy files that no engine runs here: `deploy/Dockerfile` (no Docker
//! daemon on the development machines), `cloudbuild.yaml` (no Cloud Build project) and
//! what the manifests expose (no cluster). They are kept correct by review and by these
//! checks of their essentials, which `lead-agent config check` runs next to the manifest
//! checks (so `.ci/run` guards them).
//!
//! Owns: what "essential" means for each file — the Dockerfile: multi-stage, a locked
//! release build, a runtime stage that is not the toolchain image, copies the one binary,
//! runs as a non-root user, binds 0.0.0.0 and never insecure, exposes 5012 and has a
//! HEALTHCHECK of /health; the pipeline: Tests → Build → Push → Deploy → Verify in that
//! order with nothing bypassing the order, images tagged and deployed by `$COMMIT_SHA`,
//! rollout status and undo, verify then undo; the manifests' exposure
//! ([`check_exposure`]): TLS in front of the webhook, nothing but the public paths routed,
//! the ops port on no public Service, every container reachable by its probes and holding
//! the tokens its binds need.
//! Must not: pretend to build or run anything.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::config::ENV_VARS;
use crate::config_check::{
    EnvFrom, Manifest, Source, configured_value, container_env, container_env_from, containers,
    labels_match, list_runs_watch, runs_watch,
};

/// One Dockerfile instruction: the keyword (upper case) and its arguments, with line
/// continuations joined and comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let full = std::mem::take(&mut current);
        let mut parts = full.splitn(2, char::is_whitespace);
        let keyword = parts.next().unwrap_or("").to_ascii_uppercase();
        out.push((keyword, parts.next().unwrap_or("").trim().to_string()));
    }
    out
}

/// Problems with a Dockerfile's essentials; empty when it has them all.
pub fn check_dockerfile(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let all = instructions(text);
    let stages: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    if stages.len() < 2 {
        problems.push("Dockerfile: not multi-stage (a build stage and a runtime stage)".into());
        return problems;
    }
    let build_from = &all[stages[0]].1;
    let build_name = build_from
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("as"))
        .nth(1)
        .unwrap_or("")
        .to_string();
    let build = &all[stages[0]..stages[stages.len() - 1]];
    let runtime_from = &all[stages[stages.len() - 1]].1;
    let runtime = &all[stages[stages.len() - 1] + 1..];
    if !build.iter().any(|(k, a)| {
        k == "RUN" && a.contains("cargo build") && a.contains("--release") && a.contains("--locked")
    }) {
        problems.push(
            "Dockerfile: the build stage does not run `cargo build --release --locked`".into(),
        );
    }
    let runtime_image = runtime_from.split_whitespace().next().unwrap_or("");
    if runtime_image.contains("rust") || runtime_image.contains("cargo") {
        problems.push(format!(
            "Dockerfile: the runtime stage is the toolchain image {runtime_image}; it must be a small runtime image"
        ));
    }
    if build_name.is_empty()
        || !runtime.iter().any(|(k, a)| {
            k == "COPY" && a.contains(&format!("--from={build_name}")) && a.contains("lead-agent")
        })
    {
        problems.push("Dockerfile: the runtime stage does not COPY --from the build stage the lead-agent binary".into());
    }
    match runtime.iter().rev().find(|(k, _)| k == "USER") {
        None => {
            problems.push("Dockerfile: the runtime stage has no USER (it would run as root)".into())
        }
        Some((_, user)) => {
            let name = user.split(':').next().unwrap_or("").trim();
            if name == "root" || name == "0" {
                problems.push(format!("Dockerfile: USER {user} is root"));
            }
        }
    }
    if !runtime
        .iter()
        .any(|(k, a)| k == "HEALTHCHECK" && a.contains("/health"))
    {
        problems.push("Dockerfile: no HEALTHCHECK of /health in the runtime stage".into());
    }
    if !runtime.iter().any(|(k, a)| {
        k == "EXPOSE"
            && a.split_whitespace()
                .any(|p| p.trim_end_matches("/tcp") == "5012")
    }) {
        problems.push("Dockerfile: the runtime stage does not EXPOSE 5012".into());
    }
    // `docker run` must be reachable from outside the container (the default bind is
    // loopback), and never exposed without its tokens by the image itself.
    let env_of = |name: &str| {
        runtime.iter().rev().find_map(|(k, a)| {
            (k == "ENV").then(|| {
                a.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
            })?
        })
    };
    if env_of("BIND_ADDRESS").as_deref() != Some("0.0.0.0") {
        problems.push("Dockerfile: the runtime stage does not set ENV BIND_ADDRESS=0.0.0.0 (the default, 127.0.0.1, is unreachable from outside the container)".into());
    }
    if env_of("ALLOW_INSECURE").is_some_and(|v| !v.eq_ignore_ascii_case("false")) {
        problems.push(
            "Dockerfile: the image sets ALLOW_INSECURE: every container of it would run exposed without its tokens".into(),
        );
    }
    if !runtime
        .iter()
        .any(|(k, a)| k == "ENTRYPOINT" && a.contains("lead-agent"))
    {
        problems.push("Dockerfile: the ENTRYPOINT is not the lead-agent binary".into());
    }
    problems
}

/// The text a step runs: its entrypoint and args, joined.
fn step_script(step: &Value) -> String {
    let mut text = step["entrypoint"].as_str().unwrap_or("").to_string();
    for a in step["args"].as_sequence().into_iter().flatten() {
        text.push(' ');
        text.push_str(a.as_str().unwrap_or(""));
    }
    text
}

/// The steps the pipeline must have, in this order.
pub const PIPELINE: [&str; 5] = ["Tests", "Build", "Push", "Deploy", "Verify"];

/// Problems with cloudbuild.yaml's order and gating; empty when none.
pub fn check_cloudbuild(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![format!("cloudbuild.yaml is not valid YAML: {e}")],
    };
    let steps: Vec<&Value> = doc["steps"]
        .as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let ids: Vec<&str> = steps
        .iter()
        .map(|s| s["id"].as_str().unwrap_or(""))
        .collect();
    if ids != PIPELINE {
        problems.push(format!(
            "cloudbuild.yaml: the steps must be exactly {PIPELINE:?} in that order, found {ids:?}"
        ));
    }
    // `waitFor` is the only way to run a step before the ones above it have passed.
    for (id, step) in ids.iter().zip(&steps) {
        if step.get("waitFor").is_some() {
            problems.push(format!(
                "cloudbuild.yaml: step {id} has waitFor; steps must run in order so that nothing runs after a failed one"
            ));
        }
        if step.get("allowFailure").and_then(Value::as_bool) == Some(true)
            || step.get("allowExitCodes").is_some()
        {
            problems.push(format!(
                "cloudbuild.yaml: step {id} may fail without stopping the build"
            ));
        }
    }
    let script = |id: &str| -> String {
        ids.iter()
            .position(|i| *i == id)
            .map(|p| step_script(steps[p]))
            .unwrap_or_default()
    };
    let tests = script("Tests");
    if !tests.contains(".ci/run") {
        problems.push("cloudbuild.yaml: the Tests step does not run .ci/run".into());
    }
    if !script("Build").contains(":$COMMIT_SHA") {
        problems
            .push("cloudbuild.yaml: the Build step does not tag the image with $COMMIT_SHA".into());
    }
    // `kubectl apply -k DIR` is `kubectl kustomize DIR` applied.
    let deploy = script("Deploy").replace("apply -k ", "kustomize ");
    for (needle, what) in [
        (":$COMMIT_SHA", "set the image to the commit SHA"),
        (
            "kustomize deploy/k8s",
            "apply what `kubectl kustomize deploy/k8s` renders (or `kubectl apply -k deploy/k8s`)",
        ),
        (
            "rollout status",
            "wait for the rollout (kubectl rollout status)",
        ),
        (
            "rollout undo",
            "roll back a failed rollout (kubectl rollout undo)",
        ),
        ("exit 1", "fail the build after rolling back"),
    ] {
        if !deploy.contains(needle) {
            problems.push(format!("cloudbuild.yaml: the Deploy step does not {what}"));
        }
    }
    if deploy.contains(":latest") {
        problems.push(
            "cloudbuild.yaml: the Deploy step uses the moving tag :latest; deploy by $COMMIT_SHA"
                .into(),
        );
    }
    let verify = script("Verify");
    for (needle, what) in [
        ("lead-agent verify", "run `lead-agent verify`"),
        ("rollout undo", "roll back when verification fails"),
        ("exit 1", "fail the build when verification fails"),
        // The next session reads what happened: the service's /ops/verifications and the
        // bucket copy (DEPLOYMENT_STATE.md "Where verify results are").
        ("--record", "record its result (`--record`)"),
        (
            "gcloud storage cp",
            "keep its result as an artifact (`gcloud storage cp`)",
        ),
    ] {
        if !verify.contains(needle) {
            problems.push(format!("cloudbuild.yaml: the Verify step does not {what}"));
        }
    }
    let images: Vec<&str> = doc["images"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !images.iter().any(|i| i.ends_with(":$COMMIT_SHA")) {
        problems.push("cloudbuild.yaml: `images` does not list the $COMMIT_SHA image".into());
    }
    problems
}

// ------------------------------------------------------------ exposure ---------- //

/// The paths the public listener serves: the only ones an Ingress may route.
pub const PUBLIC_PATHS: [&str; 4] = ["/twilio/sms", "/discord/interactions", "/health", "/ready"];

fn default_of(name: &str) -> String {
    ENV_VARS
        .iter()
        .find(|v| v.name == name)
        .and_then(|v| v.default)
        .unwrap_or("")
        .to_string()
}

/// The `--role` of a `serve` container (`all` without one).
fn role_of(container: &Value) -> String {
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    args.windows(2)
        .find(|w| w[0] == "--role")
        .map_or("all", |w| w[1])
        .to_string()
}

/// The containerPort a container names `name` (`http`, `ops`).
fn named_port(container: &Value, name: &str) -> Option<u64> {
    container["ports"]
        .as_sequence()?
        .iter()
        .find(|p| p["name"].as_str() == Some(name))?["containerPort"]
        .as_u64()
}

/// True when `port` (a number or a port name) means the container port `number` named `name`.
fn is_port(port: &Value, name: &str, number: u64) -> bool {
    port.as_str() == Some(name)
        || port.as_u64() == Some(number)
        || port.as_str().and_then(|p| p.parse::<u64>().ok()) == Some(number)
}

/// Who can reach what, from the manifests: the internet reaches only the webhook, through
/// TLS, and the ops listener never; every service container binds where its probes and
/// Services can reach it, holds the tokens those binds need (`crate::exposure`), and is
/// never insecure. One readable line per problem.
pub fn check_exposure(manifests: &[Manifest]) -> Vec<String> {
    let mut problems = Vec::new();
    let of_kind =
        |kind: &str| -> Vec<&Manifest> { manifests.iter().filter(|m| m.kind() == kind).collect() };
    let config_maps: BTreeMap<&str, &Manifest> = of_kind("ConfigMap")
        .into_iter()
        .map(|m| (m.name(), m))
        .collect();
    let secrets: BTreeMap<&str, &Manifest> = of_kind("Secret")
        .into_iter()
        .map(|m| (m.name(), m))
        .collect();
    let secret_has = |object: &str, key: &str| {
        secrets
            .get(object)
            .is_some_and(|m| !m.doc["stringData"][key].is_null() || !m.doc["data"][key].is_null())
    };
    let deployments: Vec<&Manifest> = of_kind("Deployment")
        .into_iter()
        .filter(|d| !list_runs_watch(d))
        .collect();
    let mut ops_ports = std::collections::BTreeSet::new();
    let mut public_ports = std::collections::BTreeSet::new();

    for d in &deployments {
        for c in containers(d) {
            if runs_watch(c) {
                continue;
            }
            let at = format!(
                "deployment/{} container {}",
                d.name(),
                c["name"].as_str().unwrap_or("?")
            );
            let value = |name: &str| {
                configured_value(c, name, &config_maps).unwrap_or_else(|| default_of(name))
            };
            let role = role_of(c);
            let serves_webhook = matches!(role.as_str(), "web" | "all");
            if value("ALLOW_INSECURE").trim().eq_ignore_ascii_case("true") {
                problems.push(format!(
                    "{at}: ALLOW_INSECURE is true: the deployed service would run exposed without its tokens"
                ));
            }
            let ops_port: u64 = value("OPS_PORT").trim().parse().unwrap_or(0);
            let public_port: u64 = value("PORT").trim().parse().unwrap_or(0);
            ops_ports.insert(ops_port);
            public_ports.insert(public_port);
            if named_port(c, "ops") != Some(ops_port) {
                problems.push(format!(
                    "{at}: declares no containerPort named ops = OPS_PORT ({ops_port})"
                ));
            }
            if named_port(c, "http") != Some(public_port) {
                problems.push(format!(
                    "{at}: declares no containerPort named http = PORT ({public_port})"
                ));
            }
            for probe in ["livenessProbe", "readinessProbe"] {
                if !is_port(&c[probe]["httpGet"]["port"], "ops", ops_port) {
                    problems.push(format!(
                        "{at}: {probe} must ask the ops port ({ops_port}): internet traffic on the public one must not fail it"
                    ));
                }
            }
            let scrape =
                &d.doc["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"];
            if !scrape.is_null() && !is_port(scrape, "ops", ops_port) {
                problems.push(format!(
                    "deployment/{}: prometheus.io/port must be the ops port ({ops_port}): /metrics is only there",
                    d.name()
                ));
            }
            // Where the kubelet, the Services and Prometheus can reach it.
            let mut binds = vec![("OPS_BIND_ADDRESS", value("OPS_BIND_ADDRESS"))];
            if serves_webhook {
                binds.push(("BIND_ADDRESS", value("BIND_ADDRESS")));
            }
            let mut exposed = false;
            for (name, v) in binds {
                match v.trim().parse::<IpAddr>() {
                    Ok(ip) if ip.is_loopback() => problems.push(format!(
                        "{at}: {name} is {ip}: the kubelet's probes and the Services cannot reach a loopback listener; set 0.0.0.0"
                    )),
                    Ok(_) => exposed = true,
                    Err(_) => problems.push(format!("{at}: {name}={v:?} is not an address")),
                }
            }
            if exposed {
                let env = container_env(c);
                let from = container_env_from(c);
                for token in crate::exposure::required(serves_webhook) {
                    // An env entry of its name decides; else the Secrets it takes whole.
                    let from_secret = match env.iter().find(|(n, _)| n == token) {
                        Some((_, Source::Secret { name, key })) => secret_has(name, key),
                        Some(_) => false,
                        None => from
                            .iter()
                            .any(|f| matches!(f, EnvFrom::Secret(name) if secret_has(name, token))),
                    };
                    if !from_secret {
                        problems.push(format!(
                            "{at}: binds beyond loopback but {token} does not come from a Secret that defines it: serve refuses to start without it"
                        ));
                    }
                }
            }
        }
    }

    // Services: none public but through the Ingress; the ops port on none the Ingress uses.
    let services = of_kind("Service");
    let service = |name: &str| services.iter().find(|s| s.name() == name).copied();
    let targets_ops = |p: &Value| {
        ops_ports
            .iter()
            .any(|n| is_port(&p["targetPort"], "ops", *n) || is_port(&p["port"], "ops", *n))
    };
    for s in &services {
        let kind = s.doc["spec"]["type"].as_str().unwrap_or("ClusterIP");
        if matches!(kind, "LoadBalancer" | "NodePort") {
            problems.push(format!(
                "service/{} is a {kind}: the internet reaches the pods only through the Ingress (TLS)",
                s.name()
            ));
        }
    }

    let ingresses = of_kind("Ingress");
    if ingresses.is_empty() {
        problems.push(
            "no Ingress in front of the webhook: Twilio needs an https address (ingress.yaml)"
                .into(),
        );
    }
    let certificates = of_kind("ManagedCertificate");
    for ing in &ingresses {
        let at = format!("ingress/{}", ing.name());
        let spec = &ing.doc["spec"];
        let hosts: Vec<&str> = spec["rules"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|r| r["host"].as_str())
            .collect();
        let managed: Vec<&str> =
            ing.doc["metadata"]["annotations"]["networking.gke.io/managed-certificates"]
                .as_str()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
        let tls = spec["tls"].as_sequence().is_some_and(|t| !t.is_empty());
        if managed.is_empty() && !tls {
            problems.push(format!(
                "{at}: no TLS (no networking.gke.io/managed-certificates annotation, no spec.tls): the webhook would be plain HTTP"
            ));
        }
        let mut domains = Vec::new();
        for name in &managed {
            match certificates.iter().find(|c| c.name() == *name) {
                None => problems.push(format!(
                    "{at}: the ManagedCertificate {name} is not defined in the directory"
                )),
                Some(c) => domains.extend(
                    c.doc["spec"]["domains"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                ),
            }
        }
        if !managed.is_empty() {
            for host in &hosts {
                if !domains.contains(host) {
                    problems.push(format!(
                        "{at}: the host {host} is not among its managed certificates' domains"
                    ));
                }
            }
        }
        if hosts.is_empty() {
            problems.push(format!(
                "{at}: no rule names a host (the certificate's domain)"
            ));
        }
        if !spec["defaultBackend"].is_null() {
            problems.push(format!(
                "{at}: has a defaultBackend, which routes every path (/ops and /metrics too)"
            ));
        }
        for rule in spec["rules"].as_sequence().into_iter().flatten() {
            for p in rule["http"]["paths"].as_sequence().into_iter().flatten() {
                let path = p["path"].as_str().unwrap_or("/");
                if !PUBLIC_PATHS.contains(&path) {
                    problems.push(format!(
                        "{at}: routes {path}, which is not one of the public listener's paths {PUBLIC_PATHS:?} (/ops and /metrics must never be routed)"
                    ));
                }
                let backend = &p["backend"]["service"];
                let name = backend["name"].as_str().unwrap_or("?");
                let Some(svc) = service(name) else {
                    problems.push(format!(
                        "{at}: routes {path} to service/{name}, which is not defined"
                    ));
                    continue;
                };
                let ports = svc.doc["spec"]["ports"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default();
                if ports.iter().any(targets_ops) {
                    problems.push(format!(
                        "service/{name} is behind {at} but exposes the ops port: /ops would be one path away from the internet"
                    ));
                }
                let wanted = &backend["port"];
                let used = ports.iter().find(|sp| {
                    (wanted["name"].is_string() && sp["name"] == wanted["name"])
                        || (!wanted["number"].is_null() && sp["port"] == wanted["number"])
                });
                let public = used.is_some_and(|sp| {
                    public_ports
                        .iter()
                        .any(|n| is_port(&sp["targetPort"], "http", *n))
                });
                if !public {
                    problems.push(format!(
                        "{at}: routes {path} to a port of service/{name} that is not the public listener's"
                    ));
                }
                // Twilio's requests must land on pods that take them.
                let selector = &svc.doc["spec"]["selector"];
                let targets: Vec<&&Manifest> = deployments
                    .iter()
                    .filter(|d| {
                        labels_match(selector, &d.doc["spec"]["template"]["metadata"]["labels"])
                    })
                    .collect();
                if targets.is_empty() {
                    problems.push(format!("service/{name} selects no Deployment's pods"));
                }
                for d in targets {
                    if !containers(d)
                        .iter()
                        .all(|c| matches!(role_of(c).as_str(), "web" | "all"))
                    {
                        problems.push(format!(
                            "service/{name} routes Twilio to deployment/{}, whose role does not serve /twilio/sms",
                            d.name()
                        ));
                    }
                }
            }
        }
    }

    for cm in of_kind("ConfigMap") {
        if let Some(url) = cm.doc["data"]["PUBLIC_BASE_URL"].as_str()
            && !url.trim().to_ascii_lowercase().starts_with("https://")
        {
            problems.push(format!(
                "ConfigMap {}: PUBLIC_BASE_URL={url:?} is not https: Twilio's webhooks (and the /ops cookie) would travel in clear",
                cm.name()
            ));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// The Dockerfile and pipeline of the repository whose manifests are in `manifests`
/// (`<repo>/deploy/k8s`), when they are there: `config check --manifests` pointed at a
/// directory outside a checkout checks the manifests only.
pub fn check_repo_files(manifests: &Path) -> Vec<String> {
    let Some(repo) = manifests.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if let Ok(text) = std::fs::read_to_string(repo.join("deploy/Dockerfile")) {
        problems.extend(check_dockerfile(&text));
    }
    if let Ok(text) = std::fs::read_to_string(repo.join("cloudbuild.yaml")) {
        problems.extend(check_cloudbuild(&text));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = include_str!("../deploy/Dockerfile");
    const CLOUDBUILD: &str = include_str!("../cloudbuild.yaml");

    #[test]
    fn the_shipped_dockerfile_has_every_essential() {
        assert_eq!(check_dockerfile(DOCKERFILE), Vec::<String>::new());
    }

    #[test]
    fn a_dockerfile_missing_an_essential_is_named() {
        let cases = [
            ("USER lead-agent", "USER root", "is root"),
            ("USER lead-agent", "", "no USER"),
            ("HEALTHCHECK", "# HEALTHCHECK", "HEALTHCHECK"),
            ("--locked", "", "--locked"),
            (
                "FROM debian:bookworm-slim",
                "FROM rust:1.95-bookworm",
                "toolchain image",
            ),
            ("EXPOSE 5012", "EXPOSE 8080", "EXPOSE 5012"),
            ("ENV BIND_ADDRESS=0.0.0.0", "", "BIND_ADDRESS=0.0.0.0"),
            (
                "ENV BIND_ADDRESS=0.0.0.0",
                "ENV BIND_ADDRESS=0.0.0.0 ALLOW_INSECURE=true",
                "ALLOW_INSECURE",
            ),
        ];
        for (from, to, expected) in cases {
            assert!(DOCKERFILE.contains(from), "fixture drifted: {from}");
            let broken = DOCKERFILE.replace(from, to);
            let problems = check_dockerfile(&broken);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "replacing {from:?} by {to:?} should report {expected:?}: {problems:?}"
            );
        }
        let single_stage = "FROM rust:1.95\nRUN cargo build --release --locked\nUSER app\n";
        assert!(check_dockerfile(single_stage)[0].contains("multi-stage"));
    }

    #[test]
    fn the_shipped_pipeline_gates_deploy_on_tests_and_rolls_back() {
        assert_eq!(check_cloudbuild(CLOUDBUILD), Vec::<String>::new());
    }

    #[test]
    fn a_pipeline_that_could_deploy_past_a_failure_is_refused() {
        // A step allowed to start before the tests finish.
        let parallel =
            CLOUDBUILD.replace("  - id: Deploy\n", "  - id: Deploy\n    waitFor: ['-']\n");
        assert!(
            check_cloudbuild(&parallel)
                .iter()
                .any(|p| p.contains("Deploy has waitFor"))
        );
        // Steps out of order: deploy before tests.
        let doc: Value = serde_yaml_ng::from_str(CLOUDBUILD).unwrap();
        let mut reordered = doc.clone();
        let steps = reordered["steps"].as_sequence_mut().unwrap();
        let tests = steps.remove(0);
        steps.push(tests);
        let text = serde_yaml_ng::to_string(&reordered).unwrap();
        assert!(
            check_cloudbuild(&text)
                .iter()
                .any(|p| p.contains("in that order"))
        );
        // Applying the files one by one instead of their rendering.
        let unrendered =
            CLOUDBUILD.replace("kubectl kustomize deploy/k8s >", "cat deploy/k8s/*.yaml >");
        assert!(
            check_cloudbuild(&unrendered)
                .iter()
                .any(|p| p.contains("kubectl kustomize deploy/k8s")),
            "{:?}",
            check_cloudbuild(&unrendered)
        );
        // Deploying the moving tag, and a verify without rollback.
        let latest = CLOUDBUILD.replace("s|:IMAGE_TAG|:$COMMIT_SHA|g", "s|:IMAGE_TAG|:latest|g");
        assert!(
            check_cloudbuild(&latest)
                .iter()
                .any(|p| p.contains(":latest"))
        );
        let mut no_undo = doc;
        let verify = no_undo["steps"]
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
            .find(|s| s["id"] == "Verify")
            .unwrap();
        verify["args"] =
            serde_yaml_ng::from_str("[\"-c\", \"/workspace/lead-agent verify --url x\"]").unwrap();
        let problems = check_cloudbuild(&serde_yaml_ng::to_string(&no_undo).unwrap());
        assert!(
            problems
                .iter()
                .any(|p| p.contains("roll back when verification fails")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("fail the build when verification fails")),
            "{problems:?}"
        );
    }

    // ---------------------------------------------------------------- exposure ----- //

    fn shipped() -> Vec<Manifest> {
        crate::config_check::load_manifests(
            &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s"),
        )
        .unwrap()
    }

    fn find<'a>(manifests: &'a mut [Manifest], kind: &str, name: &str) -> &'a mut Value {
        &mut manifests
            .iter_mut()
            .find(|m| m.kind() == kind && m.name() == name)
            .unwrap_or_else(|| panic!("{kind}/{name} is shipped"))
            .doc
    }

    fn problems_of(manifests: &[Manifest]) -> String {
        check_exposure(manifests).join("\n")
    }

    #[test]
    fn the_shipped_manifests_expose_only_the_webhook_through_tls_and_the_ops_port_nowhere() {
        let manifests = shipped();
        assert_eq!(check_exposure(&manifests), Vec::<String>::new());
        let mut m = manifests.clone();
        let ingress = find(&mut m, "Ingress", "lead-agent").clone();
        let paths: Vec<&str> = ingress["spec"]["rules"][0]["http"]["paths"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap())
            .collect();
        assert!(paths.contains(&"/twilio/sms") && paths.contains(&"/discord/interactions"));
        assert!(
            paths
                .iter()
                .all(|p| !p.starts_with("/ops") && !p.starts_with("/metrics"))
        );
        let public = find(&mut m, "Service", "lead-agent").clone();
        assert_eq!(public["spec"]["type"], "ClusterIP");
        assert_eq!(public["spec"]["ports"].as_sequence().unwrap().len(), 1);
        assert_eq!(public["spec"]["ports"][0]["targetPort"], "http");
        let ops = find(&mut m, "Service", "lead-agent-ops").clone();
        assert_eq!(ops["spec"]["type"], "ClusterIP");
        assert_eq!(ops["spec"]["ports"][0]["targetPort"], "ops");
    }

    #[test]
    fn an_ingress_that_routes_ops_metrics_or_everything_is_named() {
        for (path, kind) in [("/ops", "Prefix"), ("/metrics", "Exact"), ("/", "Prefix")] {
            let mut m = shipped();
            let paths = find(&mut m, "Ingress", "lead-agent")["spec"]["rules"][0]["http"]["paths"]
                .as_sequence_mut()
                .unwrap();
            let mut extra = paths[0].clone();
            extra["path"] = path.into();
            extra["pathType"] = kind.into();
            paths.push(extra);
            let problems = problems_of(&m);
            assert!(
                problems.contains(&format!(
                    "routes {path}, which is not one of the public listener's paths"
                )),
                "{path}: {problems}"
            );
        }
        let mut m = shipped();
        find(&mut m, "Ingress", "lead-agent")["spec"]["defaultBackend"] =
            serde_yaml_ng::from_str("{service: {name: lead-agent-ops, port: {name: ops}}}")
                .unwrap();
        assert!(
            problems_of(&m).contains("has a defaultBackend"),
            "{}",
            problems_of(&m)
        );
        // A path sent to the ops Service: not the public listener's port, and the ops port
        // behind the Ingress.
        let mut m = shipped();
        find(&mut m, "Ingress", "lead-agent")["spec"]["rules"][0]["http"]["paths"][0]["backend"] =
            serde_yaml_ng::from_str("{service: {name: lead-agent-ops, port: {name: ops}}}")
                .unwrap();
        let problems = problems_of(&m);
        assert!(
            problems.contains(
                "service/lead-agent-ops is behind ingress/lead-agent but exposes the ops port"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("that is not the public listener's"),
            "{problems}"
        );
    }

    #[test]
    fn the_ops_port_in_the_public_service_a_load_balancer_or_no_tls_is_named() {
        let mut m = shipped();
        let public = find(&mut m, "Service", "lead-agent");
        public["spec"]["ports"]
            .as_sequence_mut()
            .unwrap()
            .push(serde_yaml_ng::from_str("{name: ops, port: 5013, targetPort: ops}").unwrap());
        public["spec"]["type"] = "LoadBalancer".into();
        let problems = problems_of(&m);
        assert!(
            problems.contains(
                "service/lead-agent is behind ingress/lead-agent but exposes the ops port"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("service/lead-agent is a LoadBalancer"),
            "{problems}"
        );

        let mut m = shipped();
        find(&mut m, "Ingress", "lead-agent")["metadata"]["annotations"]
            .as_mapping_mut()
            .unwrap()
            .remove("networking.gke.io/managed-certificates");
        find(&mut m, "ConfigMap", "lead-agent-config")["data"]["PUBLIC_BASE_URL"] =
            "http://leads.example.com".into();
        let problems = problems_of(&m);
        assert!(
            problems.contains("ingress/lead-agent: no TLS"),
            "{problems}"
        );
        assert!(
            problems.contains("PUBLIC_BASE_URL=\"http://leads.example.com\" is not https"),
            "{problems}"
        );
        let mut m = shipped();
        find(&mut m, "ManagedCertificate", "lead-agent")["spec"]["domains"] =
            serde_yaml_ng::from_str("[other.example.com]").unwrap();
        assert!(
            problems_of(&m).contains(
                "the host leads.example.com is not among its managed certificates' domains"
            ),
            "{}",
            problems_of(&m)
        );
        let mut m = shipped();
        m.retain(|x| x.kind() != "Ingress");
        assert!(problems_of(&m).contains("no Ingress in front of the webhook"));
    }

    #[test]
    fn the_ingress_reaches_web_pods_only() {
        let mut m = shipped();
        find(&mut m, "Service", "lead-agent")["spec"]["selector"]["role"] = "worker".into();
        assert!(
            problems_of(&m).contains("routes Twilio to deployment/lead-agent-worker, whose role does not serve /twilio/sms"),
            "{}",
            problems_of(&m)
        );
    }

    fn env_entry<'a>(container: &'a mut Value, name: &str) -> &'a mut Value {
        container["env"]
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} is declared"))
    }

    #[test]
    fn a_container_exposed_without_its_tokens_insecure_or_unreachable_is_named() {
        // The Secret without OPS_TOKEN: every exposed service container is named.
        let mut m = shipped();
        find(&mut m, "Secret", "lead-agent-secrets")["stringData"]
            .as_mapping_mut()
            .unwrap()
            .remove("OPS_TOKEN");
        let problems = problems_of(&m);
        for c in [
            "lead-agent-web container web",
            "lead-agent-worker container worker",
            "lead-agent-scheduler container scheduler",
        ] {
            assert!(
                problems.contains(&format!("deployment/{c}: binds beyond loopback but OPS_TOKEN does not come from a Secret")),
                "{c}: {problems}"
            );
        }
        assert!(
            !problems.contains("watch"),
            "the watch is not a service container: {problems}"
        );

        let mut m = shipped();
        let web = &mut find(&mut m, "Deployment", "lead-agent-web")["spec"]["template"]["spec"]["containers"]
            [0];
        *env_entry(web, "ALLOW_INSECURE") =
            serde_yaml_ng::from_str("{name: ALLOW_INSECURE, value: \"true\"}").unwrap();
        *env_entry(web, "BIND_ADDRESS") =
            serde_yaml_ng::from_str("{name: BIND_ADDRESS, value: \"127.0.0.1\"}").unwrap();
        web["readinessProbe"]["httpGet"]["port"] = 5012.into();
        find(&mut m, "Secret", "lead-agent-secrets")["stringData"]
            .as_mapping_mut()
            .unwrap()
            .remove("TWILIO_AUTH_TOKEN");
        let problems = problems_of(&m);
        for needle in [
            "lead-agent-web container web: ALLOW_INSECURE is true",
            "lead-agent-web container web: BIND_ADDRESS is 127.0.0.1",
            "lead-agent-web container web: readinessProbe must ask the ops port (5013)",
            "lead-agent-web container web: binds beyond loopback but TWILIO_AUTH_TOKEN",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        // A worker needs no Twilio token (the Secret above has none): only OPS_TOKEN is its.
        assert!(
            !problems.contains("lead-agent-worker container worker: binds beyond loopback"),
            "{problems}"
        );
        // A per-container entry decides over the Secret taken whole.
        let mut m = shipped();
        let worker = &mut find(&mut m, "Deployment", "lead-agent-worker")["spec"]["template"]["spec"]
            ["containers"][0];
        worker["env"]
            .as_sequence_mut()
            .unwrap()
            .push(serde_yaml_ng::from_str("{name: OPS_TOKEN, value: \"\"}").unwrap());
        assert!(
            problems_of(&m).contains(
                "lead-agent-worker container worker: binds beyond loopback but OPS_TOKEN"
            ),
            "{}",
            problems_of(&m)
        );
    }
}
