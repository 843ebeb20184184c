//! Stamps the git commit into the binary for /health. A Docker build has no .git: it passes
//! the commit as the GIT_COMMIT build argument instead.
//!
//! The files watched for a new commit are asked of git, not assumed at `.git/`: in a git
//! worktree `.git` is a file, a path under it never exists, and cargo then re-runs this
//! script — and rebuilds the crate — on every command.
use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=GIT_COMMIT");
    if let Some(commit) = std::env::var("GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        println!("cargo:rustc-env=LEAD_AGENT_GIT_COMMIT={commit}");
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LEAD_AGENT_GIT_COMMIT={commit}");
    match (
        git(&["rev-parse", "--path-format=absolute", "--git-dir"]),
        git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]),
    ) {
        (Some(dir), Some(common)) => {
            // HEAD moves on checkout; the branch it names moves on commit (a loose ref, or
            // packed-refs after a gc).
            let watch = [
                PathBuf::from(&dir).join("HEAD"),
                PathBuf::from(&common).join("refs/heads"),
                PathBuf::from(&common).join("packed-refs"),
            ];
            for path in watch.iter().filter(|p| p.exists()) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        _ => println!("cargo:rerun-if-changed=build.rs"),
    }
}
