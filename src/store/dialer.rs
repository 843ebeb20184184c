//! The dialer hand-off ledger (`dialer_handoffs`, migration 0085) on either engine:
//! implements the actors' [`DialLedger`].
//!
//! Owns: the once-per-lead-per-day claim (the primary key is the claim) and the outcome.
//! Must not: post to the dialer (the actors' `DialerHandoff` does, after the claim).

use actors::dialer::DialLedger;
use actors::ports::{LeadId, StoreError};
use async_trait::async_trait;
use chrono::NaiveDate;

use super::{Pool, SqlStore, now, store_err};

impl SqlStore {
    /// (day, reason, outcome) of the lead's hand-offs, newest first: for tests and /ops.
    pub async fn dialer_handoffs(
        &self,
        lead: &LeadId,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT day, reason, outcome FROM dialer_handoffs WHERE lead_phone = $1 ORDER BY day DESC",
            )
            .bind(lead.as_str())
            .fetch_all(pool)
            .await
            .map_err(store_err("dialer hand-offs"))
        })
    }
}

#[async_trait]
impl DialLedger for SqlStore {
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        SqlStore::is_synthetic(self, lead).await
    }

    async fn lead_name(&self, lead: &LeadId) -> Result<Option<String>, StoreError> {
        Ok(self.lead_identity(lead).await?.name)
    }

    async fn is_opted_out(&self, lead: &LeadId) -> Result<bool, StoreError> {
        actors::ports::Store::is_opted_out(self, lead).await
    }

    async fn claim_dial(
        &self,
        lead: &LeadId,
        day: NaiveDate,
        reason: &str,
        summary: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool => {
            let n = sqlx::query(
                "INSERT INTO dialer_handoffs (lead_phone, day, reason, summary, claimed_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (lead_phone, day) DO NOTHING",
            )
            .bind(lead.as_str())
            .bind(day.to_string())
            .bind(reason)
            .bind(summary)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("claim dialer hand-off"))?
            .rows_affected();
            Ok(n == 1)
        })
    }

    async fn finish_dial(
        &self,
        lead: &LeadId,
        day: NaiveDate,
        outcome: &str,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE dialer_handoffs SET outcome = $1, finished_at = $2
                 WHERE lead_phone = $3 AND day = $4",
            )
            .bind(outcome)
            .bind(now())
            .bind(lead.as_str())
            .bind(day.to_string())
            .execute(pool)
            .await
            .map_err(store_err("record dialer outcome"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actors::dialer::{DialReason, DialerHandoff};
    use actors::ports::{Store, SystemClock};
    use testkit::fake_dialer::FakeDialer;

    use super::*;
    use crate::channels::dialer::HttpDialer;
    use crate::store::{InboundKind, NewInbound, fresh_test_database_url};

    #[tokio::test]
    async fn an_opted_out_lead_is_not_handed_to_the_dialer_and_its_day_is_not_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550177");
        store
            .accept_inbound(
                NewInbound {
                    message_sid: "SM1",
                    from: &lead,
                    body: "call me",
                    synthetic: false,
                },
                InboundKind::Conversation,
            )
            .await
            .unwrap();
        // An operator's revoke lands while the turn that read "call me" runs.
        store
            .record_operator_consent(&lead, false, "asked by phone not to be contacted")
            .await
            .unwrap()
            .unwrap();
        assert!(Store::is_opted_out(&store, &lead).await.unwrap());
        let dialer = FakeDialer::start().await;
        let (alerts, _sink) = actors::testing::test_alerts().await;
        let handoff = DialerHandoff::new(
            Arc::new(store.clone()),
            Arc::new(
                HttpDialer::new(&dialer.url, None, std::time::Duration::from_secs(5)).unwrap(),
            ),
            alerts,
            Arc::new(SystemClock),
        );
        let claimed = handoff
            .hand_off(&lead, DialReason::AskedForCall, "Asked to be called")
            .await
            .unwrap();
        assert!(!claimed);
        assert!(store.dialer_handoffs(&lead).await.unwrap().is_empty());
        // Restored: the same hand-off goes through.
        store
            .record_operator_consent(&lead, true, "called back, agreed to calls")
            .await
            .unwrap()
            .unwrap();
        assert!(
            handoff
                .hand_off(&lead, DialReason::AskedForCall, "Asked to be called")
                .await
                .unwrap()
        );
        actors::testing::wait_for(|| !dialer.requests().is_empty()).await;
        assert_eq!(dialer.requests().len(), 1);
    }
}
