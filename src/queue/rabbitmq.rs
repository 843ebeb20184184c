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
//! RabbitMQ 3.10 (Debian's, on these machines) is the floor: quorum queues, `x-delivery-limit`
//! and at-least-once dead-lettering exist there; a per-queue consumer timeout does not (it
//! is the server's `consumer_timeout`, see README).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actors::alert_router::Alert;
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

/// Parses `amqp://user:pass@host:port/vhost` the way operators (and Celery's kombu) mean it.
/// Errors never contain the URL: it carries a password.
///
/// Three corrections to the parser underneath: an IP address as host is kept (amq-protocol
/// 10.6 replaces it with `localhost`), a lone trailing slash means the default vhost `/` as
/// it does for kombu (not a vhost named ""), and kombu's `pyamqp://` is plain AMQP.
pub fn parse_amqp_url(text: &str) -> Result<AMQPUri, String> {
    let text = text.trim();
    let text = match text.strip_prefix("pyamqp://") {
        Some(rest) => format!("amqp://{rest}"),
        None => text.to_string(),
    };
    let scrub = |e: String| e.replace(&text, "<the URL>");
    let url = url::Url::parse(&text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "amqp" | "amqps") {
        return Err(format!(
            "scheme must be amqp:// or amqps:// (got {}://)",
            url.scheme()
        ));
    }
    let mut uri = AMQPUri::from_str(&text).map_err(scrub)?;
    uri.authority.host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("no host".into()),
    };
    if uri.vhost.is_empty() {
        uri.vhost = "/".into();
    }
    Ok(uri)
}

/// Host, port and vhost with no credentials: what logs and errors may show.
fn endpoint(uri: &AMQPUri) -> String {
    format!(
        "{}:{} (vhost {})",
        uri.authority.host, uri.authority.port, uri.vhost
    )
}

/// The broker objects one work queue uses, all derived from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueNames {
    /// The work queue itself.
    pub queue: String,
    /// The fanout exchange dead letters go through.
    pub dead_letter_exchange: String,
    /// Where tasks go after too many deliveries (or when they do not decode).
    pub dead_letter_queue: String,
    /// Verified webhooks the store could not take, until a worker writes them in
    /// (`inbound.rs`). No delivery limit: such a message waits out any outage.
    pub inbound_queue: String,
}

impl QueueNames {
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
            inbound_queue: format!("{queue}.inbound"),
        }
    }
}

/// Deletes a queue's whole topology — the work queue, its inbound queue, its dead-letter
/// queue and exchange —
/// on the broker at `url` (an `amqp://` URL lapin accepts as is). For decommissioning a
/// queue name and for tests' clean-up; tasks still in the queue are lost with it.
pub async fn delete_topology(url: &str, names: &QueueNames) -> Result<(), lapin::Error> {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    for queue in [&names.queue, &names.dead_letter_queue, &names.inbound_queue] {
        channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await?;
    }
    channel
        .exchange_delete(
            names.dead_letter_exchange.as_str().into(),
            Default::default(),
        )
        .await?;
    conn.close(200, "topology deleted".into()).await
}

/// Everything [`RabbitQueue`] needs. Not `Debug` by derive: the URI holds the password.
#[derive(Clone)]
pub struct RabbitConfig {
    pub uri: AMQPUri,
    pub names: QueueNames,
    pub delivery_limit: u32,
    /// Shown in the broker's connection list (`rabbitmqctl list_connections
    /// client_properties`), with the role appended: which process holds what.
    pub connection_name: String,
    pub publish_timeout: Duration,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl RabbitConfig {
    /// Production defaults for `url` (already validated by `config`) and `queue`.
    pub fn new(url: &str, queue: &str, connection_name: &str) -> Result<Self, QueueError> {
        let mut uri = parse_amqp_url(url)
            .map_err(|e| QueueError::Unavailable(format!("AMQP_URL is not usable: {e}")))?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        // lapin's names are AMQP short strings and panic past 255 bytes.
        if queue.is_empty() || queue.len() > MAX_QUEUE_NAME {
            return Err(QueueError::Unavailable(format!(
                "queue name must be 1 to {MAX_QUEUE_NAME} bytes long"
            )));
        }
        Ok(Self {
            uri,
            names: QueueNames::new(queue),
            delivery_limit: DELIVERY_LIMIT,
            connection_name: connection_name.to_string(),
            publish_timeout: PUBLISH_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        })
    }

    fn endpoint(&self) -> String {
        endpoint(&self.uri)
    }
}

impl std::fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("endpoint", &self.endpoint())
            .field("names", &self.names)
            .field("delivery_limit", &self.delivery_limit)
            .field("connection_name", &self.connection_name)
            .finish_non_exhaustive()
    }
}

/// Capped exponential backoff with jitter, so that a fleet of workers cut off together does
/// not reconnect in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The next wait: the current step minus up to a quarter of jitter; the step doubles up
    /// to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(1.0 - rand::random::<f64>() * 0.25)
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// One connection and the channel a role uses on it. Dropping the last `Arc` closes the
/// connection, so a delivery in flight keeps its session (and its channel) alive until it
/// is settled.
struct Session {
    connection: Connection,
    channel: Channel,
}

impl Session {
    fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Connects, opens a channel and declares the topology, all within `connect_timeout`.
async fn open_session(config: &RabbitConfig, role: &str) -> Result<Session, RabbitError> {
    let endpoint = config.endpoint();
    let amqp = |source| RabbitError::Amqp {
        endpoint: endpoint.clone(),
        source,
    };
    let work = async {
        let props = ConnectionProperties::default()
            .with_connection_name(format!("{} {role}", config.connection_name).into());
        let connection = Connection::connect_uri(config.uri.clone(), props)
            .await
            .map_err(amqp)?;
        let channel = connection.create_channel().await.map_err(amqp)?;
        declare_topology(&channel, &config.names, config.delivery_limit)
            .await
            .map_err(amqp)?;
        Ok(Session {
            connection,
            channel,
        })
    };
    tokio::time::timeout(config.connect_timeout, work)
        .await
        .map_err(|_| RabbitError::ConnectTimeout {
            endpoint: endpoint.clone(),
            timeout: config.connect_timeout,
        })?
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Declares (idempotently) the dead-letter exchange and queue, then the work queue. A queue
/// that already exists with other arguments makes this fail with PRECONDITION_FAILED: the
/// arguments of a live queue cannot change (a policy can; see README).
async fn declare_topology(
    channel: &Channel,
    names: &QueueNames,
    delivery_limit: u32,
) -> lapin::Result<()> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            names.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    channel
        .queue_declare(
            names.dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            dead_args,
        )
        .await?;
    channel
        .queue_bind(
            names.dead_letter_queue.as_str().into(),
            names.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(delivery_limit)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        long_string(&names.dead_letter_exchange),
    );
    // At-least-once (3.10+): a dead letter leaves the work queue only once the dead-letter
    // queue has confirmed it, so a broker crash mid-way cannot lose it. RabbitMQ requires
    // reject-publish overflow for it; with no length limit set, that never rejects.
    args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    args.insert("x-overflow".into(), long_string("reject-publish"));
    channel
        .queue_declare(
            names.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            args,
        )
        .await?;
    inbound::declare(channel, names).await
}

/// Ready messages in `queue` (a passive declare: creates nothing).
async fn ready_count(channel: &Channel, queue: &str) -> lapin::Result<usize> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count() as usize)
}

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

    /// Publishes `payload` to `routing_key` on the default exchange and waits for the confirm.
    async fn publish_payload(&self, routing_key: &str, payload: &[u8]) -> Result<(), QueueError> {
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

impl Drop for RabbitQueue {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.shared.stop.send_replace(true);
    }
}

async fn open_publisher(config: &RabbitConfig) -> Result<Session, RabbitError> {
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
async fn run_publisher_link(shared: Arc<Shared>, mut session: Arc<Session>) {
    let shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(shared.config.backoff_min, shared.config.backoff_max);
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

/// Settles one delivery with the broker. The calls are async and `Acker`'s are not, so each
/// is spawned; it carries the session so the channel outlives the call.
struct RabbitAcker {
    acker: lapin::Acker,
    lead: LeadId,
    session: Arc<Session>,
    rt: tokio::runtime::Handle,
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
async fn run_consume_loop<F>(
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
    let mut backoff = Backoff::new(shared.config.backoff_min, shared.config.backoff_max);
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

async fn open_consumer(
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
