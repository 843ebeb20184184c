//! Who a lead is, where known: `leads.client_id` and `leads.name` (migration 0097), for the
//! typed events the seed's alerts carry (`client_id`, phone, name).
//!
//! Owns: reading and recording them. Must not: decide where they come from (the CRM text
//! log records what Follow Up Boss says) or block an alert on them (the identity sink in
//! `crate::channels::identity` bounds its wait).

use actors::ports::{LeadId, StoreError};
use sqlx::Row;

use super::{Pool, SqlStore, store_err};

/// What the store knows about who a lead is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeadIdentity {
    pub client_id: Option<String>,
    pub name: Option<String>,
}

impl SqlStore {
    /// The lead's identity; empty for a lead the store has no row or nothing known for.
    pub async fn lead_identity(&self, lead: &LeadId) -> Result<LeadIdentity, StoreError> {
        with_pool!(reader of self, pool => {
            let row = sqlx::query("SELECT client_id, name FROM leads WHERE phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("lead identity"))?;
            Ok(row.map_or_else(LeadIdentity::default, |r| LeadIdentity {
                client_id: r.get(0),
                name: r.get(1),
            }))
        })
    }

    /// Records who the lead is; a part given as `None` keeps what was known. Returns true
    /// when anything changed (so callers can log a first identification once).
    pub async fn record_lead_identity(
        &self,
        lead: &LeadId,
        identity: &LeadIdentity,
    ) -> Result<bool, StoreError> {
        let name = identity
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        with_pool!(self, pool => {
            let done = sqlx::query(
                "UPDATE leads SET client_id = COALESCE($2, client_id), name = COALESCE($3, name)
                 WHERE phone = $1
                   AND (client_id IS DISTINCT FROM COALESCE($2, client_id)
                        OR name IS DISTINCT FROM COALESCE($3, name))",
            )
            .bind(lead.as_str())
            .bind(identity.client_id.as_deref())
            .bind(name)
            .execute(pool)
            .await
            .map_err(store_err("record lead identity"))?;
            Ok(done.rows_affected() > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{InboundKind, NewInbound, fresh_test_database_url};

    #[tokio::test]
    async fn identity_is_recorded_kept_per_part_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550123");
        assert_eq!(
            store.lead_identity(&lead).await.unwrap(),
            LeadIdentity::default()
        );
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM00000000000000000000000000000001",
                    from: &lead,
                    body: "hi",
                    synthetic: false,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
        let full = LeadIdentity {
            client_id: Some("42".into()),
            name: Some("Dana Reyes".into()),
        };
        assert!(store.record_lead_identity(&lead, &full).await.unwrap());
        assert!(
            !store.record_lead_identity(&lead, &full).await.unwrap(),
            "the same identity again changes nothing"
        );
        let id_only = LeadIdentity {
            client_id: Some("43".into()),
            name: None,
        };
        assert!(store.record_lead_identity(&lead, &id_only).await.unwrap());
        assert_eq!(
            store.lead_identity(&lead).await.unwrap(),
            LeadIdentity {
                client_id: Some("43".into()),
                name: Some("Dana Reyes".into()),
            },
            "a part not given keeps what was known"
        );
    }
}
