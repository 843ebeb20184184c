//! The consumer loop: prefetch, reconnection with capped backoff, and settling each
//! delivery with the broker.
//!
//! Owns: a consuming session's life and [`RabbitAcker`]. Must not: settle a task on the
//! actor's behalf — only a message that does not decode is rejected (in `mod.rs`).

use super::*;

/// Settles one delivery with the broker. The calls are async and `Acker`'s are not, so each
/// is spawned; it carries the session so the channel outlives the call.
pub(super) struct RabbitAcker {
    pub(super) acker: lapin::Acker,
    pub(super) lead: LeadId,
    pub(super) session: Arc<Session>,
    pub(super) rt: tokio::runtime::Handle,
}

impl RabbitAcker {
    fn settle(&self, requeue: bool) {
        let acker = self.acker.clone();
        let lead = self.lead.clone();
        let session = self.session.clone();
        self.rt.spawn(async move {
            let settled = if requeue {
                acker
                    .nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    })
                    .await
            } else {
                acker.ack(BasicAckOptions::default()).await
            };
            let what = if requeue { "requeue" } else { "ack" };
            match settled {
                Ok(true) => {}
                // The channel died under the delivery: the broker has already put the task
                // back and will deliver it again — harmless, a wake-up is idempotent.
                Ok(false) => {
                    tracing::info!(lead = %lead.log(), what, "delivery's channel is gone; the broker redelivers it")
                }
                Err(e) => {
                    tracing::warn!(lead = %lead.log(), what, error = %e, "could not settle a delivery; the broker redelivers it")
                }
            }
            drop(session);
        });
    }
}

impl Acker for RabbitAcker {
    fn ack(&self) {
        self.settle(false);
    }

    fn requeue(&self) {
        self.settle(true);
    }
}

/// Why one consuming session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

/// Consumes `queue` with `prefetch`, handing each delivery to `on_delivery`, and reconnects
/// with capped backoff whenever the session is lost, until `stop_consuming` or drop.
pub(super) async fn run_consume_loop<F>(
    shared: Arc<Shared>,
    role: &'static str,
    queue: String,
    prefetch: u16,
    tracks_readiness: bool,
    on_delivery: F,
) where
    F: Fn(lapin::message::Delivery, &Arc<Session>) + Send + 'static,
{
    let stop = shared.stop.subscribe();
    let mut backoff = ReconnectBackoff::new(&shared.config);
    let mut attempt = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        if attempt > 0 {
            let delay = backoff.next_delay();
            tokio::select! {
                _ = raised(stop.clone()) => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        attempt += 1;
        let (session, mut consumer) =
            match open_consumer(&shared.config, role, &queue, prefetch).await {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::warn!(role, error = %e, "RabbitMQ consumer cannot connect; retrying");
                    continue;
                }
            };
        let session = Arc::new(session);
        backoff.reset();
        if tracks_readiness {
            shared.consumer_up.store(true, Ordering::SeqCst);
        }
        if attempt > 1 {
            tracing::info!(role, "RabbitMQ consumer reconnected");
        }
        let mut tick = tokio::time::interval(WATCH_EVERY);
        let end = loop {
            tokio::select! {
                // A stop wins over a delivery that is ready at the same moment: after
                // stop_consuming nothing new reaches an actor (it is redelivered instead).
                biased;
                _ = raised(stop.clone()) => break SessionEnd::Stopped,
                _ = tick.tick() => {
                    if !session.is_open() {
                        break SessionEnd::Lost("connection closed".into());
                    }
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => on_delivery(delivery, &session),
                    Some(Err(e)) => break SessionEnd::Lost(e.to_string()),
                    // Cancelled: by the broker (queue deleted) or with the channel.
                    None => break SessionEnd::Lost("consumer cancelled".into()),
                },
            }
        };
        if tracks_readiness {
            shared.consumer_up.store(false, Ordering::SeqCst);
        }
        match end {
            SessionEnd::Stopped => {
                // Cancel rather than close: deliveries still held by actors must be able to
                // ack on this channel during the shutdown grace. The session closes when
                // the last of them lets go of it.
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    session
                        .channel
                        .basic_cancel(consumer.tag(), BasicCancelOptions::default()),
                )
                .await;
                tracing::info!(role, "stopped consuming");
                return;
            }
            SessionEnd::Lost(reason) => {
                tracing::warn!(role, %reason, "RabbitMQ consumer lost its session; reconnecting (unacked tasks are redelivered)");
            }
        }
    }
}

pub(super) async fn open_consumer(
    config: &RabbitConfig,
    role: &str,
    queue: &str,
    prefetch: u16,
) -> Result<(Session, lapin::Consumer), RabbitError> {
    let session = open_session(config, role).await?;
    let amqp = |source| RabbitError::Amqp {
        endpoint: config.endpoint(),
        source,
    };
    session
        .channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(amqp)?;
    let consumer = session
        .channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp)?;
    Ok((session, consumer))
}
