//! Who the lead is, on every alert about one: the seed's typed events carry `client_id`,
//! phone and name. An alert raised with a lead but without its identity gets what the
//! store knows (`leads.client_id`, `leads.name`: the CRM text log records what Follow Up
//! Boss says) on its way to the Discord sink.
//!
//! Owns: the lookup, its bound and a short cache. Must not: delay or lose an alert — the
//! lookup waits at most [`LOOKUP_WAIT`], is skipped while the spool has found the store
//! down, and any failure delivers the alert as it was raised. Must not put a name in the
//! log (only the Discord sink is wrapped; names are the lead's data).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::alert_router::{Alert, AlertError, AlertSink};
use actors::ports::LeadId;
use async_trait::async_trait;
use dashmap::DashMap;

use crate::channels::discord::sender::DiscordInbox;
use crate::store::{LeadIdentity, SqlStore};

/// Longest an alert waits for its lead's identity.
pub const LOOKUP_WAIT: Duration = Duration::from_millis(300);
/// How long a known identity is reused: one turn raises several alerts about one lead.
const CACHE_FOR: Duration = Duration::from_secs(60);
/// Most leads cached; past it the cache starts over (memory stays bounded).
const CACHE_MAX: usize = 10_000;

pub struct IdentitySink {
    inner: Arc<dyn AlertSink>,
    store: SqlStore,
    inbox: Arc<DiscordInbox>,
    cache: DashMap<LeadId, (LeadIdentity, Instant)>,
}

impl IdentitySink {
    pub fn wrap(
        inner: Arc<dyn AlertSink>,
        store: SqlStore,
        inbox: Arc<DiscordInbox>,
    ) -> Arc<dyn AlertSink> {
        Arc::new(Self {
            inner,
            store,
            inbox,
            cache: DashMap::new(),
        })
    }

    async fn identity(&self, lead: &LeadId) -> Option<LeadIdentity> {
        if let Some(hit) = self.cache.get(lead)
            && hit.1.elapsed() < CACHE_FOR
        {
            return Some(hit.0.clone());
        }
        if self.inbox.store_down() {
            return None;
        }
        let found = tokio::time::timeout(LOOKUP_WAIT, self.store.lead_identity(lead)).await;
        match found {
            Ok(Ok(identity)) => {
                // Nothing known is not kept: the CRM may name the lead a second later, and
                // the next alert should carry it.
                if identity == LeadIdentity::default() {
                    return None;
                }
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache
                    .insert(lead.clone(), (identity.clone(), Instant::now()));
                Some(identity)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "lead identity unavailable; alert sent without it");
                None
            }
            Err(_) => None,
        }
    }
}

/// `alert` with the parts of `identity` it did not carry.
pub fn with_identity(alert: &Alert, identity: LeadIdentity) -> Alert {
    let mut a = alert.clone();
    if a.client_id.is_none() {
        a.client_id = identity.client_id;
    }
    if a.name.is_none() {
        a.name = identity.name;
    }
    a
}

#[async_trait]
impl AlertSink for IdentitySink {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError> {
        let known = alert.client_id.is_some() && alert.name.is_some();
        let Some(lead) = alert.lead.as_ref().filter(|_| !known) else {
            return self.inner.deliver(alert).await;
        };
        match self.identity(lead).await {
            Some(identity) => self.inner.deliver(&with_identity(alert, identity)).await,
            None => self.inner.deliver(alert).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use actors::alert_router::AlertKind;

    use super::*;

    #[test]
    fn what_the_raiser_knew_wins_and_the_rest_is_filled_in() {
        let raised = Alert::event("message_received", "hi")
            .for_lead(&LeadId::new("+13125550123"))
            .with_identity(None, Some("Dana".into()));
        let filled = with_identity(
            &raised,
            LeadIdentity {
                client_id: Some("42".into()),
                name: Some("Dana Reyes".into()),
            },
        );
        assert_eq!(filled.client_id.as_deref(), Some("42"));
        assert_eq!(filled.name.as_deref(), Some("Dana"));
        assert_eq!(filled.kind, AlertKind::Event);
        assert_eq!(filled.text, "hi");
    }
}
