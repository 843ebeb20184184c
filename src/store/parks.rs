//! The `lead_parks` table: the SQL side of [`actors::park::ParkStore`].
//!
//! Owns: one row per lead (its last park, replaced by the next), whether it is in force at
//! a moment (`unparked_at IS NULL AND expires_at > now` — a park expires by itself, no job
//! clears it), the end of the last park (the reply caps count from it), and the count of a
//! lead's replies since a moment — those this service wrote (every one names its
//! `provider`: a model, `followup`, `hitl_holding`…), not an operator's own texts to a
//! lead they took over (a person is not a reply loop), not imported history
//! (`SqlStore::import_history` stores old conversations with no provider and the import's
//! time, which would otherwise park every lead with a long history the moment it texts).
//! Must not: decide when to park (`actors::park` does) or touch the lead's messages: a
//! parked lead's messages stay pending, for /ops to show and the next turn to answer.

use actors::park::{Park, ParkReason, ParkState, ParkStore};
use actors::ports::{LeadId, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

fn park_of(
    lead: String,
    reason: String,
    parked_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Park, StoreError> {
    Ok(Park {
        lead: LeadId(lead),
        reason: ParkReason::parse(&reason)
            .ok_or_else(|| StoreError::new(format!("lead_parks: unknown reason {reason:?}")))?,
        parked_at,
        expires_at,
    })
}

#[async_trait]
impl ParkStore for SqlStore {
    async fn park(&self, park: &Park) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO lead_parks (lead_phone, reason, parked_at, expires_at, unparked_at)
                 VALUES ($1, $2, $3, $4, NULL)
                 ON CONFLICT (lead_phone) DO UPDATE SET reason = excluded.reason,
                     parked_at = excluded.parked_at, expires_at = excluded.expires_at,
                     unparked_at = NULL",
            )
            .bind(park.lead.as_str())
            .bind(park.reason.label())
            .bind(park.parked_at)
            .bind(park.expires_at)
            .execute(pool)
            .await
            .map_err(store_err("park"))?;
            Ok(())
        })
    }

    async fn park_state(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<ParkState, StoreError> {
        with_pool!(self, pool => {
            let synthetic: Option<i64> =
                sqlx::query_scalar("SELECT synthetic FROM leads WHERE phone = $1")
                    .bind(lead.as_str())
                    .fetch_optional(pool)
                    .await
                    .map_err(store_err("park_state"))?;
            let exempt = synthetic.unwrap_or(0) != 0;
            let row = sqlx::query(
                "SELECT reason, parked_at, expires_at, unparked_at FROM lead_parks WHERE lead_phone = $1",
            )
            .bind(lead.as_str())
            .fetch_optional(pool)
            .await
            .map_err(store_err("park_state"))?;
            let Some(r) = row else {
                return Ok(ParkState { exempt, ..ParkState::default() });
            };
            let expires_at: DateTime<Utc> = r.get("expires_at");
            let unparked_at: Option<DateTime<Utc>> = r.get("unparked_at");
            Ok(match unparked_at {
                Some(at) => ParkState {
                    active: None,
                    released_at: Some(at.min(expires_at)),
                    exempt,
                },
                None if expires_at <= now => ParkState {
                    active: None,
                    released_at: Some(expires_at),
                    exempt,
                },
                None => ParkState {
                    active: Some(park_of(
                        lead.as_str().to_string(),
                        r.get("reason"),
                        r.get("parked_at"),
                        expires_at,
                    )?),
                    released_at: None,
                    exempt,
                },
            })
        })
    }

    async fn unpark(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<Option<Park>, StoreError> {
        with_pool!(self, pool => {
            // One statement: of two unparks at once, one ends the park and the other finds
            // none in force.
            let row = sqlx::query(
                "UPDATE lead_parks SET unparked_at = $2
                 WHERE lead_phone = $1 AND unparked_at IS NULL AND expires_at > $2
                 RETURNING reason, parked_at, expires_at",
            )
            .bind(lead.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await
            .map_err(store_err("unpark"))?;
            row.map(|r| {
                park_of(
                    lead.as_str().to_string(),
                    r.get("reason"),
                    r.get("parked_at"),
                    r.get("expires_at"),
                )
            })
            .transpose()
        })
    }

    async fn parked(&self, now: DateTime<Utc>) -> Result<Vec<Park>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT lead_phone, reason, parked_at, expires_at FROM lead_parks
                 WHERE unparked_at IS NULL AND expires_at > $1
                 ORDER BY parked_at, lead_phone",
            )
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(store_err("parked"))?;
            rows.into_iter()
                .map(|r| {
                    park_of(
                        r.get("lead_phone"),
                        r.get("reason"),
                        r.get("parked_at"),
                        r.get("expires_at"),
                    )
                })
                .collect()
        })
    }

    async fn replies_since(&self, lead: &LeadId, since: DateTime<Utc>) -> Result<u32, StoreError> {
        with_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages
                 WHERE lead_phone = $1 AND direction = 'outbound' AND created_at >= $2
                   AND state IN ('queued', 'sending', 'sent', 'in_doubt')
                   AND provider IS NOT NULL AND provider <> $3",
            )
            .bind(lead.as_str())
            .bind(since)
            .bind(super::OPERATOR_PROVIDER)
            .fetch_one(pool)
            .await
            .map_err(store_err("replies_since"))?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InboundKind, NewInbound, fresh_test_database_url};
    use actors::ports::Store;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_park_is_in_force_until_it_expires_or_is_unparked_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550100");
        let t0 = at("2026-12-01T10:00:00Z");
        assert_eq!(
            store.park_state(&lead, t0).await.unwrap(),
            ParkState::default()
        );
        let park = Park {
            lead: lead.clone(),
            reason: ParkReason::ReplyCapHour,
            parked_at: t0,
            expires_at: at("2026-12-02T10:00:00Z"),
        };
        store.park(&park).await.unwrap();
        let noon = at("2026-12-01T12:00:00Z");
        assert_eq!(
            store.park_state(&lead, noon).await.unwrap().active,
            Some(park.clone())
        );
        assert_eq!(store.parked(noon).await.unwrap(), vec![park.clone()]);
        // Expired by itself.
        let later = at("2026-12-02T10:00:01Z");
        let state = store.park_state(&lead, later).await.unwrap();
        assert_eq!(state.active, None);
        assert_eq!(state.released_at, Some(park.expires_at));
        assert!(store.parked(later).await.unwrap().is_empty());
        assert_eq!(
            store.unpark(&lead, later).await.unwrap(),
            None,
            "nothing in force"
        );
        // A new park replaces the old; an unpark ends it, once.
        let again = Park {
            reason: ParkReason::Restarts,
            parked_at: later,
            expires_at: at("2026-12-03T10:00:00Z"),
            ..park
        };
        store.park(&again).await.unwrap();
        assert_eq!(
            store.park_state(&lead, later).await.unwrap().active,
            Some(again.clone())
        );
        let end = at("2026-12-02T11:00:00Z");
        assert_eq!(store.unpark(&lead, end).await.unwrap(), Some(again));
        assert_eq!(store.unpark(&lead, end).await.unwrap(), None);
        let state = store.park_state(&lead, end).await.unwrap();
        assert_eq!(
            state,
            ParkState {
                active: None,
                released_at: Some(end),
                exempt: false
            }
        );
        // Our own probe's number is exempt from the caps.
        let probe = LeadId::new("+13125550199");
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM9",
                    from: &probe,
                    body: "synthetic",
                    synthetic: true,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
        assert!(store.park_state(&probe, end).await.unwrap().exempt);
    }

    #[tokio::test]
    async fn replies_are_counted_since_a_moment_and_inbound_or_suppressed_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550101");
        let before = Utc::now() - chrono::Duration::seconds(5);
        for (n, sid) in ["SM1", "SM2", "SM3"].iter().enumerate() {
            store
                .accept_inbound(
                    NewInbound {
                        message_sid: sid,
                        from: &lead,
                        body: "hi",
                        synthetic: false,
                    },
                    InboundKind::Conversation,
                )
                .await
                .unwrap();
            let work = store.lead_work(&lead).await.unwrap();
            let ids: Vec<i64> = work.pending.iter().map(|p| p.id).collect();
            let reply = store
                .commit_reply(&lead, &ids, &format!("reply {n}"), "test")
                .await
                .unwrap()
                .unwrap();
            if n == 2 {
                // A STOP before the send: the reply is suppressed, and not counted.
                store
                    .accept_inbound(
                        NewInbound {
                            message_sid: "SM4",
                            from: &lead,
                            body: "STOP",
                            synthetic: false,
                        },
                        InboundKind::OptOut,
                    )
                    .await
                    .unwrap();
                assert!(matches!(
                    store.claim_send(reply).await.unwrap(),
                    actors::ports::Claim::Suppressed
                ));
            }
        }
        assert_eq!(store.replies_since(&lead, before).await.unwrap(), 2);
        // Imported history is stamped with the import's time but is not ours to cap.
        let history: Vec<actors::ports::ChatLine> = (0..50)
            .map(|i| actors::ports::ChatLine {
                role: actors::ports::Role::Agent,
                text: format!("old reply {i}"),
            })
            .collect();
        store.import_history(&lead, &history).await.unwrap();
        assert_eq!(store.replies_since(&lead, before).await.unwrap(), 2);
        let after = Utc::now() + chrono::Duration::seconds(5);
        assert_eq!(store.replies_since(&lead, after).await.unwrap(), 0);
        assert_eq!(
            store
                .replies_since(&LeadId::new("+13125550102"), before)
                .await
                .unwrap(),
            0
        );
    }
}
