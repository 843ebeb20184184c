//! Alerts while the store is away, on PostgreSQL through a proxy the test cuts: alerts
//! raised in this process while the store is unreachable reach Discord directly from it;
//! alerts spooled before the cut are posted from the spool, once, after it returns; direct
//! alerts still waiting when it returns go through the spool with the nonce they were first
//! tried with. The fake Discord deduplicates nonces (`enforce_nonce`) and records every
//! request, so "nothing twice" is counted both ways: messages created, and 2xx per nonce.

use std::collections::{HashMap, HashSet};

use actors::alert_router::{Alert, AlertKind, Severity};
use lead_agent::store::{SqlStore, fresh_postgres_database};
use serde_json::Value;

use crate::fake_discord::{FakeDiscord, Scripted};
use crate::helpers::*;
use crate::postgres_outage::admin_url;

const DEFAULT_CHANNEL: &str = "900";
const ERROR_CHANNEL: &str = "777";

struct Outage {
    app: TestApp,
    discord: FakeDiscord,
    proxy: CuttableProxy,
    /// The same database, not through the proxy: what the spool holds during the cut.
    direct: SqlStore,
}

async fn outage_app() -> Outage {
    let url = fresh_postgres_database(&admin_url()).await;
    let direct_url = url::Url::parse(&url).unwrap();
    let proxy = CuttableProxy::start(format!(
        "{}:{}",
        direct_url.host_str().unwrap(),
        direct_url.port().unwrap_or(5432)
    ))
    .await;
    let mut via_proxy = direct_url.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let discord = FakeDiscord::start().await;
    let mut env = discord.env();
    env.extend([
        ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.to_string()),
        ("DISCORD_CHANNEL_ERROR", ERROR_CHANNEL.to_string()),
        // The scheduler's worker check alerts when the cut stops heartbeats: true, but not
        // this test's subject, and the counts below are exact.
        ("SCHEDULE_HEARTBEAT", "off".to_string()),
    ]);
    let app = spawn_app_with(TestOptions {
        env,
        database: Some(via_proxy.to_string()),
        ..TestOptions::default()
    })
    .await;
    Outage {
        app,
        discord,
        proxy,
        direct: SqlStore::connect(&url).await.unwrap(),
    }
}

impl Outage {
    fn raise(&self, kind: AlertKind, texts: &[String]) {
        for text in texts {
            self.app
                .alerts
                .raise(Alert::new(kind, Severity::Warning, "test", text.clone()));
        }
    }

    async fn sender(&self) -> Value {
        self.app.get_json("/ops/discord").await
    }

    /// Texts of the posts Discord answered with `status`.
    fn texts_answered(&self, status: u16) -> HashSet<String> {
        self.discord
            .requests()
            .iter()
            .filter(|r| r.status == status)
            .map(|r| text_of(&r.body))
            .collect()
    }

    /// Every alert was created once, and no nonce was accepted twice: nothing was posted
    /// twice on purpose, and the nonce of each alert stayed the same on every attempt.
    fn assert_each_posted_once(&self, expected: usize) {
        let created: Vec<String> = self
            .discord
            .created()
            .iter()
            .map(|c| text_of(&c.body))
            .filter(|t| is_ours(t))
            .collect();
        assert_eq!(created.len(), expected, "{created:?}");
        let texts: HashSet<&String> = created.iter().collect();
        assert_eq!(texts.len(), expected, "no text twice");
        let mut nonces_of_text: HashMap<String, HashSet<String>> = HashMap::new();
        let mut accepted: HashMap<String, usize> = HashMap::new();
        for r in self.discord.requests() {
            let nonce = r.body["nonce"].as_str().unwrap().to_string();
            nonces_of_text
                .entry(text_of(&r.body))
                .or_default()
                .insert(nonce.clone());
            if r.status == 200 {
                *accepted.entry(nonce).or_default() += 1;
            }
        }
        for (text, nonces) in &nonces_of_text {
            assert_eq!(nonces.len(), 1, "{text} went out under {nonces:?}");
        }
        assert!(
            accepted.values().all(|n| *n == 1),
            "a nonce accepted twice: {accepted:?}"
        );
    }
}

/// Texts of the test's alerts in `channel`, in creation order. The app's own scheduler may
/// alert too (a heartbeat gap during the cut): those are not this test's subject.
fn ours_in(discord: &FakeDiscord, channel: &str) -> Vec<String> {
    discord
        .texts_in(channel)
        .into_iter()
        .filter(|t| is_ours(t))
        .collect()
}

fn is_ours(text: &str) -> bool {
    ["before-", "during-", "handed-"]
        .iter()
        .any(|p| text.starts_with(p))
}

fn text_of(body: &Value) -> String {
    body["embeds"][0]["description"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn alerts_raised_while_the_store_is_cut_reach_discord_directly_and_those_spooled_before_follow_once()
 {
    let o = outage_app().await;
    // Before the cut, with Discord down: spooled, tried, kept.
    o.discord.set_down(Some(503));
    let before = texts("before", 3);
    let before_error = vec!["before-error".to_string()];
    o.raise(AlertKind::General, &before);
    o.raise(AlertKind::Error, &before_error);
    wait_until(15, "four alerts spooled and tried", || async {
        o.direct.spooled_count().await.unwrap() == 4
            && o.texts_answered(503).contains("before-0")
            && o.texts_answered(503).contains("before-error")
    })
    .await;

    // The store goes away; Discord is still down. The new alerts queue in this process and
    // are tried directly.
    o.proxy.cut().await;
    let during = texts("during", 3);
    let during_error = vec!["during-error".to_string()];
    o.raise(AlertKind::General, &during);
    o.raise(AlertKind::Error, &during_error);
    wait_until(20, "the direct queue to try Discord", || async {
        let s = o.sender().await;
        s["store_down"] == true
            && s["direct_queued"] == 4
            && o.texts_answered(503).contains("during-0")
            && o.texts_answered(503).contains("during-error")
    })
    .await;
    assert_eq!(
        o.direct.spooled_count().await.unwrap(),
        4,
        "nothing of the outage reached the spool"
    );

    // Discord returns while the store is still cut: the direct alerts arrive, from here.
    o.discord.set_down(None);
    wait_until(20, "the direct alerts at Discord", || async {
        ours_in(&o.discord, DEFAULT_CHANNEL).len() + ours_in(&o.discord, ERROR_CHANNEL).len() >= 4
    })
    .await;
    assert_eq!(ours_in(&o.discord, DEFAULT_CHANNEL), during);
    assert_eq!(ours_in(&o.discord, ERROR_CHANNEL), during_error);
    let s = o.sender().await;
    assert_eq!(s["direct_queued"], 0);
    assert_eq!(s["direct_delivered"], 4);
    assert_eq!(s["direct_shed"], 0);
    assert_eq!(
        o.direct.spooled_count().await.unwrap(),
        4,
        "the spooled ones wait for the store"
    );

    // The store returns: the alerts spooled before the cut are posted from the spool, once.
    o.proxy.restore();
    wait_until(
        30,
        "the spooled alerts delivered and the spool empty",
        || async {
            ours_in(&o.discord, DEFAULT_CHANNEL).len() + ours_in(&o.discord, ERROR_CHANNEL).len()
                >= 8
                && o.direct.spooled_count().await.unwrap() == 0
        },
    )
    .await;
    assert_eq!(
        ours_in(&o.discord, DEFAULT_CHANNEL),
        [during.clone(), before.clone()].concat()
    );
    assert_eq!(
        ours_in(&o.discord, ERROR_CHANNEL),
        [during_error, before_error].concat()
    );
    o.assert_each_posted_once(8);
    wait_until(15, "the sender to see the store again", || async {
        o.sender().await["store_down"] == false
    })
    .await;
    assert!(
        o.direct.spool_rows().await.unwrap().is_empty(),
        "none failed"
    );
}

#[tokio::test]
async fn direct_alerts_still_waiting_when_the_store_returns_go_through_the_spool_once_with_their_nonce()
 {
    let o = outage_app().await;
    o.proxy.cut().await;
    o.discord.set_down(Some(503));
    let handed = texts("handed", 3);
    o.raise(AlertKind::General, &handed);
    wait_until(20, "the direct queue to try Discord", || async {
        o.sender().await["direct_queued"] == 3 && o.texts_answered(503).contains("handed-0")
    })
    .await;

    // The store returns before Discord does: the waiting alerts are handed to the spool.
    o.proxy.restore();
    wait_until(30, "the direct alerts handed to the spool", || async {
        o.sender().await["direct_queued"] == 0 && o.direct.spooled_count().await.unwrap_or(0) == 3
    })
    .await;
    let direct_attempts = o.discord.requests().len();

    // Discord returns, and loses the answer to the first post it creates: the spool's retry
    // carries the same nonce, so the alert exists once.
    o.discord.script(&[Scripted::CreatedButLost]);
    o.discord.set_down(None);
    wait_until(20, "everything delivered from the spool", || async {
        ours_in(&o.discord, DEFAULT_CHANNEL).len() >= 3
            && o.direct.spooled_count().await.unwrap() == 0
    })
    .await;
    assert_eq!(ours_in(&o.discord, DEFAULT_CHANNEL), handed);
    assert!(
        o.discord.requests().len() > direct_attempts + 3,
        "the lost answer was retried"
    );
    // The same nonce on the direct attempts and on the spool's posts of each alert.
    o.assert_each_posted_once(3);
    assert_eq!(o.sender().await["direct_delivered"], 0);
}
