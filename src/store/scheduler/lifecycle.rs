//! Lead lifecycle: a lead marked dead (no more followups) and the synthetic leads the bench
//! and the cluster tests create.
//!
//! Owns: the `leads.dead_*` columns and the synthetic flag's read. Must not: decide when a
//! lead is dead — that is `actors::followup`.

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

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
}
