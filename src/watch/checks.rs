//! The watch's checks: what it asks the service over HTTP and how each answer is judged.
//!
//! Owns: one interval cycle — `/ready` first (on the public URL, the path Twilio takes);
//! only when the service is ready, from its ops listener (`WATCH_OPS_URL`) the
//! heartbeats (`/ops/heartbeats`: a fresh worker and a fresh scheduler, "fresh" meaning
//! within three of the service's own `HEARTBEAT_SECS`, which it reports), scheduler
//! lateness (`/ops/scheduled`) and the alert spool (`/ops/discord`) — and the end-to-end
//! check (a signed synthetic SMS through [`crate::probe`]). A check that depends on the
//! service answering is `Unknown` while it does not: that is the `ready` incident, and one
//! outage is one alert.
//! Must not: touch the store or the queue (HTTP only), or decide what to tell people
//! ([`super::incidents`] does).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::incidents::{Check, Observation};
use super::settings::WatchSettings;
use crate::probe;

/// Heartbeats older than this many of the service's periods are stale: two missed beats
/// are noise on a loaded machine, three are a process that stopped.
pub const STALE_PERIODS: u64 = 3;

/// Used when the service does not report its `HEARTBEAT_SECS` (an older version): what
/// `verify` allows.
const FALLBACK_FRESH_MS: u64 = crate::verify::HEARTBEAT_FRESH_MS as u64;

/// `/ready` is asked this many times, this far apart, before it counts as failed: a pod
/// leaving the load balancer during a rollout answers 503 for a moment.
const READY_ATTEMPTS: u32 = 3;
const READY_RETRY: Duration = Duration::from_millis(500);

/// Every request's budget: a cycle stays bounded however the service hangs.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest one interval cycle can take: every `/ready` attempt and then the three
/// `/ops` reads (side by side) timing out.
pub const CYCLE_BUDGET: Duration = Duration::from_secs(
    READY_ATTEMPTS as u64 * REQUEST_TIMEOUT.as_secs() + 2 + REQUEST_TIMEOUT.as_secs(),
);

const NOT_READY: &str = "the service is not ready (see the ready check)";

/// "12 s", "4 min", "3 h".
pub fn human(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An `/ops` read that failed while the service is ready: a failure, with the likely fix
/// when the watch's token is the problem.
fn ops_failure(error: String) -> Observation {
    if error.contains("401") || error.contains("403") {
        Observation::Fail(format!(
            "{error}: the watch cannot read /ops (OPS_TOKEN must be the service's)"
        ))
    } else {
        Observation::Fail(error)
    }
}

/// Workers and scheduler from `GET /ops/heartbeats`: a heartbeat of each (an `all`
/// process counts as both) younger than [`STALE_PERIODS`] of the service's period.
/// `back_for`: how long ago the service answered again after an outage, or the watch
/// started. Within the stale window of that, a missing heartbeat is not judged: restarted
/// processes have not had their chance to beat yet (a worker beats once it consumes), an
/// outage was alerted already, and a watch just started cannot tell how long the
/// processes have been up.
pub fn evaluate_heartbeats(
    beats: &Value,
    back_for: Option<Duration>,
) -> (Observation, Observation) {
    let Some(list) = beats.as_array() else {
        let why = "/ops/heartbeats is not a JSON array".to_string();
        return (Observation::Fail(why.clone()), Observation::Fail(why));
    };
    let judge = |roles: [&str; 2], what: &str| {
        let of_role: Vec<&Value> = list
            .iter()
            .filter(|b| b["role"].as_str().is_some_and(|r| roles.contains(&r)))
            .collect();
        let stale_after = |b: &Value| {
            b["heartbeat_every_ms"]
                .as_u64()
                .map_or(FALLBACK_FRESH_MS, |every| every * STALE_PERIODS)
        };
        let fresh: Vec<&&Value> = of_role
            .iter()
            .filter(|b| {
                b["age_ms"]
                    .as_i64()
                    .is_some_and(|age| age >= 0 && (age as u64) <= stale_after(b))
            })
            .collect();
        let newest = of_role
            .iter()
            .filter_map(|b| b["age_ms"].as_i64().map(|a| (a, b)))
            .min_by_key(|(a, _)| *a);
        // The period is the service's, whichever role reported it.
        let window = list
            .iter()
            .map(stale_after)
            .max()
            .unwrap_or(FALLBACK_FRESH_MS);
        if fresh.is_empty()
            && let Some(back) = back_for
            && back.as_millis() as u64 <= window
        {
            return Observation::Unknown(format!(
                "the service answered again {} ago; waiting for a {what} heartbeat",
                human(back.as_millis() as i64)
            ));
        }
        match (fresh.is_empty(), newest) {
            (false, Some((age, _))) => Observation::Pass(format!(
                "{} fresh {what} heartbeat(s), newest {} old",
                fresh.len(),
                human(age)
            )),
            (_, None) => Observation::Fail(format!("no {what} has ever sent a heartbeat")),
            (true, Some((age, b))) => Observation::Fail(format!(
                "no {what} heartbeat within {} (the service beats every {}); the newest, {}, is {} old: no {what} is running",
                human(stale_after(b) as i64),
                human(b["heartbeat_every_ms"].as_i64().unwrap_or(0)),
                b["instance"].as_str().unwrap_or("?"),
                human(age)
            )),
        }
    };
    (
        judge(["worker", "all"], "worker"),
        judge(["scheduler", "all"], "scheduler"),
    )
}

/// Scheduler lateness from `GET /ops/scheduled`: no job whose next fire time is more than
/// `late` past, nor whose last run was later than `late` after its tick.
pub fn evaluate_scheduled(jobs: &Value, now: DateTime<Utc>, late: Duration) -> Observation {
    let Some(list) = jobs.as_array() else {
        return Observation::Fail("/ops/scheduled is not a JSON array".into());
    };
    if list.is_empty() {
        return Observation::Fail("no scheduled jobs: no scheduler has registered any".into());
    }
    let late_ms = late.as_millis() as i64;
    let mut problems = Vec::new();
    let mut next: Option<(DateTime<Utc>, &str)> = None;
    for job in list {
        let name = job["name"].as_str().unwrap_or("?");
        if let Some(t) = parse_time(&job["next_fire_at"]) {
            let overdue = (now - t).num_milliseconds();
            if overdue > late_ms {
                problems.push(format!("{name} was due {} ago", human(overdue)));
            } else if next.is_none_or(|(n, _)| t < n) {
                next = Some((t, name));
            }
        }
        if let Some(lateness) = job["last_lateness_ms"].as_i64()
            && lateness > late_ms
        {
            problems.push(format!("{name}'s last run was {} late", human(lateness)));
        }
    }
    match (problems.is_empty(), next) {
        (true, Some((t, job))) => Observation::Pass(format!(
            "{} job(s) on time; next: {job} at {}",
            list.len(),
            t.format("%H:%M:%S UTC")
        )),
        (true, None) => Observation::Fail("no job has a next fire time".into()),
        (false, _) => Observation::Fail(format!("{}: no scheduler is firing", problems.join("; "))),
    }
}

/// The scheduler check: its heartbeat and its lateness, one incident.
pub fn combine_scheduler(heartbeat: Observation, lateness: Observation) -> Observation {
    match (heartbeat, lateness) {
        (Observation::Pass(a), Observation::Pass(b)) => Observation::Pass(format!("{a}; {b}")),
        (Observation::Fail(a), Observation::Fail(b)) => Observation::Fail(format!("{a}; {b}")),
        (Observation::Fail(a), _) | (_, Observation::Fail(a)) => Observation::Fail(a),
        (Observation::Unknown(a), _) | (_, Observation::Unknown(a)) => Observation::Unknown(a),
    }
}

/// The alert spool from `GET /ops/discord`: the oldest alert still owed to Discord is
/// younger than `max_age`.
pub fn evaluate_spool(discord: &Value, now: DateTime<Utc>, max_age: Duration) -> Observation {
    if let Some(e) = discord["spool_error"].as_str() {
        return Observation::Unknown(format!("the service cannot read its spool: {e}"));
    }
    let Some(spooled) = discord["spooled"].as_i64() else {
        return Observation::Unknown(
            "/ops/discord does not report the spool (an older service?)".into(),
        );
    };
    let Some(oldest) = parse_time(&discord["oldest_spooled_at"]) else {
        return Observation::Pass("no alert waiting for Discord".into());
    };
    let age = (now - oldest).num_milliseconds();
    if age > max_age.as_millis() as i64 {
        let halted = discord["halted"]
            .as_str()
            .map(|h| format!(" (the sender is halted: {h})"))
            .unwrap_or_default();
        Observation::Fail(format!(
            "{spooled} alert(s) waiting for Discord, the oldest for {}: alerts are not reaching Discord{halted}",
            human(age)
        ))
    } else {
        Observation::Pass(format!(
            "{spooled} alert(s) spooled, the oldest {} old",
            human(age)
        ))
    }
}

/// Talks to the service.
#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
    settings: std::sync::Arc<WatchSettings>,
}

impl Prober {
    pub fn new(settings: std::sync::Arc<WatchSettings>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self { http, settings })
    }

    fn ops_token(&self) -> Option<&str> {
        self.settings.ops_token.as_ref().map(|t| t.expose())
    }

    /// An `/ops` read, from the service's ops listener; a failure names where it asked.
    async fn get(&self, path: &str) -> Result<Value, String> {
        probe::get_json(&self.http, &self.settings.ops_url, path, self.ops_token())
            .await
            .map_err(|e| {
                format!(
                    "{e} (ops listener {}, WATCH_OPS_URL)",
                    self.settings.ops_url
                )
            })
    }

    /// `/ready`, asked up to [`READY_ATTEMPTS`] times before it counts as failed.
    pub async fn ready(&self) -> Observation {
        let url = format!("{}/ready", self.settings.url);
        let mut last = String::new();
        for attempt in 0..READY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(READY_RETRY).await;
            }
            match self.http.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    return Observation::Pass("ready".into());
                }
                Ok(r) => {
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    let why: Vec<String> = ["store", "queue", "accepting"]
                        .iter()
                        .filter(|k| !body[**k].is_null() && body[**k] != "ok" && body[**k] != true)
                        .map(|k| format!("{k}: {}", body[*k]))
                        .collect();
                    last = format!("{} answered {status} ({})", url, why.join(", "));
                }
                Err(e) => last = format!("no answer from {url}: {}", probe::describe_error(e)),
            }
        }
        Observation::Fail(last)
    }

    /// One interval cycle: every check but the end-to-end one. `back_for`: see
    /// [`evaluate_heartbeats`].
    pub async fn cycle(
        &self,
        now: DateTime<Utc>,
        back_for: Option<Duration>,
    ) -> Vec<(Check, Observation)> {
        let ready = self.ready().await;
        if !matches!(ready, Observation::Pass(_)) {
            let unknown = || Observation::Unknown(NOT_READY.into());
            return vec![
                (Check::Ready, ready),
                (Check::Workers, unknown()),
                (Check::Scheduler, unknown()),
                (Check::AlertSpool, unknown()),
            ];
        }
        let (beats, jobs, discord) = tokio::join!(
            self.get("/ops/heartbeats"),
            self.get("/ops/scheduled"),
            self.get("/ops/discord"),
        );
        let (workers, scheduler_beat) = match beats {
            Ok(b) => evaluate_heartbeats(&b, back_for),
            Err(e) => (ops_failure(e.clone()), ops_failure(e)),
        };
        let lateness = match jobs {
            Ok(j) => evaluate_scheduled(&j, now, self.settings.scheduler_late),
            Err(e) => ops_failure(e),
        };
        let spool = match discord {
            Ok(d) => evaluate_spool(&d, now, self.settings.spool_age),
            Err(e) => ops_failure(e),
        };
        vec![
            (Check::Ready, ready),
            (Check::Workers, workers),
            (
                Check::Scheduler,
                combine_scheduler(scheduler_beat, lateness),
            ),
            (Check::AlertSpool, spool),
        ]
    }

    /// The end-to-end check: a signed synthetic SMS from the test phone, answered with a
    /// sent reply within `WATCH_E2E_TIMEOUT_SECS`. A failure while the service is not ready
    /// is the `ready` incident's, not a second one.
    pub async fn end_to_end(&self) -> Observation {
        let Some(from) = self.settings.test_phone.as_deref() else {
            return Observation::Unknown("WATCH_TEST_PHONE is not set".into());
        };
        let text = format!(
            "lead-agent watch {}: is the 2BR still available?",
            Utc::now().format("%Y-%m-%d %H:%M:%S")
        );
        let sms = probe::SyntheticSms {
            url: &self.settings.url,
            ops_url: &self.settings.ops_url,
            public_url: &self.settings.public_url,
            twilio_auth_token: self.settings.twilio_auth_token.as_ref().map(|t| t.expose()),
            ops_token: self.ops_token(),
            from,
            to: &self.settings.to,
            text: &text,
            wait: self.settings.e2e_timeout,
        };
        match probe::send_and_await_reply(&self.http, &sms).await {
            Ok(detail) => Observation::Pass(detail),
            Err(why) => match self.ready().await {
                Observation::Pass(_) => {
                    Observation::Fail(format!("synthetic SMS from {from}: {why}"))
                }
                _ => Observation::Unknown(format!("{NOT_READY}: {why}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn is_pass(o: &Observation) -> bool {
        matches!(o, Observation::Pass(_))
    }

    fn fail_text(o: Observation) -> String {
        match o {
            Observation::Fail(t) => t,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn staleness_is_three_of_the_services_own_heartbeat_periods() {
        let beats = |worker_age: i64, scheduler_age: i64| {
            json!([
                {"instance": "worker:a", "role": "worker", "age_ms": worker_age, "heartbeat_every_ms": 1000},
                {"instance": "scheduler:s", "role": "scheduler", "age_ms": scheduler_age, "heartbeat_every_ms": 1000},
            ])
        };
        let (w, s) = evaluate_heartbeats(&beats(2900, 3000), None);
        assert!(is_pass(&w) && is_pass(&s), "{w:?} {s:?}");
        let (w, s) = evaluate_heartbeats(&beats(500, 3100), None);
        assert!(is_pass(&w));
        let text = fail_text(s);
        assert!(
            text.contains("no scheduler heartbeat") && text.contains("scheduler:s"),
            "{text}"
        );
        // The default period (15 s) gives 45 s.
        let slow = json!([{"instance": "w", "role": "worker", "age_ms": 44_000, "heartbeat_every_ms": 15_000}]);
        assert!(is_pass(&evaluate_heartbeats(&slow, None).0));
    }

    #[test]
    fn right_after_the_service_is_back_a_stale_heartbeat_waits_one_stale_window() {
        // The service was down 7 s: its last heartbeat is 7 s old, the new process has not
        // beaten yet.
        let beats = json!([{"instance": "all:old", "role": "all", "age_ms": 7000, "heartbeat_every_ms": 2000}]);
        let (w, s) = evaluate_heartbeats(&beats, Some(Duration::from_secs(1)));
        assert!(matches!(w, Observation::Unknown(_)) && matches!(s, Observation::Unknown(_)));
        // Past the window (3 × 2 s) it is judged again.
        let (w, _) = evaluate_heartbeats(&beats, Some(Duration::from_secs(7)));
        assert!(fail_text(w).contains("no worker heartbeat"));
        // A fresh one passes whatever the grace.
        let fresh = json!([{"instance": "all:new", "role": "all", "age_ms": 100, "heartbeat_every_ms": 2000}]);
        assert!(is_pass(
            &evaluate_heartbeats(&fresh, Some(Duration::ZERO)).0
        ));
    }

    #[test]
    fn an_all_in_one_process_is_both_and_a_missing_role_fails_by_name() {
        let all =
            json!([{"instance": "all:x", "role": "all", "age_ms": 10, "heartbeat_every_ms": 1000}]);
        let (w, s) = evaluate_heartbeats(&all, None);
        assert!(is_pass(&w) && is_pass(&s));
        let only_workers =
            json!([{"instance": "w", "role": "worker", "age_ms": 10, "heartbeat_every_ms": 1000}]);
        let (w, s) = evaluate_heartbeats(&only_workers, None);
        assert!(is_pass(&w));
        assert!(fail_text(s).contains("no scheduler has ever sent a heartbeat"));
        // An older service without the period: verify's 60 s.
        let old = json!([{"instance": "w", "role": "worker", "age_ms": 59_000}]);
        assert!(is_pass(&evaluate_heartbeats(&old, None).0));
        assert!(!is_pass(
            &evaluate_heartbeats(&json!({"not": "a list"}), None).0
        ));
    }

    #[test]
    fn a_job_well_past_its_fire_time_or_run_far_late_means_no_scheduler_is_firing() {
        let now = Utc::now();
        let at = |secs: i64| (now + chrono::Duration::seconds(secs)).to_rfc3339();
        let late = Duration::from_secs(120);
        let on_time = json!([
            {"name": "heartbeat", "next_fire_at": at(10), "last_lateness_ms": 40},
            {"name": "owner_report", "next_fire_at": at(3600), "last_lateness_ms": null},
            // A tick just passed and not yet run is not "well past".
            {"name": "response_gap_watch", "next_fire_at": at(-30), "last_lateness_ms": 100},
        ]);
        assert!(is_pass(&evaluate_scheduled(&on_time, now, late)));
        let stuck = json!([
            {"name": "heartbeat", "next_fire_at": at(-600), "last_lateness_ms": 40},
            {"name": "owner_report", "next_fire_at": at(3600)},
        ]);
        let text = fail_text(evaluate_scheduled(&stuck, now, late));
        assert!(
            text.contains("heartbeat was due 10 min ago")
                && text.contains("no scheduler is firing"),
            "{text}"
        );
        let slow =
            json!([{"name": "sla_sweep", "next_fire_at": at(60), "last_lateness_ms": 200_000}]);
        assert!(
            fail_text(evaluate_scheduled(&slow, now, late))
                .contains("sla_sweep's last run was 3 min late")
        );
        assert!(fail_text(evaluate_scheduled(&json!([]), now, late)).contains("no scheduled jobs"));
    }

    #[test]
    fn the_scheduler_check_fails_when_either_half_does_and_keeps_both_reasons() {
        let p = || Observation::Pass("ok".into());
        let f = |t: &str| Observation::Fail(t.into());
        assert!(is_pass(&combine_scheduler(p(), p())));
        assert_eq!(fail_text(combine_scheduler(f("stale"), p())), "stale");
        assert_eq!(fail_text(combine_scheduler(p(), f("late"))), "late");
        assert_eq!(
            fail_text(combine_scheduler(f("stale"), f("late"))),
            "stale; late"
        );
        assert!(matches!(
            combine_scheduler(p(), Observation::Unknown("?".into())),
            Observation::Unknown(_)
        ));
    }

    #[test]
    fn an_old_spooled_alert_fails_and_names_a_halted_sender() {
        let now = Utc::now();
        let max = Duration::from_secs(300);
        let ago = |s: i64| (now - chrono::Duration::seconds(s)).to_rfc3339();
        assert!(is_pass(&evaluate_spool(
            &json!({"spooled": 0, "oldest_spooled_at": null}),
            now,
            max
        )));
        assert!(is_pass(&evaluate_spool(
            &json!({"spooled": 3, "oldest_spooled_at": ago(20)}),
            now,
            max
        )));
        let text = fail_text(evaluate_spool(
            &json!({"spooled": 7, "oldest_spooled_at": ago(900), "halted": "401 Unauthorized"}),
            now,
            max,
        ));
        assert!(
            text.contains("7 alert(s)") && text.contains("15 min") && text.contains("401"),
            "{text}"
        );
        assert!(matches!(
            evaluate_spool(&json!({"sender": false}), now, max),
            Observation::Unknown(_)
        ));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(1500), "1 s");
        assert_eq!(human(119_000), "119 s");
        assert_eq!(human(600_000), "10 min");
        assert_eq!(human(3 * 3_600_000), "3 h");
        assert_eq!(human(-5), "0 s");
    }
}
