//! cloudbuild.yaml's order and gating: Tests → Build → Push → Deploy → Verify, nothing
//! bypassing the order, images tagged and deployed by `$COMMIT_SHA`, rollout status and
//! undo, verify then undo. Must not: pretend to run the pipeline.

use serde_yaml_ng::Value;

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
