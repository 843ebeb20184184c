//! RabbitMQ as the inbound fallback: a web process that cannot write a verified webhook to
//! the store publishes it to `<AMQP_QUEUE>.inbound` (the broker confirms before the 200),
//! and every worker drains that queue into the store as soon as it answers.
//!
//! Owns: the entry's encoding on that queue and the drain's retry: an entry is held
//! (unacked) and written again with capped backoff (0.25 → 1 s) until the store commits it — a
//! database outage of any length costs time, not messages.
//! Must not: ack an entry before its commit, or give up on one that decodes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{InboundFallback, InboundIntake, VerifiedInbound};
use crate::queue::RabbitQueue;
use crate::queue::WorkQueue;

/// Entries a worker holds at once while writing them into the store.
const DRAIN_PREFETCH: u16 = 16;
const RETRY_MIN: Duration = Duration::from_millis(250);
/// Short on purpose: once the store is back, an entry should be written within a second —
/// a STOP kept here takes effect only when it is written, and the lead's earlier messages
/// are being answered meanwhile (their send checks the opt-out at the last moment).
const RETRY_MAX: Duration = Duration::from_secs(1);

pub struct RabbitFallback {
    queue: Arc<RabbitQueue>,
}

impl RabbitFallback {
    pub fn new(queue: Arc<RabbitQueue>) -> Self {
        Self { queue }
    }
}

#[async_trait]
impl InboundFallback for RabbitFallback {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    async fn keep(&self, msg: &VerifiedInbound) -> Result<(), String> {
        let payload = serde_json::to_vec(msg).map_err(|e| format!("encode: {e}"))?;
        self.queue
            .publish_inbound(&payload)
            .await
            .map_err(|e| e.to_string())
    }

    async fn is_ready(&self) -> bool {
        self.queue.is_ready().await
    }
}

/// Starts draining the inbound queue into the store through `intake` (which also wakes
/// each stored message's lead).
pub fn start_drain(queue: &RabbitQueue, intake: Arc<InboundIntake>) -> tokio::task::JoinHandle<()> {
    queue.consume_inbound(
        DRAIN_PREFETCH,
        Arc::new(move |body: Vec<u8>| {
            let intake = intake.clone();
            Box::pin(async move {
                let msg = match serde_json::from_slice::<VerifiedInbound>(&body) {
                    Ok(msg) => msg,
                    Err(e) => {
                        // Written by a web process of another version, or corrupted: it can
                        // never be stored; the dead-letter watcher alerts with its start.
                        tracing::error!(error = %e, bytes = body.len(), "inbound entry does not decode; dead-lettering it");
                        return false;
                    }
                };
                let mut delay = RETRY_MIN;
                let mut attempts = 0u32;
                loop {
                    match intake.store_and_wake(&msg).await {
                        Ok(accepted) => {
                            metrics::counter!("lead_agent_inbound_drained_total", "path" => "rabbitmq")
                                .increment(1);
                            tracing::info!(
                                sid = %msg.message_sid,
                                ?accepted,
                                waited_ms = (chrono::Utc::now() - msg.received_at).num_milliseconds(),
                                "inbound entry written into the store"
                            );
                            return true;
                        }
                        Err(e) => {
                            attempts += 1;
                            if attempts == 1 || attempts.is_power_of_two() {
                                tracing::warn!(sid = %msg.message_sid, attempts, error = %e, "store still refuses an inbound entry; holding it and retrying");
                            }
                            tokio::time::sleep(delay).await;
                            delay = (delay * 2).min(RETRY_MAX);
                        }
                    }
                }
            })
        }),
    )
}
