//! The outbox sweep's in-doubt ledger on `SqlStore` (table `in_doubt_checks`, migrations
//! 0071): implements [`InDoubtLedger`].
//!
//! Owns: reading in-doubt replies with the checks made of them, and the compare-and-set
//! writes that record a check or settle a reply. The episode of a reply is its
//! `messages.updated_at` while it is `in_doubt` (nothing else writes an in-doubt row); the
//! version is the number of checks. Must not: decide what a check means (`actors::outbox`
//! does), or hold a transaction across the provider call (the sweep asks Twilio between
//! reading and writing; the compare makes that safe).

use std::collections::HashSet;

use actors::ports::{
    CheckResult, InDoubtChecks, InDoubtLedger, InDoubtReply, LeadId, SendOutcome, StoreError,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{ARM_FOLLOWUP_SQL, Pool, SqlStore, now, store_err};

const IN_DOUBT_SQL: &str = "SELECT m.id, m.lead_phone, m.body, m.created_at, m.updated_at,
        c.since, c.checks, c.absent, c.last_checked_at, c.last_result,
        c.alerted_ambiguous, c.alerted_unreachable
 FROM messages m LEFT JOIN in_doubt_checks c ON c.message_id = m.id
 WHERE m.state = 'in_doubt' ORDER BY m.id";

/// Inserts or replaces the row, only while the reply is in doubt in this episode (`$2`) and
/// only over the version read (`$9` checks), or over a row of an earlier episode.
const RECORD_CHECK_SQL: &str = "INSERT INTO in_doubt_checks (message_id, since, checks, absent,
        last_checked_at, last_result, alerted_ambiguous, alerted_unreachable)
 SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM messages
 WHERE id = $1 AND state = 'in_doubt' AND updated_at = $2
 ON CONFLICT (message_id) DO UPDATE SET since = excluded.since, checks = excluded.checks,
    absent = excluded.absent, last_checked_at = excluded.last_checked_at,
    last_result = excluded.last_result, alerted_ambiguous = excluded.alerted_ambiguous,
    alerted_unreachable = excluded.alerted_unreachable
 WHERE (in_doubt_checks.since = excluded.since AND in_doubt_checks.checks = $9)
    OR in_doubt_checks.since <> excluded.since";

#[async_trait]
impl InDoubtLedger for SqlStore {
    async fn in_doubt_replies(&self) -> Result<Vec<InDoubtReply>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(IN_DOUBT_SQL)
                .fetch_all(pool)
                .await
                .map_err(store_err("in-doubt replies"))?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let since: DateTime<Utc> = r.get(4);
                    let episode: Option<DateTime<Utc>> = r.get(5);
                    // A row of an earlier episode is not this one's: no checks yet.
                    let checks = if episode == Some(since) {
                        InDoubtChecks {
                            made: r.get::<i64, _>(6) as u32,
                            absent: r.get::<i64, _>(7) as u32,
                            last_checked_at: r.get(8),
                            last_result: r
                                .get::<Option<String>, _>(9)
                                .as_deref()
                                .and_then(CheckResult::parse),
                            alerted_ambiguous: r.get(10),
                            alerted_unreachable: r.get(11),
                        }
                    } else {
                        InDoubtChecks::default()
                    };
                    InDoubtReply {
                        id: r.get(0),
                        lead: LeadId(r.get(1)),
                        body: r.get(2),
                        created_at: r.get(3),
                        in_doubt_since: since,
                        checks,
                    }
                })
                .collect())
        })
    }

    async fn record_in_doubt_check(
        &self,
        reply: &InDoubtReply,
        checks: &InDoubtChecks,
    ) -> Result<bool, StoreError> {
        let Some(last_checked_at) = checks.last_checked_at else {
            return Err(StoreError::new("a recorded check needs its time"));
        };
        let result = checks.last_result.unwrap_or(CheckResult::Unreachable);
        with_pool!(self, pool => {
            let written = sqlx::query(RECORD_CHECK_SQL)
                .bind(reply.id)
                .bind(reply.in_doubt_since)
                .bind(i64::from(checks.made))
                .bind(i64::from(checks.absent))
                .bind(last_checked_at)
                .bind(result.as_str())
                .bind(checks.alerted_ambiguous)
                .bind(checks.alerted_unreachable)
                .bind(i64::from(reply.checks.made))
                .execute(pool)
                .await
                .map_err(store_err("record in-doubt check"))?
                .rows_affected();
            Ok(written == 1)
        })
    }

    async fn settle_in_doubt(
        &self,
        reply: &InDoubtReply,
        outcome: &SendOutcome,
    ) -> Result<bool, StoreError> {
        let (sid, detail) = match outcome {
            SendOutcome::Sent { provider_sid } => (Some(provider_sid.as_str()), None),
            SendOutcome::Suppressed => (None, Some("lead opted out")),
            SendOutcome::Failed { reason }
            | SendOutcome::InDoubt { reason }
            | SendOutcome::Requeued { reason } => (None, Some(reason.as_str())),
        };
        with_pool!(self, pool => {
            let at = now();
            let mut tx = pool.begin().await.map_err(store_err("begin"))?;
            // The checks go first: deleting the row locks it, so a concurrent check or
            // settle waits for this transaction and then finds its version gone.
            let row: Option<(DateTime<Utc>, i64)> = sqlx::query_as(
                "DELETE FROM in_doubt_checks WHERE message_id = $1 RETURNING since, checks",
            )
            .bind(reply.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("forget in-doubt checks"))?;
            let stored_made = match row {
                Some((since, checks)) if since == reply.in_doubt_since => checks as u32,
                _ => 0,
            };
            if stored_made != reply.checks.made {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(false);
            }
            let settled = sqlx::query(
                "UPDATE messages SET state = $1, message_sid = COALESCE($2, message_sid),
                    detail = $3, updated_at = $4
                 WHERE id = $5 AND state = 'in_doubt' AND updated_at = $6
                 RETURNING lead_phone, provider",
            )
            .bind(outcome.state())
            .bind(sid)
            .bind(detail)
            .bind(at)
            .bind(reply.id)
            .bind(reply.in_doubt_since)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_err("settle in-doubt reply"))?;
            let Some(settled) = settled else {
                tx.rollback().await.map_err(store_err("rollback"))?;
                return Ok(false);
            };
            // Found sent: the reply went out, so its followup timer is armed as any sent
            // reply's is (`record_send`).
            if let (Some(after), SendOutcome::Sent { .. }) = (self.followup_first_after, outcome) {
                let provider: Option<String> = settled.get(1);
                if super::arms_followup(provider.as_deref()) {
                    sqlx::query(ARM_FOLLOWUP_SQL)
                        .bind(settled.get::<String, _>(0))
                        .bind(at + after)
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_err("arm followup"))?;
                }
            }
            tx.commit().await.map_err(store_err("commit in-doubt settle"))?;
            Ok(true)
        })
    }

    async fn recorded_provider_sids(&self, lead: &LeadId) -> Result<HashSet<String>, StoreError> {
        with_pool!(self, pool => {
            let sids: Vec<String> = sqlx::query_scalar(
                "SELECT message_sid FROM messages
                 WHERE lead_phone = $1 AND direction = 'outbound' AND message_sid IS NOT NULL",
            )
            .bind(lead.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_err("recorded provider sids"))?;
            Ok(sids.into_iter().collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use actors::ports::{Claim, Store};

    use super::*;
    use crate::store::{InboundKind, NewInbound, fresh_test_database_url};

    /// A store with one reply to `lead` left in doubt by an interrupted send.
    async fn in_doubt(lead: &LeadId) -> (SqlStore, tempfile::TempDir, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM00000000000000000000000000000001",
                    from: lead,
                    body: "Hi",
                    synthetic: false,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
        let pending = store.lead_work(lead).await.unwrap().pending[0].id;
        let reply = store
            .commit_reply(lead, &[pending], "Hello", "rules")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.claim_send(reply).await.unwrap(), Claim::Send);
        assert_eq!(store.flag_stale_sends(Utc::now()).await.unwrap().len(), 1);
        (store, dir, reply)
    }

    fn absent_check(made: u32, absent: u32) -> InDoubtChecks {
        InDoubtChecks {
            made,
            absent,
            last_checked_at: Some(Utc::now()),
            last_result: Some(CheckResult::Absent),
            ..InDoubtChecks::default()
        }
    }

    #[tokio::test]
    async fn checks_are_kept_across_reads_and_a_stale_version_writes_nothing() {
        let lead = LeadId::new("+13125550140");
        let (s, _d, reply) = in_doubt(&lead).await;
        let first = s.in_doubt_replies().await.unwrap().remove(0);
        assert_eq!((first.id, first.body.as_str()), (reply, "Hello"));
        assert_eq!(first.checks, InDoubtChecks::default());
        let once = absent_check(1, 1);
        assert!(s.record_in_doubt_check(&first, &once).await.unwrap());
        assert!(
            !s.record_in_doubt_check(&first, &once).await.unwrap(),
            "read before the write: counts for nothing"
        );
        let again = s.in_doubt_replies().await.unwrap().remove(0);
        assert_eq!(again.checks.made, 1);
        assert_eq!(again.checks.absent, 1);
        assert_eq!(again.checks.last_result, Some(CheckResult::Absent));
        assert_eq!(again.in_doubt_since, first.in_doubt_since);
        let requeue = SendOutcome::Requeued {
            reason: "absent twice".into(),
        };
        assert!(!s.settle_in_doubt(&first, &requeue).await.unwrap());
        assert!(s.settle_in_doubt(&again, &requeue).await.unwrap());
        assert!(
            !s.settle_in_doubt(&again, &requeue).await.unwrap(),
            "settled once"
        );
        assert!(s.in_doubt_replies().await.unwrap().is_empty());
        assert_eq!(s.lead_work(&lead).await.unwrap().unsent.len(), 1);
    }

    #[tokio::test]
    async fn a_reply_in_doubt_again_starts_with_no_checks() {
        let lead = LeadId::new("+13125550141");
        let (s, _d, reply) = in_doubt(&lead).await;
        let first = s.in_doubt_replies().await.unwrap().remove(0);
        assert!(
            s.record_in_doubt_check(&first, &absent_check(1, 1))
                .await
                .unwrap()
        );
        // Another path out of doubt that leaves the row behind (none does today; the ledger
        // must not depend on it): the reply is sent again and is in doubt again.
        s.record_send(
            reply,
            &SendOutcome::Requeued {
                reason: "test".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(s.claim_send(reply).await.unwrap(), Claim::Send);
        s.record_send(
            reply,
            &SendOutcome::InDoubt {
                reason: "timed out".into(),
            },
        )
        .await
        .unwrap();
        let second = s.in_doubt_replies().await.unwrap().remove(0);
        assert_ne!(second.in_doubt_since, first.in_doubt_since);
        assert_eq!(second.checks, InDoubtChecks::default(), "a new episode");
        assert!(
            s.record_in_doubt_check(&second, &absent_check(1, 1))
                .await
                .unwrap()
        );
        assert_eq!(s.in_doubt_replies().await.unwrap()[0].checks.absent, 1);
    }

    #[tokio::test]
    async fn found_sent_records_the_sid_which_then_accounts_for_the_listed_message() {
        let lead = LeadId::new("+13125550142");
        let (s, _d, _reply) = in_doubt(&lead).await;
        let r = s.in_doubt_replies().await.unwrap().remove(0);
        let sent = SendOutcome::Sent {
            provider_sid: "SM0000000000000000000000000000f001".into(),
        };
        assert!(s.settle_in_doubt(&r, &sent).await.unwrap());
        let conv = s.conversation(&lead, 10).await.unwrap();
        assert_eq!(conv[1].state, "sent");
        assert_eq!(
            s.recorded_provider_sids(&lead).await.unwrap(),
            HashSet::from(["SM0000000000000000000000000000f001".to_string()])
        );
    }
}
