//! `lead-agent watch`: the watchdog outside the blast radius. A separate process (its own
//! Deployment, `deploy/k8s/watch.yaml`) that shares neither the store nor the queue with
//! the service and talks to it over HTTP only, as an operator would. Every
//! `WATCH_INTERVAL_SECS` it checks `/ready` (public URL), worker and scheduler heartbeats,
//! scheduler lateness and the alert spool (its ops listener, `WATCH_OPS_URL`); every `WATCH_E2E_SECS` it texts the service a signed
//! synthetic SMS and expects the reply. A failing check is posted to Discord by the watch
//! itself — once per incident, then one recovery message.
//!
//! Layout: [`settings`] (its own variables), [`checks`] (what it asks and how it judges),
//! [`incidents`] (when to tell people), [`notify`] (its own path to Discord), [`server`]
//! (`/health`, `/ready`, `/status` for its probes and operators).
//! Must not: read `DATABASE_URL` or `AMQP_URL` (the lookup refuses them), or block a check
//! on Discord.

pub mod checks;
pub mod incidents;
pub mod notify;
pub mod server;
pub mod settings;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;

use self::checks::Prober;
use self::incidents::{Check, Incidents, Observation};
use self::notify::Notifier;
use self::settings::{WatchFlags, WatchSettings};

/// What the loops share with each other and the HTTP server.
pub struct WatchState {
    pub settings: Arc<WatchSettings>,
    incidents: Mutex<Incidents>,
    pub notifier: Notifier,
    started: Instant,
    /// When the last interval cycle ended.
    last_cycle: Mutex<Option<Instant>>,
    /// Since when the service is known to answer: the watch's start, then each `ready`
    /// recovery (heartbeats get one stale window from there, `checks::evaluate_heartbeats`).
    back_since: Mutex<Option<Instant>>,
    cycles: std::sync::atomic::AtomicU64,
}

impl WatchState {
    fn record(&self, check: Check, observation: Observation) {
        let notice =
            self.incidents
                .lock()
                .expect("incidents lock")
                .observe(check, observation, Utc::now());
        if let Some(notice) = notice {
            if matches!(
                notice,
                incidents::Notice::Recovered {
                    check: Check::Ready,
                    ..
                }
            ) {
                *self.back_since.lock().expect("back lock") = Some(Instant::now());
            }
            self.notifier.send(notice);
        }
    }

    fn back_for(&self) -> Option<std::time::Duration> {
        self.back_since
            .lock()
            .expect("back lock")
            .map(|t| t.elapsed())
    }

    fn is_failing(&self, check: Check) -> bool {
        self.incidents
            .lock()
            .expect("incidents lock")
            .is_failing(check)
    }

    pub fn incidents(&self) -> Incidents {
        self.incidents.lock().expect("incidents lock").clone()
    }

    /// Time since the last cycle ended, or since the start before the first.
    pub fn since_last_cycle(&self) -> (bool, std::time::Duration) {
        match *self.last_cycle.lock().expect("cycle lock") {
            Some(t) => (true, t.elapsed()),
            None => (false, self.started.elapsed()),
        }
    }

    pub fn cycles(&self) -> u64 {
        self.cycles.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs until `shutdown` resolves.
pub async fn run(
    flags: WatchFlags,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let settings = Arc::new(WatchSettings::from_env(flags)?);
    crate::telemetry::init(settings.log_format, None, "watch");
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("Failed to bind {}", settings.bind))?;
    tracing::info!(
        url = %settings.url,
        ops_url = %settings.ops_url,
        public_url = %settings.public_url,
        interval_secs = settings.interval.as_secs_f64(),
        e2e_secs = settings.e2e_every.map(|d| d.as_secs_f64()),
        test_phone = ?settings.test_phone.as_deref().map(actors::log_phone::LogPhone),
        alerts_to = %settings.alert_to.describe(),
        addr = %listener.local_addr()?,
        "watching"
    );
    if settings.e2e_every.is_none() {
        tracing::warn!(
            "WATCH_E2E_SECS=off: no synthetic SMS is sent; the reply path is not checked"
        );
    }
    if settings.twilio_auth_token.is_none() {
        tracing::warn!(
            "TWILIO_AUTH_TOKEN is not set: the synthetic SMS is unsigned and only a service on this machine accepts it"
        );
    }
    let notifier = Notifier::start(settings.clone())?;
    let state = Arc::new(WatchState {
        settings: settings.clone(),
        incidents: Mutex::new(Incidents::default()),
        notifier,
        started: Instant::now(),
        last_cycle: Mutex::new(None),
        back_since: Mutex::new(Some(Instant::now())),
        cycles: Default::default(),
    });
    state.notifier.probe().await;
    let prober = Prober::new(settings.clone())?;
    tokio::spawn(interval_loop(state.clone(), prober.clone()));
    if let Some(every) = settings.e2e_every {
        tokio::spawn(e2e_loop(state.clone(), prober, every));
    }
    crate::http::server::serve(listener, server::router(state), &settings.http, shutdown)
        .await
        .context("the watch's HTTP server failed")
}

async fn interval_loop(state: Arc<WatchState>, prober: Prober) {
    let mut tick = tokio::time::interval(state.settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A service that was down and answers again in this very cycle is back for zero
        // seconds: its recovery is recorded only after the cycle, so `back_for` alone would
        // still count from the last recovery and judge the heartbeats the restarted
        // processes have not had their chance to write (a false workers/scheduler alert
        // right after every outage longer than the stale window).
        let back_for = if state.is_failing(Check::Ready) {
            Some(std::time::Duration::ZERO)
        } else {
            state.back_for()
        };
        for (check, observation) in prober.cycle(Utc::now(), back_for).await {
            state.record(check, observation);
        }
        // A target Discord refused at the last contact is asked again each cycle while
        // nothing is waiting to be posted (a pending post retries by itself).
        if state.notifier.reachable() == Some(false) && state.notifier.status().pending == 0 {
            state.notifier.probe().await;
        }
        *state.last_cycle.lock().expect("cycle lock") = Some(Instant::now());
        state
            .cycles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn e2e_loop(state: Arc<WatchState>, prober: Prober, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    // A slow reply delays the next probe rather than piling probes up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let observation = if state.is_failing(Check::Ready) {
            Observation::Unknown("the service is not ready (see the ready check)".into())
        } else {
            prober.end_to_end().await
        };
        state.record(Check::EndToEnd, observation);
    }
}
