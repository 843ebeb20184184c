//! The work queue: carries "lead X has stored work" from the webhook to the lead actors.
//!
//! Owns: the [`WorkQueue`] trait (publish, consume with bounded prefetch, readiness) and its
//! two implementations: in-process (embedded `serve`) and RabbitMQ (`AMQP_URL` set).
//! Must not: carry message text (the store holds it; a task is only a wake-up, so
//! duplicates and redeliveries are harmless) or settle a task itself — the lead actor acks
//! after its turn is committed.

pub mod in_process;
pub mod rabbitmq;

use std::sync::Arc;

use actors::ports::{Delivery, WakeLead};
use async_trait::async_trait;

pub use in_process::InProcessQueue;
pub use rabbitmq::RabbitQueue;

/// Why a task was not taken. Every variant leaves the task unpublished: the webhook answers
/// 503 and Twilio retries, so none of them is retried here.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
    /// The broker neither confirmed nor refused in time: the task may or may not be queued
    /// (a duplicate wake-up is harmless, so the caller treats it as not queued).
    #[error("work queue did not confirm the task within {0:?}")]
    Timeout(std::time::Duration),
    /// The broker nacked the publish: it could not take responsibility for the task.
    #[error("work queue refused the task: {0}")]
    Refused(String),
    /// The broker returned a mandatory publish: no queue is bound to take it (the topology
    /// is missing, e.g. the queue was deleted by hand).
    #[error("work queue could not route the task: {0}")]
    Unroutable(String),
}

impl QueueError {
    /// True when the same publish may succeed shortly (a reconnect, a broker under load);
    /// an unroutable task needs the topology back first.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, QueueError::Unroutable(_))
    }
}

/// Receives each delivery; must not block (it hands the delivery to an actor).
pub type DeliveryHandler = Arc<dyn Fn(Delivery) + Send + Sync>;

#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Returns once the task is durable in the queue (for the in-process queue: in memory,
    /// backed by the store's re-drive at start).
    async fn publish(&self, task: WakeLead) -> Result<(), QueueError>;

    /// Starts delivering tasks to `handler`, at most `prefetch` unsettled at a time (the
    /// seed's prefetch-multiplier=1 lesson: a worker holds only what it can work on).
    async fn start_consumer(
        &self,
        prefetch: usize,
        handler: DeliveryHandler,
    ) -> Result<tokio::task::JoinHandle<()>, QueueError>;

    /// Stops handing out new deliveries; unsettled ones stay with their holders.
    fn stop_consuming(&self);

    async fn is_ready(&self) -> bool;

    /// Tasks published and not yet delivered.
    fn depth(&self) -> usize;
}
