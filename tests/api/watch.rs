//! `lead-agent watch`, the real binary as a process of its own, against a running service
//! (an app from `spawn_app`, or the roles as separate processes), posting to the fake
//! Discord's channel webhook. Intervals are a second, so each fault is seen in seconds:
//! a healthy service gets no alert; a stopped one gets exactly one, then one recovery; a
//! reply that never goes out is an end-to-end alert; a killed scheduler process is alerted
//! by name while web and workers stay up. And synthetic leads (the watch's and verify's
//! SMS) stay out of the owner's report, followups and SLA nags.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use actors::ports::LeadId;
use chrono::Utc;
use lead_agent::probe::{SyntheticSms, send_and_await_reply};
use lead_agent::store::fresh_test_database_url;
use serde_json::{Value, json};

use crate::fake_discord::FakeDiscord;
use crate::helpers::*;
use crate::multiprocess::Cluster;
use crate::scheduler::quiet_window_in;
use crate::support::processes::free_port;

/// The watch's synthetic SMS come from here (312: Chicago, for quiet hours).
const TEST_PHONE: &str = "+13125550190";
/// The service's side of a watched test: heartbeats every `secs` (stale after three). Two
/// seconds where heartbeats are not the point: this machine's shared PostgreSQL can hold a
/// write back for seconds, and a late heartbeat is then (rightly) an alert.
fn service_env(heartbeat_secs: u64) -> Vec<(&'static str, String)> {
    vec![("HEARTBEAT_SECS", heartbeat_secs.to_string())]
}

/// The titles of the posts about `check`.
fn titles_of(discord: &FakeDiscord, check: &str) -> Vec<String> {
    titles(discord)
        .into_iter()
        .filter(|t| t.contains(&format!("watch_{check}_")))
        .collect()
}

/// A running `lead-agent watch` process; killed when dropped.
struct Watch {
    child: Child,
    url: String,
    http: reqwest::Client,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Watch {
    /// Starts the watch on `service` (its public URL) and `ops` (its ops listener) with
    /// one-second intervals (what the fault suite uses) and waits until its first cycle has
    /// run.
    async fn start(
        service: &str,
        ops: &str,
        discord: &FakeDiscord,
        extra: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("watch.log");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lead-agent"));
        command
            .args(["watch", "--url", service, "--ops-url", ops])
            // Nothing of this test process leaks in: the watch sees only what it is given.
            .env_clear()
            .env("PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("PUBLIC_BASE_URL", PUBLIC_URL)
            .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
            .env("DISCORD_WEBHOOK", discord.webhook_url())
            .env("DISCORD_RETRY_MAX_SECS", "0.5")
            .env("WATCH_INTERVAL_SECS", "1")
            .env("WATCH_E2E_SECS", "2")
            .env("WATCH_E2E_TIMEOUT_SECS", "10")
            .env("WATCH_TEST_PHONE", TEST_PHONE)
            .env("WATCH_SCHEDULER_LATE_SECS", "5")
            .env("WATCH_SPOOL_AGE_SECS", "30")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info");
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("watch.err")).unwrap())
            .spawn()
            .expect("the binary starts");
        let mut watch = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = watch.http.get(format!("{}/ready", watch.url)).send().await
                && r.status() == 200
            {
                return watch;
            }
            let exited = watch.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "the watch is not ready (exit {exited:?}):\n{}",
                    watch.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn logs(&self) -> String {
        let err = self.log.with_file_name("watch.err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }

    async fn status(&self) -> Value {
        self.http
            .get(format!("{}/status", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn check_state(&self, check: &str) -> String {
        self.status().await["checks"][check]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    }

    /// Waits until every check has passed (the end-to-end one included), i.e. the watch
    /// has seen the service healthy.
    async fn wait_all_ok(&self) {
        wait_until(60, "every check of the watch to pass", || async {
            let s = self.status().await;
            ["ready", "workers", "scheduler", "alert_spool", "end_to_end"]
                .iter()
                .all(|c| s["checks"][c]["state"] == "ok")
        })
        .await;
    }

    /// Waits for `n` more interval cycles.
    async fn wait_cycles(&self, n: u64) {
        let start = self.status().await["cycles"].as_u64().unwrap();
        wait_until(30, &format!("{n} more watch cycles"), || async {
            self.status().await["cycles"].as_u64().unwrap() >= start + n
        })
        .await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The titles of the watch's posts at the fake webhook (`ERROR · watch_<check>_down` …).
fn titles(discord: &FakeDiscord) -> Vec<String> {
    discord
        .webhook_posts()
        .iter()
        .map(|m| m["embeds"][0]["title"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn wait_for_title(discord: &FakeDiscord, title: &str, watch: &Watch) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    while !titles(discord).iter().any(|t| t == title) {
        assert!(
            Instant::now() < deadline,
            "no {title:?} within 30 s; posts: {:?}\nwatch log:\n{}",
            titles(discord),
            watch.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_service_gets_no_alert_and_the_watchs_sms_is_answered_and_marked_synthetic() {
    let app = spawn_app_with(TestOptions {
        env: service_env(2),
        ..TestOptions::default()
    })
    .await;
    let discord = FakeDiscord::start().await;
    let watch = Watch::start(&app.base_url, &app.ops_url, &discord, &[]).await;
    watch.wait_all_ok().await;
    // Two end-to-end rounds and several cycles, each with its reply at the fake Twilio.
    wait_until(30, "two synthetic SMS answered", || async {
        app.twilio.sent_to(TEST_PHONE).len() >= 2
    })
    .await;
    watch.wait_cycles(3).await;
    assert_eq!(titles(&discord), Vec::<String>::new(), "{}", watch.logs());
    assert!(
        discord.requests().is_empty(),
        "not even a failed post: {:?}",
        discord.requests()
    );
    let status = watch.status().await;
    assert_eq!(status["alerts"]["pending"], 0, "{status}");
    assert_eq!(
        status["discord_reachable"], true,
        "the start-up probe reached the webhook"
    );
    // The webhook stored the watch's number as a synthetic lead.
    assert!(
        app.store
            .is_synthetic(&LeadId::new(TEST_PHONE))
            .await
            .unwrap()
    );
    drop(watch);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_is_one_alert_within_an_interval_then_one_recovery_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_test_database_url(dir.path()).await;
    let port = free_port().to_string();
    let ops_port = free_port().to_string();
    let options = || {
        let mut env = service_env(2);
        env.push(("PORT", port.clone()));
        env.push(("OPS_PORT", ops_port.clone()));
        TestOptions {
            env,
            database: Some(database.clone()),
            ..TestOptions::default()
        }
    };
    let app = spawn_app_with(options()).await;
    let discord = FakeDiscord::start().await;
    let watch = Watch::start(&app.base_url, &app.ops_url, &discord, &[]).await;
    watch.wait_all_ok().await;

    app.stop().await;
    let took = wait_for_title(&discord, "ERROR · watch_ready_down", &watch).await;
    // One interval (1 s) and the ready check's retries (1 s), with room for a loaded CI.
    eprintln!("service stopped: watch_ready_down after {took:?}");
    assert!(took < Duration::from_secs(10), "alerted after {took:?}");
    let down = &discord.webhook_posts()[0];
    assert!(
        down["content"]
            .as_str()
            .unwrap()
            .contains("`ready` is failing"),
        "{down}"
    );
    assert!(
        down["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("no answer from"),
        "{down}"
    );
    // Several cycles and end-to-end rounds later, still the one alert: the checks that
    // need the service are not judged while it is down.
    watch.wait_cycles(4).await;
    assert_eq!(titles(&discord), vec!["ERROR · watch_ready_down"]);

    let app = spawn_app_with(options()).await;
    wait_for_title(&discord, "ERROR · watch_ready_recovered", &watch).await;
    watch.wait_all_ok().await;
    watch.wait_cycles(3).await;
    assert_eq!(
        titles(&discord),
        vec!["ERROR · watch_ready_down", "ERROR · watch_ready_recovered"],
        "{}",
        watch.logs()
    );
    drop(watch);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_that_never_goes_out_is_one_end_to_end_alert_and_a_recovery() {
    let app = spawn_app_with(TestOptions {
        env: service_env(2),
        ..TestOptions::default()
    })
    .await;
    // Twilio refuses every send (400: a rejection, not retried).
    app.twilio.fail_next_with(&[400; 10_000]);
    let discord = FakeDiscord::start().await;
    let watch = Watch::start(&app.base_url, &app.ops_url, &discord, &[]).await;
    wait_for_title(&discord, "ERROR · watch_end_to_end_down", &watch).await;
    let post = discord.webhook_posts()[0].clone();
    let text = post["embeds"][0]["description"].as_str().unwrap();
    assert!(
        text.contains(TEST_PHONE) && text.contains("not sent"),
        "{text}"
    );
    // Still failing, still one alert; the service itself is fine.
    watch.wait_cycles(3).await;
    assert_eq!(
        titles_of(&discord, "end_to_end"),
        vec!["ERROR · watch_end_to_end_down"]
    );
    assert_eq!(watch.check_state("ready").await, "ok");

    app.twilio.fail_next_with(&[]);
    wait_for_title(&discord, "ERROR · watch_end_to_end_recovered", &watch).await;
    assert_eq!(
        titles_of(&discord, "end_to_end"),
        vec![
            "ERROR · watch_end_to_end_down",
            "ERROR · watch_end_to_end_recovered"
        ]
    );
    drop(watch);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scheduler_process_is_alerted_by_name_while_web_and_workers_stay_up() {
    // The fault suite's "scheduler killed": separate role processes on PostgreSQL and
    // RabbitMQ, the scheduler SIGKILLed; only the watch, outside, can say so.
    let mut cluster = Cluster::start_with_env("watch", &service_env(1)).await;
    let discord = FakeDiscord::start().await;
    let web_ops = cluster.ops_url("web");
    let watch = Watch::start(&cluster.web_url, &web_ops, &discord, &[]).await;
    watch.wait_all_ok().await;
    assert!(titles(&discord).is_empty(), "{:?}", titles(&discord));

    cluster.signal("scheduler", "-KILL");
    let took = wait_for_title(&discord, "ERROR · watch_scheduler_down", &watch).await;
    // Stale after 3 heartbeats (3 s), seen at the next cycle (1 s).
    eprintln!("scheduler killed: watch_scheduler_down after {took:?}");
    assert!(took < Duration::from_secs(12), "alerted after {took:?}");
    let post = discord.webhook_posts()[0].clone();
    assert!(
        post["embeds"][0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Check" && f["value"] == "scheduler"),
        "{post}"
    );
    assert!(
        post["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .contains("no scheduler heartbeat"),
        "{post}"
    );
    // Web and workers are up: nothing else is alerted, and SMS are still answered.
    watch.wait_cycles(3).await;
    assert_eq!(
        titles_of(&discord, "scheduler"),
        vec!["ERROR · watch_scheduler_down"]
    );
    for check in ["ready", "workers"] {
        assert_eq!(watch.check_state(check).await, "ok", "{check}");
    }

    cluster.spawn("scheduler", "scheduler").await;
    wait_for_title(&discord, "ERROR · watch_scheduler_recovered", &watch).await;
    assert_eq!(
        titles_of(&discord, "scheduler"),
        vec![
            "ERROR · watch_scheduler_down",
            "ERROR · watch_scheduler_recovered"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_down_delays_the_watchs_alert_and_loses_it_never() {
    let app = spawn_app_with(TestOptions {
        env: service_env(2),
        ..TestOptions::default()
    })
    .await;
    let discord = FakeDiscord::start().await;
    let watch = Watch::start(&app.base_url, &app.ops_url, &discord, &[]).await;
    watch.wait_all_ok().await;
    discord.set_down(Some(503));
    app.twilio.fail_next_with(&[400; 10_000]);
    wait_until(30, "the watch to try and fail to post", || async {
        discord.requests().iter().any(|r| r.status == 503)
    })
    .await;
    assert!(
        watch.logs().contains("THE WATCH CANNOT ALERT"),
        "loud in the log"
    );
    assert_eq!(watch.status().await["alerts"]["pending"], 1);
    // The checks go on meanwhile.
    watch.wait_cycles(2).await;
    discord.set_down(None);
    wait_for_title(&discord, "ERROR · watch_end_to_end_down", &watch).await;
    assert_eq!(
        titles_of(&discord, "end_to_end"),
        vec!["ERROR · watch_end_to_end_down"]
    );
    drop(watch);
    app.stop().await;
}

// ------------------------------------------------------------- synthetic leads ---------- //

/// The watch's synthetic SMS, as the watch sends it (signed, `LeadAgentSynthetic=1`).
async fn synthetic_sms(app: &TestApp, from: &str) {
    let sms = SyntheticSms {
        url: &app.base_url,
        ops_url: &app.ops_url,
        public_url: PUBLIC_URL,
        twilio_auth_token: Some(AUTH_TOKEN),
        ops_token: None,
        from,
        to: OUR_NUMBER,
        text: "lead-agent watch: is the 2BR still available?",
        wait: Duration::from_secs(15),
    };
    send_and_await_reply(&app.http, &sms)
        .await
        .expect("the synthetic SMS is answered");
}

/// The last report the scheduler stored (`null` before the first).
async fn stored_report(app: &TestApp) -> Value {
    let r = app
        .http
        .get(format!("{}/ops/report", app.ops_url))
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        r.json().await.unwrap()
    } else {
        Value::Null
    }
}

#[tokio::test]
async fn synthetic_leads_are_left_out_of_the_owner_report_and_get_no_followups() {
    let real = "+13125550191";
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("OWNER_TZ", "UTC".into()),
            ("SCHEDULE_FOLLOWUP_SWEEP", "* * * * * *".into()),
            ("SCHEDULE_OWNER_REPORT", "* * * * * *".into()),
            ("FOLLOWUP_HOURS", "0.0002".into()),
            (
                "QUIET_HOURS",
                quiet_window_in(chrono_tz::America::Chicago, 180, 60),
            ),
        ],
        ..TestOptions::default()
    })
    .await;
    synthetic_sms(&app, TEST_PHONE).await;
    app.post_sms(real, "Hi, is the 2BR still available?").await;
    // The real lead's followup, sent by the running scheduler, proves the sweep ran past
    // the synthetic lead's (never armed) timer.
    wait_until(30, "the real lead's followup", || async {
        app.twilio.sent_to(real).len() >= 2
    })
    .await;
    assert!(
        app.store
            .followup_of(&LeadId::new(TEST_PHONE))
            .await
            .unwrap()
            .is_none(),
        "a synthetic lead's reply arms no followup"
    );
    assert_eq!(app.twilio.sent_to(TEST_PHONE).len(), 1, "only its reply");
    assert!(
        app.store
            .is_synthetic(&LeadId::new(TEST_PHONE))
            .await
            .unwrap()
    );
    assert!(!app.store.is_synthetic(&LeadId::new(real)).await.unwrap());

    // The owner report the running scheduler stores, once it covers the followup.
    wait_until(
        30,
        "a stored owner report covering the followup",
        || async { stored_report(&app).await["counts"]["followups_sent"].as_i64() >= Some(1) },
    )
    .await;
    let report = stored_report(&app).await;
    let counts = &report["counts"];
    assert_eq!(counts["leads_in"], 1, "{report}");
    assert_eq!(counts["messages_in"], 1, "{report}");
    assert_eq!(counts["replies_out"], 1, "{report}");
    assert_eq!(counts["waiting_now"], 0, "{report}");
    // The same through the live view.
    let live = app.get_json("/ops/report?live=true").await;
    assert_eq!(live["counts"]["leads_in"], 1, "{live}");
    app.stop().await;
}

#[tokio::test]
async fn the_running_sla_sweep_nags_about_real_leads_only() {
    let real = "+13125550192";
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("OWNER_TZ", "UTC".into()),
            ("SCHEDULE_SLA_SWEEP", "* * * * * *".into()),
            (
                "QUIET_HOURS",
                quiet_window_in(chrono_tz::America::Chicago, 180, 60),
            ),
        ],
        ..TestOptions::default()
    })
    .await;
    synthetic_sms(&app, TEST_PHONE).await;
    app.post_sms(real, "Hi, is the 2BR still available?").await;
    app.wait_for_sms(real, 1).await;
    let started = (Utc::now() - chrono::Duration::hours(25)).to_rfc3339();
    for lead in [TEST_PHONE, real] {
        let r = app
            .http
            .post(format!("{}/ops/leads/{lead}/sla", app.ops_url))
            .json(&json!({"kind": "doc_review", "ticket_id": "dry-run-1", "started_at": started}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    wait_until(30, "the real lead's SLA update", || async {
        app.twilio
            .sent_to(real)
            .iter()
            .any(|s| s.contains("still reviewing the documents"))
    })
    .await;
    let runs = || async {
        lead_agent::inspect::fetch_scheduled(&app.ops_url, None)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.name == "sla_sweep")
            .map_or(0, |j| j.runs)
    };
    let seen = runs().await;
    wait_until(30, "two more scheduled SLA sweeps", || async {
        runs().await >= seen + 2
    })
    .await;
    assert_eq!(
        app.twilio.sent_to(TEST_PHONE).len(),
        1,
        "the synthetic lead got its reply and nothing from the SLA engine: {:?}",
        app.twilio.sent_to(TEST_PHONE)
    );
    let nags: Vec<String> = app
        .alerts()
        .await
        .iter()
        .filter(|a| a["event"] == "sla_staff_nag")
        .map(|a| a["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(nags.iter().any(|t| t.contains(real)), "{nags:?}");
    assert!(!nags.iter().any(|t| t.contains(TEST_PHONE)), "{nags:?}");
    app.stop().await;
}
