//! The webhook's durable intake and its fallbacks (RabbitMQ's inbound queue, the local
//! journal), chosen by role and settings.
//!
//! Must not: take a webhook itself (`crate::inbound` does); this only picks what backs it.

use std::sync::Arc;

use actors::alert_router::AlertHandle;
use anyhow::Context;

use crate::config::{JournalSetting, Settings};
use crate::inbound::journal::Journal;
use crate::inbound::rabbit::RabbitFallback;
use crate::inbound::{InboundFallback, InboundIntake};
use crate::queue::{RabbitQueue, WorkQueue};
use crate::role::Role;
use crate::store::SqlStore;

/// The webhook's durable intake and its fallbacks, in the order they are tried: RabbitMQ's
/// inbound queue when the work queue is RabbitMQ, then the local journal when this role
/// keeps one (`INBOUND_JOURNAL_PATH`; by default only `all` without RabbitMQ, whose one
/// process both writes and replays it).
pub(super) fn build_intake(
    settings: &Settings,
    role: Role,
    store: &SqlStore,
    queue: &Arc<dyn WorkQueue>,
    rabbit: Option<&Arc<RabbitQueue>>,
    alerts: &AlertHandle,
) -> anyhow::Result<(Arc<InboundIntake>, Option<Arc<Journal>>)> {
    let mut fallbacks: Vec<Arc<dyn InboundFallback>> = Vec::new();
    if let Some(rabbit) = rabbit {
        fallbacks.push(Arc::new(RabbitFallback::new(rabbit.clone())));
    }
    let journal_path = match &settings.inbound_journal {
        JournalSetting::Off => None,
        JournalSetting::Path(p) => Some(p.clone()),
        JournalSetting::Default if role == Role::All && rabbit.is_none() => {
            Some(JournalSetting::DEFAULT_FILE.into())
        }
        JournalSetting::Default => None,
    };
    let journal = match journal_path {
        Some(path) => {
            let journal = Arc::new(
                Journal::open(&path).context("INBOUND_JOURNAL_PATH: the inbound journal")?,
            );
            fallbacks.push(journal.clone());
            Some(journal)
        }
        None => None,
    };
    let intake = Arc::new(
        InboundIntake::new(
            store.clone(),
            queue.clone(),
            fallbacks,
            alerts.clone(),
            settings.webhook_alert_every,
        )
        .with_help_reply(settings.help_reply.clone())
        .with_opt_out_confirmation(settings.opt_out_confirmation.clone()),
    );
    if role.serves_webhook() {
        let names = intake.fallback_names();
        if names.is_empty() {
            tracing::warn!(
                "no inbound fallback: while the store is down, webhooks are answered 503 (and Twilio does not retry a 5xx by default)"
            );
        } else {
            tracing::info!(fallbacks = ?names, "inbound fallbacks, in order, for when the store cannot take a webhook");
        }
    }
    Ok((intake, journal))
}
