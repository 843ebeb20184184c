//! Replies the service owes by rule rather than by a turn (issue 15: the HELP answer):
//! queued in the outbox as a reply row like any other, so the lead's actor sends it with
//! the outbox's claim (once), after its last opt-out check.
//!
//! The one opt-out confirmation too: [`OPT_OUT_CONFIRMATION_PROVIDER`] is exempt from the
//! opt-out check of `claim_send`, and at most one is waiting at a time per lead.
//!
//! Owns: the inserts. Must not: send, or decide when a rule applies (the intake does).

use actors::ports::{LeadId, StoreError};

use super::{Pool, SqlStore, now, store_err};

/// The provider of a HELP answer: the outbox and `/ops` name it; it arms no followup.
pub const HELP_PROVIDER: &str = "help";
/// The provider of the one opt-out confirmation: the only reply `claim_send` lets reach an
/// opted-out lead (the rule allows one confirmation), and it arms no followup.
pub const OPT_OUT_CONFIRMATION_PROVIDER: &str = "opt_out_confirmation";

impl SqlStore {
    /// Queues `body` to `lead` from `provider`; returns the reply's id.
    pub async fn queue_auto_reply(
        &self,
        lead: &LeadId,
        body: &str,
        provider: &str,
    ) -> Result<i64, StoreError> {
        let at = now();
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 VALUES ($1, 'outbound', $2, 'queued', $3, $4, $5) RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(provider)
            .bind(at)
            .bind(at)
            .fetch_one(pool)
            .await
            .map_err(store_err("queue auto reply"))
        })
    }

    /// Queues the opt-out confirmation unless one is already waiting to go (two
    /// revocations at once confirm once). `None`: one was waiting.
    pub async fn queue_opt_out_confirmation(
        &self,
        lead: &LeadId,
        body: &str,
    ) -> Result<Option<i64>, StoreError> {
        let at = now();
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "INSERT INTO messages (lead_phone, direction, body, state, provider, created_at, updated_at)
                 SELECT $1, 'outbound', $2, 'queued', $3, $4, $5
                 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE lead_phone = $1 AND provider = $3
                                   AND state IN ('queued', 'sending'))
                 RETURNING id",
            )
            .bind(lead.as_str())
            .bind(body)
            .bind(OPT_OUT_CONFIRMATION_PROVIDER)
            .bind(at)
            .bind(at)
            .fetch_optional(pool)
            .await
            .map_err(store_err("queue opt-out confirmation"))
        })
    }
}
