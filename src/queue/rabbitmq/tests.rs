//! Adapter tests against the real RabbitMQ on 127.0.0.1:5672 (guest/guest). Each test owns
//! its queues (a unique name, deleted by [`Cleanup`] even when the test fails) and its
//! connections (a unique connection name, so cutting them touches no other test). An
//! unreachable broker fails the tests; nothing here skips.
//!
//! Outages are staged with [`Proxy`], a TCP relay between the adapter and the broker that
//! can drop every connection and refuse new ones, or hold bytes without forwarding them.
//! The broker closing a connection itself is staged with `rabbitmqctl close_connection`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use actors::ports::LeadId;
use actors::testing::{test_alerts, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const BROKER: &str = "127.0.0.1:5672";
const BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn wake(n: u32) -> WakeLead {
    WakeLead {
        lead: LeadId::new(format!("+1312555{n:04}")),
    }
}

fn unique(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "lead-agent.test.{test}.{nanos:x}.{:x}",
        rand::random::<u32>()
    )
}

/// Fast timings so that outage tests finish in seconds.
fn test_config(url: &str, test: &str) -> RabbitConfig {
    let name = unique(test);
    let mut config = RabbitConfig::new(url, &name, &name).unwrap();
    config.publish_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(2);
    config.backoff_min = Duration::from_millis(100);
    config.backoff_max = Duration::from_secs(1);
    config
}

async fn connect(config: RabbitConfig) -> RabbitQueue {
    RabbitQueue::connect(config)
        .await
        .expect("RabbitMQ must be reachable at 127.0.0.1:5672 as guest/guest (.ci/run starts it)")
}

/// Deletes a test's queues and exchange when dropped, also when the test panicked. Drop
/// cannot await, so it runs its own runtime on a plain thread.
struct Cleanup(QueueNames);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let names = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = delete_topology(BROKER_URL, &names).await;
            });
        })
        .join();
    }
}

/// A plain connection for looking at (or tampering with) the broker from outside the adapter.
async fn raw_channel() -> (Connection, Channel) {
    let conn = Connection::connect(BROKER_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must be reachable at 127.0.0.1:5672");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// (ready messages, consumers) of `queue`, from a passive declare.
async fn queue_state(queue: &str) -> (u32, u32) {
    let (conn, ch) = raw_channel().await;
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
    (q.message_count(), q.consumer_count())
}

/// Polls an async condition every 50 ms for at most `secs`.
async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts `cond` holds at every poll for `period`: how a test shows something does NOT
/// happen (a third delivery past the prefetch) without a bare sleep.
async fn holds_for(period: Duration, what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(cond(), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops the consumer, drops the queue handle (closing its connections: anything unacked
/// goes back to ready), and asserts nothing came back.
async fn assert_all_settled(q: RabbitQueue, consumer: JoinHandle<()>) {
    let queue = q.names().queue.clone();
    q.stop_consuming();
    consumer.await.unwrap();
    drop(q);
    eventually(10, "the consumer's connection is gone", || {
        let queue = queue.clone();
        async move { queue_state(&queue).await.1 == 0 }
    })
    .await;
    assert_eq!(
        queue_state(&queue).await.0,
        0,
        "a task came back: it was not acked"
    );
}

/// Deliveries a handler keeps unsettled for the test to settle.
#[derive(Clone, Default)]
struct Held(Arc<Mutex<Vec<Delivery>>>);

impl Held {
    fn handler(&self) -> DeliveryHandler {
        let held = self.0.clone();
        Arc::new(move |d| held.lock().unwrap().push(d))
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn take(&self) -> Delivery {
        self.0.lock().unwrap().remove(0)
    }
}

/// Closes, from the broker's side, every connection whose name starts with `name`.
fn broker_closes_connections(name: &str) -> usize {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl list_connections failed: {out:?}"
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(name))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for pid in &pids {
        let status = std::process::Command::new("rabbitmqctl")
            .args([
                "-q",
                "close_connection",
                pid,
                "test: broker closes the connection",
            ])
            .status()
            .expect("rabbitmqctl runs");
        assert!(
            status.success(),
            "rabbitmqctl close_connection {pid} failed"
        );
    }
    pids.len()
}

// ------------------------------------------------------------------- the proxy --------- //

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Forward,
    /// Hold every byte: a broker that vanished without closing anything.
    Blackhole,
    /// Drop new connections at once: a broker that is down.
    Refuse,
}

struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = watch::Sender::new(Mode::Forward);
        let pipes: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (rx, p) = (mode.subscribe(), pipes.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if *rx.borrow() == Mode::Refuse {
                    drop(inbound);
                    continue;
                }
                let pipe = tokio::spawn(relay(inbound, rx.clone()));
                p.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Self { addr, mode, pipes }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Every connection through the proxy drops; new ones are refused until `restore`.
    fn cut(&self) {
        self.mode.send_replace(Mode::Refuse);
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }

    fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

/// Waits while the proxy holds bytes; `None` once it refuses.
async fn passable(rx: &mut watch::Receiver<Mode>) -> Option<()> {
    match rx.wait_for(|m| *m != Mode::Blackhole).await.map(|m| *m) {
        Ok(Mode::Forward) => Some(()),
        _ => None,
    }
}

async fn relay(inbound: TcpStream, mut rx: watch::Receiver<Mode>) {
    if passable(&mut rx).await.is_none() {
        return;
    }
    let Ok(upstream) = TcpStream::connect(BROKER).await else {
        return;
    };
    let (ir, iw) = inbound.into_split();
    let (ur, uw) = upstream.into_split();
    // Either side closing ends the relay, as a real connection would end.
    tokio::select! {
        _ = pump(ir, uw, rx.clone()) => {},
        _ = pump(ur, iw, rx) => {},
    }
}

/// Copies one direction, holding bytes while the proxy is a black hole.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 || passable(&mut rx).await.is_none() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

// -------------------------------------------------------------------- the tests -------- //

#[test]
fn amqp_urls_keep_ip_hosts_and_mean_the_default_vhost_by_a_trailing_slash() {
    let uri = parse_amqp_url("amqp://user:p%40ss@10.1.2.3:5673/%2f").unwrap();
    assert_eq!(uri.authority.host, "10.1.2.3");
    assert_eq!(uri.authority.port, 5673);
    assert_eq!(uri.authority.userinfo.password, "p@ss");
    assert_eq!(uri.vhost, "/");
    assert_eq!(
        parse_amqp_url("amqp://u:p@rabbit:5672/").unwrap().vhost,
        "/"
    );
    assert_eq!(
        parse_amqp_url("amqp://u:p@rabbit:5672//").unwrap().vhost,
        "/"
    );
    assert_eq!(
        parse_amqp_url("amqp://u:p@rabbit/leads").unwrap().vhost,
        "leads"
    );
    assert_eq!(
        parse_amqp_url("pyamqp://u:p@rabbit//")
            .unwrap()
            .authority
            .host,
        "rabbit"
    );
    assert_eq!(
        parse_amqp_url("amqp://[::1]:5672/%2f")
            .unwrap()
            .authority
            .host,
        "::1"
    );
    let err = parse_amqp_url("redis://u:hunter2@cache:6379/0").unwrap_err();
    assert!(err.contains("scheme") && !err.contains("hunter2"), "{err}");
    let err = parse_amqp_url("amqp:u:hunter2@rabbit").unwrap_err();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_config_never_shows_the_password() {
    let config = RabbitConfig::new("amqp://u:hunter2@rabbit:5672/%2f", "q", "n").unwrap();
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("rabbit:5672"),
        "{shown}"
    );
}

#[test]
fn backoff_doubles_up_to_its_cap_and_starts_over_after_a_reset() {
    let mut config = RabbitConfig::new("amqp://guest:guest@127.0.0.1:5672/%2f", "q", "t").unwrap();
    config.backoff_min = Duration::from_millis(500);
    config.backoff_max = Duration::from_secs(30);
    let mut b = ReconnectBackoff::new(&config);
    let steps: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
    let nominal = [
        500u64, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000,
    ];
    for (got, step) in steps.iter().zip(nominal) {
        let step = Duration::from_millis(step);
        assert!(
            *got <= step && *got >= step.mul_f64(0.75),
            "{got:?} vs {step:?}"
        );
    }
    b.reset();
    assert!(b.next_delay() <= Duration::from_millis(500));
}

#[test]
fn a_dead_letter_alert_names_the_lead_and_the_reason() {
    let dead = DeadLetter {
        task: Some(wake(7)),
        reason: "delivery_limit".into(),
        delivery_limit: 20,
        preview: String::new(),
    };
    let alert = dead.alert();
    assert_eq!(alert.event, "task_dead_lettered");
    assert_eq!(alert.lead, Some(wake(7).lead));
    assert!(
        alert.text.contains("+13125550007") && alert.text.contains("21 times"),
        "{}",
        alert.text
    );
    let other = DeadLetter {
        reason: "rejected".into(),
        ..dead
    };
    assert!(other.alert().text.contains("reason: rejected"));
}

#[tokio::test]
async fn a_published_task_is_consumed_and_acked() {
    let q = connect(test_config(BROKER_URL, "ack")).await;
    let _cleanup = Cleanup(q.names().clone());
    let held = Held::default();
    let consumer = q.start_consumer(1, held.handler()).await.unwrap();
    q.publish(wake(1)).await.unwrap();
    wait_for(|| held.len() == 1).await;
    let d = held.take();
    assert_eq!(d.task, wake(1));
    d.ack();
    assert!(q.is_ready().await);
    assert_all_settled(q, consumer).await;
}

/// Publishes one task, settles its first delivery with `first`, and expects it back.
async fn assert_comes_back_after(test: &str, task: WakeLead, first: impl FnOnce(Delivery)) {
    let q = connect(test_config(BROKER_URL, test)).await;
    let _cleanup = Cleanup(q.names().clone());
    let held = Held::default();
    let consumer = q.start_consumer(1, held.handler()).await.unwrap();
    q.publish(task.clone()).await.unwrap();
    wait_for(|| held.len() == 1).await;
    first(held.take());
    wait_for(|| held.len() == 1).await;
    let again = held.take();
    assert_eq!(again.task, task);
    again.ack();
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn a_requeued_task_is_delivered_again() {
    assert_comes_back_after("requeue", wake(2), Delivery::requeue).await;
}

#[tokio::test]
async fn a_dropped_unsettled_delivery_is_delivered_again() {
    // As if the actor holding it crashed.
    assert_comes_back_after("dropped", wake(3), drop).await;
}

#[tokio::test]
async fn unsettled_deliveries_never_exceed_the_prefetch() {
    let q = connect(test_config(BROKER_URL, "prefetch")).await;
    let _cleanup = Cleanup(q.names().clone());
    let held = Held::default();
    let (seen, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, s, m) = (held.0.clone(), seen.clone(), most.clone());
    let consumer = q
        .start_consumer(
            2,
            Arc::new(move |d| {
                let mut held = h.lock().unwrap();
                held.push(d);
                s.fetch_add(1, Ordering::SeqCst);
                m.fetch_max(held.len(), Ordering::SeqCst);
            }),
        )
        .await
        .unwrap();
    for i in 0..5 {
        q.publish(wake(10 + i)).await.unwrap();
    }
    wait_for(|| held.len() == 2).await;
    holds_for(
        Duration::from_millis(300),
        "no third delivery while two are unsettled",
        || held.len() == 2,
    )
    .await;
    assert_eq!(
        queue_state(&q.names().queue).await.0,
        3,
        "three wait in the broker"
    );
    for expected in 3..=5 {
        held.take().ack();
        wait_for(|| seen.load(Ordering::SeqCst) == expected).await;
    }
    while held.len() > 0 {
        held.take().ack();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than the prefetch unsettled"
    );
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn a_task_requeued_past_the_delivery_limit_is_dead_lettered_and_alerted() {
    let mut config = test_config(BROKER_URL, "limit");
    config.delivery_limit = 2;
    let q = connect(config).await;
    let _cleanup = Cleanup(q.names().clone());
    let (alerts, sink) = test_alerts().await;
    let dead = Arc::new(Mutex::new(Vec::<DeadLetter>::new()));
    let d = dead.clone();
    let _watcher = q.watch_dead_letters(Arc::new(move |letter: DeadLetter| {
        alerts.raise(letter.alert());
        d.lock().unwrap().push(letter);
    }));
    let deliveries = Arc::new(AtomicUsize::new(0));
    let n = deliveries.clone();
    let consumer = q
        .start_consumer(
            1,
            Arc::new(move |d: Delivery| {
                n.fetch_add(1, Ordering::SeqCst);
                d.requeue(); // a task whose turn always fails
            }),
        )
        .await
        .unwrap();
    q.publish(wake(4)).await.unwrap();

    wait_for(|| dead.lock().unwrap().len() == 1).await;
    let letter = dead.lock().unwrap()[0].clone();
    assert_eq!(letter.task, Some(wake(4)));
    assert_eq!(letter.reason, "delivery_limit");
    assert!(
        letter.alert().text.contains("handed out 3 times"),
        "{}",
        letter.alert().text
    );
    assert_eq!(
        deliveries.load(Ordering::SeqCst),
        3,
        "handed out once and redelivered up to the limit (2), then dead-lettered"
    );
    wait_for(|| sink.events().contains(&"task_dead_lettered".to_string())).await;
    let alert = sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "task_dead_lettered")
        .unwrap();
    assert_eq!(alert.lead, Some(wake(4).lead));

    let dlq = q.names().dead_letter_queue.clone();
    eventually(10, "the dead letter is acked once alerted", || {
        let dlq = dlq.clone();
        async move { queue_state(&dlq).await.0 == 0 }
    })
    .await;
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn a_message_that_is_not_a_wake_up_is_dead_lettered_without_reaching_an_actor() {
    let q = connect(test_config(BROKER_URL, "garbage")).await;
    let _cleanup = Cleanup(q.names().clone());
    let dead = Arc::new(Mutex::new(Vec::<DeadLetter>::new()));
    let d = dead.clone();
    let _watcher = q.watch_dead_letters(Arc::new(move |letter| d.lock().unwrap().push(letter)));
    let held = Held::default();
    let consumer = q.start_consumer(1, held.handler()).await.unwrap();

    let (conn, ch) = raw_channel().await;
    ch.basic_publish(
        "".into(),
        q.names().queue.as_str().into(),
        BasicPublishOptions::default(),
        b"not a wake-up",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "done".into()).await;

    wait_for(|| dead.lock().unwrap().len() == 1).await;
    let letter = dead.lock().unwrap()[0].clone();
    assert_eq!(letter.task, None);
    assert_eq!(letter.reason, "rejected");
    assert_eq!(letter.preview, "not a wake-up");
    assert!(letter.alert().text.contains("not a wake-up"));
    assert_eq!(held.len(), 0, "the handler never saw it");
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn an_unroutable_task_is_an_error_not_a_silent_drop() {
    let q = connect(test_config(BROKER_URL, "unroutable")).await;
    let _cleanup = Cleanup(q.names().clone());
    let nowhere = unique("nowhere");
    let err = q.publish_payload(&nowhere, b"{}").await.unwrap_err();
    assert!(matches!(err, QueueError::Unroutable(_)), "{err:?}");
    assert!(!err.is_retryable());
    q.publish(wake(5))
        .await
        .expect("the channel survives a returned message");
}

#[tokio::test]
async fn the_adapter_resumes_by_itself_after_the_broker_closes_its_connections() {
    let config = test_config(BROKER_URL, "broker-close");
    let name = config.connection_name.clone();
    let q = connect(config).await;
    let _cleanup = Cleanup(q.names().clone());
    let held = Held::default();
    let consumer = q.start_consumer(1, held.handler()).await.unwrap();
    q.publish(wake(6)).await.unwrap();
    wait_for(|| held.len() == 1).await;
    let unsettled = held.take(); // an actor is working on it when the connection goes

    assert_eq!(
        broker_closes_connections(&name),
        2,
        "publisher and consumer"
    );
    wait_for(|| held.len() == 1).await; // redelivered on the new consumer connection
    let again = held.take();
    assert_eq!(again.task, wake(6));
    unsettled.ack(); // too late: its channel is gone, and that is harmless
    again.ack();

    eventually(10, "publishing works again", || async {
        q.publish(wake(7)).await.is_ok()
    })
    .await;
    wait_for(|| held.len() == 1).await;
    held.take().ack();
    assert!(q.is_ready().await);
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn publishing_while_the_broker_is_unreachable_fails_fast_and_recovers() {
    let proxy = Proxy::start().await;
    let q = connect(test_config(&proxy.url(), "outage")).await;
    let _cleanup = Cleanup(q.names().clone());
    let seen = Arc::new(Mutex::new(Vec::<WakeLead>::new()));
    let s = seen.clone();
    let consumer = q
        .start_consumer(
            1,
            Arc::new(move |d: Delivery| {
                s.lock().unwrap().push(d.task.clone());
                d.ack();
            }),
        )
        .await
        .unwrap();
    q.publish(wake(8)).await.unwrap();
    wait_for(|| seen.lock().unwrap().contains(&wake(8))).await;

    proxy.cut();
    let started = Instant::now();
    let err = q.publish(wake(9)).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err:?}");
    eventually(5, "readiness reflects the outage", || async {
        !q.is_ready().await
    })
    .await;
    for _ in 0..3 {
        let started = Instant::now();
        let err = q.publish(wake(9)).await.unwrap_err();
        assert!(matches!(err, QueueError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "took {:?}",
            started.elapsed()
        );
    }

    proxy.restore();
    eventually(
        10,
        "publisher and consumer reconnect by themselves",
        || async { q.is_ready().await },
    )
    .await;
    q.publish(wake(9)).await.unwrap();
    // wake(8)'s ack may have been in flight when the connection went: then it comes back
    // too, which is the at-least-once contract (a wake-up is idempotent).
    wait_for(|| seen.lock().unwrap().contains(&wake(9))).await;
    assert_all_settled(q, consumer).await;
}

#[tokio::test]
async fn a_publish_the_broker_never_confirms_times_out_and_the_connection_is_replaced() {
    let proxy = Proxy::start().await;
    let q = connect(test_config(&proxy.url(), "blackhole")).await;
    let _cleanup = Cleanup(q.names().clone());

    proxy.blackhole();
    let started = Instant::now();
    let err = q.publish(wake(11)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, QueueError::Timeout(_)), "{err:?}");
    assert!(
        took < Duration::from_secs(3),
        "bounded by the publish timeout: {took:?}"
    );
    eventually(5, "the silent connection is given up", || async {
        !q.is_ready().await
    })
    .await;

    proxy.restore();
    eventually(15, "a fresh connection takes over", || async {
        q.is_ready().await
    })
    .await;
    q.publish(wake(12)).await.unwrap();
}

#[tokio::test]
async fn connecting_to_a_broker_that_is_not_there_fails_fast() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let result = RabbitQueue::connect(test_config(
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        "absent",
    ))
    .await;
    let err = result.err().expect("no broker there");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.to_string().contains("guest:guest"), "{err}");
}
