//! The work queue: carries "lead X has stored work" from the webhook to the lead actors.
//!
//! Owns: the [`WorkQueue`] trait (publish, consume with bounded prefetch, readiness) and its
//! in-process implementation. Must not: carry message text (the store holds it; a task is
//! only a wake-up, so duplicates and redeliveries are harmless) or settle a task itself —
//! the lead actor acks after its turn is committed.

pub mod in_process;

use std::sync::Arc;

use actors::ports::{Delivery, WakeLead};
use async_trait::async_trait;

pub use in_process::InProcessQueue;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("work queue unavailable: {0}")]
    Unavailable(String),
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
