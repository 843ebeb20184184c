//! The scheduler's tables: job status, tick claims, the leader lease, heartbeats, followup
//! timers, the response-gap watch's reads, the owner's report and lead lifecycle.
//!
//! Owns: the SQL that makes "each tick runs once across replicas" true (the `job_ticks`
//! primary key) and the transactions that make a followup impossible to send twice or after
//! the lead wrote back. Must not: decide policy (quiet hours, how many followups, what is
//! stalled) — that is `actors::followup` and `crate::scheduler`.
//!
//! One file per aggregate: `jobs` (definitions and tick claims), `lease`, `heartbeats`,
//! `followups`, `gap_watch`, `reports`, `lifecycle` (dead leads), `bench_seed`; the
//! clean-up that spans them is here.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Pool, SqlStore, store_err};

mod bench_seed;
mod followups;
mod gap_watch;
mod heartbeats;
mod jobs;
mod lease;
mod lifecycle;
mod reports;

pub use followups::{DueFollowup, FollowupClaim};
pub use gap_watch::WaitingMessage;
pub use heartbeats::HeartbeatView;
pub use jobs::{JobRegistration, JobRun, JobView, TickView};
pub use reports::ReportCounts;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CleanupCounts {
    pub job_ticks: u64,
    pub heartbeats: u64,
    pub owner_reports: u64,
}

/// Clean-up across the scheduler's tables.
impl SqlStore {
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
