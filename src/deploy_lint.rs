//! Checks of the deploy files that no engine runs here: `deploy/Dockerfile` (no Docker
//! daemon on the development machines) and `cloudbuild.yaml` (no Cloud Build project).
//! They are kept correct by review and by these checks of their essentials, which
//! `lead-agent config check` runs next to the manifest checks (so `.ci/run` guards them).
//!
//! Owns: what "essential" means for each file — the Dockerfile: multi-stage, a locked
//! release build, a runtime stage that is not the toolchain image, copies the one binary,
//! runs as a non-root user, exposes 5012 and has a HEALTHCHECK of /health; the pipeline:
//! Tests → Build → Push → Deploy → Verify in that order with nothing bypassing the order,
//! images tagged and deployed by `$COMMIT_SHA`, rollout status and undo, verify then undo.
//! Must not: pretend to build or run anything.

use std::path::Path;

use serde_yaml_ng::Value;

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
    let deploy = script("Deploy");
    for (needle, what) in [
        (":$COMMIT_SHA", "set the image to the commit SHA"),
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
}
