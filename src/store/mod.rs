//! The store: the conversation state on SQLite (sqlx), with migrations run at start.
//!
//! Owns: the schema (`migrations/sqlite`), the webhook's idempotent insert keyed by
//! `MessageSid`, opt-out state, the outbox states of replies, turn records, and the queries
//! the start-up re-drive and /ops need. Implements the actors' [`actors::ports::Store`]
//! (and, in `sla.rs`, [`actors::sla::SlaStore`]; in `in_doubt.rs`, [`actors::ports::InDoubtLedger`]).
//! Must not: hold a transaction across a network call, or decide policy (what to send, when
//! to retry): it records what the actors and the webhook decided, each change in one
//! transaction so a crash between two calls never leaves half of one.

use std::sync::Arc;

use actors::ports::{
    ChatLine, Claim, LeadId, LeadLock, LeadWork, OutboxReply, PendingInbound, ProcessLocalLock,
    Role, SendOutcome, Store, StoreError,
};
use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use sqlx::{Row, SqlitePool};

/// What the webhook does with a message besides storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundKind {
    /// An ordinary message: it waits for a reply.
    Conversation,
    /// STOP and friends: recorded, lead opted out, no reply.
    OptOut,
    /// Consent revoked in plain words ("please stop texting me"): the same as [`Self::OptOut`]
    /// for every send; the consent ledger records it as a `revocation`.
    Revocation,
    /// START/YES from an opted-out lead: opted back in, no reply (the carrier confirms).
    OptIn,
    /// HELP/INFO: the carrier answers; no reply from us.
    CarrierHelp,
}

#[derive(Clone, Debug)]
pub struct NewInbound<'a> {
    pub message_sid: &'a str,
    pub from: &'a LeadId,
    pub body: &'a str,
    /// Sent by `lead-agent watch` or `verify` (the signed `LeadAgentSynthetic=1`): marks
    /// the lead synthetic, so reports, followups and SLAs leave it out.
    pub synthetic: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now. `needs_turn`: a wake-up must be published.
    New { needs_turn: bool },
    /// Seen before (a Twilio retry). `still_pending`: not yet answered, so the wake-up is
    /// published again in case the first attempt's was lost.
    Duplicate { still_pending: bool },
}

/// One message as /ops and the dev helper show it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageView {
    pub id: i64,
    pub direction: String,
    pub body: String,
    pub state: String,
    pub provider: Option<String>,
    pub message_sid: Option<String>,
    pub reply_id: Option<i64>,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TurnView {
    pub id: i64,
    pub lead: String,
    pub worker: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
}

/// The store over either engine. Every query is written once, with `$N` placeholders
/// (both drivers accept them), and runs on whichever pool this is.
#[derive(Clone)]
pub struct SqlStore {
    pool: Pool,
    /// `READONLY_DATABASE_URL`: serves reads that may lag (/ops). Never the webhook's or an
    /// actor's reads — those must see their own writes.
    reader: Option<Pool>,
    /// When set, a sent conversational reply arms the lead's followup timer this long
    /// after the send (`FOLLOWUP_HOURS`' first entry). Unset: followups are off.
    followup_first_after: Option<chrono::Duration>,
    /// The webhook's group-commit writer, shared by every clone of this store.
    inbound: Arc<accept::InboundWriter>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool: the body is compiled once per
/// engine, so each gets its own statically typed sqlx calls from one text.
macro_rules! with_pool {
    ($self:ident, $pool:ident => $body:block) => {
        with_pool!(@match &$self.pool, $pool => $body)
    };
    (reader of $self:ident, $pool:ident => $body:block) => {
        with_pool!(@match $self.reader.as_ref().unwrap_or(&$self.pool), $pool => $body)
    };
    (@match $which:expr, $pool:ident => $body:block) => {
        match $which {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn store_err(context: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::with_source(format!("{context}: {e}"), e)
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl SqlStore {
    /// Opens the database named by `url` and runs its migrations: `sqlite:` (created if
    /// missing) or `postgres:` / `postgresql:`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_reader(url, None).await
    }

    /// Like [`SqlStore::connect`], with a read replica for reads that may lag.
    pub async fn connect_with_reader(
        url: &str,
        readonly_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let pool = open::open_pool(url, true).await?;
        let reader = match readonly_url {
            Some(r) => Some(
                open::open_pool(r, false)
                    .await
                    .context("Failed to open READONLY_DATABASE_URL")?,
            ),
            None => None,
        };
        Ok(Self {
            inbound: Arc::new(accept::InboundWriter::new(pool.clone())),
            pool,
            reader,
            followup_first_after: None,
        })
    }

    /// Arms followup timers on sent replies (see `followup_first_after`).
    pub fn with_followups(mut self, first_after: Option<std::time::Duration>) -> Self {
        self.followup_first_after = first_after.and_then(|d| chrono::Duration::from_std(d).ok());
        self
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(store_err("ping"))?;
            Ok(())
        })
    }

    /// The webhook's write: lead, message and opt-out change committed together, keyed by
    /// `MessageSid` so that a retried or concurrent duplicate stores nothing new. Written by
    /// the process's group-commit writer (`accept.rs`) in a batch with whatever other
    /// webhooks arrived meanwhile; answers once that batch is committed.
    pub async fn accept_inbound(
        &self,
        msg: NewInbound<'_>,
        kind: InboundKind,
    ) -> Result<Accepted, StoreError> {
        self.inbound
            .accept(accept::InboundItem {
                sid: msg.message_sid.to_owned(),
                from: msg.from.as_str().to_owned(),
                body: msg.body.to_owned(),
                kind,
                synthetic: msg.synthetic,
            })
            .await
    }

    /// Leads with stored work: unanswered messages or committed, unsent replies. Driven again
    /// at start so that a crash of the single process loses nothing.
    pub async fn leads_with_pending_work(&self) -> Result<Vec<LeadId>, StoreError> {
        with_pool!(self, pool => {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT lead_phone FROM messages WHERE state IN ('pending', 'queued')",
            )
            .fetch_all(pool)
            .await
            .map_err(store_err("pending work"))?;
            Ok(rows.into_iter().map(LeadId).collect())
        })
    }

    /// Leads with work stored before `cutoff` and still not done: their wake-up was lost
    /// (dead-lettered, or dropped with a crashed process). The periodic sweep wakes them.
    pub async fn leads_with_stale_work(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<LeadId>, StoreError> {
        with_pool!(self, pool => {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT lead_phone FROM messages
                 WHERE state IN ('pending', 'queued') AND updated_at < $1",
            )
            .bind(cutoff)
            .fetch_all(pool)
            .await
            .map_err(store_err("stale work"))?;
            Ok(rows.into_iter().map(LeadId).collect())
        })
    }

    pub async fn conversation(
        &self,
        lead: &LeadId,
        limit: i64,
    ) -> Result<Vec<MessageView>, StoreError> {
        with_pool!(reader of self, pool => {
            let rows = sqlx::query(
                "SELECT id, direction, body, state, provider, message_sid, reply_id, created_at
                 FROM (SELECT * FROM messages WHERE lead_phone = $1 ORDER BY id DESC LIMIT $2) AS recent
                 ORDER BY id",
            )
            .bind(lead.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(store_err("conversation"))?;
            Ok(rows
                .into_iter()
                .map(|r| MessageView {
                    id: r.get("id"),
                    direction: r.get("direction"),
                    body: r.get("body"),
                    state: r.get("state"),
                    provider: r.get("provider"),
                    message_sid: r.get("message_sid"),
                    reply_id: r.get("reply_id"),
                    created_at: r.get::<DateTime<Utc>, _>("created_at").to_rfc3339(),
                })
                .collect())
        })
    }

    pub async fn turns(&self, lead: &LeadId) -> Result<Vec<TurnView>, StoreError> {
        with_pool!(reader of self, pool => {
            let rows = sqlx::query(
                "SELECT id, lead_phone, worker, started_at, finished_at, outcome FROM turns
                 WHERE lead_phone = $1 ORDER BY id",
            )
            .bind(lead.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_err("turns"))?;
            Ok(rows
                .into_iter()
                .map(|r| TurnView {
                    id: r.get("id"),
                    lead: r.get("lead_phone"),
                    worker: r.get("worker"),
                    started_at: r.get::<DateTime<Utc>, _>("started_at").to_rfc3339(),
                    finished_at: r
                        .get::<Option<DateTime<Utc>>, _>("finished_at")
                        .map(|t| t.to_rfc3339()),
                    outcome: r.get("outcome"),
                })
                .collect())
        })
    }

    /// Bulk-loads history for a lead (tests, benchmarks, imports): answered inbound and sent
    /// outbound lines, alternating, in one transaction.
    pub async fn import_history(&self, lead: &LeadId, lines: &[ChatLine]) -> anyhow::Result<()> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO leads (phone, created_at) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING",
            )
            .bind(lead.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            for line in lines {
                let (direction, state) = match line.role {
                    Role::Lead => ("inbound", "answered"),
                    Role::Agent => ("outbound", "sent"),
                };
                sqlx::query(
                    "INSERT INTO messages (lead_phone, direction, body, state, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(lead.as_str())
                .bind(direction)
                .bind(&line.text)
                .bind(state)
                .bind(at)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}

/// [`Store::lead_work`]'s one statement: both kinds of open work, the opt-out flag and the
/// operator of a takeover in force (`takeovers.rs`), so a
/// turn starts with one round trip. The second IN term repeats the partial index's predicate
/// so that SQLite (which cannot infer it) reads `messages_open` instead of every message the
/// lead ever had: with a 5,000-message history that scan cost megabytes of page cache and CPU
/// on every turn (BENCHMARKS.md). No ORDER BY: with one, SQLite prefers `messages_by_lead`
/// (the whole history) to save a sort; the rows are few and are sorted after.
const LEAD_WORK_SQL: &str = "SELECT id, direction, message_sid, body, created_at,
        (SELECT opted_out FROM leads WHERE phone = $1) AS opted_out,
        (SELECT operator FROM lead_takeovers WHERE lead_phone = $1 AND released_at IS NULL)
            AS taken_by
 FROM messages
 WHERE lead_phone = $1 AND state IN ('pending', 'queued')
   AND state IN ('pending', 'queued', 'sending')
   AND ((direction = 'inbound' AND state = 'pending')
        OR (direction = 'outbound' AND state = 'queued'))";

/// Arms a lead's followup timer (`$1` lead, `$2` due, `$3` now) unless the lead is dead or
/// opted out: in the transaction that records a conversational reply sent (`record_send`,
/// and `in_doubt.rs` when the provider turns out to have had it).
const ARM_FOLLOWUP_SQL: &str = "INSERT INTO followups (lead_phone, step, due_at, note, updated_at)
 SELECT $1, 0, $2, NULL, $3 WHERE EXISTS
    (SELECT 1 FROM leads WHERE phone = $1 AND dead_at IS NULL AND opted_out = 0
        AND synthetic = 0)
 ON CONFLICT (lead_phone) DO UPDATE SET step = 0, due_at = excluded.due_at,
    note = NULL, updated_at = excluded.updated_at";

/// Whether a sent reply from `provider` arms the lead's followup timer: a conversational
/// reply does; a followup's own send does not (the sweep already advanced the timer), nor a
/// HELP answer or the opt-out confirmation (not conversation turns), nor an operator's text
/// to a taken-over lead (the person owns the conversation; the AI's next reply after the
/// release arms it). `record_send` and the in-doubt settlement both ask this.
fn arms_followup(provider: Option<&str>) -> bool {
    !matches!(
        provider,
        Some("followup" | HELP_PROVIDER | OPT_OUT_CONFIRMATION_PROVIDER | OPERATOR_PROVIDER)
    )
}

/// `$first, $first+1, …`: `n` numbered placeholders (both drivers take `$N`).
fn in_list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl Store for SqlStore {
    async fn load_history(
        &self,
        lead: &LeadId,
        max_messages: usize,
    ) -> Result<Vec<ChatLine>, StoreError> {
        with_pool!(self, pool => {
            // Newest first through the (lead, id) index, so the cost is the window, not the
            // history. Replies the lead never received (failed, suppressed) are not history.
            let rows = sqlx::query(
                "SELECT direction, body FROM messages
                 WHERE lead_phone = $1 AND state NOT IN ('pending', 'failed', 'suppressed')
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(lead.as_str())
            .bind(max_messages as i64)
            .fetch_all(pool)
            .await
            .map_err(store_err("load history"))?;
            let mut lines: Vec<ChatLine> = rows
                .into_iter()
                .map(|r| ChatLine {
                    role: if r.get::<String, _>(0) == "inbound" {
                        Role::Lead
                    } else {
                        Role::Agent
                    },
                    text: r.get(1),
                })
                .collect();
            lines.reverse();
            Ok(lines)
        })
    }

    async fn lead_work(&self, lead: &LeadId) -> Result<LeadWork, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(LEAD_WORK_SQL)
            .bind(lead.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_err("lead work"))?;
            let mut work = LeadWork::default();
            for r in rows {
                work.opted_out = r.get::<Option<i64>, _>(5) == Some(1);
                work.taken_by = r.get::<Option<String>, _>(6);
                if r.get::<String, _>(1) == "inbound" {
                    work.pending.push(PendingInbound {
                        id: r.get(0),
                        message_sid: r.get::<Option<String>, _>(2).unwrap_or_default(),
                        body: r.get(3),
                        received_at: r.get(4),
                    });
                } else {
                    work.unsent.push(OutboxReply {
                        id: r.get(0),
                        lead: lead.clone(),
                        body: r.get(3),
                    });
                }
            }
            work.pending.sort_by_key(|p| p.id);
            work.unsent.sort_by_key(|u| u.id);
            Ok(work)
        })
    }

    async fn is_opted_out(&self, lead: &LeadId) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let v: Option<i64> = sqlx::query_scalar("SELECT opted_out FROM leads WHERE phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("opt-out state"))?;
            Ok(v == Some(1))
        })
    }

    async fn commit_reply(
        &self,
        lead: &LeadId,
        answered: &[i64],
        body: &str,
        provider: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let reply_id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', $3, $4, $5) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(provider)
            .bind(at)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("insert reply"))?;
            let sql = format!(
                "UPDATE messages SET state = 'answered', reply_id = $1, updated_at = $2
                 WHERE state = 'pending' AND lead_phone = $3 AND id IN ({})",
                in_list(4, answered.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(reply_id)
                .bind(at)
                .bind(lead.as_str());
            for id in answered {
                q = q.bind(id);
            }
            let marked = q
                .execute(&mut *tx)
                .await
                .map_err(store_err("mark answered"))?
                .rows_affected();
            if marked != answered.len() as u64 {
                // Someone else answered part of this burst: write nothing, answer nothing twice.
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(None);
            }
            tx.commit().await.map_err(store_err("commit reply"))?;
            Ok(Some(reply_id))
        })
    }

    async fn mark_no_reply(&self, answered: &[i64], reason: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            if answered.is_empty() {
                return Ok(());
            }
            let sql = format!(
                "UPDATE messages SET state = 'no_reply', detail = $1, updated_at = $2
                 WHERE state = 'pending' AND id IN ({})",
                in_list(3, answered.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(reason)
                .bind(now());
            for id in answered {
                q = q.bind(id);
            }
            q.execute(pool)
                .await
                .map_err(store_err("mark no reply"))?;
            Ok(())
        })
    }

    async fn claim_send(&self, reply_id: i64) -> Result<Claim, StoreError> {
        with_pool!(self, pool => {
            // The opt-out check, the takeover check and the claim in one statement: one round
            // trip, and no STOP or takeover committed before it can slip between a separate
            // check and the claim. The one exception to the opt-out is its own confirmation
            // ($3), which the rule allows. A lead taken over by an operator (issue 15 item 6)
            // gets only the operator's texts ($4) and the replies the rules owe (HELP, the
            // confirmation): no followup, no AI draft committed just before the take.
            let state: Option<String> = sqlx::query_scalar(
                "UPDATE messages SET
                    state = CASE WHEN (EXISTS (SELECT 1 FROM leads
                                               WHERE phone = messages.lead_phone AND opted_out = 1)
                                       AND messages.provider IS DISTINCT FROM $3)
                                   OR (EXISTS (SELECT 1 FROM lead_takeovers
                                               WHERE lead_phone = messages.lead_phone
                                                 AND released_at IS NULL)
                                       AND COALESCE(messages.provider, '') NOT IN ($3, $4, $5))
                            THEN 'suppressed' ELSE 'sending' END,
                    detail = CASE WHEN EXISTS (SELECT 1 FROM leads
                                               WHERE phone = messages.lead_phone AND opted_out = 1)
                                   AND messages.provider IS DISTINCT FROM $3
                             THEN 'lead opted out'
                             WHEN EXISTS (SELECT 1 FROM lead_takeovers
                                          WHERE lead_phone = messages.lead_phone
                                            AND released_at IS NULL)
                                   AND COALESCE(messages.provider, '') NOT IN ($3, $4, $5)
                             THEN 'lead taken over by an operator' ELSE detail END,
                    updated_at = $1
                 WHERE id = $2 AND state = 'queued'
                 RETURNING state",
            )
            .bind(now())
            .bind(reply_id)
            .bind(OPT_OUT_CONFIRMATION_PROVIDER)
            .bind(OPERATOR_PROVIDER)
            .bind(HELP_PROVIDER)
            .fetch_optional(pool)
            .await
            .map_err(store_err("claim send"))?;
            Ok(match state.as_deref() {
                Some("sending") => Claim::Send,
                Some(_) => Claim::Suppressed,
                None => Claim::NotQueued,
            })
        })
    }

    async fn record_send(&self, reply_id: i64, outcome: &SendOutcome) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            let (sid, detail) = match outcome {
                SendOutcome::Sent { provider_sid } => (Some(provider_sid.as_str()), None),
                SendOutcome::Suppressed => (None, Some("lead opted out")),
                SendOutcome::Failed { reason }
                | SendOutcome::InDoubt { reason }
                | SendOutcome::Requeued { reason } => (None, Some(reason.as_str())),
            };
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let row = sqlx::query(
                "UPDATE messages SET state = $1, message_sid = COALESCE($2, message_sid), detail = $3, updated_at = $4
                 WHERE id = $5 RETURNING lead_phone, provider",
            )
            .bind(outcome.state())
            .bind(sid)
            .bind(detail)
            .bind(at)
            .bind(reply_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("record send"))?;
            // A sent conversational reply arms the followup timer in the same transaction,
            // so a crash cannot leave a lead answered but never followed up. A followup's
            // own send does not, nor the rule-owed and operator texts ([`arms_followup`]).
            if let (Some(row), Some(after), SendOutcome::Sent { .. }) =
                (row, self.followup_first_after, outcome)
            {
                let provider: Option<String> = row.get(1);
                if arms_followup(provider.as_deref()) {
                    sqlx::query(ARM_FOLLOWUP_SQL)
                    .bind(row.get::<String, _>(0))
                    .bind(at + after)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err("arm followup"))?;
                }
            }
            tx.commit().await.map_err(store_err("commit send"))?;
            Ok(())
        })
    }

    async fn flag_stale_sends(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<OutboxReply>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "UPDATE messages SET state = 'in_doubt', detail = 'interrupted during send', updated_at = $1
                 WHERE state = 'sending' AND updated_at < $2 RETURNING id, lead_phone, body",
            )
            .bind(now())
            .bind(cutoff)
            .fetch_all(pool)
            .await
            .map_err(store_err("flag stale sends"))?;
            Ok(rows
                .into_iter()
                .map(|r| OutboxReply {
                    id: r.get(0),
                    lead: LeadId(r.get(1)),
                    body: r.get(2),
                })
                .collect())
        })
    }

    async fn try_lock_lead(&self, lead: &LeadId) -> Result<Option<Box<dyn LeadLock>>, StoreError> {
        match &self.pool {
            // A SQLite file has one process: its registry already runs a lead one turn at a
            // time.
            Pool::Sqlite(_) => Ok(Some(Box::new(ProcessLocalLock))),
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(store_err("lock connection"))?;
                let got: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                        .bind(lead.as_str())
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(store_err("try lock lead"))?;
                Ok(got.then(|| {
                    Box::new(PgLeadLock {
                        conn: Some(conn),
                        lead: lead.clone(),
                    }) as Box<dyn LeadLock>
                }))
            }
        }
    }

    async fn begin_turn(&self, lead: &LeadId, worker: &str) -> Result<i64, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO turns (lead_phone, worker, started_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(worker)
            .bind(now())
            .fetch_one(pool)
            .await
            .map_err(store_err("begin turn"))
        })
    }

    async fn finish_turn(&self, turn_id: i64, outcome: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE turns SET finished_at = $1, outcome = $2 WHERE id = $3")
                .bind(now())
                .bind(outcome)
                .bind(turn_id)
                .execute(pool)
                .await
                .map_err(store_err("finish turn"))?;
            Ok(())
        })
    }
}

/// A session-level advisory lock on the connection that took it. The session is the lock:
/// if the holder is killed, PostgreSQL ends the session and frees the lead — no lease to
/// expire, no clock to trust.
struct PgLeadLock {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    lead: LeadId,
}

#[async_trait]
impl LeadLock for PgLeadLock {
    async fn release(mut self: Box<Self>) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(self.lead.as_str())
            .execute(&mut *conn)
            .await;
        if let Err(e) = unlocked {
            // Never hand a connection that may still hold the lock back to the pool.
            tracing::warn!(lead = %self.lead.log(), error = %e, "unlock failed; closing the session instead");
            drop(conn.detach());
        }
    }
}

impl Drop for PgLeadLock {
    fn drop(&mut self) {
        // Dropped unreleased (the turn panicked or was killed): close the session, which
        // frees the lock, rather than return a locked connection to the pool.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

mod accept;
mod alert_spool;
mod busy;
mod hitl;
mod open;

pub use alert_spool::{NewSpooledAlert, SpooledAlert};
pub use hitl::{EscalatedHold, HoldDecision, HoldView};
mod scheduler;
mod sla;
pub use scheduler::*;

#[cfg(test)]
mod tests;
mod verifications;
pub use verifications::VerificationRecord;

mod test_db;
pub use test_db::{fresh_postgres_database, fresh_test_database_url};

// The brain's per-lead context (issue 5): its own file, so its queries merge cleanly.
mod lead_context;

// The outbox sweep's in-doubt ledger (issue 11): its own file, so its queries merge cleanly.
mod in_doubt;

// Parked leads and the reply caps' count (issue 12): its own file, so its queries merge cleanly.
mod parks;

// The dialer hand-off ledger (issue 14): its own file, so its queries merge cleanly.
mod dialer;
// The CRM texting log (issue 14): its own file, so its queries merge cleanly.
mod crm_texts;
pub use crm_texts::{PendingText, TextLogOutcome, TextLogRow};
// Who a lead is (client id, name) for the typed events (issue 14): its own file.
mod identity;
pub use identity::LeadIdentity;
// Replies owed by rule, not by a turn (issue 15: HELP): its own file.
mod auto_reply;
pub use auto_reply::{HELP_PROVIDER, OPT_OUT_CONFIRMATION_PROVIDER};
// The consent ledger (issue 15): its own file, so its queries merge cleanly.
mod consent;
pub use consent::{ConsentEvent, ConsentMethod, ConsentStatus, LeadConsent};
// The mailbox document intake (issue 14): its own file, so its queries merge cleanly.
mod doc_intake;
pub use doc_intake::{IntakeOutcome, IntakeRow};
// Human takeover (issue 15 item 6): its own file, so its queries merge cleanly.
mod activity;
mod inbox;
mod takeovers;
pub use inbox::{Attention, InboxLead, LastMessage, search_pattern};
pub use takeovers::{OPERATOR_PROVIDER, TakeOutcome, Takeover};
