//! What the `/ops` page shows: [`gather`] reads live state from this process and the
//! store into a [`Page`], and askama renders it through `templates/ops/page.html`, which
//! escapes every `{{ value }}` for HTML (text from alerts, leads, the store and the
//! verifier can hold markup; none of it is trusted). Dates and numbers are formatted here,
//! so the template holds markup only.
//! Must not: decide who may see the page ([`super`] does), write anything (the takeover
//! buttons' script posts to the `/ops` endpoints, like any client), or mark a
//! value safe (`|safe`): nothing on this page is markup of ours but the template itself.

use std::sync::atomic::Ordering;

use askama::Template;

use crate::http::AppState;
use crate::store::VerificationRecord;
use crate::verify::Report;

/// The page as the template sees it: every value already a string or a number.
#[derive(Template)]
#[template(path = "ops/page.html")]
pub struct Page {
    /// The console's CSRF token for this session (`crate::http::console::csrf`).
    pub csrf: String,
    /// `GET /ops/changes`'s stamp at render time: the script reloads when it moves.
    pub stamp: String,
    /// The inbox, first on the page.
    pub inbox: crate::http::console::inbox::Inbox,
    pub role: &'static str,
    pub version: &'static str,
    pub commit: &'static str,
    pub now: String,
    pub queue_depth: usize,
    /// `None`: no lead actors in this role.
    pub leads: Option<Leads>,
    /// `None`: no model pool in this role.
    pub pool: Option<Vec<Metric>>,
    /// `Err`: the store's answer, shown as "store unavailable".
    pub breaches: Result<Vec<BreachRow>, String>,
    pub parks: Result<Vec<ParkRow>, String>,
    /// The leads whose consent changed last (the consent ledger), newest first.
    pub consent: Result<Vec<ConsentRow>, String>,
    /// Human takeovers in force (issue 15 item 6), with their Release buttons.
    pub takeovers: Result<Vec<TakeoverRow>, String>,
    /// `TAKEOVER_IDLE_HOURS`, worded.
    pub takeover_idle: String,
    pub jobs: Result<Vec<JobRow>, String>,
    /// How many alerts this process keeps (the table shows the newest 25).
    pub alerts_kept: usize,
    pub alerts: Vec<AlertRow>,
    pub verification: Result<Option<Verification>, String>,
}

/// The body of a refusal: why, and nothing of the operator's data.
#[derive(Template)]
#[template(path = "ops/refused.html")]
pub struct Refused<'a> {
    pub why: &'a str,
}

pub struct Leads {
    pub active: usize,
    pub busy: usize,
}

/// One row of a name/value table; `id` is its `data-metric`, what tests and scrapers read.
pub struct Metric {
    pub id: &'static str,
    pub label: &'static str,
    pub value: String,
}

impl Metric {
    fn new(id: &'static str, label: &'static str, value: impl ToString) -> Self {
        Self {
            id,
            label,
            value: value.to_string(),
        }
    }
}

pub struct BreachRow {
    pub breached_at: String,
    pub lead: String,
    pub kind: String,
    pub staff_nags: String,
    pub state: &'static str,
}

pub struct ParkRow {
    pub lead: String,
    pub reason: &'static str,
    pub parked_at: String,
    pub expires_at: String,
}

/// How many leads the page's consent list shows (the JSON has every lead's ledger).
const CONSENT_ROWS: u32 = 20;

pub struct ConsentRow {
    pub lead: String,
    /// `opted out` or `opted in`: what every send checks now.
    pub status: &'static str,
    pub since: String,
    /// The latest event's method and whether it granted or revoked.
    pub latest: String,
    pub latest_at: String,
    /// `/ops/leads/{phone}/consent`: the whole ledger as JSON.
    pub href: String,
}

impl From<&crate::store::LeadConsent> for ConsentRow {
    fn from(c: &crate::store::LeadConsent) -> Self {
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%m-%d %H:%M").to_string();
        Self {
            lead: c.latest.lead.clone(),
            status: if c.opted_out { "opted out" } else { "opted in" },
            since: if c.opted_out {
                c.opted_out_at.map(fmt).unwrap_or_default()
            } else {
                String::new()
            },
            latest: format!(
                "{} ({})",
                c.latest.method.as_str(),
                if c.latest.grants { "grants" } else { "revokes" }
            ),
            latest_at: fmt(c.latest.at),
            href: format!("/ops/leads/{}/consent", c.latest.lead),
        }
    }
}

pub struct TakeoverRow {
    pub lead: String,
    pub operator: String,
    pub via: String,
    pub taken_at: String,
    pub last_activity_at: String,
}

pub struct JobRow {
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    pub next: String,
    pub last_run: String,
    pub lateness: String,
    pub outcome: String,
    pub runs: i64,
    pub missed: i64,
}

pub struct AlertRow {
    pub at: String,
    pub kind: String,
    pub severity: String,
    pub event: String,
    pub lead: String,
    pub text: String,
}

impl From<&actors::alert_router::Alert> for AlertRow {
    fn from(a: &actors::alert_router::Alert) -> Self {
        Self {
            at: a.raised_at.format("%m-%d %H:%M:%S").to_string(),
            kind: format!("{:?}", a.kind),
            severity: format!("{:?}", a.severity),
            event: a.event.clone(),
            lead: a
                .lead
                .as_ref()
                .map(|l| l.as_str().to_string())
                .unwrap_or_default(),
            text: a.text.clone(),
        }
    }
}

pub struct Verification {
    pub passed: bool,
    pub at: String,
    pub url: String,
    /// `None` when the stored report no longer parses: the headline still shows.
    pub steps: Option<Vec<StepRow>>,
}

pub struct StepRow {
    pub step: String,
    pub status: &'static str,
    /// The status in lower case: the cell's CSS class (`pass`, `fail`, `skip`).
    pub class: String,
    pub detail: String,
}

impl From<VerificationRecord> for Verification {
    fn from(record: VerificationRecord) -> Self {
        let steps = serde_json::from_str::<Report>(&record.report)
            .ok()
            .map(|report| {
                report
                    .steps
                    .iter()
                    .map(|s| StepRow {
                        step: s.step.clone(),
                        status: s.status.as_str(),
                        class: s.status.as_str().to_ascii_lowercase(),
                        detail: s.detail.clone(),
                    })
                    .collect()
            });
        Self {
            passed: record.passed,
            at: record.verified_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            url: record.url,
            steps,
        }
    }
}

/// The HTML of `page`. Rendering only formats values the model already holds, so it
/// cannot fail but for a broken `Display`; the answer then says so instead of sending half
/// a page.
pub fn html(page: &impl Template) -> String {
    page.render()
        .unwrap_or_else(|e| format!("<!doctype html><p>the page did not render: {e}</p>"))
}

/// The whole page, from live state; `query` is the inbox's (`q`, `before`, `after`).
pub async fn gather(
    state: &AppState,
    query: &std::collections::HashMap<String, String>,
    csrf: String,
) -> Page {
    let now = chrono::Utc::now();
    let (leads, pool) = match &state.worker {
        Some(w) => {
            let stats = w.pool.stats();
            let pool = vec![
                Metric::new(
                    "llm-chain",
                    "Provider chain",
                    w.pool.provider_names().join(" → "),
                ),
                Metric::new(
                    "llm-in-flight",
                    "Calls in flight",
                    stats.in_flight.load(Ordering::SeqCst),
                ),
                Metric::new(
                    "llm-concurrency",
                    "Concurrency cap",
                    w.pool.config().concurrency,
                ),
                Metric::new(
                    "llm-calls",
                    "Calls since start",
                    stats.calls.load(Ordering::SeqCst),
                ),
                Metric::new(
                    "llm-fallbacks",
                    "Fallbacks since start",
                    stats.fallbacks.load(Ordering::SeqCst),
                ),
                Metric::new(
                    "llm-hard-timeouts",
                    "Chains past the hard budget",
                    stats.hard_timeouts.load(Ordering::SeqCst),
                ),
            ];
            let leads = Leads {
                active: w.registry.active_leads(),
                busy: w.registry.busy_leads(),
            };
            (Some(leads), Some(pool))
        }
        None => (None, None),
    };

    // SLA breaches of the last 24 hours, from the SLA engine's table (any process's), plus
    // first-response re-drives by the response-gap watch; the newest 20.
    let since = now - chrono::Duration::hours(24);
    let breaches = actors::sla::SlaStore::breaches_since(&state.store, since)
        .await
        .map(|breaches| {
            breaches
                .iter()
                .rev()
                .take(20)
                .map(|b| BreachRow {
                    breached_at: b
                        .breached_at
                        .map(|t| t.format("%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    lead: b.lead.as_str().to_string(),
                    kind: b.kind.as_str().to_string(),
                    staff_nags: b.staff_nag_count.to_string(),
                    state: if b.resolved_at.is_some() {
                        "resolved"
                    } else if b.escalated_at.is_some() {
                        "escalated"
                    } else {
                        "open"
                    },
                })
                .collect()
        })
        .map_err(|e| e.to_string());

    // Parked leads, from the store (every worker's parks): their messages wait there.
    let parks = super::super::parks::parked_now(state)
        .await
        .map(|parks| {
            parks
                .iter()
                .map(|p| ParkRow {
                    lead: p.lead.as_str().to_string(),
                    reason: p.reason.label(),
                    parked_at: p.parked_at.format("%m-%d %H:%M").to_string(),
                    expires_at: p.expires_at.format("%m-%d %H:%M").to_string(),
                })
                .collect()
        })
        .map_err(|e| e.to_string());

    // The consent ledger: the leads whose consent changed last, with their status now.
    let consent = state
        .store
        .recent_consent(CONSENT_ROWS)
        .await
        .map(|rows| rows.iter().map(ConsentRow::from).collect())
        .map_err(|e| e.to_string());

    // Human takeovers in force, from the store (every worker honours them).
    let takeovers = super::super::takeovers::takeovers_now(state)
        .await
        .map(|rows| {
            rows.iter()
                .map(|t| TakeoverRow {
                    lead: t.lead.as_str().to_string(),
                    operator: t.operator.clone(),
                    via: t.via.clone(),
                    taken_at: t.taken_at.format("%m-%d %H:%M").to_string(),
                    last_activity_at: t.last_activity_at.format("%m-%d %H:%M").to_string(),
                })
                .collect()
        })
        .map_err(|e| e.to_string());

    // The scheduler's jobs as the store has them (the scheduler process writes them, so
    // any role can show them). None stored: no scheduler has run against this store.
    let jobs = state
        .store
        .scheduled_jobs()
        .await
        .map(|jobs| {
            jobs.into_iter()
                .map(|j| JobRow {
                    name: j.name,
                    schedule: j.schedule,
                    time_zone: j.time_zone,
                    next: j.next_fire_at.unwrap_or_else(|| "—".into()),
                    last_run: j.last_run_at.unwrap_or_else(|| "never".into()),
                    lateness: j
                        .last_lateness_ms
                        .map(|ms| format!("{ms} ms"))
                        .unwrap_or_default(),
                    outcome: j.last_outcome.unwrap_or_default(),
                    runs: j.runs,
                    missed: j.missed,
                })
                .collect()
        })
        .map_err(|e| e.to_string());

    let alerts = state.alerts.recent();
    Page {
        csrf,
        stamp: crate::http::console::stamp(state).await,
        inbox: crate::http::console::inbox::gather(state, query).await,
        role: state.role.name(),
        version: crate::http::health::VERSION,
        commit: crate::http::health::GIT_COMMIT,
        now: now.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        queue_depth: state.queue.depth(),
        leads,
        pool,
        breaches,
        parks,
        consent,
        takeovers,
        takeover_idle: crate::takeover::human_idle(state.settings.takeover_idle),
        jobs,
        alerts_kept: alerts.len(),
        alerts: alerts.iter().rev().take(25).map(AlertRow::from).collect(),
        verification: state
            .store
            .last_verification()
            .await
            .map(|r| r.map(Verification::from))
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::alert_router::Alert;
    use actors::ports::LeadId;
    use chrono::{TimeZone, Utc};

    const HOSTILE: &str = r#"<script>alert("x")</script> & 'y'"#;
    const ESCAPED: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;y&#39;";

    /// A page whose every text from data is `HOSTILE`: an alert quoting a lead's message,
    /// the lead itself, a parked lead, a lead's consent, a job, a verification step and a store error.
    fn hostile_page() -> Page {
        let mut alert = Alert::event("hitl_hold", format!("Lead wrote: {HOSTILE}"));
        alert.lead = Some(LeadId::new(HOSTILE));
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let report = Report::new(
            HOSTILE,
            at,
            vec![crate::verify::StepResult {
                step: HOSTILE.into(),
                status: crate::verify::Status::Fail,
                detail: HOSTILE.into(),
            }],
        );
        let record = VerificationRecord {
            verified_at: at,
            url: HOSTILE.into(),
            passed: false,
            report: serde_json::to_string(&report).unwrap(),
        };
        Page {
            csrf: HOSTILE.into(),
            stamp: String::new(),
            inbox: crate::http::console::inbox::Inbox {
                q: HOSTILE.into(),
                attention: Vec::new(),
                attention_more: false,
                rows: vec![crate::http::console::inbox::InboxRow {
                    href: HOSTILE.into(),
                    name: HOSTILE.into(),
                    phone: HOSTILE.into(),
                    stage: HOSTILE.into(),
                    direction: "in",
                    last: HOSTILE.into(),
                    last_state: HOSTILE.into(),
                    age: String::new(),
                    owner: HOSTILE.into(),
                    slas: vec![crate::http::console::inbox::SlaCell {
                        text: HOSTILE.into(),
                        overdue: true,
                    }],
                    reasons: vec![],
                    synthetic: false,
                }],
                next: None,
                paged: false,
                error: None,
            },
            role: "all",
            version: "0",
            commit: "c",
            now: String::new(),
            queue_depth: 0,
            leads: None,
            pool: None,
            breaches: Err(HOSTILE.into()),
            parks: Ok(vec![ParkRow {
                lead: HOSTILE.into(),
                reason: "reply_cap_hour",
                parked_at: String::new(),
                expires_at: String::new(),
            }]),
            consent: Ok(vec![ConsentRow {
                lead: HOSTILE.into(),
                status: "opted out",
                since: String::new(),
                latest: "operator (revokes)".into(),
                latest_at: String::new(),
                href: format!("/ops/leads/{HOSTILE}/consent"),
            }]),
            takeovers: Ok(vec![TakeoverRow {
                lead: HOSTILE.into(),
                operator: HOSTILE.into(),
                via: "ops".into(),
                taken_at: String::new(),
                last_activity_at: String::new(),
            }]),
            takeover_idle: "4 h".into(),
            jobs: Ok(vec![JobRow {
                name: HOSTILE.into(),
                schedule: HOSTILE.into(),
                time_zone: HOSTILE.into(),
                next: HOSTILE.into(),
                last_run: HOSTILE.into(),
                lateness: String::new(),
                outcome: HOSTILE.into(),
                runs: 1,
                missed: 0,
            }]),
            alerts_kept: 1,
            alerts: vec![AlertRow::from(&alert)],
            verification: Ok(Some(record.into())),
        }
    }

    #[test]
    fn script_and_quotes_from_data_are_escaped_in_the_rendered_page() {
        let html = html(&hostile_page());
        // The only markup is the template's: no tag, quote or ampersand from data survives;
        // the one script is /ops/console.js, and no inline one (the CSP would refuse it).
        assert!(
            html.matches("<script").count() == 1
                && html.contains(r#"<script src="/ops/console.js" defer></script>"#)
                && !html.contains("alert(\"x\")"),
            "{html}"
        );
        assert!(html.contains(&format!("Lead wrote: {ESCAPED}")), "{html}");
        // Alert lead and text 2, store error 1, park 1, consent lead, row and link 3,
        // takeover lead, operator and the Release button's attribute 3, job 6,
        // verification url and step 3; the CSRF meta 1, the search box and its heading 2,
        // the inbox row's link, name, phone, stage, last message, state, owner and SLA 8.
        assert_eq!(html.matches(ESCAPED).count(), 30, "{html}");
        assert!(
            html.contains("<td class=\"fail\">FAIL</td>")
                && html.contains("data-metric=\"last-verification\" class=\"fail\">FAIL<"),
            "{html}"
        );
    }

    #[test]
    fn a_refusal_escapes_its_reason_too() {
        let html = html(&Refused { why: HOSTILE });
        assert!(
            html.contains(&format!("<p id=\"refused\">{ESCAPED}</p>")),
            "{html}"
        );
    }
}
