//! The `crm_text_log` table (migrations 0095): which messages were recorded on the lead's
//! Follow Up Boss timeline, so that each is logged once across restarts and replicas.
//!
//! Owns: the candidates (messages newer than a look-back that no drain has settled: every
//! real inbound SMS — it has Twilio's `MessageSid` — and every reply this service sent —
//! `sent` with the provider's id; imported history has neither and is never logged — not
//! synthetic leads'), the claim (a row `claimed` until a moment, taken by exactly one drain:
//! an insert that conflicts, or an update of a lapsed claim or a due retry, each counted by
//! its affected rows), and the outcome of an attempt.
//! Must not: call the CRM or decide retries (`crate::crm_text_log` does).

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

/// A message to record on the CRM timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingText {
    pub message_id: i64,
    pub lead: LeadId,
    pub inbound: bool,
    pub body: String,
    /// Attempts already made (0: never tried).
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextLogOutcome {
    Logged,
    NoPerson,
    Retry { at: DateTime<Utc>, detail: String },
    Failed { detail: String },
}

/// One row of the log, for `/ops`-style reads and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLogRow {
    pub message_id: i64,
    pub state: String,
    pub attempts: u32,
}

impl SqlStore {
    /// Up to `limit` messages created at or after `since` that are not yet settled: never
    /// claimed, or a retry that is due, or a claim that lapsed (its drain died), oldest first.
    pub async fn pending_text_logs(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PendingText>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query(
                "SELECT m.id, m.lead_phone, m.direction, m.body, l.attempts
                 FROM messages m
                 JOIN leads ld ON ld.phone = m.lead_phone
                 LEFT JOIN crm_text_log l ON l.message_id = m.id
                 WHERE m.created_at >= $1
                   AND m.message_sid IS NOT NULL
                   AND (m.direction = 'inbound' OR m.state = 'sent')
                   AND ld.synthetic = 0
                   AND (l.message_id IS NULL
                        OR (l.state IN ('claimed', 'retry') AND l.next_attempt_at <= $2))
                 ORDER BY m.id
                 LIMIT $3",
            )
            .bind(since)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(store_err("pending text logs"))?
            .into_iter()
            .map(|r| {
                let attempts: Option<i64> = r.get("attempts");
                let direction: String = r.get("direction");
                PendingText {
                    message_id: r.get("id"),
                    lead: LeadId(r.get("lead_phone")),
                    inbound: direction == "inbound",
                    body: r.get("body"),
                    attempts: u32::try_from(attempts.unwrap_or(0)).unwrap_or(u32::MAX),
                }
            })
            .collect()
        }))
    }

    /// Takes message `id` for one attempt until `until`; false when another drain has it
    /// (or it was settled meanwhile).
    pub async fn claim_text_log(
        &self,
        id: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let inserted = sqlx::query(
                "INSERT INTO crm_text_log (message_id, state, attempts, next_attempt_at, updated_at)
                 VALUES ($1, 'claimed', 0, $2, $3)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(id)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("claim text log"))?
            .rows_affected();
            if inserted == 1 {
                return Ok(true);
            }
            let taken = sqlx::query(
                "UPDATE crm_text_log SET state = 'claimed', next_attempt_at = $2, updated_at = $3
                 WHERE message_id = $1 AND state IN ('claimed', 'retry') AND next_attempt_at <= $3",
            )
            .bind(id)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("claim text log"))?
            .rows_affected();
            Ok(taken == 1)
        })
    }

    /// Records the outcome of attempt number `attempts` on a claimed message.
    pub async fn finish_text_log(
        &self,
        id: i64,
        attempts: u32,
        outcome: &TextLogOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, next, detail) = match outcome {
            TextLogOutcome::Logged => ("logged", now, None),
            TextLogOutcome::NoPerson => ("no_person", now, None),
            TextLogOutcome::Retry { at, detail } => ("retry", *at, Some(detail.clone())),
            TextLogOutcome::Failed { detail } => ("failed", now, Some(detail.clone())),
        };
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE crm_text_log SET state = $2, attempts = $3, next_attempt_at = $4,
                     detail = $5, updated_at = $6
                 WHERE message_id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(i64::from(attempts))
            .bind(next)
            .bind(detail)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("finish text log"))?;
        });
        Ok(())
    }

    /// Every row of the log, by message id.
    pub async fn text_log_rows(&self) -> Result<Vec<TextLogRow>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query("SELECT message_id, state, attempts FROM crm_text_log ORDER BY message_id")
                .fetch_all(pool)
                .await
                .map_err(store_err("text log rows"))?
                .into_iter()
            .map(|r| TextLogRow {
                message_id: r.get("message_id"),
                state: r.get("state"),
                attempts: u32::try_from(r.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
            })
            .collect()
        }))
    }
}
