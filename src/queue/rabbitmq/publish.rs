//! The publish path: a publish returns only after the broker's confirm and fails fast while
//! the publisher is reconnecting; the publisher link keeps the session up and the depth
//! fresh.
//!
//! Owns: confirms, the publish timeout and the suspect-connection swap. Must not: retry a
//! publish (the webhook answers 503 and Twilio retries).

use super::*;

impl RabbitQueue {
    /// Publishes `payload` to `routing_key` on the default exchange and waits for the confirm.
    pub(super) async fn publish_payload(
        &self,
        routing_key: &str,
        payload: &[u8],
    ) -> Result<(), QueueError> {
        let session = self
            .shared
            .current_publisher()
            .filter(|s| s.is_open())
            .ok_or_else(|| {
                QueueError::Unavailable("not connected to RabbitMQ (reconnecting)".into())
            })?;
        let limit = self.shared.config.publish_timeout;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirmed = tokio::time::timeout(limit, async {
            session
                .channel
                .basic_publish(
                    "".into(),
                    routing_key.into(),
                    // mandatory: an unroutable task comes back as an error instead of
                    // vanishing with a cheerful ack.
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    payload,
                    properties,
                )
                .await?
                .await
        })
        .await;
        let confirmation = match confirmed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(QueueError::Unavailable(format!("publish failed: {e}"))),
            Err(_) => {
                self.shared.publisher_suspect.store(true, Ordering::SeqCst);
                return Err(QueueError::Timeout(limit));
            }
        };
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) => Err(QueueError::Unroutable(format!(
                "{} {} (routing key {routing_key:?})",
                returned.reply_code, returned.reply_text
            ))),
            Confirmation::Nack(_) => Err(QueueError::Refused("the broker nacked it".into())),
            // Would mean confirm_select was skipped: every publish would look successful.
            Confirmation::NotRequested => Err(QueueError::Unavailable(
                "publisher confirms are not enabled on the channel".into(),
            )),
        }
    }
}

pub(super) async fn open_publisher(config: &RabbitConfig) -> Result<Session, RabbitError> {
    let session = open_session(config, "publisher").await?;
    session
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|source| RabbitError::Amqp {
            endpoint: config.endpoint(),
            source,
        })?;
    Ok(session)
}

/// Keeps a publishing session up: watches it, refreshes the depth, and replaces it with
/// capped backoff when it drops. While it is down `publisher` is `None`.
pub(super) async fn run_publisher_link(shared: Arc<Shared>, mut session: Arc<Session>) {
    let shutdown = shared.shutdown.subscribe();
    let mut backoff = ReconnectBackoff::new(&shared.config);
    loop {
        let mut tick = tokio::time::interval(WATCH_EVERY);
        let mut since_depth = Duration::ZERO;
        loop {
            tokio::select! {
                _ = raised(shutdown.clone()) => return,
                _ = tick.tick() => {}
            }
            if !session.is_open() {
                tracing::warn!("RabbitMQ publisher connection lost; reconnecting");
                break;
            }
            if shared.publisher_suspect.swap(false, Ordering::SeqCst) {
                tracing::warn!(
                    "a publish got no confirm in time; replacing the publisher connection"
                );
                break;
            }
            since_depth += WATCH_EVERY;
            if since_depth >= DEPTH_EVERY {
                since_depth = Duration::ZERO;
                let counted = tokio::time::timeout(
                    WATCH_EVERY * 4,
                    ready_count(&session.channel, &shared.config.names.queue),
                )
                .await;
                if let Ok(Ok(n)) = counted {
                    shared.depth.store(n, Ordering::SeqCst);
                }
            }
        }
        shared.set_publisher(None);
        // Best effort and bounded: a connection that stopped answering will not answer this.
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            session.connection.close(200, "replaced".into()),
        )
        .await;
        loop {
            let delay = backoff.next_delay();
            tokio::select! {
                _ = raised(shutdown.clone()) => return,
                _ = tokio::time::sleep(delay) => {}
            }
            match open_publisher(&shared.config).await {
                Ok(s) => {
                    session = Arc::new(s);
                    shared.set_publisher(Some(session.clone()));
                    backoff.reset();
                    tracing::info!("RabbitMQ publisher reconnected");
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "RabbitMQ publisher still down"),
            }
        }
    }
}
