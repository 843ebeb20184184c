//! The exposure rule: a process whose listeners other machines can reach holds the secrets
//! that keep strangers out, or says loudly that it does not. Without `TWILIO_AUTH_TOKEN`
//! the webhook trusts loopback peers and without `OPS_TOKEN` so does `/ops` — and behind a
//! proxy (an Ingress, a sidecar) every caller looks like loopback. So `serve` refuses to
//! start on a non-loopback `BIND_ADDRESS` or `OPS_BIND_ADDRESS` without them, unless
//! `--insecure` (`ALLOW_INSECURE=true`) says the risk is taken on purpose.
//!
//! Owns: which secrets a role needs when exposed ([`required`]: the webhook roles `web` and
//! `all` both tokens; `worker` and `scheduler`, whose only operator data is `/ops`,
//! `OPS_TOKEN`) and the refusal's wording. `startup` applies it at start, `config check`
//! to the manifests. Must not: read the environment itself, or print a secret.

use std::net::IpAddr;

use crate::config::Settings;
use crate::role::Role;

/// The secrets a process of a role needs once one of its listeners is reachable from other
/// machines.
pub fn required(serves_webhook: bool) -> &'static [&'static str] {
    if serves_webhook {
        &["TWILIO_AUTH_TOKEN", "OPS_TOKEN"]
    } else {
        &["OPS_TOKEN"]
    }
}

/// `NAME=address` of each bind that is not loopback, e.g. `BIND_ADDRESS=0.0.0.0`.
pub fn exposed_binds(binds: &[(&str, IpAddr)]) -> Vec<String> {
    binds
        .iter()
        .filter(|(_, ip)| !ip.is_loopback())
        .map(|(name, ip)| format!("{name}={ip}"))
        .collect()
}

/// The refusal for `exposed` binds with `missing` secrets: what is wrong, why it matters
/// and the three ways out.
pub fn refusal(exposed: &[String], missing: &[&str]) -> String {
    let verb = if missing.len() == 1 { "is" } else { "are" };
    format!(
        "refusing to start: {} can be reached from other machines and {} {verb} not set. \
         Without TWILIO_AUTH_TOKEN the webhook trusts loopback peers, without OPS_TOKEN so \
         does /ops, and behind a proxy (an Ingress, a sidecar) every caller looks like \
         loopback: anyone could post webhooks or read conversations. Set {}, or bind to \
         127.0.0.1 (the default of BIND_ADDRESS and OPS_BIND_ADDRESS), or start with \
         `lead-agent serve --insecure` (or ALLOW_INSECURE=true) to run exposed on purpose.",
        exposed.join(" and "),
        missing.join(" and "),
        missing.join(" and "),
    )
}

/// The rule for one process: `Err` with the refusal when it would run exposed without its
/// secrets and nobody asked for that; `Ok` otherwise (with a warning when they did).
pub fn check(settings: &Settings, role: Role) -> Result<(), String> {
    let exposed = exposed_binds(&[
        ("BIND_ADDRESS", settings.bind_address),
        ("OPS_BIND_ADDRESS", settings.ops_bind_address),
    ]);
    if exposed.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = required(role.serves_webhook())
        .iter()
        .copied()
        .filter(|name| match *name {
            "TWILIO_AUTH_TOKEN" => settings.twilio_auth_token.is_none(),
            _ => settings.ops_token.is_none(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if settings.allow_insecure {
        tracing::warn!(
            exposed = %exposed.join(", "),
            missing = %missing.join(", "),
            "INSECURE (--insecure / ALLOW_INSECURE): reachable from other machines without these secrets"
        );
        return Ok(());
    }
    Err(refusal(&exposed, &missing))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_map(&pairs.iter().copied().collect::<HashMap<_, _>>()).unwrap()
    }

    #[test]
    fn loopback_binds_need_nothing_and_the_defaults_are_loopback() {
        for role in [Role::All, Role::Web, Role::Worker, Role::Scheduler] {
            assert_eq!(check(&settings(&[]), role), Ok(()));
            assert_eq!(
                check(&settings(&[("BIND_ADDRESS", "::1")]), role),
                Ok(()),
                "{role:?}"
            );
        }
    }

    #[test]
    fn an_exposed_web_role_names_every_missing_secret_and_the_ways_out() {
        let err = check(&settings(&[("BIND_ADDRESS", "0.0.0.0")]), Role::Web).unwrap_err();
        for needle in [
            "BIND_ADDRESS=0.0.0.0",
            "TWILIO_AUTH_TOKEN and OPS_TOKEN are not set",
            "127.0.0.1",
            "--insecure",
            "ALLOW_INSECURE=true",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        // Only what is missing is named; either bind counts.
        let err = check(
            &settings(&[("OPS_BIND_ADDRESS", "0.0.0.0"), ("OPS_TOKEN", "t")]),
            Role::All,
        )
        .unwrap_err();
        assert!(
            err.contains("OPS_BIND_ADDRESS=0.0.0.0")
                && err.contains("TWILIO_AUTH_TOKEN is not set"),
            "{err}"
        );
        assert!(!err.contains("BIND_ADDRESS=0.0.0.0 and"), "{err}");
        assert!(!err.contains("and OPS_TOKEN"), "{err}");
    }

    #[test]
    fn both_tokens_or_the_insecure_flag_let_it_start() {
        let exposed = [("BIND_ADDRESS", "0.0.0.0"), ("OPS_BIND_ADDRESS", "0.0.0.0")];
        let mut with_tokens = exposed.to_vec();
        with_tokens.extend([("TWILIO_AUTH_TOKEN", "a"), ("OPS_TOKEN", "b")]);
        assert_eq!(check(&settings(&with_tokens), Role::Web), Ok(()));
        let mut insecure = exposed.to_vec();
        insecure.push(("ALLOW_INSECURE", "true"));
        assert_eq!(check(&settings(&insecure), Role::All), Ok(()));
    }

    #[test]
    fn a_worker_or_scheduler_needs_only_the_ops_token() {
        let bare = settings(&[("OPS_BIND_ADDRESS", "0.0.0.0")]);
        for role in [Role::Worker, Role::Scheduler] {
            let err = check(&bare, role).unwrap_err();
            assert!(
                err.contains("OPS_TOKEN is not set") && !err.contains("TWILIO_AUTH_TOKEN and"),
                "{err}"
            );
            let ok = settings(&[("OPS_BIND_ADDRESS", "0.0.0.0"), ("OPS_TOKEN", "t")]);
            assert_eq!(check(&ok, role), Ok(()));
        }
    }
}
