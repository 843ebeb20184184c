//! The consent ledger (`consent_events`, migration 0099) on either engine: when and how each
//! lead granted or revoked consent to be texted, and from which message.
//!
//! Owns: which event an accepted inbound message is ([`inbound_event`]; the webhook's batch
//! in `accept.rs` writes it in the same transaction that sets `leads.opted_out`), the
//! operator's revoke and restore (the flag, the followup cancel and the event in one
//! transaction), and the reads /ops and `lead-agent consent export` need.
//! Must not: be what a send checks — `leads.opted_out` is (`claim_send`, the followup sweep,
//! the SLA sweep, the dialer hand-off), and every write here sets it in the same
//! transaction as its event, so the two cannot disagree — or decide what a message means
//! (the webhook classifies it).

use actors::ports::{LeadId, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{InboundKind, Pool, SqlStore, now, store_err};

/// How consent was granted or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMethod {
    /// The lead's first message: implied consent to be answered.
    FirstInbound,
    /// STOP and the other carrier opt-out words.
    StopKeyword,
    /// Consent revoked in plain words ("please stop texting me").
    Revocation,
    /// START/UNSTOP from an opted-out lead.
    StartKeyword,
    /// An operator's revoke or restore through /ops.
    Operator,
}

impl ConsentMethod {
    pub const ALL: [ConsentMethod; 5] = [
        Self::FirstInbound,
        Self::StopKeyword,
        Self::Revocation,
        Self::StartKeyword,
        Self::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstInbound => "first_inbound",
            Self::StopKeyword => "stop_keyword",
            Self::Revocation => "revocation",
            Self::StartKeyword => "start_keyword",
            Self::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// One row of the ledger, as /ops and the export show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentEvent {
    pub id: i64,
    pub lead: String,
    pub at: DateTime<Utc>,
    pub method: ConsentMethod,
    /// True: consent granted (or restored); false: revoked.
    pub grants: bool,
    /// The inbound message's MessageSid; `None` for an operator's action.
    pub message_sid: Option<String>,
    /// The inbound body, or the operator's note.
    pub words: String,
}

/// A lead's consent now: what every send checks (`leads.opted_out`) and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsentStatus {
    pub opted_out: bool,
    /// Opted out: when (`leads.opted_out_at`). Opted in: the latest granting event, else
    /// when the lead first wrote (a lead older than the ledger has no event).
    pub since: Option<DateTime<Utc>>,
}

/// The ledger event an accepted (new, not a retry) inbound message writes, if any.
/// `first_of_new_lead`: the message created the lead's row. A new lead's first STOP is a
/// revocation only: there was no consent to record before it.
pub(super) fn inbound_event(kind: InboundKind, first_of_new_lead: bool) -> Option<ConsentMethod> {
    match kind {
        InboundKind::OptOut => Some(ConsentMethod::StopKeyword),
        InboundKind::Revocation => Some(ConsentMethod::Revocation),
        InboundKind::OptIn => Some(ConsentMethod::StartKeyword),
        InboundKind::Conversation | InboundKind::CarrierHelp => {
            first_of_new_lead.then_some(ConsentMethod::FirstInbound)
        }
    }
}

/// Whether an event of `method` grants consent (an operator's depends on the action).
pub(super) fn grants(method: ConsentMethod) -> bool {
    matches!(
        method,
        ConsentMethod::FirstInbound | ConsentMethod::StartKeyword
    )
}

const EVENT_COLUMNS: &str = "id, lead_phone, at, method, grants, message_sid, words";

fn event_of<R>(r: &R) -> Result<ConsentEvent, StoreError>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> DateTime<Utc>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let method: String = r.get("method");
    Ok(ConsentEvent {
        id: r.get("id"),
        lead: r.get("lead_phone"),
        at: r.get("at"),
        method: ConsentMethod::parse(&method)
            .ok_or_else(|| StoreError::new(format!("consent_events: unknown method {method:?}")))?,
        grants: r.get::<i64, _>("grants") != 0,
        message_sid: r.get("message_sid"),
        words: r.get("words"),
    })
}

/// A lead's latest consent event with its status now: one row of the /ops page's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeadConsent {
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub latest: ConsentEvent,
}

impl SqlStore {
    /// The `limit` leads whose consent changed last, newest first, each with its latest
    /// event and its status now.
    pub async fn recent_consent(&self, limit: u32) -> Result<Vec<LeadConsent>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT c.{}, l.opted_out, l.opted_out_at
                 FROM consent_events c JOIN leads l ON l.phone = c.lead_phone
                 WHERE c.id IN (SELECT MAX(id) FROM consent_events GROUP BY lead_phone)
                 ORDER BY c.id DESC LIMIT $1",
                EVENT_COLUMNS.replace(", ", ", c.")
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(store_err("recent consent"))?
                .iter()
                .map(|r| {
                    Ok(LeadConsent {
                        opted_out: r.get::<i64, _>("opted_out") != 0,
                        opted_out_at: r.get("opted_out_at"),
                        latest: event_of(r)?,
                    })
                })
                .collect()
        })
    }

    /// The lead's consent events, newest first.
    pub async fn consent_events(&self, lead: &LeadId) -> Result<Vec<ConsentEvent>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM consent_events WHERE lead_phone = $1 ORDER BY id DESC"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead.as_str())
                .fetch_all(pool)
                .await
                .map_err(store_err("consent events"))?
                .iter()
                .map(event_of)
                .collect()
        })
    }

    /// Every event at or after `since`, oldest first (the export).
    pub async fn consent_events_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConsentEvent>, StoreError> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM consent_events WHERE at >= $1 ORDER BY at, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(store_err("consent events since"))?
                .iter()
                .map(event_of)
                .collect()
        })
    }

    /// The lead's consent now; `None` for a phone that never wrote to us.
    pub async fn consent_status(&self, lead: &LeadId) -> Result<Option<ConsentStatus>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT l.opted_out, l.opted_out_at, l.created_at,
                        (SELECT MAX(at) FROM consent_events c
                          WHERE c.lead_phone = l.phone AND c.grants = 1) AS granted_at
                 FROM leads l WHERE l.phone = $1",
            )
            .bind(lead.as_str())
            .fetch_optional(pool)
            .await
            .map_err(store_err("consent status"))?;
            Ok(row.map(|r| {
                let opted_out = r.get::<i64, _>("opted_out") != 0;
                let since = if opted_out {
                    r.get::<Option<DateTime<Utc>>, _>("opted_out_at")
                } else {
                    r.get::<Option<DateTime<Utc>>, _>("granted_at")
                        .or_else(|| r.get::<Option<DateTime<Utc>>, _>("created_at"))
                };
                ConsentStatus { opted_out, since }
            }))
        })
    }

    /// A revocation the model judged (the brain's `record_opt_out`, the plain chain's
    /// `OPT_OUT`: words the phrase set missed): opts the lead out as STOP does (the flag,
    /// its followup cancelled) with a `revocation` event whose words say it was the model's
    /// judgement, in one transaction. False: the lead was already out (or unknown): nothing
    /// written.
    pub async fn record_judged_revocation(
        &self,
        lead: &LeadId,
        words: &str,
    ) -> Result<bool, StoreError> {
        let words = format!("[the model's judgement] {words}");
        Ok(self
            .record_consent_change(lead, false, ConsentMethod::Revocation, &words, true)
            .await?
            .is_some())
    }

    /// An operator's revoke (`grants` false) or restore: sets or clears `leads.opted_out`
    /// as STOP and START do (a revoke also cancels the pending followup, as STOP does) and
    /// records the event with the operator's note, in one transaction. `None`: no such
    /// lead (nothing written).
    pub async fn record_operator_consent(
        &self,
        lead: &LeadId,
        grants: bool,
        note: &str,
    ) -> Result<Option<ConsentEvent>, StoreError> {
        self.record_consent_change(lead, grants, ConsentMethod::Operator, note, false)
            .await
    }

    /// Sets or clears the lead's opt-out outside an inbound message, with its ledger event
    /// and (on a revoke) the followup cancelled, in one transaction. `only_if_changed`: an
    /// already-matching flag writes nothing. `None`: nothing written (no such lead, or no
    /// change when asked for one).
    async fn record_consent_change(
        &self,
        lead: &LeadId,
        grants: bool,
        method: ConsentMethod,
        words: &str,
        only_if_changed: bool,
    ) -> Result<Option<ConsentEvent>, StoreError> {
        let (set, was) = if grants {
            ("opted_out = 0, opted_out_at = NULL", 1)
        } else {
            ("opted_out = 1, opted_out_at = $2", 0)
        };
        let only = if only_if_changed {
            format!(" AND opted_out = {was}")
        } else {
            String::new()
        };
        let update = format!("UPDATE leads SET {set} WHERE phone = $1{only} RETURNING phone");
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin consent change"))?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(update.clone())).bind(lead.as_str());
            if !grants {
                q = q.bind(at);
            }
            let updated = q
                .fetch_optional(&mut *tx)
                .await
                .map_err(store_err("consent change"))?;
            if updated.is_none() {
                return Ok(None);
            }
            if !grants {
                sqlx::query("DELETE FROM followups WHERE lead_phone = $1")
                    .bind(lead.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(store_err("consent change: cancel followup"))?;
            }
            let sql = format!(
                "INSERT INTO consent_events (lead_phone, at, method, grants, message_sid, words)
                 VALUES ($1, $2, $3, $4, NULL, $5) RETURNING {EVENT_COLUMNS}"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead.as_str())
                .bind(at)
                .bind(method.as_str())
                .bind(i64::from(grants))
                .bind(words)
                .fetch_one(&mut *tx)
                .await
                .map_err(store_err("consent event"))?;
            let event = event_of(&row)?;
            tx.commit().await.map_err(store_err("commit consent change"))?;
            Ok(Some(event))
        })
    }
}

#[cfg(test)]
mod tests {
    use actors::ports::Store;

    use super::*;
    use crate::store::{NewInbound, fresh_test_database_url};

    #[test]
    fn each_kind_of_message_is_the_event_the_ledger_names() {
        use ConsentMethod::*;
        let cases = [
            (InboundKind::Conversation, true, Some(FirstInbound)),
            (InboundKind::Conversation, false, None),
            (InboundKind::CarrierHelp, true, Some(FirstInbound)),
            (InboundKind::CarrierHelp, false, None),
            (InboundKind::OptOut, true, Some(StopKeyword)),
            (InboundKind::OptOut, false, Some(StopKeyword)),
            (InboundKind::Revocation, false, Some(Revocation)),
            (InboundKind::OptIn, false, Some(StartKeyword)),
        ];
        for (kind, first, want) in cases {
            assert_eq!(inbound_event(kind, first), want, "{kind:?} first={first}");
        }
        for m in ConsentMethod::ALL {
            assert_eq!(ConsentMethod::parse(m.as_str()), Some(m));
        }
        assert!(grants(FirstInbound) && grants(StartKeyword));
        assert!(!grants(StopKeyword) && !grants(Revocation));
    }

    #[tokio::test]
    async fn an_operator_revoke_and_restore_set_the_flag_with_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550901");
        assert_eq!(
            s.record_operator_consent(&lead, false, "asked by phone")
                .await
                .unwrap(),
            None,
            "no such lead: nothing written"
        );
        s.accept_inbound(
            NewInbound {
                message_sid: "SM1",
                from: &lead,
                body: "Hi",
                synthetic: false,
            },
            InboundKind::Conversation,
        )
        .await
        .unwrap();
        let revoked = s
            .record_operator_consent(&lead, false, "asked by phone")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (revoked.method, revoked.grants, revoked.message_sid),
            (ConsentMethod::Operator, false, None)
        );
        assert!(s.is_opted_out(&lead).await.unwrap());
        let status = s.consent_status(&lead).await.unwrap().unwrap();
        assert!(status.opted_out && status.since == Some(revoked.at));
        s.record_operator_consent(&lead, true, "called back, wants texts")
            .await
            .unwrap()
            .unwrap();
        assert!(!s.is_opted_out(&lead).await.unwrap());
        let methods: Vec<(ConsentMethod, bool)> = s
            .consent_events(&lead)
            .await
            .unwrap()
            .iter()
            .map(|e| (e.method, e.grants))
            .collect();
        assert_eq!(
            methods,
            vec![
                (ConsentMethod::Operator, true),
                (ConsentMethod::Operator, false),
                (ConsentMethod::FirstInbound, true),
            ]
        );
        // The page's list: one row per lead, its latest event and its status now.
        let recent = s.recent_consent(10).await.unwrap();
        assert_eq!(recent.len(), 1);
        assert!(!recent[0].opted_out && recent[0].latest.grants);
        assert_eq!(recent[0].latest.method, ConsentMethod::Operator);
        let all = s.consent_events_since(revoked.at).await.unwrap();
        assert_eq!(all.len(), 2, "the revoke and the restore, oldest first");
        assert!(!all[0].grants && all[1].grants);
    }
}
