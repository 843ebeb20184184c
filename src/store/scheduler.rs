//! The scheduler's tables: job status, tick claims, the leader lease, heartbeats, followup
//! timers, the response-gap watch's reads, the owner's report and lead lifecycle.
//!
//! Owns: the SQL that makes "each tick runs once across replicas" true (the `job_ticks`
//! primary key) and the transactions that make a followup impossible to send twice or after
//! the lead wrote back. Must not: decide policy (quiet hours, how many followups, what is
//! stalled) — that is `actors::followup` and `crate::scheduler`.

use std::collections::BTreeMap;

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Pool, SqlStore, now, store_err};

/// One job as `inspect scheduled` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct JobView {
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    pub missed_policy: String,
    pub next_fire_at: Option<String>,
    pub last_fire_at: Option<String>,
    pub last_run_at: Option<String>,
    pub last_lateness_ms: Option<i64>,
    pub last_duration_ms: Option<i64>,
    pub last_outcome: Option<String>,
    pub last_instance: Option<String>,
    pub runs: i64,
    pub missed: i64,
}

/// What the scheduler registers for a job at start.
#[derive(Clone, Debug)]
pub struct JobRegistration<'a> {
    pub name: &'a str,
    pub schedule: &'a str,
    pub time_zone: &'a str,
    pub missed_policy: &'a str,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// The end of one run.
#[derive(Clone, Debug)]
pub struct JobRun<'a> {
    pub name: &'a str,
    pub fire_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub lateness_ms: i64,
    pub duration_ms: i64,
    pub outcome: &'a str,
    pub instance: &'a str,
    pub next_fire_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeartbeatView {
    pub instance: String,
    pub role: String,
    pub started_at: String,
    pub at: String,
    pub age_ms: i64,
}

/// A followup timer that has come due.
#[derive(Clone, Debug, PartialEq)]
pub struct DueFollowup {
    pub lead: LeadId,
    pub step: i64,
    pub due_at: DateTime<Utc>,
    pub opted_out: bool,
    pub dead: bool,
    pub time_zone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowupClaim {
    /// The followup row was committed to the outbox; wake the lead to send it.
    Queued { reply_id: i64 },
    /// The timer moved or vanished (the lead wrote back, another sweep took it) — nothing
    /// to do.
    Gone,
    /// The lead has an unanswered message: the conversation, not a followup, is due. The
    /// timer is deleted (the reply to that message re-arms it).
    LeadWaiting,
}

/// An inbound message still unanswered.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitingMessage {
    pub id: i64,
    pub lead: LeadId,
    pub created_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

/// The counts behind the owner's daily report.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ReportCounts {
    pub leads_in: i64,
    pub messages_in: i64,
    pub replies_out: i64,
    pub replies_failed: i64,
    pub followups_sent: i64,
    pub dead_leads: i64,
    pub opted_out: i64,
    /// Sent replies by the model (or `followup`) that wrote them.
    pub replies_by_provider: BTreeMap<String, i64>,
    /// Inbound messages still waiting for a reply at the end of the period.
    pub waiting_now: i64,
    /// Inbound messages the response-gap watch had to re-drive (first-response breaches).
    pub first_response_redrives: i64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CleanupCounts {
    pub job_ticks: u64,
    pub heartbeats: u64,
    pub owner_reports: u64,
}

fn rfc(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

impl SqlStore {
    /// Marks the lead dead and drops its followup timer. False if it already was.
    pub async fn mark_lead_dead(&self, lead: &LeadId, reason: &str) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let changed = sqlx::query(
                "UPDATE leads SET dead_at = $1, dead_reason = $2 WHERE phone = $3 AND dead_at IS NULL",
            )
            .bind(at)
            .bind(reason)
            .bind(lead.as_str())
            .execute(&mut *tx)
            .await
            .map_err(store_err("mark dead"))?
            .rows_affected()
                == 1;
            sqlx::query("DELETE FROM followups WHERE lead_phone = $1")
                .bind(lead.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_err("drop followup"))?;
            tx.commit().await.map_err(store_err("commit dead"))?;
            Ok(changed)
        })
    }

    /// Whether the lead is dead, and why.
    pub async fn lead_dead(&self, lead: &LeadId) -> Result<Option<String>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT dead_at, dead_reason FROM leads WHERE phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("lead dead"))?;
            Ok(row.and_then(|r| {
                r.get::<Option<DateTime<Utc>>, _>(0)
                    .map(|_| r.get::<Option<String>, _>(1).unwrap_or_default())
            }))
        })
    }

    /// Whether the lead is synthetic (the watch's or verify's probe number).
    pub async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let flag: Option<i64> = sqlx::query_scalar("SELECT synthetic FROM leads WHERE phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("lead synthetic"))?;
            Ok(flag.is_some_and(|f| f != 0))
        })
    }

    /// This process is alive (and, for a worker, consuming).
    pub async fn heartbeat(
        &self,
        instance: &str,
        role: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO heartbeats (instance, role, started_at, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance) DO UPDATE SET role = excluded.role, at = excluded.at",
            )
            .bind(instance)
            .bind(role)
            .bind(started_at)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("heartbeat"))?;
            Ok(())
        })
    }

    pub async fn heartbeats(&self) -> Result<Vec<HeartbeatView>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT instance, role, started_at, at FROM heartbeats ORDER BY at DESC",
            )
            .fetch_all(pool)
            .await
            .map_err(store_err("heartbeats"))?;
            let t = now();
            Ok(rows
                .into_iter()
                .map(|r| {
                    let at: DateTime<Utc> = r.get(3);
                    HeartbeatView {
                        instance: r.get(0),
                        role: r.get(1),
                        started_at: r.get::<DateTime<Utc>, _>(2).to_rfc3339(),
                        at: at.to_rfc3339(),
                        age_ms: (t - at).num_milliseconds().max(0),
                    }
                })
                .collect())
        })
    }

    /// Upserts a job's definition; keeps its counters and last run.
    pub async fn register_job(&self, job: &JobRegistration<'_>) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO scheduled_jobs (name, schedule, time_zone, missed_policy, next_fire_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET schedule = excluded.schedule,
                    time_zone = excluded.time_zone, missed_policy = excluded.missed_policy,
                    next_fire_at = excluded.next_fire_at, updated_at = excluded.updated_at",
            )
            .bind(job.name)
            .bind(job.schedule)
            .bind(job.time_zone)
            .bind(job.missed_policy)
            .bind(job.next_fire_at)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("register job"))?;
            Ok(())
        })
    }

    /// Drops jobs that are no longer configured (a job switched `off`).
    pub async fn unregister_jobs_except(&self, keep: &[&str]) -> Result<(), StoreError> {
        let all = self.scheduled_jobs().await?;
        with_pool!(self, pool => {
            for job in all.iter().filter(|j| !keep.contains(&j.name.as_str())) {
                sqlx::query("DELETE FROM scheduled_jobs WHERE name = $1")
                    .bind(&job.name)
                    .execute(pool)
                    .await
                    .map_err(store_err("unregister job"))?;
            }
            Ok(())
        })
    }

    pub async fn set_next_fire(
        &self,
        name: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE scheduled_jobs SET next_fire_at = $1, updated_at = $2 WHERE name = $3")
                .bind(next)
                .bind(now())
                .bind(name)
                .execute(pool)
                .await
                .map_err(store_err("set next fire"))?;
            Ok(())
        })
    }

    /// The one place a tick is decided: true for exactly one caller per (job, fire time).
    pub async fn claim_tick(
        &self,
        name: &str,
        fire_at: DateTime<Utc>,
        instance: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "INSERT INTO job_ticks (name, fire_at, instance, claimed_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name, fire_at) DO NOTHING",
            )
            .bind(name)
            .bind(fire_at)
            .bind(instance)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("claim tick"))?
            .rows_affected()
                == 1)
        })
    }

    /// Records a finished run on the tick and the job's status row.
    pub async fn record_job_run(&self, run: &JobRun<'_>) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            sqlx::query(
                "UPDATE job_ticks SET finished_at = $1, outcome = $2 WHERE name = $3 AND fire_at = $4",
            )
            .bind(now())
            .bind(run.outcome)
            .bind(run.name)
            .bind(run.fire_at)
            .execute(&mut *tx)
            .await
            .map_err(store_err("finish tick"))?;
            sqlx::query(
                "UPDATE scheduled_jobs SET last_fire_at = $1, last_run_at = $2, last_lateness_ms = $3,
                    last_duration_ms = $4, last_outcome = $5, last_instance = $6, runs = runs + 1,
                    next_fire_at = $7, updated_at = $8
                 WHERE name = $9",
            )
            .bind(run.fire_at)
            .bind(run.run_at)
            .bind(run.lateness_ms)
            .bind(run.duration_ms)
            .bind(run.outcome)
            .bind(run.instance)
            .bind(run.next_fire_at)
            .bind(now())
            .bind(run.name)
            .execute(&mut *tx)
            .await
            .map_err(store_err("record job run"))?;
            tx.commit().await.map_err(store_err("commit job run"))?;
            Ok(())
        })
    }

    /// Counts ticks that did not run (missed while no scheduler ran, or skipped by policy).
    pub async fn add_missed(&self, name: &str, n: i64) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE scheduled_jobs SET missed = missed + $1, updated_at = $2 WHERE name = $3")
                .bind(n)
                .bind(now())
                .bind(name)
                .execute(pool)
                .await
                .map_err(store_err("add missed"))?;
            Ok(())
        })
    }

    /// The newest tick of `name` that anyone claimed: where a new leader's catch-up starts.
    pub async fn last_claimed_tick(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(fire_at) FROM job_ticks WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
                .map_err(store_err("last tick"))
        })
    }

    pub async fn job_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar::<_, Option<String>>("SELECT state FROM scheduled_jobs WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(store_err("job state"))?
                .flatten())
        })
    }

    pub async fn set_job_state(&self, name: &str, state: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE scheduled_jobs SET state = $1, updated_at = $2 WHERE name = $3")
                .bind(state)
                .bind(now())
                .bind(name)
                .execute(pool)
                .await
                .map_err(store_err("set job state"))?;
            Ok(())
        })
    }

    pub async fn scheduled_jobs(&self) -> Result<Vec<JobView>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT name, schedule, time_zone, missed_policy, next_fire_at, last_fire_at, last_run_at,
                        last_lateness_ms, last_duration_ms, last_outcome, last_instance, runs, missed
                 FROM scheduled_jobs ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(store_err("scheduled jobs"))?;
            Ok(rows
                .into_iter()
                .map(|r| JobView {
                    name: r.get(0),
                    schedule: r.get(1),
                    time_zone: r.get(2),
                    missed_policy: r.get(3),
                    next_fire_at: rfc(r.get(4)),
                    last_fire_at: rfc(r.get(5)),
                    last_run_at: rfc(r.get(6)),
                    last_lateness_ms: r.get(7),
                    last_duration_ms: r.get(8),
                    last_outcome: r.get(9),
                    last_instance: r.get(10),
                    runs: r.get(11),
                    missed: r.get(12),
                })
                .collect())
        })
    }

    /// Takes or renews the lease `name` for `holder` until `until`. True while `holder`
    /// holds it: a free or expired lease is taken, a live one of someone else's is not.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.try_lease_at(name, holder, now(), until).await
    }

    /// [`Self::try_lease`] as of `t` (the caller's clock: the Discord sender's channel
    /// leases are tested on a manual one).
    pub async fn try_lease_at(
        &self,
        name: &str,
        holder: &str,
        t: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at, acquired_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(t)
            .execute(pool)
            .await
            .map_err(store_err("insert lease"))?;
            // One statement decides: renew our own, or take an expired one.
            let held = sqlx::query(
                "UPDATE leases SET
                    acquired_at = CASE WHEN holder = $2 THEN acquired_at ELSE $4 END,
                    holder = $2, expires_at = $3
                 WHERE name = $1 AND (holder = $2 OR expires_at < $4)",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(t)
            .execute(pool)
            .await
            .map_err(store_err("take lease"))?
            .rows_affected()
                == 1;
            Ok(held)
        })
    }

    /// Gives the lease up at shutdown so a standby need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await
                .map_err(store_err("release lease"))?;
            Ok(())
        })
    }

    pub async fn lease_holder(
        &self,
        name: &str,
    ) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
                .map_err(store_err("lease holder"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }
}

/// Followup timers.
impl SqlStore {
    /// Timers due at `at`, oldest first, with what the sweep needs to decide.
    pub async fn due_followups(
        &self,
        at: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueFollowup>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT f.lead_phone, f.step, f.due_at, l.opted_out, l.dead_at, l.time_zone
                 FROM followups f JOIN leads l ON l.phone = f.lead_phone
                 WHERE f.due_at <= $1 AND l.synthetic = 0 ORDER BY f.due_at LIMIT $2",
            )
            .bind(at)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(store_err("due followups"))?;
            Ok(rows
                .into_iter()
                .map(|r| DueFollowup {
                    lead: LeadId(r.get(0)),
                    step: r.get(1),
                    due_at: r.get(2),
                    opted_out: r.get::<i64, _>(3) != 0,
                    dead: r.get::<Option<DateTime<Utc>>, _>(4).is_some(),
                    time_zone: r.get(5),
                })
                .collect())
        })
    }

    /// Arms (or re-arms) the lead's timer at step 0. Called when a conversational reply was
    /// sent; tests and imports call it directly.
    pub async fn arm_followup(
        &self,
        lead: &LeadId,
        due_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO followups (lead_phone, step, due_at, note, updated_at) VALUES ($1, 0, $2, NULL, $3)
                 ON CONFLICT (lead_phone) DO UPDATE SET step = 0, due_at = excluded.due_at,
                    note = NULL, updated_at = excluded.updated_at",
            )
            .bind(lead.as_str())
            .bind(due_at)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("arm followup"))?;
            Ok(())
        })
    }

    /// The lead's timer, if any: `(step, due_at, note)`.
    pub async fn followup_of(
        &self,
        lead: &LeadId,
    ) -> Result<Option<(i64, DateTime<Utc>, Option<String>)>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT step, due_at, note FROM followups WHERE lead_phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("followup of"))?;
            Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
        })
    }

    /// Moves a due timer (quiet hours) without sending; only if it is still at `step`.
    pub async fn hold_followup(
        &self,
        lead: &LeadId,
        step: i64,
        until: DateTime<Utc>,
        note: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE followups SET due_at = $1, note = $2, updated_at = $3 WHERE lead_phone = $4 AND step = $5",
            )
            .bind(until)
            .bind(note)
            .bind(now())
            .bind(lead.as_str())
            .bind(step)
            .execute(pool)
            .await
            .map_err(store_err("hold followup"))?
            .rows_affected()
                == 1)
        })
    }

    /// Drops a timer (opted out, dead) if it is still at `step`.
    pub async fn drop_followup(&self, lead: &LeadId, step: i64) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM followups WHERE lead_phone = $1 AND step = $2")
                .bind(lead.as_str())
                .bind(step)
                .execute(pool)
                .await
                .map_err(store_err("drop followup"))?
                .rows_affected()
                == 1)
        })
    }

    /// One transaction: advance the timer from `step` (it must still be due and at `step`:
    /// a concurrent sweep or an inbound message makes this a no-op) and put the followup in
    /// the outbox as a `queued` reply. The lead actor sends it like any reply, with the
    /// last-moment opt-out check; a crash after this commit is recovered by the outbox.
    pub async fn queue_followup(
        &self,
        lead: &LeadId,
        step: i64,
        body: &str,
        next_due: DateTime<Utc>,
    ) -> Result<FollowupClaim, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE lead_phone = $1 AND direction = 'inbound' AND state = 'pending'",
            )
            .bind(lead.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("pending check"))?;
            if waiting > 0 {
                sqlx::query("DELETE FROM followups WHERE lead_phone = $1")
                    .bind(lead.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err("drop followup"))?;
                tx.commit().await.map_err(store_err("commit"))?;
                return Ok(FollowupClaim::LeadWaiting);
            }
            let advanced = sqlx::query(
                "UPDATE followups SET step = step + 1, due_at = $1, note = NULL, updated_at = $2
                 WHERE lead_phone = $3 AND step = $4 AND due_at <= $2",
            )
            .bind(next_due)
            .bind(at)
            .bind(lead.as_str())
            .bind(step)
            .execute(&mut *tx)
            .await
            .map_err(store_err("advance followup"))?
            .rows_affected()
                == 1;
            if !advanced {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(FollowupClaim::Gone);
            }
            let reply_id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', 'followup', $3, $4) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(at)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("queue followup"))?;
            tx.commit().await.map_err(store_err("commit followup"))?;
            Ok(FollowupClaim::Queued { reply_id })
        })
    }
}

/// The response-gap watch, the owner's report and clean-up.
impl SqlStore {
    /// Inbound conversational messages still unanswered that arrived before `cutoff`.
    pub async fn waiting_since(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<WaitingMessage>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, lead_phone, created_at, redriven_at FROM messages
                 WHERE state = 'pending' AND direction = 'inbound' AND created_at < $1
                 ORDER BY id LIMIT $2",
            )
            .bind(cutoff)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(store_err("waiting messages"))?;
            Ok(rows
                .into_iter()
                .map(|r| WaitingMessage {
                    id: r.get(0),
                    lead: LeadId(r.get(1)),
                    created_at: r.get(2),
                    redriven_at: r.get(3),
                })
                .collect())
        })
    }

    /// Marks messages re-driven; returns the ids this call marked (a concurrent watch marks
    /// none twice).
    pub async fn mark_redriven(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut marked = Vec::new();
        with_pool!(self, pool => {
            let at = now();
            for id in ids {
                let n = sqlx::query(
                    "UPDATE messages SET redriven_at = $1 WHERE id = $2 AND redriven_at IS NULL AND state = 'pending'",
                )
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map_err(store_err("mark redriven"))?
                .rows_affected();
                if n == 1 {
                    marked.push(*id);
                }
            }
            Ok(marked)
        })
    }

    /// What happened in `[from, to)`.
    pub async fn report_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ReportCounts, StoreError> {
        with_pool!(self, pool => {
            let count = |sql: &'static str| {
                sqlx::query_scalar::<_, i64>(sql).bind(from).bind(to).fetch_one(pool)
            };
            // Synthetic leads (the watch's and verify's probes) are not business: every
            // count leaves them out.
            let leads_in = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND created_at >= $1 AND created_at < $2")
                .await
                .map_err(store_err("report leads"))?;
            let messages_in = count(
                "SELECT COUNT(*) FROM messages WHERE direction = 'inbound' AND created_at >= $1 AND created_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report inbound"))?;
            let replies_failed = count(
                "SELECT COUNT(*) FROM messages WHERE direction = 'outbound' AND state IN ('failed', 'in_doubt')
                 AND updated_at >= $1 AND updated_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report failed"))?;
            let dead_leads = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND dead_at >= $1 AND dead_at < $2")
                .await
                .map_err(store_err("report dead"))?;
            let opted_out = count("SELECT COUNT(*) FROM leads WHERE synthetic = 0 AND opted_out_at >= $1 AND opted_out_at < $2")
                .await
                .map_err(store_err("report opted out"))?;
            let first_response_redrives = count(
                "SELECT COUNT(*) FROM messages WHERE redriven_at >= $1 AND redriven_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .await
            .map_err(store_err("report redrives"))?;
            let rows = sqlx::query(
                "SELECT COALESCE(provider, 'unknown'), COUNT(*) FROM messages
                 WHERE direction = 'outbound' AND state = 'sent' AND updated_at >= $1 AND updated_at < $2
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)
                 GROUP BY COALESCE(provider, 'unknown')",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await
            .map_err(store_err("report providers"))?;
            let waiting_now: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE state = 'pending' AND direction = 'inbound'
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .fetch_one(pool)
            .await
            .map_err(store_err("report waiting"))?;
            let replies_by_provider: BTreeMap<String, i64> =
                rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
            let followups_sent = replies_by_provider.get("followup").copied().unwrap_or(0);
            let replies_out = replies_by_provider.values().sum::<i64>() - followups_sent;
            Ok(ReportCounts {
                leads_in,
                messages_in,
                replies_out,
                replies_failed,
                followups_sent,
                dead_leads,
                opted_out,
                replies_by_provider,
                waiting_now,
                first_response_redrives,
            })
        })
    }

    /// Tours the brain recorded as requested in `[from, to)` (from each lead's context
    /// document; only documents touched since `from` can hold one).
    pub async fn tours_requested(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            let docs: Vec<String> = sqlx::query_scalar(
                "SELECT context FROM lead_context WHERE updated_at >= $1
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .bind(from)
            .fetch_all(pool)
            .await
            .map_err(store_err("report tours"))?;
            Ok(docs
                .iter()
                .filter_map(|d| serde_json::from_str::<actors::brain::context::LeadContext>(d).ok())
                .filter_map(|c| c.tour)
                .filter(|t| t.requested_at >= from && t.requested_at < to)
                .count() as i64)
        })
    }

    pub async fn save_report(&self, day: &str, body: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO owner_reports (day, generated_at, body) VALUES ($1, $2, $3)
                 ON CONFLICT (day) DO UPDATE SET generated_at = excluded.generated_at, body = excluded.body",
            )
            .bind(day)
            .bind(now())
            .bind(body)
            .execute(pool)
            .await
            .map_err(store_err("save report"))?;
            Ok(())
        })
    }

    /// The newest report: `(day, body)`.
    pub async fn latest_report(&self) -> Result<Option<(String, String)>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query("SELECT day, body FROM owner_reports ORDER BY day DESC LIMIT 1")
                .fetch_optional(pool)
                .await
                .map_err(store_err("latest report"))?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    /// Forgets scheduler bookkeeping older than `before` (reports: `reports_before`).
    pub async fn cleanup_scheduler_state(
        &self,
        before: DateTime<Utc>,
        reports_before: &str,
    ) -> Result<CleanupCounts, StoreError> {
        with_pool!(self, pool => {
            let job_ticks = sqlx::query("DELETE FROM job_ticks WHERE fire_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map_err(store_err("cleanup ticks"))?
                .rows_affected();
            let heartbeats = sqlx::query("DELETE FROM heartbeats WHERE at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map_err(store_err("cleanup heartbeats"))?
                .rows_affected();
            let owner_reports = sqlx::query("DELETE FROM owner_reports WHERE day < $1")
                .bind(reports_before)
                .execute(pool)
                .await
                .map_err(store_err("cleanup reports"))?
                .rows_affected();
            Ok(CleanupCounts {
                job_ticks,
                heartbeats,
                owner_reports,
            })
        })
    }
}

/// A tick as claimed: evidence for "each tick runs once" (tests, incident review).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TickView {
    pub fire_at: DateTime<Utc>,
    /// When the tick was claimed: `claimed_at - fire_at` is how late it started.
    pub claimed_at: DateTime<Utc>,
    pub instance: String,
    pub outcome: Option<String>,
}

impl SqlStore {
    /// The claimed ticks of one job, oldest first.
    pub async fn job_ticks(&self, name: &str) -> Result<Vec<TickView>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT fire_at, claimed_at, instance, outcome FROM job_ticks WHERE name = $1 ORDER BY fire_at",
            )
            .bind(name)
            .fetch_all(pool)
            .await
            .map_err(store_err("job ticks"))?;
            Ok(rows
                .into_iter()
                .map(|r| TickView {
                    fire_at: r.get(0),
                    claimed_at: r.get(1),
                    instance: r.get(2),
                    outcome: r.get(3),
                })
                .collect())
        })
    }
}

impl SqlStore {
    /// Benchmarks only: `n` leads named `+1555{i:07}` with a followup timer each, of which
    /// the first `due` are due at `now - 1 min` and the rest in a day. One statement per
    /// table, generated by the database.
    pub async fn seed_followup_bench(&self, n: i64, due: i64) -> Result<(), StoreError> {
        let at = now();
        let past = at - chrono::Duration::minutes(1);
        let future = at + chrono::Duration::days(1);
        let series = match self.pool {
            Pool::Postgres(_) => "SELECT generate_series(1, $1::BIGINT) AS i",
            Pool::Sqlite(_) => {
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $1) SELECT i FROM s"
            }
        };
        let phone = match self.pool {
            Pool::Postgres(_) => "'+1555' || lpad(i::TEXT, 7, '0')",
            Pool::Sqlite(_) => "'+1555' || substr('0000000' || i, -7, 7)",
        };
        let leads = format!(
            "INSERT INTO leads (phone, created_at) SELECT {phone}, $2 FROM ({series}) AS g"
        );
        let timers = format!(
            "INSERT INTO followups (lead_phone, step, due_at, updated_at)
             SELECT {phone}, 0, CASE WHEN i <= $2 THEN $3 ELSE $4 END, $5 FROM ({series}) AS g"
        );
        with_pool!(self, pool => {
            // Only constant fragments are spliced in; the values are bound.
            sqlx::query(sqlx::AssertSqlSafe(leads.clone()))
                .bind(n)
                .bind(at)
                .execute(pool)
                .await
                .map_err(store_err("seed leads"))?;
            sqlx::query(sqlx::AssertSqlSafe(timers.clone()))
                .bind(n)
                .bind(due)
                .bind(past)
                .bind(future)
                .bind(at)
                .execute(pool)
                .await
                .map_err(store_err("seed followups"))?;
            Ok(())
        })
    }
}
