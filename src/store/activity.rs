//! The last day's activity as the console's charts read it (`src/http/console/charts.rs`):
//! each inbound message with when its reply went out, and each reply sent.
//!
//! Owns: two range reads through `messages_by_created` (migration 0095), so the cost is the
//! day's messages, not the table. Must not: aggregate (the chart does, in hourly buckets) or
//! write.

use actors::ports::StoreError;
use chrono::{DateTime, Utc};

use super::{Pool, SqlStore, store_err};

impl SqlStore {
    /// Every inbound message since `since` (synthetic leads left out): when it arrived and,
    /// once its reply was sent, when that was (the reply row's last update, its send).
    pub async fn responses_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>, StoreError> {
        with_pool!(reader of self, pool => {
            sqlx::query_as(
                "SELECT i.created_at, CASE WHEN r.state = 'sent' THEN r.updated_at END
                 FROM messages i
                 JOIN leads l ON l.phone = i.lead_phone AND l.synthetic = 0
                 LEFT JOIN messages r ON r.id = i.reply_id
                 WHERE i.created_at >= $1 AND i.direction = 'inbound'",
            )
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(store_err("responses since"))
        })
    }

    /// When each SMS we sent since `since` was written (replies, followups, operators').
    pub async fn sent_since(&self, since: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows: Vec<(DateTime<Utc>,)> = with_pool!(reader of self, pool => {
            sqlx::query_as(
                "SELECT created_at FROM messages
                 WHERE created_at >= $1 AND direction = 'outbound' AND state = 'sent'",
            )
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(store_err("sent since"))?
        });
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }
}
