//! The deploy checks against the shipped files and against each essential taken away.

use serde_yaml_ng::Value;

use super::*;
use crate::config_check::Manifest;

const DOCKERFILE: &str = include_str!("../../deploy/Dockerfile");
const CLOUDBUILD: &str = include_str!("../../cloudbuild.yaml");

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
        (
            "cargo build --profile dist",
            "cargo build",
            "--profile dist",
        ),
        (
            "COPY --from=build",
            "COPY --from=elsewhere",
            "does not COPY --from",
        ),
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
    let parallel = CLOUDBUILD.replace("  - id: Deploy\n", "  - id: Deploy\n    waitFor: ['-']\n");
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
        serde_yaml_ng::from_str("{service: {name: lead-agent-ops, port: {name: ops}}}").unwrap();
    assert!(
        problems_of(&m).contains("has a defaultBackend"),
        "{}",
        problems_of(&m)
    );
    // A path sent to the ops Service: not the public listener's port, and the ops port
    // behind the Ingress.
    let mut m = shipped();
    find(&mut m, "Ingress", "lead-agent")["spec"]["rules"][0]["http"]["paths"][0]["backend"] =
        serde_yaml_ng::from_str("{service: {name: lead-agent-ops, port: {name: ops}}}").unwrap();
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
        problems
            .contains("service/lead-agent is behind ingress/lead-agent but exposes the ops port"),
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
        problems_of(&m)
            .contains("the host leads.example.com is not among its managed certificates' domains"),
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
        problems_of(&m).contains(
            "routes Twilio to deployment/lead-agent-worker, whose role does not serve /twilio/sms"
        ),
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
            problems.contains(&format!(
                "deployment/{c}: binds beyond loopback but OPS_TOKEN does not come from a Secret"
            )),
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
    let worker = &mut find(&mut m, "Deployment", "lead-agent-worker")["spec"]["template"]["spec"]["containers"]
        [0];
    worker["env"]
        .as_sequence_mut()
        .unwrap()
        .push(serde_yaml_ng::from_str("{name: OPS_TOKEN, value: \"\"}").unwrap());
    assert!(
        problems_of(&m)
            .contains("lead-agent-worker container worker: binds beyond loopback but OPS_TOKEN"),
        "{}",
        problems_of(&m)
    );
}
