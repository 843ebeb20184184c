//! The scheduler role: the one clock. Fires the periodic jobs ([`table::Job`]: followups,
//! clean-up, SLA sweep, owner report, response-gap watch, heartbeat) from cron schedules in
//! `OWNER_TZ`, once across all scheduler replicas, and records how late each tick fired.
//!
//! Owns: the `SchedulerActor` (ractor), which holds the leader lease, the per-job running
//! flags and the tokio-cron-scheduler trigger, and runs under the root supervisor
//! (`SchedulerChild`: a scheduler that dies is restarted); the missed-tick policy; lateness
//! metrics.
//! Must not: keep a timer that matters in memory — every lead's timer is a row
//! (`followups`), every tick is a claimed row (`job_ticks`); a restart loses nothing but
//! the ticks that fell while no scheduler ran, and those are counted and handled by policy.
//! Job bodies live in [`jobs`]; they must not block this actor (they run on spawned tasks).
//! The jobs themselves are declared once, in [`table`].

pub mod jobs;
pub mod self_check;
pub mod table;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::alert_router::AlertHandle;
use actors::root::{RootChild, RootHandle, start_failure};
use anyhow::Context;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio_cron_scheduler::{Job, JobScheduler};
use tracing::Instrument as _;

use self::table::{MissedTicks, parse_cron};
use crate::config::{JobSetting, Settings};
use crate::queue::WorkQueue;
use crate::store::{JobRegistration, JobRun, SqlStore};

/// The name of the leader lease row.
pub const LEASE: &str = "scheduler";
/// Most missed ticks counted one by one when a leader catches up (an every-second job down
/// for a week would otherwise be a long loop); beyond it the count says "at least".
const MAX_MISSED_COUNTED: i64 = 100_000;
/// Capacity of each of the trigger's ten internal broadcast channels. `JobScheduler::new`
/// asks for 200, and a tokio broadcast channel allocates every slot up front: ~0.3 MiB of
/// the idle heap for channels that carry at most one message per job per 500 ms poll
/// (job ids to activate, the adds at arming). 64 is ten times the job count, so a receiver
/// never lags far enough to lose an activation.
const TRIGGER_CHANNEL_SIZE: usize = 64;

/// Everything a job body may touch.
#[derive(Clone)]
pub struct JobContext {
    pub settings: Arc<Settings>,
    pub store: SqlStore,
    pub queue: Arc<dyn WorkQueue>,
    pub alerts: AlertHandle,
    pub sla: Arc<crate::sla::SlaEngine>,
    pub instance: String,
    /// The CRM texting log's drain; `None` without `FUB_API` (the job is then idle).
    pub crm_texts: Option<Arc<crate::crm_text_log::CrmTextLog>>,
    /// The mailbox document intake; `None` without `GMAIL_SERVICE_ACCOUNT_JSON` (idle job).
    pub doc_intake: Option<Arc<crate::doc_intake::DocIntake>>,
}

pub enum SchedulerMsg {
    /// The cron trigger fired job `idx`.
    Fire(usize),
    /// A run of job `idx` ended.
    Done {
        idx: usize,
        fire_at: DateTime<Utc>,
        lateness_ms: i64,
        started: Instant,
        run_at: DateTime<Utc>,
        outcome: Result<Option<String>, String>,
    },
    /// Renew (or try to take) the leader lease.
    Lease,
}

struct JobEntry {
    setting: JobSetting,
    cron: croner::Cron,
    running: bool,
}

pub struct SchedulerState {
    ctx: JobContext,
    jobs: Vec<JobEntry>,
    leader: bool,
    tz: Tz,
    trigger: JobScheduler,
    /// OWNER_TZ's UTC offset when the trigger's jobs were built: tokio-cron-scheduler fixes
    /// a job's offset at creation, so a DST change re-arms them (see `rearm_if_offset_moved`).
    armed_offset: i32,
    /// Where the root child finds `trigger` to shut it down if this incarnation dies.
    trigger_slot: TriggerSlot,
}

pub struct SchedulerActor;

/// The cron trigger of the running incarnation. A scheduler that fails or is killed never
/// reaches `post_stop`, so its trigger would keep polling for a dead actor: the root child
/// shuts it down when the incarnation is gone.
type TriggerSlot = Arc<Mutex<Option<JobScheduler>>>;

pub struct SchedulerArgs {
    ctx: JobContext,
    trigger: TriggerSlot,
}

fn shut_down_trigger(slot: &TriggerSlot) {
    let trigger = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut trigger) = trigger {
        tokio::spawn(async move {
            let _ = trigger.shutdown().await;
        });
    }
}

/// The scheduler actor as a child of the root supervisor. Every incarnation runs as the same
/// `instance`, so a restarted scheduler renews the lease its predecessor held rather than
/// waiting for it to expire.
pub struct SchedulerChild {
    ctx: JobContext,
    trigger: TriggerSlot,
}

impl SchedulerChild {
    pub const NAME: &'static str = "scheduler";
}

#[async_trait::async_trait]
impl RootChild for SchedulerChild {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        let args = SchedulerArgs {
            ctx: self.ctx.clone(),
            trigger: self.trigger.clone(),
        };
        match Actor::spawn_linked(None, SchedulerActor, args, root).await {
            Ok((actor, _join)) => Ok(actor.get_cell()),
            Err(e) => {
                // pre_start may have armed a trigger before it failed.
                shut_down_trigger(&self.trigger);
                Err(start_failure(e))
            }
        }
    }

    fn gone(&self, _for_good: bool) {
        shut_down_trigger(&self.trigger);
    }
}

/// The running scheduler; stop it at shutdown to hand the lease over at once.
pub struct SchedulerHandle {
    roots: RootHandle,
    store: SqlStore,
    instance: String,
}

impl SchedulerHandle {
    /// Stops the scheduler for good (the root does not restart it) and releases the lease,
    /// whether or not a scheduler incarnation was running at that moment.
    pub async fn stop(self) {
        self.roots.stop_child(SchedulerChild::NAME).await;
        if let Err(e) = self.store.release_lease(LEASE, &self.instance).await {
            tracing::warn!(error = %e, "could not release the scheduler lease; it expires on its own");
        }
    }
}

/// Starts the scheduler actor under the root supervisor: registers the jobs (so `inspect
/// scheduled` shows them at once), takes the lease if free, and arms the cron trigger. A
/// scheduler that cannot start (its store refuses) is retried by the root like one that
/// died.
pub async fn start(ctx: JobContext, roots: &RootHandle) -> anyhow::Result<SchedulerHandle> {
    let store = ctx.store.clone();
    let instance = ctx.instance.clone();
    roots
        .add(Arc::new(SchedulerChild {
            ctx,
            trigger: Arc::default(),
        }))
        .await
        .context("Failed to start the scheduler actor")?;
    Ok(SchedulerHandle {
        roots: roots.clone(),
        store,
        instance,
    })
}

fn offset_now(tz: Tz) -> i32 {
    tz.offset_from_utc_datetime(&Utc::now().naive_utc())
        .fix()
        .local_minus_utc()
}

/// croner keeps the sub-second part of the time it starts from; ticks are whole seconds.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::Timelike;
    t.with_nanosecond(0).unwrap_or(t)
}

/// The tick a trigger at `now` stands for: the latest scheduled time not after `now`.
pub fn scheduled_tick(cron: &croner::Cron, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&whole_second(now).with_timezone(&tz), true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn next_tick(cron: &croner::Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&whole_second(after).with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Ticks strictly after `last` and not after `now`: the ones nobody ran.
pub fn missed_ticks(
    cron: &croner::Cron,
    tz: Tz,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (i64, Option<DateTime<Utc>>) {
    let mut n = 0;
    let mut latest = None;
    for t in cron.iter_after(whole_second(last).with_timezone(&tz)) {
        let t = t.with_timezone(&Utc);
        if t > now || n >= MAX_MISSED_COUNTED {
            break;
        }
        n += 1;
        latest = Some(t);
    }
    (n, latest)
}

async fn arm_trigger(
    myself: &ActorRef<SchedulerMsg>,
    jobs: &[JobEntry],
    tz: Tz,
) -> anyhow::Result<JobScheduler> {
    let trigger = JobScheduler::new_with_channel_size(TRIGGER_CHANNEL_SIZE)
        .await
        .context("Failed to create the cron trigger")?;
    for (idx, job) in jobs.iter().enumerate() {
        let me = myself.clone();
        let j = Job::new_async_tz(job.setting.schedule.as_str(), tz, move |_id, _lock| {
            let me = me.clone();
            Box::pin(async move {
                // The actor may be stopping; a lost trigger at shutdown is fine.
                let _ = me.send_message(SchedulerMsg::Fire(idx));
            })
        })
        .with_context(|| format!("Failed to schedule job {}", job.setting.name))?;
        trigger
            .add(j)
            .await
            .with_context(|| format!("Failed to add job {}", job.setting.name))?;
    }
    trigger
        .start()
        .await
        .context("Failed to start the cron trigger")?;
    Ok(trigger)
}

impl SchedulerActor {
    async fn register_all(state: &SchedulerState) -> anyhow::Result<()> {
        let now = Utc::now();
        let mut names = Vec::new();
        for job in &state.jobs {
            names.push(job.setting.name);
            state
                .ctx
                .store
                .register_job(&JobRegistration {
                    name: job.setting.name,
                    schedule: &job.setting.schedule,
                    time_zone: state.tz.name(),
                    missed_policy: job.setting.missed.name(),
                    next_fire_at: next_tick(&job.cron, state.tz, now),
                })
                .await?;
        }
        state.ctx.store.unregister_jobs_except(&names).await?;
        Ok(())
    }

    /// A new leader looks at each job's last claimed tick: ticks since then were missed.
    /// They are counted; a run-once job runs once now for the latest of them.
    async fn catch_up(myself: &ActorRef<SchedulerMsg>, state: &mut SchedulerState) {
        let now = Utc::now();
        for idx in 0..state.jobs.len() {
            let name = state.jobs[idx].setting.name;
            let last = match state.ctx.store.last_claimed_tick(name).await {
                Ok(Some(last)) => last,
                // Never ran anywhere: nothing was missed; the schedule starts now.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(job = name, error = %e, "could not read the last tick");
                    continue;
                }
            };
            let (n, latest) = missed_ticks(&state.jobs[idx].cron, state.tz, last, now);
            let Some(latest) = latest else { continue };
            tracing::warn!(job = name, missed = n, since = %last, policy = state.jobs[idx].setting.missed.name(), "ticks were missed while no scheduler ran");
            metrics::counter!("lead_agent_scheduler_missed_total", "job" => name)
                .increment(n as u64);
            let counted = match state.jobs[idx].setting.missed {
                MissedTicks::Skip => n,
                // The catch-up run is the latest missed tick, so it is not missed.
                MissedTicks::RunOnce => n - 1,
            };
            if counted > 0
                && let Err(e) = state.ctx.store.add_missed(name, counted).await
            {
                tracing::warn!(job = name, error = %e, "could not count missed ticks");
            }
            if state.jobs[idx].setting.missed == MissedTicks::RunOnce {
                Self::run(myself, state, idx, latest, now);
            }
        }
    }

    /// Starts a run of job `idx` for tick `fire_at` on its own task; the task claims the
    /// tick first, so a tick another replica already took does not run here.
    fn run(
        myself: &ActorRef<SchedulerMsg>,
        state: &mut SchedulerState,
        idx: usize,
        fire_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let job = &mut state.jobs[idx];
        let name = job.setting.name;
        let which = job.setting.job;
        if job.running {
            // Never two runs of one job at once; this tick is skipped and counted.
            tracing::warn!(job = name, "previous run still going; tick skipped");
            metrics::counter!("lead_agent_scheduler_missed_total", "job" => name).increment(1);
            let store = state.ctx.store.clone();
            tokio::spawn(async move {
                let _ = store.add_missed(name, 1).await;
            });
            return;
        }
        job.running = true;
        let lateness_ms = (now - fire_at).num_milliseconds().max(0);
        let ctx = state.ctx.clone();
        let me = myself.clone();
        let started = Instant::now();
        // One trace per run (`scheduler.job`): what the job does (sends, wake-ups, alerts)
        // hangs under it; a tick another replica claimed is a short span saying so.
        let span = tracing::info_span!(
            "scheduler_job",
            otel.name = %format_args!("scheduler.job {name}"),
            otel.status_code = tracing::field::Empty,
            job = name,
            fire_at = %fire_at,
            lateness_ms,
            outcome = tracing::field::Empty,
            summary = tracing::field::Empty,
        );
        tokio::spawn(async move {
            let outcome = async {
                match ctx.store.claim_tick(name, fire_at, &ctx.instance).await {
                    Ok(true) => jobs::run_job(which, &ctx, fire_at)
                        .await
                        .map(Some)
                        .map_err(|e| format!("{e:#}")),
                    Ok(false) => Ok(None),
                    Err(e) => Err(format!("claim failed: {e}")),
                }
            }
            .instrument(span.clone())
            .await;
            match &outcome {
                Ok(Some(summary)) => {
                    span.record("outcome", "ran");
                    span.record("summary", actors::log_phone::scrub(summary).as_str());
                }
                Ok(None) => {
                    span.record("outcome", "claimed_elsewhere");
                }
                Err(e) => {
                    span.record("outcome", "failed");
                    span.record("summary", actors::log_phone::scrub(e).as_str());
                    span.record("otel.status_code", "ERROR");
                }
            }
            let _ = me.send_message(SchedulerMsg::Done {
                idx,
                fire_at,
                lateness_ms,
                started,
                run_at: now,
                outcome,
            });
        });
    }

    async fn rearm_if_offset_moved(myself: &ActorRef<SchedulerMsg>, state: &mut SchedulerState) {
        let offset = offset_now(state.tz);
        if offset == state.armed_offset {
            return;
        }
        tracing::info!(
            from = state.armed_offset,
            to = offset,
            "OWNER_TZ offset changed (DST); re-arming the cron trigger"
        );
        let _ = state.trigger.shutdown().await;
        match arm_trigger(myself, &state.jobs, state.tz).await {
            Ok(t) => {
                *state.trigger_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
                state.trigger = t;
                state.armed_offset = offset;
            }
            Err(e) => tracing::error!(error = %e, "could not re-arm the cron trigger"),
        }
    }
}

impl Actor for SchedulerActor {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SchedulerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let SchedulerArgs {
            ctx,
            trigger: trigger_slot,
        } = args;
        let tz = ctx.settings.scheduler.time_zone;
        let mut jobs = Vec::new();
        for setting in &ctx.settings.scheduler.jobs {
            let cron =
                parse_cron(&setting.schedule).map_err(|e| format!("job {}: {e}", setting.name))?;
            jobs.push(JobEntry {
                setting: setting.clone(),
                cron,
                running: false,
            });
        }
        let trigger = arm_trigger(&myself, &jobs, tz).await?;
        *trigger_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(trigger.clone());
        let state = SchedulerState {
            ctx,
            jobs,
            leader: false,
            tz,
            trigger,
            armed_offset: offset_now(tz),
            trigger_slot,
        };
        Self::register_all(&state).await?;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Renew at a third of the lease: two renewals may fail before a standby may take it.
        let every = (state.ctx.settings.scheduler.lease / 3).max(Duration::from_millis(200));
        myself.send_interval(every, || SchedulerMsg::Lease);
        myself.send_message(SchedulerMsg::Lease)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .trigger_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = state.trigger.shutdown().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Lease => {
                let until = Utc::now()
                    + chrono::Duration::from_std(state.ctx.settings.scheduler.lease)
                        .unwrap_or(chrono::Duration::seconds(30));
                let held = match state
                    .ctx
                    .store
                    .try_lease(LEASE, &state.ctx.instance, until)
                    .await
                {
                    Ok(h) => h,
                    Err(e) => {
                        // Unknown: keep the current belief until the lease would lapse;
                        // the tick claims still keep a tick to one run.
                        tracing::warn!(error = %e, "scheduler lease renewal failed");
                        state.leader
                    }
                };
                if held && !state.leader {
                    tracing::info!(instance = %state.ctx.instance, "this scheduler is now the leader");
                    state.leader = true;
                    if let Err(e) = Self::register_all(state).await {
                        tracing::warn!(error = %e, "could not register jobs");
                    }
                    Self::catch_up(&myself, state).await;
                } else if !held && state.leader {
                    tracing::warn!(instance = %state.ctx.instance, "this scheduler lost the lease; standing by");
                    state.leader = false;
                }
                metrics::gauge!("lead_agent_scheduler_leader").set(if state.leader {
                    1.0
                } else {
                    0.0
                });
                Self::rearm_if_offset_moved(&myself, state).await;
            }
            SchedulerMsg::Fire(idx) => {
                let now = Utc::now();
                let Some(job) = state.jobs.get(idx) else {
                    return Ok(());
                };
                if !state.leader {
                    return Ok(());
                }
                // The tick this trigger stands for; the trigger polls every 500 ms, so it is
                // never the future.
                let Some(fire_at) = scheduled_tick(&job.cron, state.tz, now) else {
                    return Ok(());
                };
                Self::run(&myself, state, idx, fire_at, now);
            }
            SchedulerMsg::Done {
                idx,
                fire_at,
                lateness_ms,
                started,
                run_at,
                outcome,
            } => {
                let job = &mut state.jobs[idx];
                job.running = false;
                let name = job.setting.name;
                let next = next_tick(&job.cron, state.tz, Utc::now());
                let outcome_text = match &outcome {
                    // Another replica ran this tick: not ours to record.
                    Ok(None) => {
                        let _ = state.ctx.store.set_next_fire(name, next).await;
                        return Ok(());
                    }
                    Ok(Some(summary)) => format!("ok: {summary}"),
                    Err(e) => format!("error: {e}"),
                };
                let ok = outcome.is_ok();
                let duration_ms = started.elapsed().as_millis() as i64;
                metrics::histogram!("lead_agent_scheduler_lateness_seconds", "job" => name)
                    .record(lateness_ms as f64 / 1000.0);
                metrics::counter!("lead_agent_scheduler_runs_total", "job" => name, "outcome" => if ok { "ok" } else { "error" })
                    .increment(1);
                if ok && name == "heartbeat" {
                    tracing::debug!(job = name, lateness_ms, duration_ms, outcome = %outcome_text, "job ran");
                } else if ok {
                    tracing::info!(job = name, lateness_ms, duration_ms, outcome = %outcome_text, "job ran");
                } else {
                    tracing::error!(job = name, lateness_ms, duration_ms, outcome = %outcome_text, "job failed");
                }
                if let Err(e) = state
                    .ctx
                    .store
                    .record_job_run(&JobRun {
                        name,
                        fire_at,
                        run_at,
                        lateness_ms,
                        duration_ms,
                        outcome: &outcome_text,
                        instance: &state.ctx.instance,
                        next_fire_at: next,
                    })
                    .await
                {
                    tracing::warn!(job = name, error = %e, "could not record the run");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> croner::Cron {
        parse_cron(s).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_trigger_stands_for_the_tick_at_or_before_it() {
        let c = cron("0 */30 * * * *");
        let tz: Tz = "America/Chicago".parse().unwrap();
        assert_eq!(
            scheduled_tick(&c, tz, utc("2026-11-27T15:30:00.400Z")),
            Some(utc("2026-11-27T15:30:00Z"))
        );
        assert_eq!(
            next_tick(&c, tz, utc("2026-11-27T15:30:00.400Z")),
            Some(utc("2026-11-27T16:00:00Z"))
        );
        let every_second = cron("* * * * * *");
        assert_eq!(
            scheduled_tick(&every_second, tz, utc("2026-11-27T15:30:07.900Z")),
            Some(utc("2026-11-27T15:30:07Z"))
        );
    }

    #[test]
    fn the_daily_report_is_at_seven_in_owner_tz_across_dst() {
        let c = cron("0 0 7 * * *");
        let tz: Tz = "America/Chicago".parse().unwrap();
        // CST (UTC-6) in November, CDT (UTC-5) in March after the change.
        assert_eq!(
            next_tick(&c, tz, utc("2026-11-27T14:00:00Z")),
            Some(utc("2026-11-28T13:00:00Z"))
        );
        assert_eq!(
            next_tick(&c, tz, utc("2027-03-14T14:00:00Z")),
            Some(utc("2027-03-15T12:00:00Z"))
        );
    }

    #[test]
    fn missed_ticks_are_counted_from_the_last_claimed_one() {
        let c = cron("0 * * * * *");
        let tz: Tz = "UTC".parse().unwrap();
        let (n, latest) = missed_ticks(
            &c,
            tz,
            utc("2026-11-27T10:00:00Z"),
            utc("2026-11-27T10:05:30Z"),
        );
        assert_eq!(n, 5);
        assert_eq!(latest, Some(utc("2026-11-27T10:05:00Z")));
        let (n, latest) = missed_ticks(
            &c,
            tz,
            utc("2026-11-27T10:00:00Z"),
            utc("2026-11-27T10:00:59Z"),
        );
        assert_eq!((n, latest), (0, None));
    }
}
