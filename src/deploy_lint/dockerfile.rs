//! The Dockerfile's essentials (see the module above): multi-stage, a locked release
//! build, a runtime stage that is not the toolchain image, the one binary, a non-root
//! user, 0.0.0.0 and never insecure, port 5012, a HEALTHCHECK of /health.
//! Must not: pretend to build anything.

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
    // Every stage before the runtime may be the one it copies from (a toolchain stage, a
    // planner and a build stage, as with cargo-chef).
    let build_names: Vec<String> = stages[..stages.len() - 1]
        .iter()
        .filter_map(|&i| {
            all[i]
                .1
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("as"))
                .nth(1)
                .map(str::to_string)
        })
        .collect();
    let build = &all[stages[0]..stages[stages.len() - 1]];
    let runtime_from = &all[stages[stages.len() - 1]].1;
    let runtime = &all[stages[stages.len() - 1] + 1..];
    // `--profile dist` is the shipped profile (Cargo.toml: release with fat LTO).
    if !build.iter().any(|(k, a)| {
        k == "RUN"
            && a.contains("cargo build")
            && (a.contains("--release") || a.contains("--profile dist"))
            && a.contains("--locked")
    }) {
        problems.push(
            "Dockerfile: the build stage does not run `cargo build --profile dist --locked` (or `--release`)".into(),
        );
    }
    let runtime_image = runtime_from.split_whitespace().next().unwrap_or("");
    if runtime_image.contains("rust") || runtime_image.contains("cargo") {
        problems.push(format!(
            "Dockerfile: the runtime stage is the toolchain image {runtime_image}; it must be a small runtime image"
        ));
    }
    if !runtime.iter().any(|(k, a)| {
        k == "COPY"
            && a.contains("lead-agent")
            && build_names
                .iter()
                .any(|name| a.contains(&format!("--from={name}")))
    }) {
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
