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
