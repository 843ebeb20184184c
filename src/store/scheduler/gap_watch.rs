//! The response-gap watch's reads: inbound messages still unanswered, and marking the ones
//! it re-drove.
//!
//! Owns: the `redriven_at` mark. Must not: decide what counts as a gap — that is
//! `crate::scheduler`'s watch.

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

/// An inbound message still unanswered.
#[derive(Clone, Debug, PartialEq)]
pub struct WaitingMessage {
    pub id: i64,
    pub lead: LeadId,
    pub created_at: DateTime<Utc>,
    pub redriven_at: Option<DateTime<Utc>>,
}

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
}
