//! Startup: builds the whole application from [`Settings`] in one readable place — store,
//! alert router, model chain and pool, SMS sender, the lead actor tree, the work queue
//! (in-process, or RabbitMQ with its dead-letter alerts) and its consumer, the start-up
//! re-drive, and the two HTTP listeners (public and ops, `crate::http`) — and shuts it down
//! in order.
//!
//! Owns: wiring and the shutdown order. Must not: hold business logic; anything a test
//! needs to replace (the model chain) comes in through [`Overrides`].
//!
//! Layout: [`Application::build_role`] here reads top to bottom in start order; what every
//! role shares (the roots and alerts, the SMS sender, the queue) is built in [`shared`],
//! the worker's model chain, pool and lead tree in [`worker`], the webhook's intake in
//! [`intake`], the loops beside the listeners (re-drive, sweeps, heartbeat) in
//! [`background`], and the ordered stop in [`shutdown`].

mod background;
mod intake;
mod shared;
mod shutdown;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actors::outbox::OutboxSweep;
use actors::ports::{ChatModel, Clock, SystemClock};
use anyhow::Context;
use tokio::net::TcpListener;

use crate::channels::discord::sender::DiscordInbox;
use crate::config::Settings;
use crate::http::rejections::WebhookWatch;
use crate::http::{self, AppState};
use crate::inbound;
use crate::role::Role;
use crate::scheduler::{self, JobContext, SchedulerHandle};
use crate::sla::SlaEngine;
use crate::store::{SqlStore, is_postgres_url};

pub use background::redrive_pending;
use background::{
    crm_text_log, doc_intake, spawn_heartbeat, spawn_hitl_escalation, spawn_outbox_sweeps,
};
use intake::build_intake;
use shared::{alert_sink, build_queue, build_sms_sender, start_discord_sender, start_roots};
use shutdown::GiveUpWatch;
use worker::{TurnEffects, prefetch, start_worker};

/// What a test may replace.
#[derive(Default)]
pub struct Overrides {
    /// Replaces the configured providers at the front of the chain; the rules responder is
    /// still appended last.
    pub chat_models: Option<Vec<Arc<dyn ChatModel>>>,
}

pub struct Application {
    /// The public listener (`PORT`): webhooks, health, readiness.
    listener: TcpListener,
    /// The ops listener (`OPS_PORT`): /ops, /ops/*, /metrics, health, readiness.
    ops_listener: TcpListener,
    state: AppState,
    consumer: Option<tokio::task::JoinHandle<()>>,
    sweeps: Option<tokio::task::JoinHandle<()>>,
    scheduler: Option<SchedulerHandle>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// The intake's helpers: deferred wake-ups, the journal replayer, the RabbitMQ inbound
    /// drain, the refused-webhook ticker. Aborted after the server stops.
    background: Vec<tokio::task::JoinHandle<()>>,
    give_up: GiveUpWatch,
}

impl Application {
    /// Everything in one process.
    pub async fn build(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        Self::build_role(settings, Role::All, overrides).await
    }

    pub async fn build_role(
        settings: Settings,
        role: Role,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
        check_role(&settings, role)?;
        crate::exposure::check(&settings, role).map_err(anyhow::Error::msg)?;
        // Before anything emits: metrics recorded earlier would go to the no-op recorder.
        http::metrics::install();
        let settings = Arc::new(settings);
        tracing::info!(
            profile = %settings.profile.describe(),
            queue = settings.amqp.as_ref().map(|a| a.queue.as_str()).unwrap_or("in-process"),
            "agent profile (AGENT_PROFILE)"
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = SqlStore::connect_with_reader(
            settings.database_url.expose(),
            settings.readonly_database_url.as_ref().map(|s| s.expose()),
        )
        .await?
        .with_followups(
            settings
                .scheduler
                .followups
                .as_ref()
                .map(|p| p.first_wait()),
        );
        // Unique per process *and* per application: tests run several in one process, and
        // the lease and heartbeats must tell them apart.
        let instance = format!(
            "{}:{}:{:04x}",
            role.name(),
            Settings::worker_id(),
            rand::random::<u16>()
        );

        let discord_wake = Arc::new(DiscordInbox::new(settings.discord.direct_queue_max));
        let (roots, alerts, give_up) = start_roots(
            &settings,
            alert_sink(&settings, &store, &discord_wake),
            clock.clone(),
        )
        .await?;
        let discord = start_discord_sender(&settings, &store, &instance, &discord_wake)?;

        let (queue, rabbit) = build_queue(&settings, &alerts).await?;
        let sms = build_sms_sender(&settings)?;
        // Every role can open and resolve SLAs through /ops; only the scheduler sweeps.
        let sla = Arc::new(SlaEngine::new(
            &settings,
            &store,
            queue.clone(),
            sms.clone(),
            alerts.clone(),
        )?);
        let (worker, consumer) = if role.runs_actors() {
            let worker = start_worker(
                &settings,
                &store,
                &roots,
                &alerts,
                clock.clone(),
                TurnEffects {
                    sms: sms.clone(),
                    sla: sla.events().clone(),
                },
                overrides.chat_models,
            )
            .await?;
            let router = worker.registry.clone();
            let consumer = queue
                .start_consumer(
                    prefetch(&settings),
                    Arc::new(move |delivery| router.dispatch(delivery)),
                )
                .await?;
            (Some(worker), Some(consumer))
        } else {
            (None, None)
        };
        let (intake, journal) =
            build_intake(&settings, role, &store, &queue, rabbit.as_ref(), &alerts)?;
        if let Some(journal) = &journal {
            // Messages kept while the store was away, before this start: into the store
            // before anything else reads it (the re-drive below wakes their leads).
            match journal.replay(&intake).await {
                Ok(r) if r.stored > 0 => {
                    tracing::info!(stored = r.stored, "inbound journal replayed at start")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "inbound journal not replayed at start; the replayer keeps trying")
                }
            }
        }
        if role.serves_webhook() && settings.twilio_auth_token.is_none() {
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: webhook signatures cannot be checked, so only \
                 loopback peers may post to /twilio/sms"
            );
        }

        let alerts_for_webhooks = alerts.clone();
        let state = AppState {
            settings: settings.clone(),
            role,
            store,
            queue,
            alerts,
            sla,
            worker,
            accepting: Arc::new(AtomicBool::new(true)),
            discord,
            intake: intake.clone(),
            webhooks: Arc::new(WebhookWatch::new(
                alerts_for_webhooks,
                settings.webhook_alert_every,
                settings.inbound_down_after,
            )),
            roots,
        };
        let mut background = vec![intake.spawn_wake_retry()];
        if let Some(journal) = journal {
            background.push(journal.spawn_replayer(intake.clone()));
        }
        if let (Some(rabbit), true) = (&rabbit, role.runs_actors()) {
            // The workers write what web processes kept in `<AMQP_QUEUE>.inbound` while the
            // store was away.
            background.push(inbound::rabbit::start_drain(rabbit, intake.clone()));
        }
        if role.serves_webhook() {
            background.push(state.webhooks.clone().spawn_ticker());
        }
        if crate::telemetry::exporting() {
            // An exporter that keeps failing is alerted once (`telemetry::export_health`).
            background.push(crate::telemetry::export_health::spawn_export_alerts(
                state.alerts.clone(),
                settings.tracing.alert_after,
            ));
        }
        let sweeps = if role.redrives() {
            let sweep = Arc::new(OutboxSweep::new(
                Arc::new(state.store.clone()),
                Arc::new(state.store.clone()),
                sms,
                state.alerts.clone(),
                clock,
                settings.lead_turn_timeout,
                settings.in_doubt,
            ));
            redrive_pending(&state, &sweep).await?;
            if settings.hitl.enabled {
                spawn_hitl_escalation(state.clone());
            }
            Some(spawn_outbox_sweeps(state.clone(), sweep))
        } else {
            None
        };

        let scheduler = if role.runs_scheduler() && !settings.scheduler.jobs.is_empty() {
            Some(
                scheduler::start(
                    JobContext {
                        settings: settings.clone(),
                        store: state.store.clone(),
                        queue: state.queue.clone(),
                        alerts: state.alerts.clone(),
                        sla: state.sla.clone(),
                        instance: instance.clone(),
                        crm_texts: crm_text_log(&settings, &state.alerts)?,
                        doc_intake: doc_intake(&settings, &state.alerts)?,
                    },
                    &state.roots,
                )
                .await?,
            )
        } else {
            None
        };
        let heartbeat = role
            .heartbeats()
            .then(|| spawn_heartbeat(state.clone(), instance.clone()));

        let addr = SocketAddr::new(settings.bind_address, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Failed to bind {addr} (BIND_ADDRESS, PORT)"))?;
        let ops_addr = SocketAddr::new(settings.ops_bind_address, settings.ops_port);
        let ops_listener = TcpListener::bind(ops_addr).await.with_context(|| {
            format!("Failed to bind the ops listener {ops_addr} (OPS_BIND_ADDRESS, OPS_PORT)")
        })?;
        Ok(Self {
            listener,
            ops_listener,
            state,
            consumer,
            sweeps,
            scheduler,
            heartbeat,
            background,
            give_up,
        })
    }

    /// The public listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The ops listener's address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// A role other than `all` shares the store and the queue with other processes: both must
/// be ones that can be shared.
fn check_role(settings: &Settings, role: Role) -> anyhow::Result<()> {
    if role == Role::All {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !is_postgres_url(settings.database_url.expose()) {
        problems.push(format!(
            "--role {} needs DATABASE_URL to be PostgreSQL: a SQLite file cannot be shared between processes (use --role all)",
            role.name()
        ));
    }
    if !settings.has_shared_queue() {
        problems.push(format!(
            "--role {} needs AMQP_URL: the in-process queue connects only the webhook and workers of one process (use --role all)",
            role.name()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_split_role_on_embedded_backends_is_refused_naming_what_is_missing() {
        let settings = Settings::from_map(&HashMap::new()).unwrap();
        assert!(check_role(&settings, Role::All).is_ok());
        for role in [Role::Web, Role::Worker, Role::Scheduler] {
            let err = check_role(&settings, role).unwrap_err().to_string();
            assert!(
                err.contains("DATABASE_URL") && err.contains("AMQP_URL"),
                "{err}"
            );
        }
    }
}
