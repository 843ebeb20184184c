//! The `lead_takeovers` table (issue 15 item 6): an operator's takeover of a lead's
//! conversation — who took it, where, when, their last activity, and how it ended.
//!
//! Owns: at most one takeover in force per lead (`released_at IS NULL`, held by a partial
//! unique index, so two operators taking one lead at once get one takeover), the release
//! (by an operator, or idle: `last_activity_at` older than a cutoff, checked again in the
//! releasing statement so an operator replying at that moment keeps the lead), and the
//! operator's reply: the activity and the outbox row (`queued`, provider
//! [`OPERATOR_PROVIDER`]) in one transaction, refused when no takeover is in force.
//! What a takeover stops is enforced elsewhere in the store, each where the thing it stops
//! is decided: `lead_work` names the operator (the lead's turn stores and forwards instead
//! of drafting), `claim_send` suppresses any other reply (followups, an AI draft committed
//! just before), `due_followups` flags the lead (the sweep drops its timer), and
//! `record_send` arms no followup for an operator's text.
//! Must not: send, alert or decide when to release (`crate::takeover` and the scheduler's
//! `takeover_idle_release` job do), or touch the lead's messages.

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

/// The provider of an operator's text to a taken-over lead: the only reply `claim_send` lets
/// reach a taken lead besides the rule-owed ones (HELP, the opt-out confirmation); it arms no
/// followup and is not counted by the reply caps (a person is not a reply loop).
pub const OPERATOR_PROVIDER: &str = "operator";

/// One takeover as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Takeover {
    pub id: i64,
    pub lead: LeadId,
    pub operator: String,
    /// `ops` or `discord`.
    pub via: String,
    pub taken_at: DateTime<Utc>,
    /// The take, or the operator's last reply: what the idle release counts from.
    pub last_activity_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub released_by: Option<String>,
    /// `operator` or `idle`.
    pub release_reason: Option<String>,
}

/// What [`SqlStore::take_over`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeOutcome {
    Taken(Takeover),
    /// The lead was taken already (by this operator or another): that takeover, unchanged.
    AlreadyTaken(Takeover),
    /// No lead with this number has ever texted us.
    UnknownLead,
}

const COLUMNS: &str = "id, lead_phone, operator, via, taken_at, last_activity_at, released_at, released_by, release_reason";

/// A row of [`COLUMNS`] as a [`Takeover`]; a macro because the body is compiled once per
/// engine inside `with_pool!`.
macro_rules! takeover_of_row {
    ($r:expr) => {{
        let r = $r;
        Takeover {
            id: r.get("id"),
            lead: LeadId(r.get("lead_phone")),
            operator: r.get("operator"),
            via: r.get("via"),
            taken_at: r.get("taken_at"),
            last_activity_at: r.get("last_activity_at"),
            released_at: r.get("released_at"),
            released_by: r.get("released_by"),
            release_reason: r.get("release_reason"),
        }
    }};
}

impl SqlStore {
    /// Takes `lead` over for `operator` at `at`, unless a takeover is in force already.
    pub async fn take_over(
        &self,
        lead: &LeadId,
        operator: &str,
        via: &str,
        at: DateTime<Utc>,
    ) -> Result<TakeOutcome, StoreError> {
        let inserted: Option<i64> = with_pool!(self, pool => {
            // The unique index, not a prior read, decides between two takes at once.
            sqlx::query_scalar(
                "INSERT INTO lead_takeovers (lead_phone, operator, via, taken_at, last_activity_at)
                 SELECT $1, $2, $3, $4, $4 WHERE EXISTS (SELECT 1 FROM leads WHERE phone = $1)
                 ON CONFLICT DO NOTHING
                 RETURNING id",
            )
            .bind(lead.as_str())
            .bind(operator)
            .bind(via)
            .bind(at)
            .fetch_optional(pool)
            .await
            .map_err(store_err("take over"))?
        });
        let current = self.takeover_of(lead).await?;
        Ok(match (inserted, current) {
            (Some(_), Some(t)) => TakeOutcome::Taken(t),
            (None, Some(t)) => TakeOutcome::AlreadyTaken(t),
            // Inserted and released again at once by someone else: report what we did.
            (Some(id), None) => TakeOutcome::Taken(self.takeover_by_id(id).await?),
            (None, None) => TakeOutcome::UnknownLead,
        })
    }

    async fn takeover_by_id(&self, id: i64) -> Result<Takeover, StoreError> {
        with_pool!(self, pool => {
            let sql = format!("SELECT {COLUMNS} FROM lead_takeovers WHERE id = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(pool)
                .await
                .map(|r| takeover_of_row!(&r))
                .map_err(store_err("takeover by id"))
        })
    }

    /// The lead's takeover in force, if any.
    pub async fn takeover_of(&self, lead: &LeadId) -> Result<Option<Takeover>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {COLUMNS} FROM lead_takeovers WHERE lead_phone = $1 AND released_at IS NULL"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map(|r| r.map(|r| takeover_of_row!(&r)))
                .map_err(store_err("takeover of"))
        })
    }

    /// Every takeover in force, oldest first.
    pub async fn takeovers(&self) -> Result<Vec<Takeover>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {COLUMNS} FROM lead_takeovers WHERE released_at IS NULL ORDER BY taken_at, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .map(|rows| rows.iter().map(|r| takeover_of_row!(r)).collect())
                .map_err(store_err("takeovers"))
        })
    }

    /// Ends the lead's takeover in force; returns it as ended, or `None` when none was. One
    /// statement: of two releases at once, one ends it and the other finds none.
    pub async fn release_takeover(
        &self,
        lead: &LeadId,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Takeover>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "UPDATE lead_takeovers SET released_at = $2, released_by = $3, release_reason = 'operator'
                 WHERE lead_phone = $1 AND released_at IS NULL
                 RETURNING {COLUMNS}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead.as_str())
                .bind(at)
                .bind(by)
                .fetch_optional(pool)
                .await
                .map(|r| r.map(|r| takeover_of_row!(&r)))
                .map_err(store_err("release takeover"))
        })
    }

    /// Releases, as idle, every takeover in force whose operator has done nothing since
    /// before `cutoff`; returns those released. The idle test is in the releasing statement:
    /// a reply committed between a read and the release keeps the lead taken.
    pub async fn release_idle_takeovers(
        &self,
        cutoff: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Takeover>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "UPDATE lead_takeovers SET released_at = $2, released_by = 'scheduler', release_reason = 'idle'
                 WHERE released_at IS NULL AND last_activity_at < $1
                 RETURNING {COLUMNS}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cutoff)
                .bind(at)
                .fetch_all(pool)
                .await
                .map(|rows| rows.iter().map(|r| takeover_of_row!(r)).collect())
                .map_err(store_err("release idle takeovers"))
        })
    }

    /// One transaction: the operator's activity on the lead's takeover in force, and
    /// `body` in the outbox as a `queued` reply from [`OPERATOR_PROVIDER`] (the lead's actor
    /// sends it, with `claim_send`'s last opt-out check). `None`, writing nothing, when the
    /// lead is not taken over.
    pub async fn queue_operator_reply(
        &self,
        lead: &LeadId,
        body: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<(i64, Takeover)>, StoreError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let sql = format!(
                "UPDATE lead_takeovers SET last_activity_at = $2
                 WHERE lead_phone = $1 AND released_at IS NULL
                 RETURNING {COLUMNS}"
            );
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead.as_str())
                .bind(at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_err("operator activity"))?
            else {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(None);
            };
            let takeover = takeover_of_row!(&row);
            let reply_id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', $3, $4, $4) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(OPERATOR_PROVIDER)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("queue operator reply"))?;
            tx.commit().await.map_err(store_err("commit operator reply"))?;
            Ok(Some((reply_id, takeover)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InboundKind, NewInbound, fresh_test_database_url};
    use actors::ports::{Claim, Store};

    async fn store_with_lead(dir: &std::path::Path, lead: &LeadId) -> SqlStore {
        let store = SqlStore::connect(&fresh_test_database_url(dir).await)
            .await
            .unwrap();
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM1",
                    from: lead,
                    body: "hi",
                    synthetic: false,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn one_takeover_in_force_per_lead_released_once_and_kept_as_history() {
        let dir = tempfile::tempdir().unwrap();
        let lead = LeadId::new("+13125550140");
        let store = store_with_lead(dir.path(), &lead).await;
        let t0 = Utc::now();
        assert_eq!(
            store
                .take_over(&LeadId::new("+13125550141"), "ana", "ops", t0)
                .await
                .unwrap(),
            TakeOutcome::UnknownLead
        );
        let TakeOutcome::Taken(t) = store.take_over(&lead, "ana", "ops", t0).await.unwrap() else {
            panic!("taken");
        };
        assert_eq!((t.operator.as_str(), t.via.as_str()), ("ana", "ops"));
        let again = store.take_over(&lead, "bo", "discord", t0).await.unwrap();
        assert_eq!(again, TakeOutcome::AlreadyTaken(t.clone()));
        assert_eq!(store.takeovers().await.unwrap(), vec![t.clone()]);
        // The lead's turn sees who holds it.
        assert_eq!(
            store.lead_work(&lead).await.unwrap().taken_by.as_deref(),
            Some("ana")
        );
        let ended = store
            .release_takeover(&lead, "ana", t0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.release_reason.as_deref(), Some("operator"));
        assert_eq!(
            store.release_takeover(&lead, "ana", t0).await.unwrap(),
            None
        );
        assert_eq!(store.takeover_of(&lead).await.unwrap(), None);
        assert_eq!(store.lead_work(&lead).await.unwrap().taken_by, None);
        // Taken again: a new row, the old one stays as history.
        assert!(matches!(
            store.take_over(&lead, "bo", "discord", t0).await.unwrap(),
            TakeOutcome::Taken(t) if t.id != ended.id
        ));
    }

    #[tokio::test]
    async fn an_operator_reply_needs_the_takeover_counts_as_activity_and_only_it_reaches_the_lead()
    {
        let dir = tempfile::tempdir().unwrap();
        let lead = LeadId::new("+13125550142");
        let store = store_with_lead(dir.path(), &lead).await;
        let t0 = Utc::now() - chrono::Duration::hours(2);
        assert_eq!(
            store
                .queue_operator_reply(&lead, "hello", t0)
                .await
                .unwrap(),
            None,
            "not taken: nothing queued"
        );
        // A followup committed before the take, sent after it, is suppressed.
        let followup = store
            .queue_auto_reply(&lead, "still looking?", "followup")
            .await
            .unwrap();
        store.take_over(&lead, "ana", "ops", t0).await.unwrap();
        assert_eq!(store.claim_send(followup).await.unwrap(), Claim::Suppressed);
        let t1 = t0 + chrono::Duration::hours(1);
        let (reply, t) = store
            .queue_operator_reply(&lead, "Ana here, the 2BR is free", t1)
            .await
            .unwrap()
            .unwrap();
        // PostgreSQL keeps microseconds.
        assert!((t.last_activity_at - t1).num_microseconds().unwrap().abs() <= 1);
        assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Send);
        // Idle is counted from the last activity: a cutoff before it releases nothing.
        let now = Utc::now();
        assert!(
            store
                .release_idle_takeovers(t0, now)
                .await
                .unwrap()
                .is_empty()
        );
        let released = store
            .release_idle_takeovers(t1 + chrono::Duration::seconds(1), now)
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].release_reason.as_deref(), Some("idle"));
        assert_eq!(released[0].released_by.as_deref(), Some("scheduler"));
        assert!(store.takeovers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_operator_text_to_a_lead_who_opted_out_is_suppressed_at_the_claim() {
        let dir = tempfile::tempdir().unwrap();
        let lead = LeadId::new("+13125550143");
        let store = store_with_lead(dir.path(), &lead).await;
        store
            .take_over(&lead, "ana", "ops", Utc::now())
            .await
            .unwrap();
        let (reply, _) = store
            .queue_operator_reply(&lead, "are you still there?", Utc::now())
            .await
            .unwrap()
            .unwrap();
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM2",
                    from: &lead,
                    body: "STOP",
                    synthetic: false,
                },
                InboundKind::OptOut,
            )
            .await
            .unwrap();
        assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Suppressed);
    }
}
