//! The inbound queue `<AMQP_QUEUE>.inbound`: verified webhooks the store could not take,
//! published by a web process with the broker's confirm and consumed by the workers, which
//! write each into the store once it answers.
//!
//! Owns: its declaration (a durable quorum queue with no delivery limit — an entry must
//! wait out an outage of any length, redelivered as often as its holder dies — and the
//! work queue's dead-letter exchange for the one message that can never be stored: one
//! that does not decode), the publish, and the consumer that settles each delivery only
//! after the handler is done with it.
//! Must not: know what the payload means (`crate::inbound` encodes and stores it), or ack
//! an entry the handler has not finished: the ack is the drain's promise that the message
//! is committed.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicRejectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::task::JoinHandle;

use super::{QueueNames, RabbitQueue, long_string, run_consume_loop};
use crate::queue::QueueError;

/// Takes one inbound entry's body and finishes with it: `true` when it is committed (ack),
/// `false` when it can never be (reject to the dead letters). It may take as long as the
/// store is away; meanwhile the delivery stays unacked, so a process that dies hands it
/// back to the broker.
pub type InboundHandler = Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, bool> + Send + Sync>;

pub(super) async fn declare(channel: &Channel, names: &QueueNames) -> lapin::Result<()> {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-dead-letter-exchange".into(),
        long_string(&names.dead_letter_exchange),
    );
    channel
        .queue_declare(
            names.inbound_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            args,
        )
        .await?;
    Ok(())
}

impl RabbitQueue {
    /// Publishes one inbound entry; returns once the broker has confirmed it (the queue is
    /// replicated and durable from then on).
    pub async fn publish_inbound(&self, payload: &[u8]) -> Result<(), QueueError> {
        self.publish_payload(&self.shared.config.names.inbound_queue, payload)
            .await
    }

    /// Consumes the inbound queue with at most `prefetch` entries in hand, each given to
    /// `handler` on a task of its own and settled when it finishes. Ends with
    /// `stop_consuming` (entries in hand are redelivered to another worker) or the queue.
    pub fn consume_inbound(&self, prefetch: u16, handler: InboundHandler) -> JoinHandle<()> {
        let rt = tokio::runtime::Handle::current();
        tokio::spawn(run_consume_loop(
            self.shared.clone(),
            "inbound",
            self.shared.config.names.inbound_queue.clone(),
            prefetch.max(1),
            false,
            move |delivery, session| {
                let handler = handler.clone();
                let session = session.clone();
                rt.spawn(async move {
                    let stored = handler(delivery.data.clone()).await;
                    let settled = if stored {
                        delivery.acker.ack(BasicAckOptions::default()).await
                    } else {
                        delivery
                            .acker
                            .reject(BasicRejectOptions { requeue: false })
                            .await
                    };
                    if let Err(e) = settled {
                        // The broker redelivers it; storing it again is a duplicate, which
                        // the store ignores.
                        tracing::warn!(error = %e, "inbound entry not settled; the broker redelivers it");
                    }
                    drop(session);
                });
            },
        ))
    }
}
