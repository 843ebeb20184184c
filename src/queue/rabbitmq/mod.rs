//! The RabbitMQ work queue (lapin): a durable quorum queue with publisher confirms, manual
//! acks, a delivery limit that dead-letters a task that keeps coming back, and connections
//! that heal themselves.
//!
//! Owns: the topology (declared idempotently on every connect and reconnect), the publish
//! path (returns only after the broker's confirm, fails fast while the broker is
//! unreachable), the consumer loop (prefetch, decoding, reconnection with capped backoff),
//! settling deliveries, and the dead-letter watcher.
//! Must not: retry a publish (the webhook answers 503 and Twilio retries), settle a task
//! on the actor's behalf (only a message that does not decode is rejected here), or let
//! the broker's credentials reach a log line or an error message.
//!
//! Three connections per process at most, one per role — publishing, consuming, watching
//! the dead letters — so that a consumer's channel error or a flow-control block on the
//! publisher never stalls the other, and each heals on its own.
//!
//! One file per concern: `config` (the URL and settings), `session` (a connection and its
//! channel), `topology` (the broker objects), `publish`, `consume`, `dead_letter`, and
//! `inbound` (the inbound queue); the queue handle and its [`WorkQueue`] impl are here.
//!
//! RabbitMQ 3.10 (Debian's, on these machines) is the floor: quorum queues, `x-delivery-limit`
//! and at-least-once dead-lettering exist there; a per-queue consumer timeout does not (it
//! is the server's `consumer_timeout`, see README).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actors::alert_router::Alert;
use actors::backoff::{Backoff, Retries};
use actors::ports::{Acker, Delivery, LeadId, WakeLead};
use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{DeliveryHandler, QueueError, WorkQueue};

mod config;
mod consume;
mod dead_letter;
mod publish;
mod session;
mod topology;

pub use config::{RabbitConfig, parse_amqp_url};
use consume::{RabbitAcker, run_consume_loop};
pub use dead_letter::{DeadLetter, DeadLetterHandler};
use publish::{open_publisher, run_publisher_link};
use session::{Session, open_session};
pub use topology::{QueueNames, delete_topology};
use topology::{declare_topology, long_string, ready_count};

/// Redeliveries allowed before a task is dead-lettered instead (so it is handed out at most
/// 21 times). 4.x's default; 3.10 has none, and without one a task that crashes its actor
/// every time would loop forever.
pub const DELIVERY_LIMIT: u32 = 20;
/// The longest queue name accepted: the dead-letter names add a suffix and AMQP caps a name
/// at 255 bytes.
pub const MAX_QUEUE_NAME: usize = 200;

/// A publish waits this long for the broker's confirm. Twilio gives a webhook 15 s; a 503
/// well inside that gets the message retried instead of timed out.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP connect, AMQP handshake and topology declaration together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Heartbeat proposed when the URL names none: a peer that vanished without closing its
/// socket is noticed within two intervals rather than the server's default 60 s.
const HEARTBEAT_SECS: u16 = 15;
/// How often a link looks at its connection's state.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How often the publisher refreshes [`WorkQueue::depth`] from the broker.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// Connection problems at the adapter's edge; each becomes a [`QueueError`] or a log line.
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("could not reach RabbitMQ at {endpoint} within {timeout:?}")]
    ConnectTimeout { endpoint: String, timeout: Duration },
    #[error("RabbitMQ at {endpoint}: {source}")]
    Amqp {
        endpoint: String,
        #[source]
        source: lapin::Error,
    },
}

impl From<RabbitError> for QueueError {
    fn from(e: RabbitError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

/// The links' reconnect backoff: doubling from `backoff_min` to `backoff_max`, less up to a
/// quarter of jitter, so that a fleet of workers cut off together does not reconnect in
/// lockstep.
#[derive(Debug)]
pub(crate) struct ReconnectBackoff(Retries);

impl ReconnectBackoff {
    fn new(config: &RabbitConfig) -> Self {
        let policy = Backoff::new(config.backoff_min, config.backoff_max).with_jitter(0.25);
        Self(Retries::new(policy))
    }

    fn next_delay(&mut self) -> Duration {
        self.0.next_delay(rand::random::<f64>())
    }

    fn reset(&mut self) {
        self.0.reset();
    }
}

/// State shared by the queue handle and its background links.
struct Shared {
    config: RabbitConfig,
    /// The publishing session while it is up; `None` while the link reconnects, which is
    /// what makes a publish during an outage fail at once instead of waiting.
    publisher: RwLock<Option<Arc<Session>>>,
    /// Set by a publish that timed out: the connection may be dead without knowing it, so
    /// the link replaces it rather than wait for the heartbeat to notice.
    publisher_suspect: AtomicBool,
    consumer_started: AtomicBool,
    consumer_up: AtomicBool,
    depth: AtomicUsize,
    /// `stop_consuming`: no new deliveries, links that consume wind down.
    stop: watch::Sender<bool>,
    /// The queue handle was dropped: every link ends.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn current_publisher(&self) -> Option<Arc<Session>> {
        self.publisher.read().ok().and_then(|p| p.clone())
    }

    fn set_publisher(&self, session: Option<Arc<Session>>) {
        if let Ok(mut p) = self.publisher.write() {
            *p = session;
        }
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone).
async fn raised(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The work queue on RabbitMQ. See the module documentation.
pub struct RabbitQueue {
    shared: Arc<Shared>,
}

impl RabbitQueue {
    /// Connects the publisher and declares the topology. Fails (rather than starting
    /// unready) when the broker cannot be reached within `connect_timeout`: a start-up that
    /// cannot queue work should say so loudly, and the orchestrator restarts it.
    pub async fn connect(config: RabbitConfig) -> Result<Self, QueueError> {
        let session = open_publisher(&config).await?;
        let depth = ready_count(&session.channel, &config.names.queue)
            .await
            .unwrap_or(0);
        tracing::info!(
            endpoint = %config.endpoint(),
            queue = %config.names.queue,
            delivery_limit = config.delivery_limit,
            "connected to RabbitMQ"
        );
        let session = Arc::new(session);
        let shared = Arc::new(Shared {
            config,
            publisher: RwLock::new(Some(session.clone())),
            publisher_suspect: AtomicBool::new(false),
            consumer_started: AtomicBool::new(false),
            consumer_up: AtomicBool::new(false),
            depth: AtomicUsize::new(depth),
            stop: watch::Sender::new(false),
            shutdown: watch::Sender::new(false),
        });
        tokio::spawn(run_publisher_link(shared.clone(), session));
        Ok(Self { shared })
    }

    pub fn names(&self) -> &QueueNames {
        &self.shared.config.names
    }
}

impl Drop for RabbitQueue {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.shared.stop.send_replace(true);
    }
}

#[async_trait]
impl WorkQueue for RabbitQueue {
    async fn publish(&self, task: WakeLead) -> Result<(), QueueError> {
        let payload = serde_json::to_vec(&task)
            .map_err(|e| QueueError::Refused(format!("task does not serialise: {e}")))?;
        self.publish_payload(&self.shared.config.names.queue, &payload)
            .await
    }

    async fn start_consumer(
        &self,
        prefetch: usize,
        handler: DeliveryHandler,
    ) -> Result<JoinHandle<()>, QueueError> {
        if self.shared.consumer_started.swap(true, Ordering::SeqCst) {
            return Err(QueueError::Unavailable(
                "a consumer is already running".into(),
            ));
        }
        let prefetch = u16::try_from(prefetch.max(1)).unwrap_or(u16::MAX);
        let rt = tokio::runtime::Handle::current();
        Ok(tokio::spawn(run_consume_loop(
            self.shared.clone(),
            "consumer",
            self.shared.config.names.queue.clone(),
            prefetch,
            true,
            move |delivery, session| match serde_json::from_slice::<WakeLead>(&delivery.data) {
                Ok(task) => {
                    let acker = RabbitAcker {
                        acker: delivery.acker,
                        lead: task.lead.clone(),
                        session: session.clone(),
                        rt: rt.clone(),
                    };
                    handler(Delivery::new(task, Box::new(acker)));
                }
                Err(e) => {
                    // Redelivering it would fail the same way: straight to the dead letters,
                    // where the watcher alerts.
                    tracing::error!(error = %e, bytes = delivery.data.len(), "work-queue message is not a wake-up; rejecting it");
                    let session = session.clone();
                    rt.spawn(async move {
                        let _ = delivery
                            .acker
                            .reject(BasicRejectOptions { requeue: false })
                            .await;
                        drop(session);
                    });
                }
            },
        )))
    }

    fn stop_consuming(&self) {
        self.shared.stop.send_replace(true);
    }

    async fn is_ready(&self) -> bool {
        let publishing = self.shared.current_publisher().is_some_and(|s| s.is_open());
        let consuming = !self.shared.consumer_started.load(Ordering::SeqCst)
            || self.shared.consumer_up.load(Ordering::SeqCst);
        publishing && consuming && !*self.shared.stop.borrow()
    }

    /// Ready messages as the broker last reported them (refreshed every few seconds).
    fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::SeqCst)
    }
}

mod inbound;
pub use inbound::InboundHandler;

#[cfg(test)]
mod tests;
