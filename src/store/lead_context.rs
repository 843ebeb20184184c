//! The brain's per-lead context on `SqlStore` (table `lead_context`, migrations 0055):
//! implements [`LeadContextStore`].
//!
//! Owns: reading and upserting the context document. Must not: interpret it beyond serde —
//! the brain owns its meaning.

use actors::brain::context::{LeadContext, LeadContextStore};
use actors::ports::{LeadId, StoreError};
use async_trait::async_trait;

use super::{Pool, SqlStore, now, store_err};

#[async_trait]
impl LeadContextStore for SqlStore {
    async fn load_context(&self, lead: &LeadId) -> Result<LeadContext, StoreError> {
        let text: Option<String> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT context FROM lead_context WHERE lead_phone = $1")
                .bind(lead.as_str())
                .fetch_optional(pool)
                .await
                .map_err(store_err("load lead context"))?
        });
        match text {
            None => Ok(LeadContext::default()),
            // A document this version cannot read must not stop the lead's turns: start
            // over (and say so) rather than fail every turn.
            Some(t) => Ok(serde_json::from_str(&t).unwrap_or_else(|e| {
                tracing::warn!(lead = %lead.log(), error = %e, "unreadable lead context; starting empty");
                LeadContext::default()
            })),
        }
    }

    async fn save_context(&self, lead: &LeadId, context: &LeadContext) -> Result<(), StoreError> {
        let json = serde_json::to_string(context)
            .map_err(|e| StoreError::with_source(format!("encode lead context: {e}"), e))?;
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO lead_context (lead_phone, context, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (lead_phone) DO UPDATE SET context = excluded.context,
                     updated_at = excluded.updated_at",
            )
            .bind(lead.as_str())
            .bind(json)
            .bind(now())
            .execute(pool)
            .await
            .map_err(store_err("save lead context"))?;
        });
        Ok(())
    }

    /// Ends the lead's lifecycle (`leads.dead_at`, its follow-up timer dropped: the
    /// scheduler's `mark_lead_dead`) and records the reason in the context too, so the
    /// brain's prompt knows it. Marking an already dead lead again changes nothing.
    async fn is_synthetic(&self, lead: &LeadId) -> Result<bool, StoreError> {
        SqlStore::is_synthetic(self, lead).await
    }

    async fn mark_dead(&self, lead: &LeadId, reason: &str) -> Result<(), StoreError> {
        self.mark_lead_dead(lead, reason).await?;
        let mut context = self.load_context(lead).await?;
        context.dead_reason = Some(reason.to_string());
        self.save_context(lead, &context).await
    }
}

#[cfg(test)]
mod tests {
    use actors::brain::context::Requirements;

    use super::*;
    use crate::store::fresh_test_database_url;

    #[tokio::test]
    async fn a_context_is_saved_replaced_and_read_back_and_mark_dead_ends_the_lead() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&fresh_test_database_url(dir.path()).await)
            .await
            .unwrap();
        let lead = LeadId::new("+13125550123");
        store
            .accept_inbound(
                crate::store::NewInbound {
                    message_sid: "SM00000000000000000000000000000001",
                    from: &lead,
                    body: "hi",
                    synthetic: false,
                },
                crate::store::InboundKind::Conversation,
            )
            .await
            .unwrap();
        assert_eq!(
            store.load_context(&lead).await.unwrap(),
            LeadContext::default()
        );
        let mut ctx = LeadContext {
            requirements: Requirements {
                bedrooms: Some(2),
                ..Default::default()
            },
            ..Default::default()
        };
        store.save_context(&lead, &ctx).await.unwrap();
        ctx.stage = Some("qualified".into());
        store.save_context(&lead, &ctx).await.unwrap();
        store.mark_dead(&lead, "found a place").await.unwrap();
        let back = store.load_context(&lead).await.unwrap();
        assert_eq!(back.requirements.bedrooms, Some(2));
        assert_eq!(back.stage.as_deref(), Some("qualified"));
        assert_eq!(back.dead_reason.as_deref(), Some("found a place"));
        assert_eq!(
            store.lead_dead(&lead).await.unwrap().as_deref(),
            Some("found a place"),
            "the lead lifecycle ends too (no more follow-ups)"
        );
    }
}
