//! The alert spool: alerts owed to a chat channel, kept in the store until the channel has
//! them (`alert_spool`, migration 0050).
//!
//! Owns: the spool's queries — append (idempotent per alert: keyed by its nonce, migration
//! 0072), the oldest owed alert of a channel, the channels owing anything, and the
//! outcomes (delivered: deleted; refused for good: `failed`).
//! Must not: decide when to post or retry (the Discord sender does), or drop a row that
//! was not delivered.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

/// One alert owed to a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledAlert {
    pub id: i64,
    pub channel_id: String,
    pub kind: String,
    /// The JSON body to post.
    pub payload: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    /// The Discord nonce chosen when the alert was raised; `None` for rows spooled before
    /// migration 0072 (the sender derives theirs from id + created_at, as it always did).
    pub nonce: Option<String>,
}

/// An alert to append to the spool.
#[derive(Clone, Copy, Debug)]
pub struct NewSpooledAlert<'a> {
    pub channel_id: &'a str,
    pub kind: &'a str,
    /// The JSON body to post.
    pub payload: &'a str,
    /// Chosen when the alert was raised and kept on every path it takes.
    pub nonce: &'a str,
    /// When it was raised (a direct alert handed over later keeps its time).
    pub created_at: DateTime<Utc>,
}

impl SqlStore {
    /// Appends an alert; returns its id (the channel's order), or `None` when an alert with
    /// this nonce is spooled already (a hand-over repeated after a lost commit answer).
    pub async fn spool_alert(&self, alert: NewSpooledAlert<'_>) -> Result<Option<i64>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO alert_spool (channel_id, kind, payload, state, created_at, nonce)
                 VALUES ($1, $2, $3, 'queued', $4, $5)
                 ON CONFLICT (nonce) DO NOTHING RETURNING id",
            )
            .bind(alert.channel_id)
            .bind(alert.kind)
            .bind(alert.payload)
            .bind(alert.created_at)
            .bind(alert.nonce)
            .fetch_optional(pool)
            .await
            .map_err(store_err("spool alert"))
        })
    }

    /// The oldest alert still owed to `channel_id`.
    pub async fn next_spooled(&self, channel_id: &str) -> Result<Option<SpooledAlert>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, channel_id, kind, payload, attempts, created_at, nonce FROM alert_spool
                 WHERE channel_id = $1 AND state = 'queued' ORDER BY id LIMIT 1",
            )
            .bind(channel_id)
            .fetch_optional(pool)
            .await
            .map_err(store_err("next spooled alert"))?;
            Ok(row.map(|r| SpooledAlert {
                id: r.get(0),
                channel_id: r.get(1),
                kind: r.get(2),
                payload: r.get(3),
                attempts: r.get(4),
                created_at: r.get(5),
                nonce: r.get(6),
            }))
        })
    }

    /// Channels owed at least one alert.
    pub async fn spooled_channels(&self) -> Result<Vec<String>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT DISTINCT channel_id FROM alert_spool WHERE state = 'queued' ORDER BY channel_id",
            )
            .fetch_all(pool)
            .await
            .map_err(store_err("spooled channels"))
        })
    }

    /// Alerts still owed to any channel (the `lead_agent_alerts_spooled` gauge).
    pub async fn spooled_count(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM alert_spool WHERE state = 'queued'")
                .fetch_one(pool)
                .await
                .map_err(store_err("spooled count"))
        })
    }

    /// The channel has it: the row is no longer owed.
    pub async fn spooled_delivered(&self, id: i64) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM alert_spool WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map_err(store_err("spooled delivered"))?;
            Ok(())
        })
    }

    /// An attempt failed and will be repeated.
    pub async fn spooled_attempt_failed(&self, id: i64, error: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE alert_spool SET attempts = attempts + 1, last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(id)
                .execute(pool)
                .await
                .map_err(store_err("spooled attempt"))?;
            Ok(())
        })
    }

    /// The service refused this payload for good (a 400): kept as `failed` for a person to
    /// read, and the channel moves on.
    pub async fn spooled_refused(&self, id: i64, error: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE alert_spool SET state = 'failed', attempts = attempts + 1, last_error = $1 WHERE id = $2",
            )
            .bind(error)
            .bind(id)
            .execute(pool)
            .await
            .map_err(store_err("spooled refused"))?;
            Ok(())
        })
    }

    /// Every spooled row as (channel, kind, state), oldest first: for tests and /ops.
    pub async fn spool_rows(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query("SELECT channel_id, kind, state FROM alert_spool ORDER BY id")
                .fetch_all(pool)
                .await
                .map_err(store_err("spool rows"))?;
            Ok(rows.into_iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        })
    }

    /// Alerts still owed to any channel and when the oldest of them was raised: read at
    /// request time for `GET /ops/discord`, so an outside observer (`lead-agent watch`)
    /// sees alerts that are not getting out, whichever process is meant to post them.
    pub async fn spool_summary(&self) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let spooled = self.spooled_count().await?;
        with_pool!(self, pool => {
            // The first row appended is the oldest: ids are the spool's order.
            let oldest: Option<DateTime<Utc>> = sqlx::query_scalar(
                "SELECT created_at FROM alert_spool WHERE state = 'queued' ORDER BY id LIMIT 1",
            )
            .fetch_optional(pool)
            .await
            .map_err(store_err("oldest spooled alert"))?;
            Ok((spooled, oldest))
        })
    }
}
