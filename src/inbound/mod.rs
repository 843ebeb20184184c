//! The webhook's durable intake: where a verified inbound SMS goes so that a 200 always
//! means "this message will be answered".
//!
//! Owns: [`VerifiedInbound`] (what the webhook hands on once the signature and the form
//! are checked), the classification of carrier keywords against the lead's opt-out state,
//! and the order of durable paths — the store first; when it cannot take the message, a
//! fallback that keeps it until the store answers (RabbitMQ's `<AMQP_QUEUE>.inbound`, a
//! local fsynced journal, see [`journal`] and [`rabbit`]); only when none of them takes it
//! does the webhook answer 503. Also the wake-up that follows a stored message, deferred
//! and retried ([`wake`]) when the work queue cannot take it.
//!
//! Why not 503 and let Twilio retry: Twilio retries messaging webhooks only on connection
//! failures unless the URL's connection overrides say otherwise; a 5xx goes to the
//! Fallback URL, or nowhere (errors 11200/11217). A 503 during a database outage loses the
//! message. Dedup by `MessageSid` holds across every path: each ends in the store's
//! `ON CONFLICT (message_sid) DO NOTHING`.
//!
//! Must not: answer for a message no durable path has taken, decide anything about the
//! reply (the lead actor does), or lose a message it was given: a drain acknowledges a
//! fallback entry only after the store has committed it.

pub mod journal;
pub mod outage;
pub mod rabbit;
pub mod rules;
pub mod wake;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::keywords::{self, Keyword};
use actors::ports::{LeadId, Store, StoreError, WakeLead};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use actors::alert_router::AlertHandle;

use crate::queue::WorkQueue;
use crate::store::{Accepted, InboundKind, NewInbound, SqlStore};
use outage::OutageAlert;
use wake::DeferredWakes;

/// After the store failed a write, the webhook goes straight to the fallback for this long
/// before trying the store again: during an outage every store attempt waits out the pool's
/// acquire timeout (3 s), which a burst should not pay message by message.
const STORE_SUSPECT_FOR: Duration = Duration::from_secs(2);

/// An inbound SMS whose signature and form were checked: everything needed to store it,
/// now or later. Serialised as it is into the fallbacks, so its fields are a wire format:
/// add fields with `#[serde(default)]` only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedInbound {
    pub message_sid: String,
    /// The lead's number (`From`, trimmed).
    pub from: String,
    pub body: String,
    /// When the webhook took it: shown in logs when a drain writes it late.
    pub received_at: DateTime<Utc>,
    /// Sent by our own probe (`lead-agent watch`/`verify`): the lead is stored synthetic,
    /// left out of reports, followups and SLAs.
    #[serde(default)]
    pub synthetic: bool,
}

impl VerifiedInbound {
    pub fn lead(&self) -> LeadId {
        LeadId::new(self.from.clone())
    }
}

/// Where a verified message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Committed to the store (new or a duplicate).
    Stored(Accepted),
    /// Kept by a fallback (`"rabbitmq"`, `"journal"`); a drain stores it once the store
    /// answers.
    Kept(&'static str),
}

/// No durable path took the message: the webhook answers 503.
#[derive(Debug, thiserror::Error)]
#[error("no durable path for the message: store: {store}; {fallbacks}")]
pub struct NoDurablePath {
    pub store: String,
    pub fallbacks: String,
}

/// A place that keeps a verified message durably while the store cannot take it.
#[async_trait]
pub trait InboundFallback: Send + Sync + 'static {
    /// For logs, metrics and `/ready`.
    fn name(&self) -> &'static str;
    /// Returns once the message is durable there (a broker's confirm, an fsync).
    async fn keep(&self, msg: &VerifiedInbound) -> Result<(), String>;
    async fn is_ready(&self) -> bool;
}

/// The webhook's intake, shared by the webhook (in roles that take webhooks) and the
/// drains (which write fallback entries into the store).
pub struct InboundIntake {
    store: SqlStore,
    queue: Arc<dyn WorkQueue>,
    fallbacks: Vec<Arc<dyn InboundFallback>>,
    wakes: Arc<DeferredWakes>,
    store_suspect_until: Mutex<Option<Instant>>,
    /// `store_unavailable` / `store_recovered`: a survived outage is still alerted, by cause.
    store_outage: OutageAlert,
    /// `queue_unavailable` / `queue_recovered`, shared with the deferred wake-ups.
    queue_outage: Arc<OutageAlert>,
    /// The answer to HELP/INFO (`Settings::help_reply`); `None`: Twilio answers it.
    help_reply: Option<String>,
    /// The one confirmation of a plain-language revocation; `None`: not ours to send.
    opt_out_confirmation: Option<String>,
}

impl InboundIntake {
    /// `alert_every`: the pacing of the outage alerts (`WEBHOOK_ALERT_SECS`).
    pub fn new(
        store: SqlStore,
        queue: Arc<dyn WorkQueue>,
        fallbacks: Vec<Arc<dyn InboundFallback>>,
        alerts: AlertHandle,
        alert_every: Duration,
    ) -> Self {
        let queue_outage = Arc::new(OutageAlert::new(alerts.clone(), alert_every, "queue"));
        Self {
            wakes: Arc::new(DeferredWakes::new(queue.clone(), queue_outage.clone())),
            store,
            queue,
            fallbacks,
            store_suspect_until: Mutex::new(None),
            store_outage: OutageAlert::new(alerts, alert_every, "store"),
            queue_outage,
            help_reply: None,
            opt_out_confirmation: None,
        }
    }

    /// Confirms a revocation in plain words once with `text`; `None`: never.
    pub fn with_opt_out_confirmation(mut self, text: Option<String>) -> Self {
        self.opt_out_confirmation = text;
        self
    }

    /// Answers HELP/INFO with `text` (queued once per new HELP message, sent by the lead's
    /// actor); `None`: no answer of ours.
    pub fn with_help_reply(mut self, text: Option<String>) -> Self {
        self.help_reply = text;
        self
    }

    /// The fallbacks in the order they are tried, by name.
    pub fn fallback_names(&self) -> Vec<&'static str> {
        self.fallbacks.iter().map(|f| f.name()).collect()
    }

    /// The first fallback that is ready, if any: `/ready` of a web process stays green
    /// through a store outage while one is.
    pub async fn ready_fallback(&self) -> Option<&'static str> {
        for f in &self.fallbacks {
            if f.is_ready().await {
                return Some(f.name());
            }
        }
        None
    }

    /// Leads whose wake-up waits for the work queue to take it.
    pub fn deferred_wakes(&self) -> usize {
        self.wakes.len()
    }

    /// Retries deferred wake-ups until the process ends.
    pub fn spawn_wake_retry(&self) -> tokio::task::JoinHandle<()> {
        self.wakes.clone().spawn_retry()
    }

    /// The webhook's path: the store, else the first fallback that takes it.
    pub async fn accept(&self, msg: &VerifiedInbound) -> Result<Intake, NoDurablePath> {
        let store_error = if self.store_suspect() {
            "skipped: it failed a write moments ago".to_string()
        } else {
            match self.store_and_wake(msg).await {
                Ok(accepted) => return Ok(Intake::Stored(accepted)),
                Err(e) => {
                    self.mark_store_suspect();
                    tracing::warn!(sid = %msg.message_sid, error = %e, "store refused an inbound message; trying the fallbacks");
                    e.to_string()
                }
            }
        };
        let mut refused = Vec::new();
        for f in &self.fallbacks {
            match f.keep(msg).await {
                Ok(()) => {
                    metrics::counter!("lead_agent_inbound_fallback_total", "path" => f.name())
                        .increment(1);
                    tracing::warn!(sid = %msg.message_sid, path = f.name(), "inbound message kept by the fallback until the store answers");
                    self.store_outage.failed(&format!(
                        "The store cannot take inbound messages ({store_error}). Webhooks are \
                         kept by the {} fallback and written into the store when it answers; \
                         no lead is answered until then.",
                        f.name()
                    ));
                    return Ok(Intake::Kept(f.name()));
                }
                Err(e) => refused.push(format!("{}: {e}", f.name())),
            }
        }
        Err(NoDurablePath {
            store: store_error,
            fallbacks: if refused.is_empty() {
                "no fallback is configured".into()
            } else {
                refused.join("; ")
            },
        })
    }

    /// Stores the message and wakes its lead when it needs a turn: the webhook's write, and
    /// each drain's. A wake-up the queue cannot take is deferred, not an error: the message
    /// is durable, and the deferred wake (or, if this process dies, the stale-work sweep)
    /// wakes the lead later.
    pub async fn store_and_wake(&self, msg: &VerifiedInbound) -> Result<Accepted, StoreError> {
        let lead = msg.lead();
        let keyword = keywords::classify(&msg.body);
        let kind = classify(&self.store, &lead, keyword).await?;
        // A revocation Twilio does not see gets our one confirmation — unless the lead was
        // already out (a second "stop texting me" is not confirmed again).
        let confirm = keyword == Some(Keyword::Revocation)
            && self.opt_out_confirmation.is_some()
            && !self.store.is_opted_out(&lead).await?;
        let accepted = self
            .store
            .accept_inbound(
                NewInbound {
                    message_sid: &msg.message_sid,
                    from: &lead,
                    body: &msg.body,
                    synthetic: msg.synthetic,
                },
                kind,
            )
            .await?;
        self.store_outage.worked();
        let new = accepted == (Accepted::New { needs_turn: false });
        let help = kind == InboundKind::CarrierHelp && new && self.queue_help(&lead).await;
        let confirmed = confirm && new && self.queue_confirmation(&lead).await;
        let publish = help
            || confirmed
            || match accepted {
                Accepted::New { needs_turn } => needs_turn,
                // A retry of a message whose wake-up may have been lost: publish again
                // (wake-ups are idempotent).
                Accepted::Duplicate { still_pending } => still_pending,
            };
        if publish {
            match self.queue.publish(WakeLead { lead: lead.clone() }).await {
                Ok(()) => self.queue_outage.worked(),
                Err(e) => {
                    tracing::warn!(lead = %lead.log(), error = %e, "wake-up not queued; retrying it in the background");
                    self.queue_outage.failed(&format!(
                        "The work queue refused a wake-up ({e}). The message is stored; its \
                         wake-up is retried in the background, and no lead is answered until \
                         the queue takes it."
                    ));
                    self.wakes.defer(lead);
                }
            }
        }
        Ok(accepted)
    }

    /// Queues the HELP answer for a HELP just stored (never for a Twilio retry of one: the
    /// caller checks the message is new). True: queued, the lead must be woken. A store
    /// error here costs only the answer (the message is stored): logged.
    async fn queue_help(&self, lead: &LeadId) -> bool {
        let Some(text) = &self.help_reply else {
            return false;
        };
        match self
            .store
            .queue_auto_reply(lead, text, crate::store::HELP_PROVIDER)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(lead = %lead.log(), error = %e, "HELP answer not queued");
                false
            }
        }
    }

    /// Queues the opt-out confirmation (at most one waiting per lead). True: queued, the
    /// lead must be woken. A store error costs only the confirmation: logged.
    async fn queue_confirmation(&self, lead: &LeadId) -> bool {
        let Some(text) = &self.opt_out_confirmation else {
            return false;
        };
        match self.store.queue_opt_out_confirmation(lead, text).await {
            Ok(queued) => queued.is_some(),
            Err(e) => {
                tracing::warn!(lead = %lead.log(), error = %e, "opt-out confirmation not queued");
                false
            }
        }
    }

    fn store_suspect(&self) -> bool {
        self.store_suspect_until
            .lock()
            .map(|until| until.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false)
    }

    fn mark_store_suspect(&self) {
        if let Ok(mut until) = self.store_suspect_until.lock() {
            *until = Some(Instant::now() + STORE_SUSPECT_FOR);
        }
    }
}

/// Carrier keywords are classified here, before any turn: an opt-out must take effect even
/// if the lead's actor is busy. START/YES opt back in only for a lead that had opted out —
/// for anyone else "yes" is an answer to our question.
async fn classify(
    store: &SqlStore,
    lead: &LeadId,
    keyword: Option<Keyword>,
) -> Result<InboundKind, StoreError> {
    Ok(match keyword {
        Some(Keyword::OptOut) => InboundKind::OptOut,
        Some(Keyword::Revocation) => InboundKind::Revocation,
        Some(Keyword::Help) => InboundKind::CarrierHelp,
        Some(Keyword::OptIn) => {
            if store.is_opted_out(lead).await? {
                InboundKind::OptIn
            } else {
                InboundKind::Conversation
            }
        }
        None => InboundKind::Conversation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_message_round_trips_through_its_wire_format() {
        let msg = VerifiedInbound {
            message_sid: "SM0123456789abcdef0123456789abcdef".into(),
            from: "+13125550100".into(),
            body: "Hi — is the 2BR “still” free? 😀".into(),
            received_at: Utc::now(),
            synthetic: true,
        };
        let wire = serde_json::to_string(&msg).unwrap();
        assert_eq!(serde_json::from_str::<VerifiedInbound>(&wire).unwrap(), msg);
        assert!(!wire.contains('\n'), "one JSON line per message: {wire}");
        // An entry written before the field existed still reads (a fallback outlives a
        // deploy).
        let old =
            r#"{"message_sid":"SM1","from":"+1","body":"b","received_at":"2026-12-01T00:00:00Z"}"#;
        assert!(
            !serde_json::from_str::<VerifiedInbound>(old)
                .unwrap()
                .synthetic
        );
    }
}
