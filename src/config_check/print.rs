//! `config print` (the effective configuration, secrets redacted) and `config env-yaml`
//! (the ConfigMap and Secret key lines a new variable needs). Must not: print a secret's
//! value.

use crate::config::{ENV_VARS, EnvVar, read_var};

use super::expected_vars;

/// One line of `config print`.
pub fn print_line(var: &EnvVar, value: Option<&str>) -> String {
    match (value, var.secret) {
        (Some(_), true) => format!("{}=[REDACTED] (secret, set)", var.name),
        (Some(v), false) => format!("{}={v}", var.name),
        (None, _) => match var.default {
            Some(d) => format!("{}={d} (default)", var.name),
            None => format!("{} (unset)", var.name),
        },
    }
}

/// `config print`: the effective configuration, secrets redacted, then whether it is valid.
pub fn run_print() -> anyhow::Result<()> {
    let (profile, _) = crate::config::AgentProfile::resolve(&read_var);
    println!("# agent profile: {}", profile.describe());
    for var in ENV_VARS {
        let set = read_var(var.name);
        match (&set, profile.value_of(var.name)) {
            (None, Some(v)) => println!("{}={v} (profile {})", var.name, profile.name),
            _ => println!("{}", print_line(var, set.as_deref())),
        }
    }
    if let Some(add) = profile.prompt_addition() {
        println!("# the profile adds to the system prompt: {add}");
    }
    let mut routes: Vec<_> = profile.alert_routes.iter().collect();
    routes.sort_by_key(|(from, _)| from.key());
    for (from, to) in routes {
        println!(
            "# the profile posts {} alerts to the {} channel",
            from.key(),
            to.key()
        );
    }
    match crate::config::Settings::from_env() {
        Ok(_) => {
            println!("# valid");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The keys of the ConfigMap `lead-agent-config` and the Secret `lead-agent-secrets` for
/// `vars`: every variable with its default ("" when it has none, or when the default is
/// derived from another variable), secrets in the Secret. `config env-yaml` prints them, so
/// a new variable is added to the ConfigMap or the Secret by pasting its line; every
/// container takes both whole (`envFrom`).
pub fn env_yaml(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, false),
        indent,
        "lead-agent-config",
        "lead-agent-secrets",
    )
}

/// The keys of the watch's own ConfigMap and Secret (`config env-yaml --watch`:
/// `lead-agent-watch-config`, `lead-agent-watch-secrets`), so a mistake in the service's
/// configuration — a wrong PUBLIC_BASE_URL above all — is not copied into the watchdog
/// that must catch it.
pub fn env_yaml_watch(vars: &[EnvVar], indent: usize) -> String {
    env_yaml_from(
        &expected_vars(vars, true),
        indent,
        "lead-agent-watch-config",
        "lead-agent-watch-secrets",
    )
}

/// The variables a Deployment sets itself, as literal values: three decide who can reach the
/// pod (base/deployment.yaml, watch.yaml), AGENT_PROFILE which agent the Deployment set is
/// (each agent's overlay, deploy/agents/), so they are no key of a ConfigMap.
pub(super) const SET_IN_THE_DEPLOYMENT: [&str; 4] = [
    "BIND_ADDRESS",
    "OPS_BIND_ADDRESS",
    "ALLOW_INSECURE",
    "AGENT_PROFILE",
];

fn env_yaml_from(vars: &[&EnvVar], indent: usize, config_map: &str, secret: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for (secrets, header) in [
        (false, format!("# ConfigMap {config_map}, data:\n")),
        (true, format!("# Secret {secret}, stringData:\n")),
    ] {
        out.push_str(&header);
        for v in vars
            .iter()
            .filter(|v| v.secret == secrets && !SET_IN_THE_DEPLOYMENT.contains(&v.name))
        {
            let value = v.default.filter(|d| !v.secret && !d.contains('$'));
            let quoted = value
                .unwrap_or("")
                .replace('\\', "\\\\")
                .replace('"', "\\\"");
            out.push_str(&format!("{pad}{}: \"{quoted}\"\n", v.name));
        }
    }
    out
}
