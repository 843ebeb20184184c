//! The broker objects a work queue uses: their names, their idempotent declaration (quorum
//! queue, delivery limit, dead-letter exchange and queue), deletion, and the ready count.
//!
//! Owns: the queue arguments. Must not: change a live queue's arguments (a policy can; see
//! README) — a declaration that disagrees fails with PRECONDITION_FAILED.

use super::*;

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

pub(super) fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Declares (idempotently) the dead-letter exchange and queue, then the work queue. A queue
/// that already exists with other arguments makes this fail with PRECONDITION_FAILED: the
/// arguments of a live queue cannot change (a policy can; see README).
pub(super) async fn declare_topology(
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
pub(super) async fn ready_count(channel: &Channel, queue: &str) -> lapin::Result<usize> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count() as usize)
}
