//! Who can reach what, read from the manifests: TLS in front of the webhook, nothing but
//! the public paths routed, the ops port on no public Service, every container reachable
//! by its probes and holding the tokens its binds need. Must not: talk to a cluster.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_yaml_ng::Value;

use crate::config::ENV_VARS;
use crate::config_check::{
    EnvFrom, Manifest, Source, configured_value, container_env, container_env_from, containers,
    labels_match, list_runs_watch, runs_watch,
};

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
