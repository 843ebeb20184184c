//! The scheduler through the real application: `inspect scheduled`, followup timers (due,
//! cancelled, held over quiet hours, stopped by opt-out, dead after the last), the
//! response-gap watch re-driving a lost turn, and two scheduler processes on one PostgreSQL.
//!
//! Schedules are set to every second and waits to about a second so each test takes
//! seconds; every wait is a bounded poll.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::process::{Child, Command, Stdio};

use actors::ports::LeadId;
use chrono::{Timelike, Utc};
use lead_agent::config::{ENV_VARS, Job};
use lead_agent::inspect::fetch_scheduled;
use lead_agent::store::{InboundKind, NewInbound, SqlStore, fresh_postgres_database};

use crate::helpers::*;

/// A quiet-hours window in UTC from `start_min` minutes from now, `len_min` long.
fn quiet_window(start_min: i64, len_min: i64) -> String {
    quiet_window_in(chrono_tz::UTC, start_min, len_min)
}

/// The same window in `tz`'s local time: quiet hours are the lead's local time, and a
/// lead's zone comes from its area code.
pub(crate) fn quiet_window_in(tz: chrono_tz::Tz, start_min: i64, len_min: i64) -> String {
    let start = (Utc::now() + chrono::Duration::minutes(start_min)).with_timezone(&tz);
    let end = start + chrono::Duration::minutes(len_min);
    format!(
        "{:02}:{:02}-{:02}:{:02}",
        start.hour(),
        start.minute(),
        end.hour(),
        end.minute()
    )
}

/// Fast followups: every second a sweep; ~0.7 s between followups; quiet hours elsewhere.
pub(crate) fn fast_followups(hours: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OWNER_TZ", "UTC".into()),
        ("SCHEDULE_FOLLOWUP_SWEEP", "* * * * * *".into()),
        ("FOLLOWUP_HOURS", hours.into()),
        ("QUIET_HOURS", quiet_window(180, 60)),
    ]
}

/// The jobs a running scheduler must have: one per declared `SCHEDULE_*` variable (what
/// operators set, read independently of the scheduler's own table) and every job body the
/// scheduler can run ([`Job::ALL`]). A job or variable missing from the running schedule
/// fails the tests that compare against this.
fn expected_jobs() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ENV_VARS
        .iter()
        .filter_map(|v| v.name.strip_prefix("SCHEDULE_"))
        .map(str::to_ascii_lowercase)
        .collect();
    names.extend(Job::ALL.iter().map(|j| j.name().to_string()));
    names
}

#[tokio::test]
async fn inspect_scheduled_lists_every_job_with_a_next_fire_time() {
    let app = spawn_app_with(TestOptions {
        env: vec![("SCHEDULE_HEARTBEAT", "* * * * * *".into())],
        ..TestOptions::default()
    })
    .await;

    // The library client, as `inspect scheduled` uses it.
    let jobs = fetch_scheduled(&app.ops_url, None).await.unwrap();
    let running: BTreeSet<String> = jobs.iter().map(|j| j.name.clone()).collect();
    assert_eq!(
        running,
        expected_jobs(),
        "the running schedule lacks a job (or has one nobody declared)"
    );
    let now = Utc::now();
    for j in &jobs {
        let next = chrono::DateTime::parse_from_rfc3339(j.next_fire_at.as_deref().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            next > now - chrono::Duration::seconds(2),
            "{} next {next}",
            j.name
        );
    }

    // A run records its lateness and outcome.
    wait_until(15, "the heartbeat job to run", || async {
        fetch_scheduled(&app.ops_url, None)
            .await
            .unwrap()
            .iter()
            .any(|j| j.name == "heartbeat" && j.runs > 0 && j.last_lateness_ms.is_some())
    })
    .await;

    // The real command, as an operator runs it: JSON and the table. (tokio's Command: a
    // blocking wait would stall this test's runtime, which serves the app.)
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .args(["inspect", "scheduled", "--url", &app.ops_url, "--json"])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), expected_jobs().len());
    for j in &list {
        for field in [
            "name",
            "schedule",
            "next_fire_at",
            "last_run_at",
            "last_lateness_ms",
        ] {
            assert!(j.get(field).is_some(), "{field} missing in {j}");
        }
        assert!(j["next_fire_at"].is_string());
    }
    let hb = list.iter().find(|j| j["name"] == "heartbeat").unwrap();
    assert!(hb["last_run_at"].is_string() && hb["last_lateness_ms"].is_i64());

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .args(["inspect", "scheduled", "--url", &app.ops_url])
        .env_clear()
        .output()
        .await
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("JOB"), "{table}");
    for name in expected_jobs() {
        assert!(
            table.lines().any(|l| l.starts_with(name.as_str())),
            "{name} not in\n{table}"
        );
    }

    // A stopped server: a clear error and a non-zero exit.
    let url = app.ops_url.clone();
    app.stop().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lead-agent"))
        .args(["inspect", "scheduled", "--url", &url])
        .env_clear()
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not reach"));
}

#[tokio::test]
async fn a_silent_lead_gets_followups_then_is_marked_dead() {
    let app = spawn_app_with(TestOptions {
        env: fast_followups("0.0002,0.0002"),
        ..TestOptions::default()
    })
    .await;
    let lead = "+13125550301";
    app.post_sms(lead, "Hi, is the 2BR still available?").await;
    app.wait_for_sms(lead, 1).await;

    // Reply, followup 1, followup 2 (the last), then the lead is given up.
    wait_until(30, "the lead to be marked dead", || async {
        app.store
            .lead_dead(&LeadId::new(lead))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let sent = app.twilio.sent_to(lead);
    assert_eq!(sent.len(), 3, "reply + 2 followups: {sent:?}");
    assert!(sent[1].contains("checking in"), "{}", sent[1]);
    assert!(sent[2].contains("last check-in"), "{}", sent[2]);
    assert!(
        app.store
            .lead_dead(&LeadId::new(lead))
            .await
            .unwrap()
            .unwrap()
            .contains("no answer after 2 followups")
    );
    let alerts = app.alerts().await;
    let dead = alerts
        .iter()
        .find(|a| a["event"] == "dead_lead")
        .expect("dead_lead raised");
    assert_eq!(dead["reason"], "no answer after 2 followups");
    assert!(
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "followup_queued")
    );
    // Nothing more goes out to a dead lead.
    assert!(
        app.store
            .followup_of(&LeadId::new(lead))
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reply_from_the_lead_cancels_the_pending_followup_and_rearms_it() {
    // A long wait: the timer is armed but never due during the test.
    let app = spawn_app_with(TestOptions {
        env: fast_followups("24"),
        ..TestOptions::default()
    })
    .await;
    let lead = LeadId::new("+13125550302");
    app.post_sms(lead.as_str(), "Hi, do you have studios?")
        .await;
    app.wait_for_sms(lead.as_str(), 1).await;
    wait_until(10, "the timer to be armed by the sent reply", || async {
        app.store.followup_of(&lead).await.unwrap().is_some()
    })
    .await;
    let (step, due, _) = app.store.followup_of(&lead).await.unwrap().unwrap();
    assert_eq!(step, 0);
    assert!(due > Utc::now() + chrono::Duration::hours(23));

    // The webhook's transaction deletes the timer.
    let (status, _) = app.post_sms(lead.as_str(), "Yes, around $1500").await;
    assert_eq!(status, 200);
    let after_inbound = app.store.followup_of(&lead).await.unwrap();
    // Either already cancelled-and-rearmed by the new reply, or cancelled and waiting for it.
    if let Some((_, due2, _)) = after_inbound {
        assert!(due2 > due, "a re-armed timer starts from the new reply");
    }
    app.wait_for_sms(lead.as_str(), 2).await;
    wait_until(
        10,
        "the timer to be re-armed by the second reply",
        || async {
            matches!(app.store.followup_of(&lead).await.unwrap(), Some((0, d, _)) if d > due)
        },
    )
    .await;
    app.stop().await;
}

/// An app with fast followups whose quiet hours are an hour around now in `tz`'s local
/// time (the office's zone is UTC).
async fn app_quiet_now_in(tz: chrono_tz::Tz) -> TestApp {
    let mut env = fast_followups("24");
    env.retain(|(k, _)| *k != "QUIET_HOURS");
    env.push(("QUIET_HOURS", quiet_window_in(tz, -30, 60)));
    spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await
}

/// The lead writes, is answered, and its followup timer is made due now.
pub(crate) async fn answered_with_a_due_followup(app: &TestApp, lead: &LeadId) {
    app.post_sms(lead.as_str(), "Hi, any 1BR?").await;
    app.wait_for_sms(lead.as_str(), 1).await;
    // The send is recorded (and the timer armed for a day later) after Twilio has the SMS:
    // wait for it, or it would overwrite the due time set here.
    app.wait_settled(lead.as_str()).await;
    app.store
        .arm_followup(lead, Utc::now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_due_followup_waits_out_the_quiet_hours() {
    // Quiet now where the lead is (312: Chicago); the office's zone (UTC) does not matter.
    let app = app_quiet_now_in(chrono_tz::America::Chicago).await;
    let lead = LeadId::new("+13125550303");
    answered_with_a_due_followup(&app, &lead).await;
    wait_until(10, "the sweep to hold the followup", || async {
        matches!(app.store.followup_of(&lead).await.unwrap(), Some((0, _, Some(note))) if note == "quiet hours")
    })
    .await;
    let (_, due, _) = app.store.followup_of(&lead).await.unwrap().unwrap();
    assert!(due > Utc::now(), "held until the quiet hours end: {due}");
    assert!(due <= Utc::now() + chrono::Duration::minutes(31));
    assert_eq!(
        app.twilio.sent_to(lead.as_str()).len(),
        1,
        "nothing sent in quiet hours"
    );
    app.stop().await;
}

#[tokio::test]
async fn quiet_hours_are_the_night_where_the_lead_is_from_its_area_code() {
    // Quiet now in Los Angeles; in Chicago (two hours ahead) and in the office's UTC it is
    // not. The San Francisco lead waits; the Chicago lead gets its followup.
    let app = app_quiet_now_in(chrono_tz::America::Los_Angeles).await;
    let west = LeadId::new("+14155550404");
    let central = LeadId::new("+13125550404");
    for lead in [&west, &central] {
        answered_with_a_due_followup(&app, lead).await;
    }
    wait_until(10, "the Chicago lead's followup", || async {
        app.twilio.sent_to(central.as_str()).len() == 2
    })
    .await;
    wait_until(10, "the sweep to hold the San Francisco lead's followup", || async {
        matches!(app.store.followup_of(&west).await.unwrap(), Some((0, _, Some(note))) if note == "quiet hours")
    })
    .await;
    assert_eq!(
        app.twilio.sent_to(west.as_str()).len(),
        1,
        "nothing sent in the lead's night"
    );
    app.stop().await;
}

#[tokio::test]
async fn no_followup_goes_to_a_lead_who_opted_out() {
    let app = spawn_app_with(TestOptions {
        env: fast_followups("0.001"),
        ..TestOptions::default()
    })
    .await;
    let lead = LeadId::new("+13125550304");
    app.post_sms(lead.as_str(), "Hi, is parking included?")
        .await;
    app.wait_for_sms(lead.as_str(), 1).await;
    app.post_sms(lead.as_str(), "STOP").await;
    // STOP deletes the timer in the webhook's transaction; one armed by hand for an
    // opted-out lead is dropped by the sweep.
    app.store
        .arm_followup(&lead, Utc::now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    wait_until(
        10,
        "the sweep to drop the opted-out lead's timer",
        || async { app.store.followup_of(&lead).await.unwrap().is_none() },
    )
    .await;
    // A silent lead in the same app does get its followup: the sweep is running.
    let other = "+13125550305";
    app.post_sms(other, "Hi, pets ok?").await;
    app.wait_for_sms(other, 2).await;
    assert_eq!(
        app.twilio.sent_to(lead.as_str()).len(),
        1,
        "only the first reply"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_whose_turn_was_lost_is_answered_after_the_watch_redrives_it() {
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("SCHEDULE_RESPONSE_GAP_WATCH", "* * * * * *".into()),
            ("FIRST_RESPONSE_SLA_SECS", "1".into()),
            // Only the watch may find it: the outbox's stale-work sweep is far away.
            ("OUTBOX_SWEEP_SECS", "3600".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    // Stored as the webhook stores it, but its wake-up is lost (never published).
    let lead = LeadId::new("+13125550306");
    app.store
        .accept_inbound(
            NewInbound {
                message_sid: "SMlostturn0000000000000000000000",
                from: &lead,
                body: "Hello? Is anyone there?",
                synthetic: false,
            },
            InboundKind::Conversation,
        )
        .await
        .unwrap();
    app.wait_for_sms(lead.as_str(), 1).await;
    let alerts = app.alerts().await;
    let gap = alerts
        .iter()
        .find(|a| a["event"] == "response_gap")
        .expect("a response_gap alert");
    assert!(gap["text"].as_str().unwrap().contains(lead.as_str()));
    let jobs = fetch_scheduled(&app.ops_url, None).await.unwrap();
    let watch = jobs
        .iter()
        .find(|j| j.name == "response_gap_watch")
        .unwrap();
    assert!(watch.runs > 0);
    app.stop().await;
}

#[tokio::test]
async fn many_leads_waiting_is_one_loud_stalled_alert_then_one_recovery() {
    // The model hangs past its budget, so leads wait while the rules responder is reached.
    let app = spawn_app_with(TestOptions {
        env: vec![
            ("SCHEDULE_RESPONSE_GAP_WATCH", "* * * * * *".into()),
            ("FIRST_RESPONSE_SLA_SECS", "1".into()),
            ("RESPONSE_GAP_STALL_LEADS", "3".into()),
            ("LLM_CONCURRENCY", "1".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let leads: Vec<String> = (0..4).map(|i| format!("+1312555040{i}")).collect();
    for l in &leads {
        app.post_sms(l, "HANG please").await;
    }
    wait_until(30, "the stalled alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "pipeline_stalled")
    })
    .await;
    for l in &leads {
        app.wait_for_sms(l, 1).await;
    }
    wait_until(30, "the recovery alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "pipeline_recovered")
    })
    .await;
    let events = app.alert_events().await;
    assert_eq!(
        events.iter().filter(|e| *e == "pipeline_stalled").count(),
        1,
        "one loud alert, not one per run: {events:?}"
    );
    app.stop().await;
}

/// Two `serve --role scheduler` processes of the real binary against one PostgreSQL.
struct Schedulers {
    env: HashMap<&'static str, String>,
    children: Vec<Child>,
    store: SqlStore,
    _queue: crate::rabbitmq::Cleanup,
}

impl Schedulers {
    async fn start() -> Self {
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let database = fresh_postgres_database(&admin).await;
        let queue = crate::rabbitmq::unique_queue("sched");
        let env = HashMap::from([
            ("BIND_ADDRESS", "127.0.0.1".to_string()),
            ("DATABASE_URL", database.clone()),
            ("AMQP_URL", crate::rabbitmq::BROKER_URL.to_string()),
            ("AMQP_QUEUE", queue.clone()),
            ("SCHEDULE_HEARTBEAT", "* * * * * *".to_string()),
            ("SCHEDULER_LEASE_SECS", "3".to_string()),
            ("LOG_FORMAT", "json".to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]);
        let mut s = Self {
            env,
            children: Vec::new(),
            store: SqlStore::connect(&database).await.unwrap(),
            _queue: crate::rabbitmq::Cleanup(queue),
        };
        for _ in 0..2 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(env!("CARGO_BIN_EXE_lead-agent"))
                .args(["serve", "--role", "scheduler"])
                .env_clear()
                .envs(s.env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("PORT", port.to_string())
                .env("OPS_PORT", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            s.children.push(child);
        }
        s
    }

    /// The pid in the lease holder's instance name (`scheduler:host:pid:nonce`).
    async fn leader_pid(&self) -> Option<u32> {
        let (holder, expires) = self.store.lease_holder("scheduler").await.ok()??;
        if expires < Utc::now() {
            return None;
        }
        holder.split(':').nth(2)?.parse().ok()
    }
}

impl Drop for Schedulers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn pid_of(instance: &str) -> u32 {
    instance.split(':').nth(2).unwrap().parse().unwrap()
}

#[tokio::test]
async fn two_schedulers_run_each_tick_once_and_the_standby_takes_over() {
    let mut s = Schedulers::start().await;
    wait_until(30, "ten heartbeat ticks", || async {
        s.store.job_ticks("heartbeat").await.unwrap().len() >= 10
    })
    .await;
    let leader = s.leader_pid().await.expect("a leader");
    let pids: Vec<u32> = s.children.iter().map(|c| c.id()).collect();
    assert!(pids.contains(&leader));

    // Every tick is claimed once (the key is (job, fire_at)) and by the leader only; the
    // status row counts one run per claimed tick.
    let ticks = s.store.job_ticks("heartbeat").await.unwrap();
    let distinct: HashSet<_> = ticks.iter().map(|t| t.fire_at).collect();
    assert_eq!(distinct.len(), ticks.len());
    assert!(
        ticks.iter().all(|t| pid_of(&t.instance) == leader),
        "{ticks:?}"
    );
    let finished = ticks.iter().filter(|t| t.outcome.is_some()).count() as i64;
    let runs = s
        .store
        .scheduled_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.name == "heartbeat")
        .unwrap()
        .runs;
    assert!(
        (0..=2).contains(&(runs - finished)),
        "runs {runs} vs finished ticks {finished}"
    );

    // Kill the leader without a goodbye: the standby takes over once the lease lapses.
    let idx = pids.iter().position(|p| *p == leader).unwrap();
    let killed_at = Utc::now();
    let mut child = s.children.remove(idx);
    Command::new("kill")
        .args(["-9", &leader.to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let standby = pids[1 - idx];
    wait_until(60, "the standby to take over and tick", || async {
        s.store
            .job_ticks("heartbeat")
            .await
            .unwrap()
            .iter()
            .any(|t| pid_of(&t.instance) == standby)
    })
    .await;
    let ticks = s.store.job_ticks("heartbeat").await.unwrap();
    let first_new = ticks
        .iter()
        .find(|t| pid_of(&t.instance) == standby)
        .unwrap();
    assert!(
        first_new.fire_at - killed_at < chrono::Duration::seconds(60),
        "took over within a minute"
    );
    assert_eq!(s.leader_pid().await, Some(standby));
    let distinct: HashSet<_> = ticks.iter().map(|t| t.fire_at).collect();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "no tick ran twice across the handover"
    );
    // The ticks that fell between the death and the takeover are counted as missed.
    let job = s
        .store
        .scheduled_jobs()
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.name == "heartbeat")
        .unwrap();
    assert!(job.missed > 0, "missed ticks counted: {job:?}");
}

#[tokio::test]
async fn the_owner_report_counts_the_day_and_is_stored_and_posted() {
    let app = spawn_app().await;
    // Before any report: 404 with a pointer to the live view.
    let r = app
        .http
        .get(format!("{}/ops/report", app.ops_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let lead = "+13125550311";
    app.post_sms(lead, "Hi, is the 2BR still available?").await;
    app.wait_for_sms(lead, 1).await;
    let live = app.get_json("/ops/report?live=true").await;
    assert_eq!(live["counts"]["leads_in"], 1, "{live}");
    assert_eq!(live["counts"]["messages_in"], 1, "{live}");
    assert_eq!(live["counts"]["replies_out"], 1, "{live}");
    assert_eq!(live["counts"]["waiting_now"], 0, "{live}");
    for field in [
        "tours_requested",
        "sla_breaches",
        "alerts_spooled",
        "model_fallbacks",
    ] {
        assert!(live.get(field).is_some(), "{field} missing: {live}");
    }
    app.stop().await;

    // The 07:00 job, here every second: stored for /ops/report and posted to GENERAL.
    let app = spawn_app_with(TestOptions {
        env: vec![("SCHEDULE_OWNER_REPORT", "* * * * * *".into())],
        ..TestOptions::default()
    })
    .await;
    app.post_sms(lead, "Hi, any studios?").await;
    app.wait_for_sms(lead, 1).await;
    wait_until(15, "a stored report that counts the lead", || async {
        let r = app
            .http
            .get(format!("{}/ops/report", app.ops_url))
            .send()
            .await
            .unwrap();
        r.status() == 200 && r.json::<serde_json::Value>().await.unwrap()["counts"]["leads_in"] == 1
    })
    .await;
    let alerts = app.alerts().await;
    let posted = alerts
        .iter()
        .find(|a| a["event"] == "owner_report")
        .expect("the report is posted");
    assert_eq!(posted["kind"], "general");
    assert!(posted["text"].as_str().unwrap().starts_with("Daily report"));
    app.stop().await;
}

/// The daily self-check, here every second, through the running scheduler: one
/// SANITY_CHECK alert, info while everything holds; a provider key the provider refuses
/// turns it into a warning that names the provider and its answer.
#[tokio::test]
async fn the_running_scheduler_posts_the_self_check_and_names_a_refused_provider_key() {
    let app = spawn_app_with(TestOptions {
        env: vec![("SCHEDULE_SELF_CHECK", "* * * * * *".into())],
        ..TestOptions::default()
    })
    .await;
    wait_until(15, "the self-check's alert", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "self_check_ok")
    })
    .await;
    let alert = app
        .alerts()
        .await
        .into_iter()
        .find(|a| a["event"] == "self_check_ok")
        .unwrap();
    assert_eq!(alert["kind"], "sanity_check");
    assert_eq!(alert["severity"], "info");
    let text = alert["text"].as_str().unwrap();
    for line in [
        "Daily self-check: all checks hold.",
        "ok      Anthropic answers (models list)",
        "buildings catalog: ",
        "Discord: no alert waiting",
        "verify: never recorded",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    app.stop().await;

    let app = spawn_app_with(TestOptions {
        env: vec![
            ("SCHEDULE_SELF_CHECK", "* * * * * *".into()),
            (
                "ANTHROPIC_API_KEY",
                crate::support::fake_anthropic::REVOKED_KEY.into(),
            ),
        ],
        ..TestOptions::default()
    })
    .await;
    wait_until(15, "the self-check's warning", || async {
        app.alert_events()
            .await
            .iter()
            .any(|e| e == "self_check_problems")
    })
    .await;
    let alert = app
        .alerts()
        .await
        .into_iter()
        .find(|a| a["event"] == "self_check_problems")
        .unwrap();
    assert_eq!(alert["severity"], "warning");
    let text = alert["text"].as_str().unwrap();
    assert!(
        text.contains("PROBLEM Anthropic answered 401 Unauthorized"),
        "{text}"
    );
    app.stop().await;
}
