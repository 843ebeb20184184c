//! The dead-letter watcher: a task that outlived its delivery limit (or does not decode)
//! becomes a [`DeadLetter`], handed to the alert and then acked.
//!
//! Owns: reading a dead letter's death headers. Must not: requeue a dead letter — the
//! lead's messages stay in the store, where the alert points.

use super::*;

/// A task that reached the dead-letter queue, as the watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// `None` when the message did not decode (it was rejected on arrival).
    pub task: Option<WakeLead>,
    /// RabbitMQ's reason (`x-first-death-reason`): `delivery_limit`, `rejected`, `expired`…
    pub reason: String,
    /// The queue's limit, for the alert: the broker does not say how often the task went
    /// out (a dead letter carries no `x-delivery-count` on 3.10).
    pub delivery_limit: u32,
    /// The start of the body, for a message that did not decode.
    pub preview: String,
}

impl DeadLetter {
    /// The alert an operator needs: which lead, why, and that its messages still wait.
    pub fn alert(&self) -> Alert {
        let why = if self.reason == "delivery_limit" {
            format!(
                "it was handed out {} times without a turn completing",
                u64::from(self.delivery_limit) + 1
            )
        } else {
            format!("reason: {}", self.reason)
        };
        match &self.task {
            Some(task) => Alert::error(
                "task_dead_lettered",
                format!(
                    "The wake-up for {} was dead-lettered ({why}). Its unanswered messages stay \
                     in the store; nothing retries them before the next start's re-drive.",
                    task.lead
                ),
            )
            .for_lead(&task.lead),
            None => Alert::error(
                "task_dead_lettered",
                format!(
                    "A work-queue message that is not a wake-up was dead-lettered ({why}): {}",
                    self.preview
                ),
            ),
        }
    }

    fn from_delivery(delivery: &lapin::message::Delivery, delivery_limit: u32) -> Self {
        let reason = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-first-death-reason"))
            .and_then(|v| match v {
                AMQPValue::LongString(s) => Some(s.to_string()),
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            task: serde_json::from_slice::<WakeLead>(&delivery.data).ok(),
            reason,
            delivery_limit,
            preview: String::from_utf8_lossy(&delivery.data)
                .chars()
                .take(200)
                .collect(),
        }
    }
}

/// Receives each dead letter; must not block.
pub type DeadLetterHandler = Arc<dyn Fn(DeadLetter) + Send + Sync>;

impl RabbitQueue {
    /// Consumes the dead-letter queue: each dead letter is handed to `on_dead` (which raises
    /// the alert) and then acked. Acking loses nothing: a wake-up carries no data, and the
    /// lead's unanswered messages stay in the store, where the alert points. Keeping dead
    /// wake-ups in the broker would only give an operator a queue to drain by hand.
    pub fn watch_dead_letters(&self, on_dead: DeadLetterHandler) -> JoinHandle<()> {
        let queue = self.shared.config.names.dead_letter_queue.clone();
        let limit = self.shared.config.delivery_limit;
        let rt = tokio::runtime::Handle::current();
        tokio::spawn(run_consume_loop(
            self.shared.clone(),
            "dead-letters",
            queue,
            1,
            false,
            move |delivery, session| {
                let dead = DeadLetter::from_delivery(&delivery, limit);
                tracing::error!(
                    lead = ?dead.task.as_ref().map(|t| t.lead.log().to_string()),
                    reason = %dead.reason,
                    "task dead-lettered"
                );
                on_dead(dead);
                let session = session.clone();
                rt.spawn(async move {
                    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                        tracing::warn!(error = %e, "dead letter not acked; it will be reported again");
                    }
                    drop(session);
                });
            },
        ))
    }
}
