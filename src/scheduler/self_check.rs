//! The daily self-check (`SCHEDULE_SELF_CHECK`): one `SANITY_CHECK` alert a day that says
//! the office is whole — what is configured and what runs dry, each model provider
//! answering a cheap probe (its models list: no tokens spent), the buildings catalog
//! loading, the work queue's depth, the oldest alert still owed to Discord, the last
//! `verify`. Info when every check holds, a warning naming each problem otherwise.
//!
//! Owns: the checks and the alert. Must not: change anything it checks, or spend model
//! tokens (a probe lists models, it never completes a prompt).

use std::time::Duration;

use actors::alert_router::{Alert, AlertKind, Severity};
use chrono::{DateTime, Utc};

use super::JobContext;
use crate::channels::llm::anthropic::ANTHROPIC_VERSION;

/// An alert owed to Discord for longer than this is a problem: the sender retries within
/// seconds, so an old row means Discord refuses us or no process posts.
const SPOOL_STALE: chrono::Duration = chrono::Duration::minutes(10);
/// A deployment not verified for this long is reported (not a problem: nothing was
/// deployed, perhaps).
const VERIFY_STALE: chrono::Duration = chrono::Duration::days(7);
/// A probe's budget: a provider slower than this to list its models is not answering.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub ok: bool,
    pub text: String,
}

#[derive(Clone, Debug, Default)]
pub struct SelfCheck {
    pub findings: Vec<Finding>,
}

impl SelfCheck {
    fn ok(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: true,
            text: text.into(),
        });
    }

    fn problem(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: false,
            text: text.into(),
        });
    }

    pub fn problems(&self) -> usize {
        self.findings.iter().filter(|f| !f.ok).count()
    }

    pub fn text(&self) -> String {
        let mut out = if self.problems() == 0 {
            "Daily self-check: all checks hold.".to_string()
        } else {
            format!("Daily self-check: {} problem(s).", self.problems())
        };
        for f in &self.findings {
            out.push_str(&format!(
                "\n{} {}",
                if f.ok { "ok     " } else { "PROBLEM" },
                f.text
            ));
        }
        out
    }

    pub fn summary(&self) -> String {
        format!(
            "{} check(s), {} problem(s)",
            self.findings.len(),
            self.problems()
        )
    }
}

/// Lists the provider's models with its key: 200 is a key that works and a provider that
/// answers; anything else says which.
async fn probe(request: reqwest::RequestBuilder) -> Result<(), String> {
    match request.timeout(PROBE_TIMEOUT).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status())),
        Err(e) if e.is_timeout() => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Err(e) => Err(format!("unreachable ({e})")),
    }
}

pub async fn self_check(ctx: &JobContext, now: DateTime<Utc>) -> anyhow::Result<SelfCheck> {
    let s = &ctx.settings;
    let mut report = SelfCheck::default();

    // What runs live and what runs dry: dry is not a fault (a staging office), but the
    // operator should read it once a day.
    let on_off = |on: bool, name: &str, var: &str| {
        if on {
            format!("{name}: on")
        } else {
            format!("{name}: off ({var} unset)")
        }
    };
    report.ok([
        on_off(s.twilio.is_some(), "SMS sending", "TWILIO_ACCOUNT_SID"),
        on_off(s.anthropic.is_some(), "Anthropic", "ANTHROPIC_API_KEY"),
        on_off(s.brain.gemini.is_some(), "Gemini", "GOOGLE_API_KEY"),
        on_off(
            s.discord.bot_token.is_some(),
            "Discord",
            "DISCORD_BOT_TOKEN",
        ),
        on_off(s.amqp.is_some(), "RabbitMQ", "AMQP_URL"),
    ]
    .join("; "));

    let http = reqwest::Client::new();
    if let Some(a) = &s.anthropic {
        let request = http
            .get(format!(
                "{}/v1/models?limit=1",
                s.anthropic_base_url.trim_end_matches('/')
            ))
            .header("x-api-key", a.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION);
        match probe(request).await {
            Ok(()) => report.ok("Anthropic answers (models list)"),
            Err(e) => report.problem(format!("Anthropic {e}")),
        }
    }
    if let Some(g) = &s.brain.gemini {
        let request = http
            .get(format!(
                "{}/v1beta/models?pageSize=1",
                s.brain.gemini_base_url.trim_end_matches('/')
            ))
            .header("x-goog-api-key", g.api_key.expose());
        match probe(request).await {
            Ok(()) => report.ok("Gemini answers (models list)"),
            Err(e) => report.problem(format!("Gemini {e}")),
        }
    }

    match crate::catalog::load(s.brain.buildings_file.as_deref()) {
        Ok(c) if c.buildings.is_empty() => report.problem("the buildings catalog is empty"),
        Ok(c) => report.ok(format!(
            "buildings catalog: {} building(s) from {}",
            c.buildings.len(),
            s.brain
                .buildings_file
                .as_deref()
                .unwrap_or("the bundled sample")
        )),
        Err(e) => report.problem(format!("the buildings catalog does not load: {e:#}")),
    }

    report.ok(format!(
        "work queue: {} task(s) waiting (as this process last saw it)",
        ctx.queue.depth()
    ));

    match ctx.store.spool_summary().await {
        Ok((0, _)) => report.ok("Discord: no alert waiting"),
        Ok((n, Some(oldest))) if now - oldest > SPOOL_STALE => report.problem(format!(
            "Discord: {n} alert(s) waiting, the oldest since {} ({} min)",
            oldest.format("%Y-%m-%d %H:%M UTC"),
            (now - oldest).num_minutes()
        )),
        Ok((n, _)) => report.ok(format!("Discord: {n} alert(s) waiting, none old")),
        Err(e) => report.problem(format!("the alert spool cannot be read: {e}")),
    }

    match ctx.store.last_verification().await {
        Ok(None) => report.ok("verify: never recorded (`lead-agent verify --record`)"),
        Ok(Some(v)) if !v.passed => report.problem(format!(
            "verify: the last run ({}, {}) FAILED",
            v.verified_at.format("%Y-%m-%d %H:%M UTC"),
            v.url
        )),
        Ok(Some(v)) if now - v.verified_at > VERIFY_STALE => report.ok(format!(
            "verify: last passed {} days ago ({})",
            (now - v.verified_at).num_days(),
            v.url
        )),
        Ok(Some(v)) => report.ok(format!(
            "verify: passed {} ({})",
            v.verified_at.format("%Y-%m-%d %H:%M UTC"),
            v.url
        )),
        Err(e) => report.problem(format!("the verifications cannot be read: {e}")),
    }

    let problems = report.problems();
    ctx.alerts.raise(Alert::new(
        AlertKind::SanityCheck,
        if problems == 0 {
            Severity::Info
        } else {
            Severity::Warning
        },
        if problems == 0 {
            "self_check_ok"
        } else {
            "self_check_problems"
        },
        report.text(),
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_problem_and_counts_them() {
        let mut r = SelfCheck::default();
        r.ok("Anthropic answers (models list)");
        r.problem("Gemini answered 403 Forbidden");
        assert_eq!(r.problems(), 1);
        let text = r.text();
        assert!(
            text.starts_with("Daily self-check: 1 problem(s)."),
            "{text}"
        );
        assert!(
            text.contains("\nPROBLEM Gemini answered 403 Forbidden"),
            "{text}"
        );
        assert!(text.contains("\nok      Anthropic answers"), "{text}");
        assert_eq!(r.summary(), "2 check(s), 1 problem(s)");
    }
}
