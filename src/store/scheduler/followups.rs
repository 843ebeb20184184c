//! Followup timers: which are due, arming, holding and dropping them, and the transaction
//! that turns a due timer into a queued reply — never twice, never after the lead wrote back.
//!
//! Owns: the `followups` table and its hand-off to the outbox. Must not: decide policy
//! (quiet hours, how many followups, the texts) — that is `actors::followup`.

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::{Pool, SqlStore, now, store_err};

/// A followup timer that has come due.
#[derive(Clone, Debug, PartialEq)]
pub struct DueFollowup {
    pub lead: LeadId,
    pub step: i64,
    pub due_at: DateTime<Utc>,
    pub opted_out: bool,
    pub dead: bool,
    pub time_zone: Option<String>,
    /// An operator has taken the lead over (issue 15 item 6): no followup while a person
    /// holds the conversation.
    pub taken_over: bool,
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
                "SELECT f.lead_phone, f.step, f.due_at, l.opted_out, l.dead_at, l.time_zone,
                    EXISTS (SELECT 1 FROM lead_takeovers t
                            WHERE t.lead_phone = f.lead_phone AND t.released_at IS NULL) AS taken
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
                    taken_over: r.get::<bool, _>(6),
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
