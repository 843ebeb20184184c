//! The brain's `record_opt_out`, the adapter side: a revocation the model judged (words the
//! deterministic phrase set missed) takes the same effect as one the webhook saw — the lead
//! opted out with its ledger event and followups cancelled (`SqlStore::record_judged_revocation`),
//! and the one confirmation queued, which the lead's actor sends on its next turn.
//!
//! Owns: that order and the confirmation's text (`OPT_OUT_CONFIRMATION`, none with Twilio's
//! Advanced Opt-Out). Must not: decide what is a revocation (the model and
//! `actors::revocation` do) or send anything itself.

use actors::brain::tools::JudgedRevocations;
use actors::ports::{LeadId, StoreError};
use async_trait::async_trait;

use crate::store::SqlStore;

pub struct StoreRevocations {
    pub store: SqlStore,
    /// `None`: Twilio's Advanced Opt-Out confirms for us.
    pub confirmation: Option<String>,
}

#[async_trait]
impl JudgedRevocations for StoreRevocations {
    async fn revoke(&self, lead: &LeadId, words: &str) -> Result<bool, StoreError> {
        let newly = self.store.record_judged_revocation(lead, words).await?;
        if newly && let Some(text) = &self.confirmation {
            // The opt-out stands without it: a failure costs only the confirmation.
            if let Err(e) = self.store.queue_opt_out_confirmation(lead, text).await {
                tracing::warn!(lead = %lead.log(), error = %e, "opt-out confirmation not queued");
            }
        }
        Ok(newly)
    }
}
