//! Alerts to Discord through the real router, spool and sender, against a fake Discord
//! that answers with the documented shapes (limits, nonces, rate limits, outages, 401).

use actors::alert_router::{Alert, AlertKind, MAX_ALERT_CHARS, Severity, TRUNCATION_SUFFIX};
use actors::ports::LeadId;
use serde_json::Value;

use crate::fake_discord::{FakeDiscord, Scripted};
use crate::helpers::*;

const DEFAULT_CHANNEL: &str = "900";

fn own_channel(i: usize) -> String {
    format!("{}", 100 + i)
}

async fn app_with(discord: &FakeDiscord, extra: Vec<(&'static str, String)>) -> TestApp {
    let mut env = discord.env();
    // These tests count the alerts they raise; the scheduler's own (`no_workers`, when a
    // loaded machine delays the worker's first heartbeat) would land among them.
    env.push(("SCHEDULE_HEARTBEAT", "off".into()));
    env.extend(extra);
    spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await
}

/// Raises `n` distinct alerts of `kind` (texts `prefix-0`…) and returns their texts.
fn raise_n(app: &TestApp, kind: AlertKind, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let text = format!("{prefix}-{i}");
            app.alerts
                .raise(Alert::new(kind, Severity::Info, "test", text.clone()));
            text
        })
        .collect()
}

async fn sender_status(app: &TestApp) -> Value {
    app.get_json("/ops/discord").await
}

#[tokio::test]
async fn every_alert_kind_reaches_its_own_channel_or_the_default_one() {
    let discord = FakeDiscord::start().await;
    // Even kinds have their own channel; odd ones fall back to the default.
    let mut env: Vec<(&'static str, String)> =
        vec![("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into())];
    let names: Vec<&'static str> = AlertKind::ALL
        .iter()
        .map(|k| &*Box::leak(format!("DISCORD_CHANNEL_{}", k.key()).into_boxed_str()))
        .collect();
    for (i, name) in names.iter().enumerate() {
        if i % 2 == 0 {
            env.push((name, own_channel(i)));
        }
    }
    let app = app_with(&discord, env).await;
    for kind in AlertKind::ALL {
        app.alerts.raise(
            Alert::new(
                kind,
                Severity::Warning,
                "probe",
                format!("probe {}", kind.key()),
            )
            .for_lead(&LeadId::new("+13125550142")),
        );
    }
    // Only the probes: the app's own scheduler may alert meanwhile (a worker heartbeat not
    // yet written on a loaded machine), and that must not end the wait early.
    let probes = || {
        discord
            .created()
            .into_iter()
            .filter(|c| {
                c.body["embeds"][0]["title"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("· probe"))
            })
            .count()
    };
    wait_until(15, "one message per kind", || async {
        probes() >= AlertKind::ALL.len()
    })
    .await;
    for (i, kind) in AlertKind::ALL.iter().enumerate() {
        let channel = if i % 2 == 0 {
            own_channel(i)
        } else {
            DEFAULT_CHANNEL.to_string()
        };
        let bodies = discord.created_in(&channel);
        let found = bodies
            .iter()
            .find(|b| b["embeds"][0]["description"] == format!("probe {}", kind.key()));
        let body = found.unwrap_or_else(|| panic!("{} missing from channel {channel}", kind.key()));
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"], format!("{} · probe", kind.key()));
        assert_eq!(embed["color"], 0xE67E22, "warning colour");
        assert_eq!(embed["fields"][0]["value"], "+13125550142");
    }
    assert_eq!(probes(), AlertKind::ALL.len(), "each exactly once");
    let requests = discord.requests();
    assert!(
        requests.iter().all(|r| r.status == 200),
        "none refused: all within limits"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.body["enforce_nonce"] == true && r.body["nonce"].is_string())
    );
    wait_until(10, "the spool to empty", || async {
        app.store.spooled_count().await.unwrap() == 0
    })
    .await;
}

#[tokio::test]
async fn a_5000_character_alert_arrives_truncated_not_lost() {
    let discord = FakeDiscord::start().await;
    let app = app_with(
        &discord,
        vec![("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into())],
    )
    .await;
    app.alerts.raise(Alert::error("huge", "x".repeat(5000)));
    wait_until(15, "the long alert", || async {
        !discord.created_in(DEFAULT_CHANNEL).is_empty()
    })
    .await;
    let text = &discord.texts_in(DEFAULT_CHANNEL)[0];
    assert_eq!(text.chars().count(), MAX_ALERT_CHARS);
    assert!(text.ends_with(TRUNCATION_SUFFIX));
    assert!(discord.requests().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn a_kind_with_no_channel_goes_to_the_log_and_is_not_spooled() {
    let discord = FakeDiscord::start().await;
    let app = app_with(&discord, vec![("DISCORD_CHANNEL_ERROR", "321".into())]).await;
    app.alerts.raise(Alert::event("no_channel", "to the log"));
    app.alerts.raise(Alert::error("has_channel", "to Discord"));
    wait_until(15, "the error alert", || async {
        discord.created_in("321").len() == 1
    })
    .await;
    // The router delivers in order, so the event was handled before the error was posted.
    assert_eq!(discord.created().len(), 1);
    assert_eq!(discord.texts_in("321"), vec!["to Discord".to_string()]);
    wait_until(10, "the delivered alert to leave the spool", || async {
        app.store.spool_rows().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(
        discord.created().len(),
        1,
        "the event never reached Discord"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_channel_delivers_in_order() {
    let discord = FakeDiscord::start().await;
    discord.script(&[
        Scripted::RateLimited {
            retry_after: 0.4,
            global: false,
        },
        Scripted::RateLimited {
            retry_after: 0.2,
            global: true,
        },
    ]);
    let app = app_with(
        &discord,
        vec![("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into())],
    )
    .await;
    let texts = raise_n(&app, AlertKind::General, "ordered", 6);
    wait_until(15, "all six alerts", || async {
        discord.created_in(DEFAULT_CHANNEL).len() >= 6
    })
    .await;
    assert_eq!(
        discord.texts_in(DEFAULT_CHANNEL),
        texts,
        "in order, each once"
    );
    let requests = discord.requests();
    assert_eq!(requests[0].status, 429);
    assert_eq!(requests[1].status, 429);
    // The retry came no earlier than Discord asked (a lower bound, not a timing target).
    assert!(requests[1].at.duration_since(requests[0].at).as_secs_f64() >= 0.4);
    assert!(requests[2].at.duration_since(requests[1].at).as_secs_f64() >= 0.2);
    // Retries of the first alert carry the same nonce.
    assert_eq!(requests[0].body["nonce"], requests[2].body["nonce"]);
}

#[tokio::test]
async fn alerts_raised_while_discord_is_down_are_spooled_then_all_delivered_once_in_order() {
    let discord = FakeDiscord::start().await;
    let app = app_with(
        &discord,
        vec![
            ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into()),
            ("DISCORD_CHANNEL_ERROR", "777".into()),
        ],
    )
    .await;
    discord.set_down(Some(503));
    let general = raise_n(&app, AlertKind::General, "general", 8);
    let errors = raise_n(&app, AlertKind::Error, "error", 4);
    wait_until(
        15,
        "failed attempts on both channels, everything spooled",
        || async {
            let r = discord.requests();
            r.iter().filter(|r| r.channel == "777").count() >= 2
                && r.iter().filter(|r| r.channel == DEFAULT_CHANNEL).count() >= 2
                && app.store.spooled_count().await.unwrap() == 12
        },
    )
    .await;
    assert!(discord.created().is_empty());
    assert_eq!(
        sender_status(&app).await["halted"],
        Value::Null,
        "5xx never halts"
    );

    // A post that Discord created but whose answer was lost is retried with its nonce and
    // deduplicated.
    discord.script(&[Scripted::CreatedButLost]);
    discord.set_down(None);
    wait_until(20, "everything delivered", || async {
        discord.created().len() >= 12 && app.store.spooled_count().await.unwrap() == 0
    })
    .await;
    assert_eq!(discord.texts_in(DEFAULT_CHANNEL), general);
    assert_eq!(discord.texts_in("777"), errors);
    assert_eq!(discord.created().len(), 12, "none duplicated");
    assert!(
        app.store.spool_rows().await.unwrap().is_empty(),
        "none left, none failed"
    );
}

#[tokio::test]
async fn a_401_stops_the_sender_and_keeps_every_alert_spooled() {
    let discord = FakeDiscord::start().await;
    let app = app_with(
        &discord,
        vec![
            ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into()),
            ("DISCORD_CHANNEL_ERROR", "777".into()),
            ("DISCORD_BOT_TOKEN", "a-revoked-token".into()),
        ],
    )
    .await;
    app.alerts.raise(Alert::error("first", "first"));
    wait_until(15, "the sender to halt on the 401", || async {
        sender_status(&app).await["halted"].is_string()
    })
    .await;
    let calls_at_halt = discord.requests().len();
    assert_eq!(calls_at_halt, 1);
    assert_eq!(discord.requests()[0].status, 401);

    raise_n(&app, AlertKind::General, "later", 3);
    raise_n(&app, AlertKind::Error, "later-error", 2);
    let passes_before = sender_status(&app).await["passes"].as_u64().unwrap();
    // The sender keeps looking at the spool (passes advance) but never calls Discord again.
    wait_until(15, "several passes over a spool of six", || async {
        let s = sender_status(&app).await;
        s["passes"].as_u64().unwrap() >= passes_before + 3 && s["spooled"] == 6
    })
    .await;
    assert_eq!(
        discord.requests().len(),
        calls_at_halt,
        "no call after the 401"
    );
    assert_eq!(
        app.store.spooled_count().await.unwrap(),
        6,
        "kept for after the fix"
    );
}

#[tokio::test]
async fn a_403_stops_only_its_channel_and_keeps_its_alerts() {
    let discord = FakeDiscord::start().await;
    let app = app_with(
        &discord,
        vec![
            ("DISCORD_DEFAULT_CHANNEL", DEFAULT_CHANNEL.into()),
            ("DISCORD_CHANNEL_ERROR", "777".into()),
        ],
    )
    .await;
    discord.script(&[Scripted::Status(403)]);
    app.alerts.raise(Alert::error("blocked", "blocked"));
    wait_until(15, "the channel to be stopped", || async {
        sender_status(&app).await["halted_channels"]["777"].is_string()
    })
    .await;
    let general = raise_n(&app, AlertKind::General, "still-flowing", 3);
    app.alerts.raise(Alert::error("blocked", "blocked too"));
    wait_until(15, "the other channel's alerts", || async {
        discord.created_in(DEFAULT_CHANNEL).len() >= 3
    })
    .await;
    assert_eq!(discord.texts_in(DEFAULT_CHANNEL), general);
    assert_eq!(sender_status(&app).await["halted"], Value::Null);
    assert_eq!(
        discord
            .requests()
            .iter()
            .filter(|r| r.channel == "777")
            .count(),
        1
    );
    // The blocked channel's alerts are kept; the others leave the spool.
    wait_until(
        10,
        "only the blocked channel's two alerts spooled",
        || async { app.store.spooled_count().await.unwrap() == 2 },
    )
    .await;
    assert_eq!(
        discord
            .requests()
            .iter()
            .filter(|r| r.channel == "777")
            .count(),
        1
    );
}
