//! Heartbeats: each process says it is alive (and, for a worker, consuming); `/ops` and the
//! watch read them back.
//!
//! Owns: the `heartbeats` table. Must not: judge staleness — the watch does.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HeartbeatView {
    pub instance: String,
    pub role: String,
    pub started_at: String,
    pub at: String,
    pub age_ms: i64,
}

impl SqlStore {
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
}
