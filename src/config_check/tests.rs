//! The checks of `config check` against fixture manifests, and the shipped examples held
//! to the keys `config env-yaml` prints.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml_ng::{Mapping, Value};

use super::grace::pre_stop_seconds;
use super::print::SET_IN_THE_DEPLOYMENT;
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
        let pod = seconds_of(&d.doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
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
                container_env(c)
                    .iter()
                    .all(|(n, s)| *s == Source::Literal
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

fn locator_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/agents/locator")
}

#[test]
fn the_locator_overlay_is_a_deployment_set_of_its_own_that_passes_the_check() {
    let locator = load_manifests(&locator_dir()).expect("the Locator's overlay renders");
    assert_eq!(check(ENV_VARS, &locator), Vec::<String>::new());
    let landlord = shipped();
    let deployments = |m: &[Manifest]| -> Vec<Manifest> {
        m.iter()
            .filter(|m| m.kind() == "Deployment" && !list_runs_watch(m))
            .cloned()
            .collect()
    };
    let (ours, theirs) = (deployments(&locator), deployments(&landlord));
    assert_eq!(ours.len(), 3, "web, worker, scheduler");
    for d in &ours {
        assert!(d.name().ends_with("-locator"), "{}", d.name());
        let c = containers(d)[0];
        assert_eq!(
            container_env_from(c),
            [
                EnvFrom::ConfigMap("lead-agent-locator-config".into()),
                EnvFrom::Secret("lead-agent-locator-secrets".into())
            ]
        );
        assert_eq!(
            configured_value(c, "AGENT_PROFILE", &BTreeMap::new()).as_deref(),
            Some("locator")
        );
        // Neither agent's selectors reach the other's pods.
        let pods = &d.doc["spec"]["template"]["metadata"]["labels"];
        for other in &theirs {
            assert!(!labels_match(
                &other.doc["spec"]["selector"]["matchLabels"],
                pods
            ));
            let their_pods = &other.doc["spec"]["template"]["metadata"]["labels"];
            assert!(!labels_match(
                &d.doc["spec"]["selector"]["matchLabels"],
                their_pods
            ));
        }
    }
    for d in &theirs {
        assert_eq!(
            configured_value(containers(d)[0], "AGENT_PROFILE", &BTreeMap::new()).as_deref(),
            Some("landlord_rep")
        );
    }
    // Its own database: a DATABASE_URL other than the landlord's rep's.
    let url = |m: &[Manifest], secret: &str| {
        m.iter()
            .find(|o| o.kind() == "Secret" && o.name() == secret)
            .unwrap()
            .doc["stringData"]["DATABASE_URL"]
            .clone()
    };
    assert_ne!(
        url(&locator, "lead-agent-locator-secrets"),
        url(&landlord, "lead-agent-secrets")
    );
    // Its queue is its profile's: its ConfigMap leaves AMQP_QUEUE to it.
    let config = locator
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "lead-agent-locator-config")
        .unwrap();
    assert_eq!(config.doc["data"]["AMQP_QUEUE"].as_str(), Some(""));
}

#[test]
fn an_agent_profile_the_binary_lacks_is_named() {
    let mut manifests = shipped();
    let env = first_container(deployment(&mut manifests, "lead-agent-worker"))["env"]
        .as_sequence_mut()
        .unwrap();
    let entry = env
        .iter_mut()
        .find(|e| e["name"].as_str() == Some("AGENT_PROFILE"))
        .unwrap();
    entry["value"] = "ken".into();
    let problems = check(ENV_VARS, &manifests).join("\n");
    assert!(
        problems.contains(
            "deployment/lead-agent-worker container worker: AGENT_PROFILE=\"ken\" is not a built-in profile"
        ),
        "{problems}"
    );
}
