//! Alerts across the split roles, as separate processes of the real binary on PostgreSQL and
//! RabbitMQ: every process with the bot token posts, one poster per channel (a lease in the
//! store); the scheduler is killed with SIGKILL while it holds a channel, and that channel's
//! alerts, plus alerts raised afterwards in the web process (an operator's HITL decision) and
//! in a worker (Twilio refusing a send with 21211), still arrive — each posted once. And the
//! scheduler's worker check from a real scheduler process: started alone it waits the grace,
//! then alerts once, and a worker that starts ends it.

use std::collections::HashMap;

use actors::alert_router::{Alert, AlertKind, Severity};
use lead_agent::channels::discord::alert_message;
use lead_agent::channels::discord::lease::lease_name;
use lead_agent::channels::discord::sender::new_nonce;
use lead_agent::store::NewSpooledAlert;
use serde_json::Value;

use crate::fake_discord::{FakeDiscord, InteractionSigner};
use crate::helpers::*;
use crate::hitl::click;
use crate::multiprocess::Cluster;
use crate::rabbitmq::BROKER_URL;

const DEFAULT_CHANNEL: &str = "900";
const ERROR_CHANNEL: &str = "777";
const HITL_CHANNEL: &str = "555";

fn title(body: &Value) -> String {
    body["embeds"][0]["title"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn description(body: &Value) -> String {
    body["embeds"][0]["description"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn sender_of(cluster: &Cluster, url: &str) -> Value {
    cluster
        .http
        .get(format!("{url}/ops/discord"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The buttons of the held reply whose draft answers `text`, once it is in the HITL channel.
async fn held_buttons(discord: &FakeDiscord, text: &str) -> Vec<String> {
    let find = || {
        discord
            .created_in(HITL_CHANNEL)
            .into_iter()
            .find(|b| b["components"].is_array() && description(b).contains(text))
    };
    wait_until(30, "the held reply in the HITL channel", || async {
        find().is_some()
    })
    .await;
    find().unwrap()["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap().to_string())
        .collect()
}

async fn decide(cluster: &Cluster, signer: &InteractionSigner, custom_id: &str) {
    let body = click(custom_id).to_string();
    let (signature, timestamp) = signer.sign(&body);
    let status = cluster
        .http
        .post(format!("{}/discord/interactions", cluster.web_url))
        .header("content-type", "application/json")
        .header("X-Signature-Ed25519", signature)
        .header("X-Signature-Timestamp", timestamp)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scheduler_does_not_silence_web_and_workers_and_no_alert_is_posted_twice() {
    let discord = FakeDiscord::start().await;
    let signer = InteractionSigner::generate();
    let mut env = discord.env();
    env.extend([
        ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.to_string()),
        ("DISCORD_CHANNEL_ERROR", ERROR_CHANNEL.to_string()),
        ("DISCORD_CHANNEL_HITL_FEEDBACK", HITL_CHANNEL.to_string()),
        ("DISCORD_LEASE_SECS", "3".to_string()),
        ("HITL_ENABLED", "true".to_string()),
        ("DISCORD_PUBLIC_KEY", signer.public_key_hex()),
    ]);
    let mut cluster = Cluster::prepare("alerts", BROKER_URL.to_string(), env).await;

    // The scheduler alone, Discord down: it takes the channel of alerts spooled meanwhile
    // and keeps it while it retries.
    discord.set_down(Some(503));
    cluster.spawn("scheduler", "scheduler").await;
    let scheduler = cluster.ops_url("scheduler");
    let before: Vec<String> = (0..3).map(|i| format!("before-kill-{i}")).collect();
    for text in &before {
        let alert = Alert::new(AlertKind::General, Severity::Warning, "probe", text.clone());
        let payload = alert_message(&alert).to_string();
        let now = chrono::Utc::now();
        cluster
            .store
            .spool_alert(NewSpooledAlert {
                channel_id: DEFAULT_CHANNEL,
                kind: "GENERAL",
                payload: &payload,
                nonce: &new_nonce(now),
                created_at: now,
            })
            .await
            .unwrap();
    }
    wait_until(
        30,
        "the scheduler to hold the channel and try it",
        || async {
            let holder = cluster
                .store
                .lease_holder(&lease_name(DEFAULT_CHANNEL))
                .await
                .unwrap();
            holder.is_some_and(|(h, _)| h.starts_with("scheduler:"))
                && discord
                    .requests()
                    .iter()
                    .any(|r| description(&r.body) == before[0])
        },
    )
    .await;
    assert_eq!(
        sender_of(&cluster, &scheduler).await["leases"],
        serde_json::json!([DEFAULT_CHANNEL])
    );

    cluster.web_url = cluster.spawn("web", "web").await;
    let web = cluster.ops_url("web");
    cluster.spawn("worker", "worker").await;
    let worker = cluster.ops_url("worker");
    for url in [&web, &worker] {
        let s = sender_of(&cluster, url).await;
        assert_eq!(s["posts"], true, "every role with the token posts: {s}");
    }

    // SIGKILL while it holds the channel; then Discord returns. Another process takes the
    // channel over once the dead one's lease expires, and posts what it was sending.
    cluster.signal("scheduler", "-KILL");
    discord.set_down(None);
    wait_until(
        30,
        "the dead scheduler's channel taken over and posted",
        || async {
            before
                .iter()
                .all(|t| discord.texts_in(DEFAULT_CHANNEL).contains(t))
        },
    )
    .await;
    let (holder, _) = cluster
        .store
        .lease_holder(&lease_name(DEFAULT_CHANNEL))
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        holder.is_empty() || holder.starts_with("web:") || holder.starts_with("worker:"),
        "{holder}"
    );

    // A burst of leads: every turn streams events and holds a reply (worker alerts), and
    // the web and the worker compete for the channels.
    let leads: Vec<String> = (0..8).map(|i| format!("+1312600{i:04}")).collect();
    for (i, lead) in leads.iter().enumerate() {
        assert_eq!(
            cluster.post_sms(lead, &format!("burst question {i}")).await,
            200
        );
    }
    // An alert from a worker: Twilio refuses the approved reply (21211).
    let approve_me = "+13126100001";
    assert_eq!(cluster.post_sms(approve_me, "parking included?").await, 200);
    let buttons = held_buttons(&discord, "parking included?").await;
    cluster.twilio.fail_next_with(&[400]);
    decide(&cluster, &signer, &buttons[0]).await;
    // An alert from the web process: an operator rejects a held reply.
    let reject_me = "+13126100002";
    assert_eq!(
        cluster.post_sms(reject_me, "can I bring my boa?").await,
        200
    );
    let buttons = held_buttons(&discord, "can I bring my boa?").await;
    decide(&cluster, &signer, &buttons[2]).await;

    wait_until(
        60,
        "the worker's and the web's alerts at Discord",
        || async {
            let rejected_send = discord
                .created_in(ERROR_CHANNEL)
                .iter()
                .any(|b| title(b) == "ERROR · sms_rejected" && description(b).contains(approve_me));
            let operator = discord
                .created_in(HITL_CHANNEL)
                .iter()
                .any(|b| title(b) == "HITL_FEEDBACK · reply_rejected");
            let approved = discord
                .created_in(DEFAULT_CHANNEL)
                .iter()
                .any(|b| title(b) == "EVENT · reply_approved");
            rejected_send && operator && approved
        },
    )
    .await;
    for i in 0..leads.len() {
        held_buttons(&discord, &format!("burst question {i}")).await;
    }
    wait_until(30, "the spool to empty", || async {
        cluster.store.spooled_count().await.unwrap() == 0
    })
    .await;

    // Two processes held the bot: no alert was accepted twice (the fake creates a nonce
    // once, so count the 2xx answers per nonce), and each was created.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for r in discord.requests().iter().filter(|r| r.status == 200) {
        *accepted
            .entry(r.body["nonce"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "posted twice: {twice:?}");
    assert_eq!(accepted.len(), discord.created().len());
    let posted: u64 = {
        let mut sum = 0;
        for url in [&web, &worker] {
            sum += sender_of(&cluster, url).await["delivered"]
                .as_u64()
                .unwrap();
        }
        sum
    };
    assert_eq!(
        posted as usize,
        discord.created().len(),
        "everything after the kill was posted by the web or the worker, once"
    );
}

/// The heartbeat job's last outcome, as the scheduler stored it.
async fn heartbeat_outcome(cluster: &Cluster) -> String {
    cluster
        .store
        .scheduled_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.name == "heartbeat")
        .and_then(|j| j.last_outcome)
        .unwrap_or_default()
}

fn titled(discord: &FakeDiscord, wanted: &str) -> usize {
    discord
        .created_in(ERROR_CHANNEL)
        .iter()
        .filter(|b| title(b) == wanted)
        .count()
}

/// A scheduler that starts before any worker (a fresh deploy) gives the workers the same
/// grace as workers gone quiet: nothing on its first ticks, then "no workers" once, and
/// "workers back" when one starts. (It once alerted on its first tick, and that alert
/// landed among another test's leases.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_started_alone_alerts_no_workers_after_the_grace_and_a_worker_ends_it() {
    let discord = FakeDiscord::start().await;
    let mut env = discord.env();
    env.extend([
        ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.to_string()),
        ("DISCORD_CHANNEL_ERROR", ERROR_CHANNEL.to_string()),
        ("SCHEDULE_HEARTBEAT", "*/2 * * * * *".to_string()),
        ("HEARTBEAT_SECS", "2".to_string()),
    ]);
    let mut cluster = Cluster::prepare("noworkers", BROKER_URL.to_string(), env).await;
    cluster.spawn("scheduler", "scheduler").await;

    wait_until(30, "heartbeat runs counting the grace", || async {
        let outcome = heartbeat_outcome(&cluster).await;
        outcome.contains("no worker seen yet") && !outcome.contains("(0s of")
    })
    .await;
    assert_eq!(
        titled(&discord, "ERROR · no_workers"),
        0,
        "nothing within the grace: {:?}",
        discord.texts_in(ERROR_CHANNEL)
    );

    wait_until(120, "no_workers at Discord after the grace", || async {
        titled(&discord, "ERROR · no_workers") == 1
    })
    .await;
    let outcome = heartbeat_outcome(&cluster).await;
    assert!(outcome.ends_with("0 live worker(s)"), "{outcome}");

    cluster.spawn("worker", "worker").await;
    wait_until(60, "workers_back at Discord", || async {
        titled(&discord, "ERROR · workers_back") == 1
    })
    .await;
    assert_eq!(titled(&discord, "ERROR · no_workers"), 1, "told once");
}
