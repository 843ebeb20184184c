//! The SLA table (`slas`, migration 0045) on either engine: implements the actors'
//! [`SlaStore`].
//!
//! Owns: one row per (lead, SLA kind) holding its whole nag-sequence state, the version
//! check on every write, and the lead update SMS queued in the outbox in the same
//! transaction that records it.
//! Must not: decide anything (the rules live in `actors::sla`), or send: a queued update
//! is sent by the lead's actor like any committed reply.

use actors::ports::{LeadId, StoreError};
use actors::sla::{Opened, SlaKind, SlaState, SlaStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, now, store_err};

const COLUMNS: &str = "lead_phone, kind, ticket_id, started_at, staff_nag_count, \
    staff_last_nagged_at, lead_last_update_at, breached_at, escalated_at, resolved_at, version, \
    due_at";

/// Decodes one `slas` row selected with [`COLUMNS`]; a kind the code does not know (a newer
/// version wrote it) is an error, not a silent skip.
macro_rules! sla_from_row {
    ($r:expr) => {{
        let r = $r;
        let kind: String = r.get(1);
        let kind = SlaKind::parse(&kind).ok_or_else(|| {
            StoreError::new(format!("unknown SLA kind {kind:?} in the slas table"))
        })?;
        SlaState {
            lead: LeadId(r.get(0)),
            kind,
            ticket_id: r.get(2),
            started_at: r.get(3),
            staff_nag_count: r.get::<i64, _>(4) as i32,
            staff_last_nagged_at: r.get(5),
            lead_last_update_at: r.get(6),
            breached_at: r.get(7),
            escalated_at: r.get(8),
            resolved_at: r.get(9),
            version: r.get(10),
            due: r.get(11),
        }
    }};
}

/// The version-checked write of the fields a sweep step changes.
const SAVE_SQL: &str = "UPDATE slas SET staff_nag_count = $1, staff_last_nagged_at = $2,
        lead_last_update_at = $3, breached_at = $4, escalated_at = $5,
        version = version + 1, updated_at = $6
    WHERE lead_phone = $7 AND kind = $8 AND version = $9";

impl SqlStore {
    /// Every SLA, open or not, newest first (at most `limit`): for /ops.
    pub async fn all_slas(&self, limit: i64) -> Result<Vec<SlaState>, StoreError> {
        with_pool!(reader of self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM slas ORDER BY started_at DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(store_err("all SLAs"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(sla_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Every SLA of `leads`, open or not, oldest first (the console's inbox rows and
    /// conversation view), through the `(lead_phone, kind)` primary key.
    pub async fn slas_of(&self, leads: &[LeadId]) -> Result<Vec<SlaState>, StoreError> {
        if leads.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM slas WHERE lead_phone IN ({}) ORDER BY started_at",
            super::in_list(1, leads.len())
        );
        with_pool!(reader of self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for lead in leads {
                query = query.bind(lead.as_str());
            }
            let rows = query.fetch_all(pool).await.map_err(store_err("SLAs of leads"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(sla_from_row!(r));
            }
            Ok(out)
        })
    }

    async fn one_sla(&self, lead: &LeadId, kind: SlaKind) -> Result<Option<SlaState>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM slas WHERE lead_phone = $1 AND kind = $2"
            )))
            .bind(lead.as_str())
            .bind(kind.as_str())
            .fetch_optional(pool)
            .await
            .map_err(store_err("read SLA"))?;
            Ok(match row {
                Some(r) => Some(sla_from_row!(&r)),
                None => None,
            })
        })
    }
}

#[async_trait]
impl SlaStore for SqlStore {
    async fn open_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<Opened, StoreError> {
        let changed = with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            sqlx::query(
                "INSERT INTO leads (phone, created_at) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING",
            )
            .bind(lead.as_str())
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(store_err("insert lead"))?;
            // New: inserted. Resolved earlier: a new cycle over the same row. Open: the
            // WHERE refuses the update and nothing changes — opening is idempotent.
            let n = sqlx::query(
                "INSERT INTO slas (lead_phone, kind, ticket_id, started_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (lead_phone, kind) DO UPDATE SET
                     ticket_id = excluded.ticket_id, started_at = excluded.started_at,
                     staff_nag_count = 0, staff_last_nagged_at = NULL, lead_last_update_at = NULL,
                     breached_at = NULL, escalated_at = NULL, resolved_at = NULL, due_at = NULL,
                     version = slas.version + 1, updated_at = excluded.updated_at
                 WHERE slas.resolved_at IS NOT NULL",
            )
            .bind(lead.as_str())
            .bind(kind.as_str())
            .bind(ticket_id)
            .bind(started_at)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(store_err("open SLA"))?
            .rows_affected();
            tx.commit().await.map_err(store_err("commit SLA"))?;
            n == 1
        });
        let state = self
            .one_sla(lead, kind)
            .await?
            .ok_or_else(|| StoreError::new("SLA vanished right after opening"))?;
        Ok(if changed {
            Opened::Created(state)
        } else {
            Opened::AlreadyOpen(state)
        })
    }

    async fn resolve_sla(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        at: DateTime<Utc>,
    ) -> Result<Option<SlaState>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE slas SET resolved_at = $1, version = version + 1, updated_at = $2
                 WHERE lead_phone = $3 AND kind = $4 AND resolved_at IS NULL",
            )
            .bind(at)
            .bind(now())
            .bind(lead.as_str())
            .bind(kind.as_str())
            .execute(pool)
            .await
            .map_err(store_err("resolve SLA"))?;
        });
        self.one_sla(lead, kind).await
    }

    async fn set_due(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        due: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let n = sqlx::query(
                "UPDATE slas SET due_at = $1, version = version + 1, updated_at = $2
                 WHERE lead_phone = $3 AND kind = $4 AND resolved_at IS NULL",
            )
            .bind(due)
            .bind(now())
            .bind(lead.as_str())
            .bind(kind.as_str())
            .execute(pool)
            .await
            .map_err(store_err("set SLA deadline"))?
            .rows_affected();
            Ok(n == 1)
        })
    }

    async fn open_slas(&self) -> Result<Vec<SlaState>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM slas WHERE resolved_at IS NULL
                 AND lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1) ORDER BY started_at"
            )))
            .fetch_all(pool)
            .await
            .map_err(store_err("open SLAs"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(sla_from_row!(r));
            }
            Ok(out)
        })
    }

    async fn breaches_since(&self, since: DateTime<Utc>) -> Result<Vec<SlaState>, StoreError> {
        with_pool!(reader of self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM slas WHERE breached_at >= $1 ORDER BY breached_at"
            )))
            .bind(since)
            .fetch_all(pool)
            .await
            .map_err(store_err("SLA breaches"))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(sla_from_row!(r));
            }
            Ok(out)
        })
    }

    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        SqlStore::is_synthetic(self, lead).await
    }

    async fn lead_time_zone(&self, lead: &LeadId) -> Result<Option<String>, StoreError> {
        with_pool!(self, pool => {
            let tz: Option<Option<String>> =
                sqlx::query_scalar("SELECT time_zone FROM leads WHERE phone = $1")
                    .bind(lead.as_str())
                    .fetch_optional(pool)
                    .await
                    .map_err(store_err("lead time zone"))?;
            Ok(tz.flatten())
        })
    }

    async fn save_sla(&self, next: &SlaState) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let n = sqlx::query(SAVE_SQL)
                .bind(next.staff_nag_count as i64)
                .bind(next.staff_last_nagged_at)
                .bind(next.lead_last_update_at)
                .bind(next.breached_at)
                .bind(next.escalated_at)
                .bind(now())
                .bind(next.lead.as_str())
                .bind(next.kind.as_str())
                .bind(next.version)
                .execute(pool)
                .await
                .map_err(store_err("save SLA"))?
                .rows_affected();
            Ok(n == 1)
        })
    }

    async fn attach_ticket(
        &self,
        lead: &LeadId,
        kind: SlaKind,
        ticket_id: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let n = sqlx::query(
                "UPDATE slas SET ticket_id = $1, updated_at = $2
                 WHERE lead_phone = $3 AND kind = $4 AND ticket_id = '' AND resolved_at IS NULL",
            )
            .bind(ticket_id)
            .bind(now())
            .bind(lead.as_str())
            .bind(kind.as_str())
            .execute(pool)
            .await
            .map_err(store_err("attach SLA ticket"))?
            .rows_affected();
            Ok(n == 1)
        })
    }

    /// Reads the move-in out of the brain's context documents (the store does not look
    /// inside them otherwise): the LIKE only narrows the rows decoded.
    async fn move_ins_without_invoice(&self) -> Result<Vec<(LeadId, String)>, StoreError> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.lead_phone, c.context FROM lead_context c
                 WHERE c.context LIKE '%\"move_in\"%'
                 AND NOT EXISTS (SELECT 1 FROM slas s WHERE s.lead_phone = c.lead_phone AND s.kind = 'invoice')
                 AND c.lead_phone NOT IN (SELECT phone FROM leads WHERE synthetic = 1)",
            )
            .fetch_all(pool)
            .await
            .map_err(store_err("move-ins without an invoice"))?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(lead, context)| {
                let ctx: actors::brain::context::LeadContext =
                    serde_json::from_str(&context).ok()?;
                Some((LeadId(lead), ctx.requirements.move_in?))
            })
            .collect())
    }

    async fn save_with_lead_sms(
        &self,
        next: &SlaState,
        body: &str,
    ) -> Result<Option<i64>, StoreError> {
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            let n = sqlx::query(SAVE_SQL)
                .bind(next.staff_nag_count as i64)
                .bind(next.staff_last_nagged_at)
                .bind(next.lead_last_update_at)
                .bind(next.breached_at)
                .bind(next.escalated_at)
                .bind(at)
                .bind(next.lead.as_str())
                .bind(next.kind.as_str())
                .bind(next.version)
                .execute(&mut *tx)
                .await
                .map_err(store_err("save SLA"))?
                .rows_affected();
            if n != 1 {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(None);
            }
            // A reply row like any other: the lead's actor sends it with the outbox's claim,
            // after a last opt-out check, and the model sees it in the history.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', $3, $4, $5) RETURNING id",
            )
            .bind(next.lead.as_str())
            .bind(body)
            .bind(format!("sla:{}", next.kind))
            .bind(at)
            .bind(at)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_err("queue SLA update"))?;
            tx.commit().await.map_err(store_err("commit SLA update"))?;
            Ok(Some(id))
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    async fn store_in(dir: &std::path::Path) -> (SqlStore, String) {
        let url = crate::store::fresh_test_database_url(dir).await;
        (SqlStore::connect(&url).await.unwrap(), url)
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn sla_state_survives_a_new_store_on_the_same_database() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url) = store_in(dir.path()).await;
        let lead = LeadId::new("+13125550100");
        let Opened::Created(s) = store
            .open_sla(&lead, SlaKind::DocReview, "1209", t0())
            .await
            .unwrap()
        else {
            panic!("a new SLA is created")
        };
        let mut next = s.clone();
        next.staff_nag_count = 2;
        next.staff_last_nagged_at = Some(t0() + Duration::hours(24));
        next.breached_at = Some(t0() + Duration::hours(24));
        assert!(store.save_sla(&next).await.unwrap());
        assert!(
            !store.save_sla(&next).await.unwrap(),
            "a write based on a stale version changes nothing"
        );
        next.version += 1;
        let reply = store
            .save_with_lead_sms(
                &SlaState {
                    lead_last_update_at: Some(t0() + Duration::hours(25)),
                    ..next.clone()
                },
                "still reviewing",
            )
            .await
            .unwrap();
        assert!(reply.is_some());
        drop(store);

        // Another process (or this one restarted) sees exactly what was written.
        let again = SqlStore::connect(&url).await.unwrap();
        let open = again.open_slas().await.unwrap();
        assert_eq!(open.len(), 1);
        let got = &open[0];
        assert_eq!(got.kind, SlaKind::DocReview);
        assert_eq!(got.ticket_id, "1209");
        assert_eq!(got.started_at, t0());
        assert_eq!(got.staff_nag_count, 2);
        assert_eq!(got.staff_last_nagged_at, Some(t0() + Duration::hours(24)));
        assert_eq!(got.lead_last_update_at, Some(t0() + Duration::hours(25)));
        assert_eq!(got.breached_at, Some(t0() + Duration::hours(24)));
        assert_eq!(got.version, 2);
        assert_eq!(
            again
                .breaches_since(t0() + Duration::hours(23))
                .await
                .unwrap()
                .len(),
            1
        );
        // The update waits in the outbox like any committed reply.
        let conv = again.conversation(&lead, 10).await.unwrap();
        assert_eq!(conv.len(), 1);
        assert_eq!(
            (conv[0].body.as_str(), conv[0].state.as_str()),
            ("still reviewing", "queued")
        );
        assert_eq!(conv[0].provider.as_deref(), Some("sla:doc_review"));
        assert_eq!(
            again.leads_with_pending_work().await.unwrap(),
            vec![lead.clone()]
        );
    }

    #[tokio::test]
    async fn opening_is_idempotent_resolving_sticks_and_reopening_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_in(dir.path()).await;
        let lead = LeadId::new("+13125550101");
        assert!(matches!(
            store
                .open_sla(&lead, SlaKind::Invoice, "", t0())
                .await
                .unwrap(),
            Opened::Created(_)
        ));
        let Opened::AlreadyOpen(s) = store
            .open_sla(&lead, SlaKind::Invoice, "other", t0() + Duration::days(1))
            .await
            .unwrap()
        else {
            panic!("the second open changes nothing")
        };
        assert_eq!((s.ticket_id.as_str(), s.started_at), ("", t0()));

        let resolved = store
            .resolve_sla(&lead, SlaKind::Invoice, t0() + Duration::days(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.resolved_at, Some(t0() + Duration::days(2)));
        let again = store
            .resolve_sla(&lead, SlaKind::Invoice, t0() + Duration::days(3))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.resolved_at, Some(t0() + Duration::days(2)));
        assert!(store.open_slas().await.unwrap().is_empty());
        assert!(
            !store.save_sla(&s).await.unwrap(),
            "a sweep step racing the resolve writes nothing"
        );
        assert!(
            store
                .resolve_sla(&lead, SlaKind::DocReview, t0())
                .await
                .unwrap()
                .is_none()
        );

        let Opened::Created(fresh) = store
            .open_sla(&lead, SlaKind::Invoice, "T2", t0() + Duration::days(40))
            .await
            .unwrap()
        else {
            panic!("a resolved SLA opens a new cycle")
        };
        assert_eq!(fresh.resolved_at, None);
        assert_eq!(fresh.ticket_id, "T2");
        assert_eq!(store.all_slas(10).await.unwrap().len(), 1);
    }
}
