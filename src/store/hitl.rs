//! Held replies (HITL, migration 0051): the store side of "a person approves the reply
//! before it is sent".
//!
//! Owns: holding a reply (with its inbound messages marked handled, one transaction), the
//! one-time decision on a hold (a compare-and-set from `held`: a double click decides
//! once), turning an approval into a `queued` outbound reply, and the one-time escalation
//! of a hold nobody decided on (with its holding message queued in the same transaction).
//! Must not: send anything. Every SMS leaves through the outbox's `queued` row and the lead
//! actor's send path (the `claim_send` claim, which checks the opt-out at the last moment).

use actors::hitl::ReplyHolds;
use actors::ports::{LeadId, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, in_list, now, store_err};

/// A hold as a person deciding on it sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldView {
    pub id: i64,
    pub lead: LeadId,
    pub body: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub escalated: bool,
}

/// What a decision did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldDecision {
    /// Approved: `reply_id` is the `queued` outbound row to send.
    Approved {
        lead: LeadId,
        reply_id: i64,
    },
    Rejected {
        lead: LeadId,
        body: String,
    },
    /// Decided before (by someone else, or a repeated click): nothing changed.
    AlreadyDecided {
        state: String,
    },
    NotFound,
}

/// A hold that has just been escalated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalatedHold {
    pub id: i64,
    pub lead: LeadId,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// The holding message queued for the lead (one per lead per escalation pass).
    pub holding_reply_id: Option<i64>,
}

fn parse_ids(text: &str) -> Vec<i64> {
    text.split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

impl SqlStore {
    pub async fn hold(&self, id: i64) -> Result<Option<HoldView>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, lead_phone, body, state, created_at, escalated_at FROM held_replies WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(store_err("read hold"))?;
            Ok(row.map(|r| HoldView {
                id: r.get(0),
                lead: LeadId(r.get(1)),
                body: r.get(2),
                state: r.get(3),
                created_at: r.get(4),
                escalated: r.get::<Option<DateTime<Utc>>, _>(5).is_some(),
            }))
        })
    }

    /// Every hold of a lead, oldest first.
    pub async fn holds_of(&self, lead: &LeadId) -> Result<Vec<HoldView>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, lead_phone, body, state, created_at, escalated_at FROM held_replies
                 WHERE lead_phone = $1 ORDER BY id",
            )
            .bind(lead.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_err("holds of lead"))?;
            Ok(rows
                .into_iter()
                .map(|r| HoldView {
                    id: r.get(0),
                    lead: LeadId(r.get(1)),
                    body: r.get(2),
                    state: r.get(3),
                    created_at: r.get(4),
                    escalated: r.get::<Option<DateTime<Utc>>, _>(5).is_some(),
                })
                .collect())
        })
    }

    /// Decides a hold once. `approve` with `text` (edited) or without (as drafted) writes a
    /// `queued` outbound reply and links the inbound messages to it; `None` rejects.
    pub async fn decide_hold(
        &self,
        id: i64,
        approve: Option<Option<&str>>,
        by: &str,
    ) -> Result<HoldDecision, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let new_state = if approve.is_some() { "approved" } else { "rejected" };
            let claimed = sqlx::query(
                "UPDATE held_replies SET state = $1, decided_at = $2, decided_by = $3
                 WHERE id = $4 AND state = 'held' RETURNING lead_phone, body, provider, answered_ids",
            )
            .bind(new_state)
            .bind(at)
            .bind(by)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("decide hold"))?;
            let Some(row) = claimed else {
                let state: Option<String> =
                    sqlx::query_scalar("SELECT state FROM held_replies WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_err("read hold state"))?;
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(match state {
                    Some(state) => HoldDecision::AlreadyDecided { state },
                    None => HoldDecision::NotFound,
                });
            };
            let lead = LeadId(row.get(0));
            let drafted: String = row.get(1);
            let provider: String = row.get(2);
            let answered = parse_ids(&row.get::<String, _>(3));
            let Some(edited) = approve else {
                tx.commit().await.map_err(store_err("commit rejection"))?;
                return Ok(HoldDecision::Rejected { lead, body: drafted });
            };
            let body = edited.unwrap_or(&drafted);
            let provider = if edited.is_some() { format!("{provider}+edited") } else { provider };
            let reply_id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', $3, $4, $5) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(&provider)
            .bind(at)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("insert approved reply"))?;
            sqlx::query("UPDATE held_replies SET reply_id = $1 WHERE id = $2")
                .bind(reply_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(store_err("link approved reply"))?;
            if !answered.is_empty() {
                let sql = format!(
                    "UPDATE messages SET reply_id = $1, updated_at = $2 WHERE lead_phone = $3 AND id IN ({})",
                    in_list(4, answered.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(reply_id)
                    .bind(at)
                    .bind(lead.as_str());
                for id in &answered {
                    q = q.bind(id);
                }
                q.execute(&mut *tx)
                    .await
                    .map_err(store_err("link answered messages"))?;
            }
            tx.commit().await.map_err(store_err("commit approval"))?;
            Ok(HoldDecision::Approved { lead, reply_id })
        })
    }

    /// Escalates, once each, the holds still undecided and created before `cutoff`: marks
    /// them escalated and queues `holding_message` for each of their leads (one per lead in
    /// this pass), all in one transaction. Returns what was escalated.
    pub async fn escalate_expired_holds(
        &self,
        cutoff: DateTime<Utc>,
        holding_message: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<EscalatedHold>, StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let rows = sqlx::query(
                "UPDATE held_replies SET escalated_at = $1
                 WHERE state = 'held' AND escalated_at IS NULL AND created_at < $2
                 RETURNING id, lead_phone, body, created_at",
            )
            .bind(at)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await
            .map_err(store_err("escalate holds"))?;
            let mut out: Vec<EscalatedHold> = rows
                .into_iter()
                .map(|r| EscalatedHold {
                    id: r.get(0),
                    lead: LeadId(r.get(1)),
                    body: r.get(2),
                    created_at: r.get(3),
                    holding_reply_id: None,
                })
                .collect();
            out.sort_by_key(|h| h.id);
            let mut leads_done: Vec<LeadId> = Vec::new();
            for hold in out.iter_mut() {
                if leads_done.contains(&hold.lead) {
                    continue;
                }
                leads_done.push(hold.lead.clone());
                let reply_id: i64 = sqlx::query_scalar(
                    "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                     VALUES ($1, 'outbound', $2, 'queued', 'hitl_holding', $3, $4) RETURNING id",
                )
                .bind(hold.lead.as_str())
                .bind(holding_message)
                .bind(at)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_err("queue holding message"))?;
                sqlx::query("UPDATE held_replies SET holding_reply_id = $1 WHERE id = $2")
                    .bind(reply_id)
                    .bind(hold.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err("link holding message"))?;
                hold.holding_reply_id = Some(reply_id);
            }
            tx.commit().await.map_err(store_err("commit escalation"))?;
            Ok(out)
        })
    }
}

#[async_trait]
impl ReplyHolds for SqlStore {
    async fn hold_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        provider: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let ids = answered.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let hold_id: i64 = sqlx::query_scalar(
                "INSERT INTO held_replies (lead_phone, body, provider, answered_ids, state, created_at)
                 VALUES ($1, $2, $3, $4, 'held', $5) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(provider)
            .bind(&ids)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("insert hold"))?;
            let sql = format!(
                "UPDATE messages SET state = 'answered', detail = 'held for review', updated_at = $1
                 WHERE state = 'pending' AND lead_phone = $2 AND id IN ({})",
                in_list(3, answered.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at).bind(lead.as_str());
            for id in answered {
                q = q.bind(id);
            }
            let marked = q
                .execute(&mut *tx)
                .await
                .map_err(store_err("mark held"))?
                .rows_affected();
            if marked != answered.len() as u64 {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(None);
            }
            tx.commit().await.map_err(store_err("commit hold"))?;
            Ok(Some(hold_id))
        })
    }
}
