//! RabbitMQ mode (`AMQP_URL` set): the webhook-to-reply path and the dead-letter alert through
//! the real broker at 127.0.0.1:5672, each test in a queue of its own (deleted afterwards,
//! also on failure). No broker means failed tests, not skipped ones.

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use lead_agent::queue::rabbitmq::{QueueNames, delete_topology};

use crate::helpers::*;

pub(crate) const BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub(crate) fn unique_queue(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lead-agent.api-test.{test}.{nanos:x}")
}

fn rabbit(queue: &str) -> TestOptions {
    TestOptions {
        env: vec![
            ("AMQP_URL", BROKER_URL.to_string()),
            ("AMQP_QUEUE", queue.to_string()),
        ],
        ..TestOptions::default()
    }
}

/// Deletes the test's queues and exchange when dropped (on its own runtime: Drop cannot await).
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let queue = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = delete_topology(BROKER_URL, &QueueNames::new(&queue)).await;
            });
        })
        .join();
    }
}

async fn broker_channel() -> (Connection, lapin::Channel) {
    let conn = Connection::connect(BROKER_URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must be reachable at 127.0.0.1:5672 as guest/guest (.ci/run starts it)");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

#[tokio::test]
async fn with_amqp_url_set_a_webhook_is_answered_through_rabbitmq() {
    let queue = unique_queue("webhook");
    let _cleanup = Cleanup(queue.clone());
    let app = spawn_app_with(rabbit(&queue)).await;
    let lead = "+13125550701";

    let (status, _) = app.post_sms(lead, "Hi, is the 2BR still available?").await;
    assert_eq!(status, 200);
    let sent = app.wait_for_sms(lead, 1).await;
    assert_eq!(sent, vec!["Reply to: Hi, is the 2BR still available?"]);
    app.wait_settled(lead).await;

    let ready = app.get_json("/ready").await;
    assert_eq!(ready["queue"], "ok", "{ready}");
    let (conn, ch) = broker_channel().await;
    let q = ch
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await
        .expect("the app declared its queue on the broker");
    assert_eq!(q.consumer_count(), 1, "the app consumes from RabbitMQ");
    assert_eq!(q.message_count(), 0, "nothing left waiting");
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_dead_lettered_task_raises_an_alert() {
    let queue = unique_queue("dead-letter");
    let _cleanup = Cleanup(queue.clone());
    let app = spawn_app_with(rabbit(&queue)).await;

    // Not a wake-up: the consumer rejects it, the broker dead-letters it, the watcher alerts.
    let (conn, ch) = broker_channel().await;
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        BasicPublishOptions::default(),
        b"{\"not\": \"a wake-up\"}",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "done".into()).await;

    wait_until(10, "the task_dead_lettered alert", || async {
        app.alert_events()
            .await
            .contains(&"task_dead_lettered".to_string())
    })
    .await;
    app.stop().await;
}
