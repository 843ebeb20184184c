//! The `doc_intake` table (migrations 0098): which Gmail messages of the staff mailbox the
//! document intake took, so that each is processed once across runs, restarts and replicas.
//!
//! Owns: the recent rows (what a run skips), the claim (a row `claimed` until a moment,
//! taken by exactly one run: an insert that conflicts, or an update of a lapsed claim or a
//! due retry, each counted by its affected rows), the outcome of an attempt, and whether a
//! phone number is a known (real, not synthetic) lead's.
//! Must not: call Google or decide retries (`crate::doc_intake` does).

use std::collections::HashMap;

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

/// How an attempt on a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// Matched, stored (or named), `doc_review` opened. `files`: names, one per line.
    Processed {
        lead: LeadId,
        files: String,
    },
    Unmatched,
    NoDocuments {
        lead: LeadId,
    },
    Retry {
        at: DateTime<Utc>,
        detail: String,
    },
    Failed {
        detail: String,
    },
}

/// A row as a run sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeRow {
    pub gmail_id: String,
    pub state: String,
    pub lead: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub files: Option<String>,
}

impl IntakeRow {
    /// Settled, or waiting for a moment not yet come: a run leaves it alone.
    pub fn is_resting(&self, now: DateTime<Utc>) -> bool {
        !matches!(self.state.as_str(), "claimed" | "retry") || self.next_attempt_at > now
    }
}

impl SqlStore {
    /// The rows updated at or after `since`, by Gmail id (a message the mailbox search
    /// returns was received after `since`, so its row, if any, is among them).
    pub async fn doc_intake_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<HashMap<String, IntakeRow>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query(
                "SELECT gmail_id, state, lead_phone, attempts, next_attempt_at, files
                 FROM doc_intake WHERE updated_at >= $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(store_err("doc intake rows"))?
            .into_iter()
            .map(|r| {
                let row = IntakeRow {
                    gmail_id: r.get("gmail_id"),
                    state: r.get("state"),
                    lead: r.get("lead_phone"),
                    attempts: u32::try_from(r.get::<i64, _>("attempts")).unwrap_or(u32::MAX),
                    next_attempt_at: r.get("next_attempt_at"),
                    files: r.get("files"),
                };
                (row.gmail_id.clone(), row)
            })
            .collect()
        }))
    }

    /// Every row, by Gmail id: for tests and operators.
    pub async fn doc_intake_rows(&self) -> Result<Vec<IntakeRow>, StoreError> {
        let mut rows: Vec<IntakeRow> = self
            .doc_intake_since(DateTime::<Utc>::UNIX_EPOCH)
            .await?
            .into_values()
            .collect();
        rows.sort_by(|a, b| a.gmail_id.cmp(&b.gmail_id));
        Ok(rows)
    }

    /// Takes message `id` for one attempt until `until`; false when another run has it (or
    /// it was settled meanwhile).
    pub async fn claim_doc_intake(
        &self,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let inserted = sqlx::query(
                "INSERT INTO doc_intake (gmail_id, state, attempts, next_attempt_at, updated_at)
                 VALUES ($1, 'claimed', 0, $2, $3)
                 ON CONFLICT (gmail_id) DO NOTHING",
            )
            .bind(id)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("claim doc intake"))?
            .rows_affected();
            if inserted == 1 {
                return Ok(true);
            }
            let taken = sqlx::query(
                "UPDATE doc_intake SET state = 'claimed', next_attempt_at = $2, updated_at = $3
                 WHERE gmail_id = $1 AND state IN ('claimed', 'retry') AND next_attempt_at <= $3",
            )
            .bind(id)
            .bind(until)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("claim doc intake"))?
            .rows_affected();
            Ok(taken == 1)
        })
    }

    /// Records the outcome of attempt number `attempts` on a claimed message.
    pub async fn finish_doc_intake(
        &self,
        id: &str,
        attempts: u32,
        outcome: &IntakeOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (state, lead, next, files, detail) = match outcome {
            IntakeOutcome::Processed { lead, files } => (
                "processed",
                Some(lead.as_str().to_string()),
                now,
                Some(files.clone()),
                None,
            ),
            IntakeOutcome::Unmatched => ("unmatched", None, now, None, None),
            IntakeOutcome::NoDocuments { lead } => (
                "no_documents",
                Some(lead.as_str().to_string()),
                now,
                None,
                None,
            ),
            IntakeOutcome::Retry { at, detail } => ("retry", None, *at, None, Some(detail.clone())),
            IntakeOutcome::Failed { detail } => ("failed", None, now, None, Some(detail.clone())),
        };
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE doc_intake SET state = $2, lead_phone = $3, attempts = $4,
                     next_attempt_at = $5, files = $6, detail = $7, updated_at = $8
                 WHERE gmail_id = $1",
            )
            .bind(id)
            .bind(state)
            .bind(lead)
            .bind(i64::from(attempts))
            .bind(next)
            .bind(files)
            .bind(detail)
            .bind(now)
            .execute(pool)
            .await
            .map_err(store_err("finish doc intake"))?;
        });
        Ok(())
    }

    /// True when `phone` is a lead's who wrote to us (and not a synthetic probe's).
    pub async fn is_known_lead(&self, phone: &str) -> Result<bool, StoreError> {
        let synthetic: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT synthetic FROM leads WHERE phone = $1")
                .bind(phone)
                .fetch_optional(pool)
                .await
                .map_err(store_err("known lead"))?
        });
        Ok(synthetic == Some(0))
    }
}
