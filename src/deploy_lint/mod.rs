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
//!
//! One file per deploy file: [`dockerfile`], [`cloudbuild`] and the manifests'
//! [`exposure`]; this module runs the first two on a checkout ([`check_repo_files`]).

mod cloudbuild;
mod dockerfile;
mod exposure;

use std::path::Path;

pub use cloudbuild::{PIPELINE, check_cloudbuild};
pub use dockerfile::check_dockerfile;
pub use exposure::{PUBLIC_PATHS, check_exposure};

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
mod tests;
