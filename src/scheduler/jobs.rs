//! The scheduler's job bodies: followup sweep, stale-context clean-up, SLA sweep (the
//! engine is `crate::sla`), owner report, response-gap watch, heartbeat; the CRM text log and
//! the document intake are drains of their own (`crate::crm_text_log`, `crate::doc_intake`),
//! and the takeover idle release is `crate::takeover::release_idle`.
//!
//! Owns: what each periodic job does with the store, the queue and the alert router, and the
//! short summary each returns for `inspect scheduled`. Must not: send SMS itself — a
//! followup is committed to the outbox and the lead's actor sends it, so the lead lock, the
//! last-moment opt-out check and the exactly-once send path are the same as for any reply;
//! nor hold state in memory between runs (a job's small state lives in its
//! `scheduled_jobs.state`).

use std::collections::BTreeSet;

use actors::alert_router::{Alert, AlertKind, Severity};
use actors::followup::{FollowupAction, followup_text, local_weekday};
use actors::ports::{LeadId, WakeLead};
use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::JobContext;
use super::table::Job;
use crate::store::FollowupClaim;

/// Due timers read per batch: bounds memory on a sweep over a large backlog.
const FOLLOWUP_BATCH: i64 = 500;
/// Most waiting messages the watch looks at per run.
const GAP_SCAN_LIMIT: i64 = 5_000;

/// Runs one job. Exhaustive over [`Job`]: a job has a body here, and every job is in the
/// schedule (`Job::ALL`), so no body can be written that no scheduler runs.
pub async fn run_job(job: Job, ctx: &JobContext, fire_at: DateTime<Utc>) -> anyhow::Result<String> {
    let now = Utc::now();
    match job {
        Job::FollowupSweep => followup_sweep(ctx, now).await.map(|r| r.summary()),
        Job::StaleContextCleanup => cleanup(ctx, now).await,
        Job::OwnerReport => owner_report(ctx, fire_at).await.map(|r| {
            format!(
                "report for {}: {} leads in, {} replies out",
                r.day, r.counts.leads_in, r.counts.replies_out
            )
        }),
        Job::SlaSweep => ctx.sla.run_sla_sweep(now).await.map(|r| {
            format!(
                "{} open SLAs checked: {} breaches, {} staff nags, {} escalations, {} lead updates",
                r.checked, r.breaches, r.staff_nags, r.escalations, r.lead_updates
            )
        }),
        Job::ResponseGapWatch => response_gap_watch(ctx, now).await.map(|r| r.summary()),
        Job::Heartbeat => heartbeat(ctx, now).await,
        Job::SelfCheck => super::self_check::self_check(ctx, now)
            .await
            .map(|r| r.summary()),
        Job::CrmTextLog => match &ctx.crm_texts {
            Some(log) => log.run(&ctx.store, now).await.map(|r| r.summary()),
            None => Ok("off (FUB_API is not set)".into()),
        },
        Job::DocIntake => match &ctx.doc_intake {
            Some(intake) => intake
                .run(&ctx.store, ctx.sla.events(), now)
                .await
                .map(|r| r.summary()),
            None => Ok("off (GMAIL_SERVICE_ACCOUNT_JSON is not set)".into()),
        },
        Job::TakeoverIdleRelease => {
            crate::takeover::release_idle(&ctx.store, &ctx.alerts, ctx.settings.takeover_idle, now)
                .await
                .map(|n| format!("{n} idle takeovers released"))
                .map_err(Into::into)
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FollowupReport {
    pub sent: usize,
    pub held: usize,
    pub dead: usize,
    pub dropped: usize,
    pub skipped: usize,
}

impl FollowupReport {
    fn summary(&self) -> String {
        format!(
            "{} sent, {} held for quiet hours, {} leads dead, {} dropped (opted out/dead/waiting), {} skipped",
            self.sent, self.held, self.dead, self.dropped, self.skipped
        )
    }
}

/// The lead's zones: its stored zone, else its number's area code, else `OWNER_TZ`.
fn lead_zones(ctx: &JobContext, lead: &LeadId, stored: Option<&str>) -> Vec<Tz> {
    actors::phone_zone::lead_zones(stored, lead.as_str(), ctx.settings.scheduler.time_zone)
}

/// Every due timer: opted out, dead or taken over by an operator → dropped; outside the
/// lead's sending windows (quiet hours, the federal and its state's window) → held until
/// they open; past the last followup → the lead is marked dead (alert); otherwise the next
/// followup is committed to the outbox and the lead is woken to send it.
pub async fn followup_sweep(
    ctx: &JobContext,
    now: DateTime<Utc>,
) -> anyhow::Result<FollowupReport> {
    let mut report = FollowupReport::default();
    let Some(plan) = ctx.settings.scheduler.followups.clone() else {
        return Ok(report);
    };
    let windows = &ctx.settings.scheduler.send_windows;
    let total = plan.waits.len();
    loop {
        let due = ctx
            .store
            .due_followups(now, FOLLOWUP_BATCH)
            .await
            .context("reading due followups")?;
        if due.is_empty() {
            break;
        }
        let batch_len = due.len();
        let mut progressed = 0;
        for f in due {
            // A taken-over lead's timer is dropped, not held: the person owns the
            // conversation, and the AI's first reply after the release arms a new one.
            if f.opted_out || f.dead || f.taken_over {
                if ctx.store.drop_followup(&f.lead, f.step).await? {
                    report.dropped += 1;
                    progressed += 1;
                }
                continue;
            }
            let zones = lead_zones(ctx, &f.lead, f.time_zone.as_deref());
            let tz = zones[0];
            if let Some(until) = windows.hold_until_all(now, f.lead.as_str(), &zones) {
                if ctx
                    .store
                    .hold_followup(&f.lead, f.step, until, "quiet hours")
                    .await?
                {
                    report.held += 1;
                    progressed += 1;
                }
                continue;
            }
            match plan.decide(f.step.max(0) as usize, now) {
                FollowupAction::GiveUp { sent } => {
                    let reason = format!("no answer after {sent} followups");
                    if ctx.store.mark_lead_dead(&f.lead, &reason).await? {
                        report.dead += 1;
                        ctx.alerts.raise(
                            Alert::new(
                                AlertKind::DeadLead,
                                Severity::Info,
                                "dead_lead",
                                format!("{} marked dead: {reason}", f.lead),
                            )
                            .for_lead(&f.lead)
                            .with_reason(reason.clone()),
                        );
                    }
                    progressed += 1;
                }
                FollowupAction::Send { number, next_due } => {
                    let body = followup_text(
                        number,
                        total,
                        &ctx.settings.office_name,
                        local_weekday(now, tz),
                    );
                    match ctx
                        .store
                        .queue_followup(&f.lead, f.step, &body, next_due)
                        .await?
                    {
                        FollowupClaim::Queued { .. } => {
                            report.sent += 1;
                            progressed += 1;
                            ctx.alerts.raise(
                                Alert::new(
                                    AlertKind::Followup,
                                    Severity::Info,
                                    "followup_queued",
                                    format!("followup {number}/{total} to {}: {body}", f.lead),
                                )
                                .for_lead(&f.lead),
                            );
                            // The outbox row is durable; if this wake-up is lost, the
                            // stale-work sweep wakes the lead.
                            if let Err(e) = ctx
                                .queue
                                .publish(WakeLead {
                                    lead: f.lead.clone(),
                                })
                                .await
                            {
                                tracing::warn!(lead = %f.lead.log(), error = %e, "followup queued but the wake-up failed; the outbox sweep will send it");
                            }
                        }
                        FollowupClaim::LeadWaiting => {
                            report.dropped += 1;
                            progressed += 1;
                        }
                        FollowupClaim::Gone => report.skipped += 1,
                    }
                }
            }
        }
        // A batch where nothing moved (every row raced away) would repeat forever.
        if progressed == 0 || (batch_len as i64) < FOLLOWUP_BATCH {
            break;
        }
    }
    metrics::counter!("lead_agent_followups_sent_total").increment(report.sent as u64);
    Ok(report)
}

async fn cleanup(ctx: &JobContext, now: DateTime<Utc>) -> anyhow::Result<String> {
    let before = now - chrono::Duration::days(7);
    let reports_before = (now - chrono::Duration::days(90))
        .with_timezone(&ctx.settings.scheduler.time_zone)
        .format("%Y-%m-%d")
        .to_string();
    let c = ctx
        .store
        .cleanup_scheduler_state(before, &reports_before)
        .await?;
    Ok(format!(
        "removed {} tick claims, {} stale heartbeats, {} old reports",
        c.job_ticks, c.heartbeats, c.owner_reports
    ))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OwnerReport {
    /// The local day (OWNER_TZ) the report was made on.
    pub day: String,
    pub from: String,
    pub to: String,
    pub counts: crate::store::ReportCounts,
    /// Replies written by the rules responder: every configured model failed or was skipped.
    pub model_fallbacks: i64,
    /// Tours the agent recorded as requested (a person confirms them).
    pub tours_requested: i64,
    /// SLAs (doc review, application decision, invoice, showing schedule, first response)
    /// that passed 100 % of their window in the period, by kind.
    pub sla_breaches: std::collections::BTreeMap<String, i64>,
    /// Alerts written to the Discord spool and not yet delivered when the report was made.
    pub alerts_spooled: i64,
    /// Alerts raised since start, by kind, from this process's recent-alerts buffer.
    pub alerts_recent: usize,
}

impl OwnerReport {
    pub fn text(&self) -> String {
        let c = &self.counts;
        format!(
            "Daily report {day}: {leads} new leads, {inb} messages in, {out} replies out \
             ({fail} failed), {tours} tours requested, {fu} followups, {dead} leads marked dead, \
             {opt} opted out, SLA breaches: {sla}; {gap} first-response re-drives, \
             {fb} model fallbacks, {spool} alerts spooled, {wait} messages waiting now.",
            tours = self.tours_requested,
            sla = if self.sla_breaches.is_empty() {
                "none".to_string()
            } else {
                self.sla_breaches
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            gap = c.first_response_redrives,
            spool = self.alerts_spooled,
            day = self.day,
            leads = c.leads_in,
            inb = c.messages_in,
            out = c.replies_out,
            fail = c.replies_failed,
            fu = c.followups_sent,
            dead = c.dead_leads,
            opt = c.opted_out,
            fb = self.model_fallbacks,
            wait = c.waiting_now,
        )
    }
}

/// The last 24 hours up to the tick, stored (readable at `/ops/report`) and posted to the
/// owner's channel.
pub async fn owner_report(ctx: &JobContext, fire_at: DateTime<Utc>) -> anyhow::Result<OwnerReport> {
    let report = build_owner_report(ctx, fire_at).await?;
    let body = serde_json::to_string(&report)?;
    ctx.store.save_report(&report.day, &body).await?;
    ctx.alerts.raise(Alert::new(
        AlertKind::General,
        Severity::Info,
        "owner_report",
        report.text(),
    ));
    Ok(report)
}

pub async fn build_owner_report(
    ctx: &JobContext,
    to: DateTime<Utc>,
) -> anyhow::Result<OwnerReport> {
    let from = to - chrono::Duration::hours(24);
    let counts = ctx.store.report_counts(from, to).await?;
    let model_fallbacks = if ctx.settings.anthropic.is_some() {
        counts
            .replies_by_provider
            .get("rules")
            .copied()
            .unwrap_or(0)
    } else {
        0
    };
    let mut sla_breaches = std::collections::BTreeMap::new();
    for b in actors::sla::SlaStore::breaches_since(&ctx.store, from).await? {
        if b.breached_at.is_some_and(|t| t < to) {
            *sla_breaches.entry(b.kind.as_str().to_string()).or_insert(0) += 1;
        }
    }
    let tours_requested = ctx.store.tours_requested(from, to).await?;
    let alerts_spooled = ctx.store.spooled_count().await?;
    Ok(OwnerReport {
        tours_requested,
        sla_breaches,
        alerts_spooled,
        day: to
            .with_timezone(&ctx.settings.scheduler.time_zone)
            .format("%Y-%m-%d")
            .to_string(),
        from: from.to_rfc3339(),
        to: to.to_rfc3339(),
        counts,
        model_fallbacks,
        alerts_recent: ctx.alerts.recent().len(),
    })
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct GapState {
    stalled: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GapReport {
    pub waiting_leads: usize,
    pub redriven: usize,
    pub stalled: bool,
}

impl GapReport {
    fn summary(&self) -> String {
        format!(
            "{} leads waiting past the first-response SLA, {} re-driven{}",
            self.waiting_leads,
            self.redriven,
            if self.stalled {
                ", PIPELINE STALLED"
            } else {
                ""
            }
        )
    }
}

/// Inbound messages unanswered past the first-response SLA: each is re-driven once (a new
/// wake-up) with an alert. The pipeline is stalled when many leads wait at once, or when a
/// re-driven message is still unanswered a whole SLA later: one loud alert on entering that
/// state and one on leaving it, whichever replica runs the watch.
pub async fn response_gap_watch(ctx: &JobContext, now: DateTime<Utc>) -> anyhow::Result<GapReport> {
    let sla = chrono::Duration::from_std(ctx.settings.scheduler.first_response_sla)?;
    let waiting = ctx.store.waiting_since(now - sla, GAP_SCAN_LIMIT).await?;
    let leads: BTreeSet<_> = waiting.iter().map(|w| w.lead.clone()).collect();
    let fresh: Vec<i64> = waiting
        .iter()
        .filter(|w| w.redriven_at.is_none())
        .map(|w| w.id)
        .collect();
    let marked = ctx.store.mark_redriven(&fresh).await?;
    let mut woken = BTreeSet::new();
    for w in waiting.iter().filter(|w| marked.contains(&w.id)) {
        let waited = (now - w.created_at).num_seconds();
        ctx.alerts.raise(
            Alert::new(
                AlertKind::Error,
                Severity::Warning,
                "response_gap",
                format!(
                    "{} has waited {}m{}s for a reply (first-response SLA {}s); re-driving the turn",
                    w.lead,
                    waited / 60,
                    waited % 60,
                    sla.num_seconds()
                ),
            )
            .for_lead(&w.lead),
        );
        if woken.insert(w.lead.clone())
            && let Err(e) = ctx
                .queue
                .publish(WakeLead {
                    lead: w.lead.clone(),
                })
                .await
        {
            tracing::warn!(lead = %w.lead.log(), error = %e, "re-drive failed; next watch counts it as stalled");
        }
    }
    metrics::gauge!("lead_agent_leads_waiting_past_sla").set(leads.len() as f64);
    if !marked.is_empty() {
        metrics::counter!("lead_agent_sla_breaches_total", "sla" => "first_response")
            .increment(marked.len() as u64);
    }
    let redriven_still_waiting = waiting
        .iter()
        .any(|w| w.redriven_at.is_some_and(|r| now - r >= sla));
    let stalled = leads.len() >= ctx.settings.scheduler.stall_leads || redriven_still_waiting;

    let before: GapState = ctx
        .store
        .job_state("response_gap_watch")
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    if stalled != before.stalled {
        ctx.store
            .set_job_state(
                "response_gap_watch",
                &serde_json::to_string(&GapState { stalled })?,
            )
            .await?;
        if stalled {
            let oldest = waiting
                .iter()
                .map(|w| w.created_at)
                .min()
                .map(|t| (now - t).num_minutes())
                .unwrap_or(0);
            ctx.alerts.raise(Alert::new(
                AlertKind::Error,
                Severity::Critical,
                "pipeline_stalled",
                format!(
                    "PIPELINE STALLED: {} leads are waiting past the first-response SLA, the oldest for {oldest} min{}. Leads are being received and not answered: check workers (/ops/heartbeats), the queue and the model.",
                    leads.len(),
                    if redriven_still_waiting { "; re-driven turns did not answer them" } else { "" }
                ),
            ));
        } else {
            ctx.alerts.raise(Alert::new(
                AlertKind::Error,
                Severity::Info,
                "pipeline_recovered",
                format!(
                    "Pipeline recovered: {} leads waiting past the first-response SLA.",
                    leads.len()
                ),
            ));
        }
    }
    Ok(GapReport {
        waiting_leads: leads.len(),
        redriven: marked.len(),
        stalled,
    })
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct HeartbeatState {
    workers_missing: bool,
    /// When this watch first found no worker heartbeat at all: a scheduler that starts
    /// before any worker (a fresh deploy, a new database) waits the same grace as one whose
    /// workers went quiet, instead of crying "no workers" on its first tick.
    #[serde(default)]
    none_seen_since: Option<DateTime<Utc>>,
}

/// What the worker check says on one run.
#[derive(Debug, PartialEq, Eq)]
enum WorkerVerdict {
    /// Nothing to tell: the state is unchanged or still within the grace.
    Quiet,
    NoneAlive,
    Back,
}

/// The worker check, without the store: the ages of the worker heartbeats (live or stale),
/// the last run's state and `now` → the new state and what to alert. No worker heartbeat
/// within `stale_ms` is "no workers"; a worker never seen counts from the first run that
/// found none.
fn check_workers(
    worker_ages_ms: &[i64],
    stale_ms: i64,
    before: &HeartbeatState,
    now: DateTime<Utc>,
) -> (HeartbeatState, WorkerVerdict) {
    let live = worker_ages_ms.iter().any(|&age| age <= stale_ms);
    let none_seen_since = worker_ages_ms
        .is_empty()
        .then(|| before.none_seen_since.unwrap_or(now));
    let missing =
        !live && none_seen_since.is_none_or(|since| (now - since).num_milliseconds() >= stale_ms);
    let verdict = match (before.workers_missing, missing) {
        (false, true) => WorkerVerdict::NoneAlive,
        (true, false) => WorkerVerdict::Back,
        _ => WorkerVerdict::Quiet,
    };
    (
        HeartbeatState {
            workers_missing: missing,
            none_seen_since,
        },
        verdict,
    )
}

/// The scheduler is alive (this run is the proof, in `scheduled_jobs`) and checks that
/// some worker is: no worker heartbeat for three periods (at least a minute) is an alert,
/// once, and another when one is back.
async fn heartbeat(ctx: &JobContext, now: DateTime<Utc>) -> anyhow::Result<String> {
    let period = ctx.settings.scheduler.heartbeat_every;
    let stale_ms = (period.as_millis() as i64 * 3).max(60_000);
    let ages: Vec<i64> = ctx
        .store
        .heartbeats()
        .await?
        .iter()
        .filter(|b| b.role == "worker" || b.role == "all")
        .map(|b| b.age_ms)
        .collect();
    let live_workers = ages.iter().filter(|&&age| age <= stale_ms).count();
    let before: HeartbeatState = ctx
        .store
        .job_state("heartbeat")
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let (after, verdict) = check_workers(&ages, stale_ms, &before, now);
    if after != before {
        ctx.store
            .set_job_state("heartbeat", &serde_json::to_string(&after)?)
            .await?;
    }
    match verdict {
        WorkerVerdict::NoneAlive => ctx.alerts.raise(Alert::new(
            AlertKind::Error,
            Severity::Critical,
            "no_workers",
            format!(
                "No worker has sent a heartbeat for {}s: nothing is answering leads.",
                stale_ms / 1000
            ),
        )),
        WorkerVerdict::Back => ctx.alerts.raise(Alert::new(
            AlertKind::Error,
            Severity::Info,
            "workers_back",
            format!("{live_workers} worker(s) alive again."),
        )),
        WorkerVerdict::Quiet => {}
    }
    Ok(match after.none_seen_since {
        Some(since) if !after.workers_missing => format!(
            "no worker seen yet ({}s of the {}s grace)",
            (now - since).num_seconds(),
            stale_ms / 1000
        ),
        _ => format!("{live_workers} live worker(s)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: i64 = 60_000;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(1) + chrono::Duration::seconds(secs)
    }

    #[test]
    fn a_scheduler_started_before_any_worker_waits_the_grace_before_alerting() {
        let s0 = HeartbeatState::default();
        let (s1, v) = check_workers(&[], STALE, &s0, at(0));
        assert_eq!(v, WorkerVerdict::Quiet, "first run: the grace starts");
        assert_eq!(s1.none_seen_since, Some(at(0)));
        let (s2, v) = check_workers(&[], STALE, &s1, at(59));
        assert_eq!(v, WorkerVerdict::Quiet, "within the grace");
        assert_eq!(
            s2.none_seen_since,
            Some(at(0)),
            "counted from the first run"
        );
        let (s3, v) = check_workers(&[], STALE, &s2, at(60));
        assert_eq!(v, WorkerVerdict::NoneAlive);
        let (s4, v) = check_workers(&[], STALE, &s3, at(75));
        assert_eq!(v, WorkerVerdict::Quiet, "told once");
        assert!(s4.workers_missing);
        let (s5, v) = check_workers(&[1_000], STALE, &s4, at(90));
        assert_eq!(v, WorkerVerdict::Back);
        assert_eq!(
            s5,
            HeartbeatState::default(),
            "a worker seen ends the grace"
        );
    }

    #[test]
    fn a_worker_that_arrives_within_the_grace_raises_nothing() {
        let (s1, _) = check_workers(&[], STALE, &HeartbeatState::default(), at(0));
        let (s2, v) = check_workers(&[500], STALE, &s1, at(20));
        assert_eq!(v, WorkerVerdict::Quiet);
        assert_eq!(s2, HeartbeatState::default());
    }

    #[test]
    fn workers_gone_quiet_are_missing_at_once_their_heartbeats_are_the_grace() {
        let (s, v) = check_workers(&[STALE + 1], STALE, &HeartbeatState::default(), at(0));
        assert_eq!(v, WorkerVerdict::NoneAlive);
        assert!(s.workers_missing);
        assert_eq!(s.none_seen_since, None);
        let (_, v) = check_workers(
            &[STALE, STALE * 5],
            STALE,
            &HeartbeatState::default(),
            at(0),
        );
        assert_eq!(
            v,
            WorkerVerdict::Quiet,
            "one beat within the window is alive"
        );
    }

    #[test]
    fn a_state_stored_before_the_grace_field_still_reads() {
        let old: HeartbeatState = serde_json::from_str(r#"{"workers_missing":true}"#).unwrap();
        assert!(old.workers_missing);
        assert_eq!(old.none_seen_since, None);
    }
}
