//! Scheduled jobs and their ticks: each job's definition, status and counters, and the
//! `job_ticks` claims that make "each tick runs once across replicas" true (the primary key).
//!
//! Owns: the `scheduled_jobs` and `job_ticks` tables. Must not: compute the next fire time
//! or decide what a missed tick means — that is `crate::scheduler`.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

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

/// A tick as claimed: evidence for "each tick runs once" (tests, incident review).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TickView {
    pub fire_at: DateTime<Utc>,
    /// When the tick was claimed: `claimed_at - fire_at` is how late it started.
    pub claimed_at: DateTime<Utc>,
    pub instance: String,
    pub outcome: Option<String>,
}

fn rfc(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339())
}

impl SqlStore {
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
