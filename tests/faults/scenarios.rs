//! The six faults of issue 11, each during a burst of inbound SMS from distinct leads, each
//! on a cluster of its own (fresh database and queue; the suite's PostgreSQL and RabbitMQ
//! are shared and are what two of them stop). A burst is posted in thirds: before the
//! fault, during it, after it — so messages arrive while it lasts, which is the point.
//!
//! Must not: judge (the verdict does), or leave the shared instances down: each scenario
//! that stops one starts it again, and the suite heals them before the next scenario.

use std::time::{Duration, Instant};

use crate::Infra;
use crate::Knobs;
use crate::cluster::{Cluster, HEARTBEAT_SECS, WORKERS};
use crate::inbound::{self, Sms, Twilio, burst};
use crate::support::PUBLIC_URL;
use crate::verdict::{self, AlertOutcome, AlertRule, Source, Verdict};

/// The first third of a burst is posted over this long before the fault, the last third
/// over this long after it.
const LEAD_IN: Duration = Duration::from_secs(2);
/// A fault the service must announce (a store or broker outage, a refused webhook) is
/// announced within a minute: "silent" is measured in minutes, and a minute is the
/// watchdog's default interval.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(60);
/// An in-doubt send is resolved (and alerted either way) only after it has been in doubt
/// "for a while" (issue 11, item 6): the outbox's settled delay plus sweeps, within this.
const IN_DOUBT_WITHIN: Duration = Duration::from_secs(120);
/// The watchdog calls a heartbeat stale after three of the service's periods, and alerts
/// at its next cycle, within one interval; this much more for a loaded machine.
const WATCH_SLACK: Duration = Duration::from_secs(10);
/// Discord back up: every alert spooled while it was down is delivered within this.
const DELIVERED_AFTER_DISCORD_RETURNS: Duration = Duration::from_secs(60);
/// The wrong public URL: http where Twilio signs https, the classic of a TLS front.
const WRONG_PUBLIC_URL: &str = "http://leads.example.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Postgres,
    Rabbitmq,
    WorkerKill,
    Discord,
    Scheduler,
    PublicUrl,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Postgres,
        Scenario::Rabbitmq,
        Scenario::WorkerKill,
        Scenario::Discord,
        Scenario::Scheduler,
        Scenario::PublicUrl,
    ];

    /// The name `FAULTS_SCENARIOS` selects it by.
    pub fn key(self) -> &'static str {
        match self {
            Scenario::Postgres => "postgres",
            Scenario::Rabbitmq => "rabbitmq",
            Scenario::WorkerKill => "worker_kill",
            Scenario::Discord => "discord",
            Scenario::Scheduler => "scheduler",
            Scenario::PublicUrl => "public_url",
        }
    }

    pub fn title(self, k: &Knobs) -> String {
        match self {
            Scenario::Postgres => format!(
                "1 PostgreSQL stopped (-m immediate) {} s",
                k.outage.as_secs()
            ),
            Scenario::Rabbitmq => {
                format!("2 RabbitMQ node killed {} s, restarted", k.outage.as_secs())
            }
            Scenario::WorkerKill => {
                "3 worker kill -9, its send in flight, Twilio lists it queued".into()
            }
            Scenario::Discord => format!("4 Discord 503 for {} s", k.discord_outage.as_secs()),
            Scenario::Scheduler => "5 scheduler kill -9 (the watchdog alerts)".into(),
            Scenario::PublicUrl => "6 PUBLIC_BASE_URL wrong (http for https)".into(),
        }
    }

    /// Each scenario's leads are its own numbers.
    fn first_number(self) -> u64 {
        1_000_000 * (Self::ALL.iter().position(|s| *s == self).unwrap() as u64 + 1)
    }

    pub async fn run(self, infra: &mut Infra, k: &Knobs) -> Verdict {
        match self {
            Scenario::Postgres => postgres_down(infra, k, self).await,
            Scenario::Rabbitmq => rabbitmq_down(infra, k, self).await,
            Scenario::WorkerKill => worker_killed_mid_send(infra, k, self).await,
            Scenario::Discord => discord_down(infra, k, self).await,
            Scenario::Scheduler => scheduler_killed(infra, k, self).await,
            Scenario::PublicUrl => wrong_public_url(infra, k, self).await,
        }
    }
}

fn thirds(messages: &[Sms]) -> (&[Sms], &[Sms], &[Sms]) {
    let a = messages.len() / 3;
    let b = 2 * messages.len() / 3;
    (&messages[..a], &messages[a..b], &messages[b..])
}

/// How long a burst may take to be answered once the fault is over: the re-drive of a
/// lost wake-up (first-response SLA 20 s + a watch tick) and the burst's own work.
fn drain(k: &Knobs) -> Duration {
    Duration::from_secs(90) + Duration::from_millis(250 * k.burst as u64)
}

async fn postgres_down(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let mut c = Cluster::start(infra, s.key(), &[], k.watch_interval_secs).await;
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let (before, during, after) = thirds(&messages);
    let mut tasks = twilio.spread(before, LEAD_IN);
    tokio::time::sleep(LEAD_IN).await;
    let fault = Instant::now();
    infra.pg.crash();
    tasks.extend(twilio.spread(during, k.outage));
    tokio::time::sleep(k.outage).await;
    infra.pg.start_server();
    tasks.extend(twilio.spread(after, LEAD_IN));
    let deliveries = inbound::all(tasks).await;
    let rule = AlertRule::outage(
        "the store outage",
        &["postgres", "database", "store"],
        ANNOUNCE_WITHIN,
    );
    let alert = verdict::alert_outcome(&c, &rule, fault).await;
    verdict::judge(&mut c, s.title(k), deliveries, alert, Vec::new(), drain(k)).await
}

async fn rabbitmq_down(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let mut c = Cluster::start(infra, s.key(), &[], k.watch_interval_secs).await;
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let (before, during, after) = thirds(&messages);
    let mut tasks = twilio.spread(before, LEAD_IN);
    tokio::time::sleep(LEAD_IN).await;
    let fault = Instant::now();
    infra.rabbit.crash();
    tasks.extend(twilio.spread(during, k.outage));
    tokio::time::sleep(k.outage).await;
    // Messages keep coming while the node boots (seconds): the outage lasts until then.
    infra.rabbit.boot().await;
    tasks.extend(twilio.spread(after, LEAD_IN));
    let deliveries = inbound::all(tasks).await;
    let rule = AlertRule::outage(
        "the broker outage",
        &["rabbitmq", "amqp", "broker", "queue"],
        ANNOUNCE_WITHIN,
    );
    let alert = verdict::alert_outcome(&c, &rule, fault).await;
    verdict::judge(&mut c, s.title(k), deliveries, alert, Vec::new(), drain(k)).await
}

async fn worker_killed_mid_send(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let mut c = Cluster::start(infra, s.key(), &[], k.watch_interval_secs).await;
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let (before, rest) = messages.split_at(messages.len() / 3);
    let mut tasks = twilio.spread(before, LEAD_IN);
    tokio::time::sleep(LEAD_IN).await;
    // The next send is accepted by Twilio, listed as queued with no date_sent, and never
    // answered: its worker is killed while it waits.
    c.twilio.hang_next_sends(1);
    tasks.extend(twilio.spread(rest, LEAD_IN * 2));
    let mut problems = Vec::new();
    let stalled = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let queued = c.twilio.sent().into_iter().find(|m| m.status == "queued");
            if let (Some(m), 1..) = (&queued, c.twilio.sends_in_flight()) {
                break Some(m.clone());
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let mut fault = Instant::now();
    match &stalled {
        None => problems.push("no send reached Twilio within 30 s: nothing was killed".into()),
        Some(send) => {
            // The open turn of the stalled send's lead names its worker's pid.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut holder = None;
            while holder.is_none() && Instant::now() < deadline {
                holder = c.worker_holding(&send.to).await;
                if holder.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            match holder {
                Some(worker) if WORKERS.contains(&worker.as_str()) => {
                    fault = Instant::now();
                    c.kill(&worker);
                    c.start_role(&worker, "worker").await;
                }
                other => problems.push(format!(
                    "the send to {} was in flight but its worker could not be told ({other:?}): \
                     nothing was killed",
                    send.to
                )),
            }
        }
    }
    let deliveries = inbound::all(tasks).await;
    let rule = AlertRule::new(
        "an alert about the in-doubt send, resolved either way (title or text naming \
         \"in_doubt\"/\"in doubt\")",
        IN_DOUBT_WITHIN,
        |p| {
            let t = p.text.to_lowercase();
            t.contains("in_doubt") || t.contains("in doubt")
        },
    );
    let alert = verdict::alert_outcome(&c, &rule, fault).await;
    let mut v = verdict::judge(&mut c, s.title(k), deliveries, alert, problems, drain(k)).await;
    if let Some(send) = stalled {
        let n = c.twilio.sent_to(&send.to).len();
        if n != 1 {
            v.problems.push(format!(
                "the killed worker's in-flight send to {} (listed queued) went out {n} times",
                send.to
            ));
        }
    }
    v
}

async fn discord_down(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let mut c = Cluster::start(infra, s.key(), &[], k.watch_interval_secs).await;
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let fault = Instant::now();
    c.discord.set_down(Some(503));
    // The whole burst while Discord is down: every turn raises its events then.
    let tasks = twilio.spread(
        &messages,
        (k.discord_outage / 2).min(Duration::from_secs(10)),
    );
    let deliveries = inbound::all(tasks).await;
    tokio::time::sleep_until((fault + k.discord_outage).into()).await;
    c.discord.set_down(None);
    let mut problems = Vec::new();
    if !c.discord.requests().iter().any(|r| r.status == 503) {
        problems.push(
            "no alert was posted while Discord was down: the outage was not felt".to_string(),
        );
    }
    // Each reply's `sms_sent` event, raised while Discord was down, arrives once.
    let bound = k.discord_outage + DELIVERED_AFTER_DISCORD_RETURNS;
    let leads: Vec<String> = messages.iter().map(|m| m.lead.clone()).collect();
    let events_per_lead = |c: &Cluster| -> Vec<usize> {
        let posts = verdict::posted(c);
        leads
            .iter()
            .map(|l| {
                posts
                    .iter()
                    .filter(|p| p.source == Source::Bot && p.title == "EVENT · sms_sent")
                    .filter(|p| p.text.contains(l.as_str()))
                    .count()
            })
            .collect()
    };
    let alert = loop {
        let counts = events_per_lead(&c);
        if counts.iter().all(|n| *n >= 1) {
            break AlertOutcome::Arrived {
                title: format!("all {} sms_sent events", leads.len()),
                latency: fault.elapsed(),
                bound,
            };
        }
        if fault.elapsed() > bound {
            break AlertOutcome::Missing {
                what: format!(
                    "every reply's EVENT · sms_sent, raised while Discord was down, delivered \
                     after it returned ({} of {} arrived)",
                    counts.iter().filter(|n| **n >= 1).count(),
                    leads.len()
                ),
                bound,
                seen: Vec::new(),
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut v = verdict::judge(&mut c, s.title(k), deliveries, alert, problems, drain(k)).await;
    for (lead, n) in leads.iter().zip(events_per_lead(&c)) {
        if n != 1 && c.twilio.sent_to(lead).len() == 1 {
            v.problems.push(format!(
                "{lead}: its sms_sent alert reached Discord {n} times"
            ));
        }
    }
    v
}

async fn scheduler_killed(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let mut c = Cluster::start(infra, s.key(), &[], k.watch_interval_secs).await;
    let mut problems = Vec::new();
    if let Err(why) = &c.watch {
        problems.push(format!("the watchdog is not running: {why}"));
    }
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let (before, rest) = messages.split_at(messages.len() / 3);
    let mut tasks = twilio.spread(before, LEAD_IN);
    tokio::time::sleep(LEAD_IN).await;
    let fault = Instant::now();
    c.kill("scheduler");
    tasks.extend(twilio.spread(rest, LEAD_IN * 3));
    // The watchdog's incident for the scheduler (`watch_scheduler_down`), not its recovery.
    let about_scheduler = |p: &verdict::Posted| {
        let title = p.title.to_lowercase();
        p.source == Source::Watchdog && title.contains("scheduler") && !title.contains("recover")
    };
    let rule = AlertRule::new(
        "the watchdog's alert naming the scheduler, at its webhook",
        Duration::from_secs(3 * HEARTBEAT_SECS + k.watch_interval_secs) + WATCH_SLACK,
        about_scheduler,
    );
    let alert = verdict::alert_outcome(&c, &rule, fault).await;
    // Two more rounds of the watchdog with the scheduler still dead: still one post.
    tokio::time::sleep(Duration::from_secs(2 * k.watch_interval_secs)).await;
    let incident_posts = verdict::posted(&c)
        .iter()
        .filter(|p| p.at >= fault && about_scheduler(p))
        .count();
    if incident_posts > 1 {
        problems.push(format!(
            "the watchdog posted {incident_posts} times for one incident (once, then a recovery)"
        ));
    }
    c.start_role("scheduler", "scheduler").await;
    let deliveries = inbound::all(tasks).await;
    verdict::judge(&mut c, s.title(k), deliveries, alert, problems, drain(k)).await
}

/// Messages refused while misconfigured were never accepted (Twilio logged 11200 and
/// dropped them; it does not retry a 4xx by default). The promise here is that the outage
/// is loud, so the checker asserts: each was refused (403), none stored or answered, the
/// UNAUTHORIZED alert names both URLs within a minute; then, after the operator's fix
/// (web restarted with the right PUBLIC_BASE_URL), each refused message replayed with its
/// MessageSid (as from Twilio's log) and each new one is answered exactly once.
async fn wrong_public_url(infra: &mut Infra, k: &Knobs, s: Scenario) -> Verdict {
    let wrong = [("PUBLIC_BASE_URL", WRONG_PUBLIC_URL.to_string())];
    // The fault is live from web's start: the first signed webhook refused may be the
    // watchdog's synthetic SMS, before the burst.
    let fault = Instant::now();
    let mut c = Cluster::start(infra, s.key(), &wrong, k.watch_interval_secs).await;
    let twilio = Twilio::new(&c.web_url);
    let messages = burst(k.burst, s.first_number());
    let (misconfigured, after_fix) = messages.split_at(2 * messages.len() / 3);
    let mut deliveries = inbound::all(twilio.spread(misconfigured, LEAD_IN * 2)).await;
    let unauthorized =
        |p: &verdict::Posted| p.source == Source::Bot && p.title.starts_with("UNAUTHORIZED ·");
    let rule = AlertRule::new(
        "UNAUTHORIZED · … at the bot channel",
        ANNOUNCE_WITHIN,
        unauthorized,
    );
    let alert = verdict::alert_outcome(&c, &rule, fault).await;
    let mut problems = Vec::new();
    let signed = format!("Twilio signs {PUBLIC_URL}/twilio/sms");
    let configured = format!("PUBLIC_BASE_URL is {WRONG_PUBLIC_URL}");
    if let AlertOutcome::Arrived { .. } = alert {
        // Within the bound, some UNAUTHORIZED alert must say what to fix.
        let names_cause =
            |p: &verdict::Posted| p.text.contains(&signed) && p.text.contains(&configured);
        loop {
            let within: Vec<verdict::Posted> = verdict::posted(&c)
                .into_iter()
                .filter(|p| p.at >= fault && p.at - fault <= ANNOUNCE_WITHIN && unauthorized(p))
                .collect();
            if within.iter().any(names_cause) {
                break;
            }
            if fault.elapsed() > ANNOUNCE_WITHIN {
                problems.push(format!(
                    "no UNAUTHORIZED alert within {} s names the cause (\"{signed}; \
                     {configured}\"); they said: {:?}",
                    ANNOUNCE_WITHIN.as_secs(),
                    within.iter().map(|p| p.text.as_str()).collect::<Vec<_>>()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    let not_403: Vec<String> = deliveries
        .iter()
        .filter(|d| d.last() != &inbound::Answer::Status(403))
        .map(|d| format!("{} {}: {}", d.sms.lead, d.sms.sid, d.last()))
        .collect();
    if !not_403.is_empty() {
        problems.push(format!(
            "signed for the real URL, answered other than 403 while misconfigured (a 200 \
             accepts what must only be diagnosed): {}",
            not_403.join("; ")
        ));
    }
    let answered: Vec<&str> = deliveries
        .iter()
        .filter(|d| !c.twilio.sent_to(&d.sms.lead).is_empty())
        .map(|d| d.sms.lead.as_str())
        .collect();
    if !answered.is_empty() {
        problems.push(format!(
            "answered while misconfigured, their webhooks refused: {answered:?}"
        ));
    }
    c.restart_web(&[("PUBLIC_BASE_URL", PUBLIC_URL.to_string())])
        .await;
    let replays = twilio.spread(
        &deliveries.iter().map(|d| d.sms.clone()).collect::<Vec<_>>(),
        LEAD_IN,
    );
    let fresh = twilio.spread(after_fix, LEAD_IN);
    for (d, replay) in deliveries.iter_mut().zip(inbound::all(replays).await) {
        d.attempts.extend(replay.attempts);
    }
    deliveries.extend(inbound::all(fresh).await);
    verdict::judge(&mut c, s.title(k), deliveries, alert, problems, drain(k)).await
}
