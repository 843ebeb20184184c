//! Startup: builds the whole application from [`Settings`] in one readable place — store,
//! alert router, model chain and pool, SMS sender, the lead actor tree, the work queue
//! (in-process, or RabbitMQ with its dead-letter alerts) and its consumer, the start-up
//! re-drive, and the two HTTP listeners (public and ops, `crate::http`) — and shuts it down
//! in order.
//!
//! Owns: wiring and the shutdown order. Must not: hold business logic; anything a test
//! needs to replace (the model chain) comes in through [`Overrides`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::alert_router::{AlertHandle, AlertKind, AlertRouterChild, AlertSink};
use actors::brain::context::CrmNotes;
use actors::brain::tools::ToolBox;
use actors::brain::{AgentMode, Brain, PlainChain, Responder, Shadow};
use actors::breaker::BreakerConfig;
use actors::hitl::ReplyHolds;
use actors::lead::LeadDeps;
use actors::llm_pool::{ChainPolicy, LlmPool, LlmPoolChild, LlmPoolConfig};
use actors::outbox::{OutboxSweep, SweepReport};
use actors::ports::{ChatModel, Clock, SmsSender, SystemClock, WakeLead};
use actors::root::{GiveUp, GiveUpHook, RootConfig, RootHandle, RootSupervisor};
use actors::supervisor::{LeadSupervisorChild, SupervisorConfig};
use actors::window::WindowLimits;
use anyhow::Context;
use tokio::net::TcpListener;

use crate::channels::crm::{DryRunCrm, FollowUpBoss};
use crate::channels::discord::sender::{DiscordInbox, DiscordSender, DiscordSpoolSink};
use crate::channels::dry_run::DryRunSms;
use crate::channels::llm::anthropic::AnthropicClient;
use crate::channels::llm::gemini::GeminiClient;
use crate::channels::llm::rules::{OfficeInfo, RulesResponder};
use crate::channels::llm::system_prompt;
use crate::channels::log_alerts::LogAlertSink;
use crate::channels::twilio::TwilioClient;
use crate::config::JournalSetting;
use crate::config::Settings;
use crate::http::rejections::WebhookWatch;
use crate::http::{self, AppState, WorkerState};
use crate::inbound::journal::Journal;
use crate::inbound::rabbit::RabbitFallback;
use crate::inbound::{self, InboundFallback, InboundIntake};
use crate::queue::rabbitmq::{DeadLetter, RabbitConfig};
use crate::queue::{InProcessQueue, RabbitQueue, WorkQueue};
use crate::scheduler::{self, JobContext, SchedulerHandle};
use crate::sla::SlaEngine;
use crate::store::{SqlStore, is_postgres_url};

/// Which parts of the service this process runs. The same binary plays every role; the
/// seed's pod (gunicorn web, celery beat, two celery workers) maps onto web, scheduler and
/// worker containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Role {
    /// Everything in one process (the embedded default).
    #[default]
    All,
    /// The Twilio webhook and /ops; publishes work to the queue.
    Web,
    /// Consumes the queue: lead actors and the LLM pool.
    Worker,
    /// The one clock: the periodic jobs (`crate::scheduler`, one leader across replicas),
    /// the start-up re-drive of stored work and the in-doubt check of interrupted sends.
    Scheduler,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Web => "web",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }
    pub fn serves_webhook(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }
    pub fn runs_actors(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
    pub fn redrives(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }
    pub fn runs_scheduler(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }
    /// Every role but web writes a heartbeat: workers prove they consume, schedulers that
    /// they tick.
    pub fn heartbeats(self) -> bool {
        !matches!(self, Role::Web)
    }
}

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
                sms.clone(),
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

    /// Serves until `shutdown` resolves, then stops in order: readiness off and no new
    /// connections (in-flight requests get `HTTP_SHUTDOWN_SECS`, then what is left of the
    /// connections is dropped), no new deliveries, in-flight turns get
    /// `SHUTDOWN_GRACE_SECS` to finish, then the actor tree stops. A turn still running at the
    /// end is cut; its task was never acked, and the re-drive at the next start takes it.
    ///
    /// The root supervisor giving up starts the same shutdown, and the run then ends with an
    /// error, so `serve` exits non-zero and Kubernetes restarts the container.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            ops_listener,
            state,
            consumer,
            sweeps,
            scheduler,
            heartbeat,
            background,
            give_up,
        } = self;
        let GiveUpWatch {
            reason: gave_up,
            alive,
        } = give_up;
        let mut gave_up_signal = gave_up.clone();
        let accepting = state.accepting.clone();
        // One stop for both listeners: SIGTERM (or the root giving up) ends readiness, then
        // each server stops taking connections and lets its requests finish.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let given_up = async move {
                if gave_up_signal.wait_for(Option::is_some).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = shutdown => {}
                _ = given_up => {}
            }
            accepting.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: no new webhooks");
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }
        };
        {
            let public = http::public_router(state.clone());
            let ops = http::ops_router(state.clone());
            tracing::info!(addr = %listener.local_addr()?, ops_addr = %ops_listener.local_addr()?, "listening");
            // Each returns within HTTP_SHUTDOWN_SECS of the signal, open connections or not,
            // so the ordered stop below always runs inside the pod's grace period.
            let limits = &state.settings.http;
            tokio::try_join!(
                async {
                    http::server::serve(listener, public, limits, stopped())
                        .await
                        .context("the public HTTP listener failed")
                },
                async {
                    http::server::serve(ops_listener, ops, limits, stopped())
                        .await
                        .context("the ops HTTP listener failed")
                },
            )?;
        }

        if let Some(sweeps) = sweeps {
            sweeps.abort();
        }
        if let Some(scheduler) = scheduler {
            // Hands the lease over now, so a standby need not wait for it to expire.
            scheduler.stop().await;
        }
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
        // The inbound drain stops with the consumers (an entry in hand goes back to the
        // broker); the rest only retry, and what they hold is durable elsewhere.
        for task in background {
            task.abort();
        }
        state.queue.stop_consuming();
        if let Some(consumer) = consumer {
            let _ = consumer.await;
        }
        let deadline = tokio::time::Instant::now() + state.settings.shutdown_grace;
        while busy_turns(&state) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = busy_turns(&state);
        if left > 0 {
            tracing::warn!(
                left,
                "turns still running at the end of the grace period; the next start re-drives them"
            );
        }
        // The lead supervisor, then the alert router (drained: the shutdown's own alerts are
        // delivered), each stopped for good so that the root restarts neither.
        state.roots.shutdown().await;
        drop(alive);
        if let Some(why) = gave_up.borrow().clone() {
            anyhow::bail!("the root supervisor gave up: {why}");
        }
        tracing::info!(left, "stopped in order");
        Ok(())
    }
}

/// How this process takes the root supervisor's give-up: an orderly shutdown (the same path
/// as SIGTERM) and then a non-zero exit, rather than `std::process::exit(1)` at once —
/// webhooks in flight still get their answer (a 200 means stored), the scheduler hands its
/// lease over instead of leaving a standby to wait for it to expire, and RabbitMQ gets its
/// unsettled tasks back from a closed channel. A root child dying is a failure of that
/// actor, not of the process's memory, so the rest can still stop cleanly.
struct GiveUpWatch {
    /// `Some(why)` once the root gave up.
    reason: tokio::sync::watch::Receiver<Option<String>>,
    /// Alive while this application may still run its shutdown; the backstop exits only then.
    alive: Arc<()>,
}

/// Past the shutdown grace, how long the give-up's shutdown may take before the backstop ends
/// the process anyway.
const GIVE_UP_BACKSTOP: Duration = Duration::from_secs(15);

fn give_up_hook(grace: Duration) -> (GiveUpHook, GiveUpWatch) {
    let (tx, reason) = tokio::sync::watch::channel(None);
    let alive = Arc::new(());
    let app = Arc::downgrade(&alive);
    let hook: GiveUpHook = Arc::new(move |why: GiveUp| {
        tracing::error!(child = why.child, reason = %why.reason, "the root supervisor gave up: shutting down, then exiting non-zero so that the container is restarted");
        let _ = tx.send(Some(why.to_string()));
        // A shutdown that hangs (what died may be what it waits for) must not leave a process
        // that neither serves nor exits. A plain thread: the runtime may be what is stuck.
        let app = app.clone();
        std::thread::spawn(move || {
            std::thread::sleep(grace + GIVE_UP_BACKSTOP);
            if app.upgrade().is_some() {
                tracing::error!(
                    "the shutdown after the root supervisor gave up did not finish; exiting now"
                );
                eprintln!("error: the root supervisor gave up ({why}) and the shutdown hung");
                let _ = std::io::Write::flush(&mut std::io::stdout());
                let _ = std::io::Write::flush(&mut std::io::stderr());
                std::process::exit(1);
            }
        });
    });
    (hook, GiveUpWatch { reason, alive })
}

/// The root supervisor and its first child, the alert router. Everything raises alerts, so
/// the handle exists before anything else; alerts raised while no router runs (before the
/// first, or during a restart) wait in the handle for the next one.
async fn start_roots(
    settings: &Settings,
    sink: Arc<dyn AlertSink>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(RootHandle, AlertHandle, GiveUpWatch)> {
    let alerts = AlertHandle::new(clock.clone());
    let (hook, watch) = give_up_hook(settings.shutdown_grace);
    let roots = RootSupervisor::start(
        RootConfig::new(settings.root_restart_max, settings.root_restart_window),
        alerts.clone(),
        clock,
        hook,
    )
    .await
    .context("Failed to start the root supervisor")?;
    roots
        .add(Arc::new(AlertRouterChild::new(sink, alerts.clone())))
        .await
        .context("Failed to start the alert router")?;
    Ok((roots, alerts, watch))
}

/// The worker's half: the model chain and pool, the SMS sender and the lead actor tree.
async fn start_worker(
    settings: &Settings,
    store: &SqlStore,
    roots: &RootHandle,
    alerts: &AlertHandle,
    clock: Arc<dyn Clock>,
    sms: Arc<dyn SmsSender>,
    chat_models: Option<Vec<Arc<dyn ChatModel>>>,
) -> anyhow::Result<WorkerState> {
    let holds = settings.hitl.enabled.then(|| {
        tracing::info!("HITL_ENABLED: replies are held for approval in Discord");
        Arc::new(store.clone()) as Arc<dyn ReplyHolds>
    });
    let mut chain: Vec<Arc<dyn ChatModel>> = match chat_models {
        Some(models) => models,
        None => configured_models(settings)?,
    };
    chain.push(Arc::new(RulesResponder::new(OfficeInfo {
        office_name: settings.office_name.clone(),
        ..OfficeInfo::default()
    })));
    let (pool_child, pool) = LlmPoolChild::new(
        chain,
        LlmPoolConfig {
            concurrency: settings.llm_concurrency,
            soft_timeout: settings.llm_soft_timeout,
            hard_timeout: settings.llm_hard_timeout,
        },
        ChainPolicy {
            retry_after_cap: settings.brain.retry_after_cap,
            breaker: BreakerConfig {
                failure_threshold: settings.brain.breaker_failures,
                open_for: settings.brain.breaker_open,
            },
        },
        alerts.clone(),
        clock.clone(),
    );
    roots
        .add(Arc::new(pool_child))
        .await
        .context("Failed to start the LLM pool")?;
    tracing::info!(providers = ?pool.provider_names(), cap = settings.llm_concurrency, "model chain ready");
    let responder = build_responder(settings, store, alerts, &clock, &pool)?;

    let deps = Arc::new(LeadDeps {
        store: Arc::new(store.clone()),
        parks: Arc::new(store.clone()),
        park_policy: settings.parks,
        sms,
        pool: pool.clone(),
        alerts: alerts.clone(),
        clock,
        window: WindowLimits {
            max_messages: settings.chat_window_messages,
            max_bytes: settings.chat_window_bytes,
        },
        worker_id: Settings::worker_id(),
        sms_attempts: 3,
        retry_delay: Duration::from_secs(1),
        holds,
        responder,
    });
    let (tree, registry) = LeadSupervisorChild::new(
        deps,
        SupervisorConfig {
            restart_max: settings.lead_restart_max,
            restart_window: settings.lead_restart_window,
            idle_after: settings.lead_idle,
            memory_budget_bytes: settings.lead_memory_budget_bytes,
            turn_budget: settings.lead_turn_timeout,
            sweep_every: Some(Duration::from_secs(1)),
        },
    );
    roots
        .add(Arc::new(tree))
        .await
        .context("Failed to start the lead supervisor")?;
    Ok(WorkerState { registry, pool })
}

/// Discord (spooled, or posted directly while the store is down) when a bot token is set,
/// else the log.
fn alert_sink(
    settings: &Settings,
    store: &SqlStore,
    inbox: &Arc<DiscordInbox>,
) -> Arc<dyn AlertSink> {
    if settings.discord.bot_token.is_none() {
        tracing::info!("alerts go to the log (DISCORD_BOT_TOKEN is not set)");
        return Arc::new(LogAlertSink);
    }
    let to_log: Vec<&str> = AlertKind::ALL
        .iter()
        .filter(|k| settings.discord.channel_for(**k).is_none())
        .map(|k| k.key())
        .collect();
    if !to_log.is_empty() {
        tracing::warn!(kinds = ?to_log, "these alert kinds have no Discord channel (DISCORD_CHANNEL_<KIND> or DISCORD_DEFAULT_CHANNEL) and go to the log");
    }
    Arc::new(DiscordSpoolSink::new(
        store.clone(),
        settings.discord.clone(),
        inbox.clone(),
    ))
}

/// Every process that has the bot token posts: its own direct queue, and the spool under
/// per-channel leases named for `instance` (one poster per channel across processes), so a
/// process that raises alerts never depends on another one being alive to post them.
fn start_discord_sender(
    settings: &Settings,
    store: &SqlStore,
    instance: &str,
    inbox: &Arc<DiscordInbox>,
) -> anyhow::Result<Option<DiscordSender>> {
    let Some(token) = &settings.discord.bot_token else {
        return Ok(None);
    };
    let (sender, _join) = DiscordSender::start(
        store.clone(),
        &settings.discord,
        token.clone(),
        inbox.clone(),
        instance,
    )
    .context("Failed to start the Discord sender")?;
    Ok(Some(sender))
}

/// Escalates HITL holds nobody decided on (see [`crate::hitl::escalate_expired_holds`]).
/// A failed pass is logged and tried again next period.
fn spawn_hitl_escalation(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::hitl::escalation_period(&state.settings.hitl));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if !state.accepting.load(Ordering::SeqCst) {
                return; // shutting down
            }
            if let Err(e) = crate::hitl::escalate_expired_holds(
                &state.store,
                &state.alerts,
                state.queue.as_ref(),
                &state.settings.hitl,
                chrono::Utc::now(),
            )
            .await
            {
                tracing::warn!(error = %e, "HITL escalation pass failed; the next one retries");
            }
        }
    })
}

/// Twilio when configured, else the dry-run sender.
fn build_sms_sender(settings: &Settings) -> anyhow::Result<Arc<dyn SmsSender>> {
    Ok(match &settings.twilio {
        Some(t) => {
            tracing::info!(account = %t.account_sid, "replies go out through Twilio");
            Arc::new(TwilioClient::new(
                t,
                &settings.twilio_api_base,
                settings.twilio_timeout,
            )?)
        }
        None => {
            tracing::warn!(
                "Twilio is not configured: replies are stored and logged (dry run), not sent"
            );
            Arc::new(DryRunSms)
        }
    })
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

/// Unsettled deliveries this process may hold. A model slot must never wait for a turn's
/// store work, send or ack, nor for the next delivery and its store reads: so each process
/// holds more tasks than it has model slots, the extra ones doing that work while the
/// model calls run, and the pool's semaphore alone caps the calls.
///
/// - The in-process queue has one consumer, so it holds twice the model cap at no cost in
///   fairness.
/// - On a shared queue (RabbitMQ), `LLM_CONCURRENCY + ⌈LLM_CONCURRENCY / 3⌉`. A task held
///   by a busy worker cannot go to an idle one (the seed's prefetch lesson), so the extra
///   is kept small: it covers a turn's overhead (~0.1 s of store round trips, the send and
///   the broker's ack and delivery, against a model call of ~1 s: one task in six is in
///   that phase at any time, so ⌈C/3⌉ is twice what is needed), and what it can cost is
///   bounded — at the end of a burst at most ⌈C/3⌉ tasks wait one model call in a busy
///   worker while another is idle, and on a scale-out a new worker finds at most that many
///   per running worker already taken.
///
/// The drain figures are in BENCHMARKS.md (`lead-agent simulate`).
fn prefetch(settings: &Settings) -> usize {
    let cap = settings.llm_concurrency;
    if settings.has_shared_queue() {
        cap + cap.div_ceil(3)
    } else {
        cap * 2
    }
}

fn busy_turns(state: &AppState) -> usize {
    state.worker.as_ref().map_or(0, |w| w.registry.busy_leads())
}

/// `AMQP_URL` set: RabbitMQ, with its dead letters raised as alerts (a task that reaches
/// them will not be retried by anything, so it must not pass silently). Unset: in-process.
/// The concrete RabbitMQ queue is returned beside the trait object: it is also the inbound
/// fallback (`<AMQP_QUEUE>.inbound`).
async fn build_queue(
    settings: &Settings,
    alerts: &AlertHandle,
) -> anyhow::Result<(Arc<dyn WorkQueue>, Option<Arc<RabbitQueue>>)> {
    let Some(amqp) = &settings.amqp else {
        tracing::info!("work queue: in-process (AMQP_URL is not set)");
        return Ok((Arc::new(InProcessQueue::default()), None));
    };
    let config = RabbitConfig::new(
        amqp.url.expose(),
        &amqp.queue,
        &format!("lead-agent {}", Settings::worker_id()),
    )
    .context("Failed to read the RabbitMQ settings")?;
    let queue = RabbitQueue::connect(config)
        .await
        .context("Failed to connect to RabbitMQ (AMQP_URL)")?;
    let alerts = alerts.clone();
    // Detached: it ends with the queue (stop_consuming or drop), and its only output is alerts.
    let _watcher = queue.watch_dead_letters(Arc::new(move |dead: DeadLetter| {
        alerts.raise(dead.alert());
    }));
    let queue = Arc::new(queue);
    Ok((queue.clone(), Some(queue)))
}

/// The webhook's durable intake and its fallbacks, in the order they are tried: RabbitMQ's
/// inbound queue when the work queue is RabbitMQ, then the local journal when this role
/// keeps one (`INBOUND_JOURNAL_PATH`; by default only `all` without RabbitMQ, whose one
/// process both writes and replays it).
fn build_intake(
    settings: &Settings,
    role: Role,
    store: &SqlStore,
    queue: &Arc<dyn WorkQueue>,
    rabbit: Option<&Arc<RabbitQueue>>,
    alerts: &AlertHandle,
) -> anyhow::Result<(Arc<InboundIntake>, Option<Arc<Journal>>)> {
    let mut fallbacks: Vec<Arc<dyn InboundFallback>> = Vec::new();
    if let Some(rabbit) = rabbit {
        fallbacks.push(Arc::new(RabbitFallback::new(rabbit.clone())));
    }
    let journal_path = match &settings.inbound_journal {
        JournalSetting::Off => None,
        JournalSetting::Path(p) => Some(p.clone()),
        JournalSetting::Default if role == Role::All && rabbit.is_none() => {
            Some(JournalSetting::DEFAULT_FILE.into())
        }
        JournalSetting::Default => None,
    };
    let journal = match journal_path {
        Some(path) => {
            let journal = Arc::new(
                Journal::open(&path).context("INBOUND_JOURNAL_PATH: the inbound journal")?,
            );
            fallbacks.push(journal.clone());
            Some(journal)
        }
        None => None,
    };
    let intake = Arc::new(InboundIntake::new(
        store.clone(),
        queue.clone(),
        fallbacks,
        alerts.clone(),
        settings.webhook_alert_every,
    ));
    if role.serves_webhook() {
        let names = intake.fallback_names();
        if names.is_empty() {
            tracing::warn!(
                "no inbound fallback: while the store is down, webhooks are answered 503 (and Twilio does not retry a 5xx by default)"
            );
        } else {
            tracing::info!(fallbacks = ?names, "inbound fallbacks, in order, for when the store cannot take a webhook");
        }
    }
    Ok((intake, journal))
}

fn configured_models(settings: &Settings) -> anyhow::Result<Vec<Arc<dyn ChatModel>>> {
    let mut chain: Vec<Arc<dyn ChatModel>> = Vec::new();
    if let Some(a) = &settings.anthropic {
        chain.push(Arc::new(AnthropicClient::new(
            &settings.anthropic_base_url,
            a.api_key.clone(),
            a.model.clone(),
            system_prompt(&settings.office_name),
            settings.llm_hard_timeout,
        )?));
    }
    if let Some(g) = &settings.brain.gemini {
        chain.push(Arc::new(GeminiClient::new(
            &settings.brain.gemini_base_url,
            g.api_key.clone(),
            g.model.clone(),
            system_prompt(&settings.office_name),
            settings.llm_hard_timeout,
        )?));
    }
    Ok(chain)
}

/// `USE_AGENT_CORE`: `None` lets the lead actor ask the plain chain; otherwise the brain,
/// or the shadow pair. The catalog is loaded whenever `BUILDINGS_FILE` is set, so a broken
/// file stops start-up even while the brain is off.
fn build_responder(
    settings: &Settings,
    store: &SqlStore,
    alerts: &AlertHandle,
    clock: &Arc<dyn Clock>,
    pool: &LlmPool,
) -> anyhow::Result<Option<Arc<dyn Responder>>> {
    let mode = settings.brain.agent_mode;
    if mode == AgentMode::Plain && settings.brain.buildings_file.is_none() {
        return Ok(None);
    }
    let catalog = crate::catalog::load(settings.brain.buildings_file.as_deref())?;
    if mode == AgentMode::Plain {
        return Ok(None);
    }
    if settings.brain.buildings_file.is_none() {
        tracing::warn!("BUILDINGS_FILE is not set: the brain leases the bundled SAMPLE buildings");
    }
    let crm: Arc<dyn CrmNotes> = match &settings.brain.fub_api {
        Some(key) => Arc::new(FollowUpBoss::new(
            &settings.brain.fub_api_base,
            key.clone(),
            Duration::from_secs(10),
        )?),
        None => Arc::new(DryRunCrm),
    };
    let tools = ToolBox {
        catalog: Arc::new(catalog),
        contexts: Arc::new(store.clone()),
        crm,
        alerts: alerts.clone(),
        clock: clock.clone(),
    };
    tracing::info!(
        ?mode,
        buildings = tools.catalog.buildings.len(),
        "agent core on"
    );
    Ok(Some(match mode {
        AgentMode::Agent => Arc::new(Brain::new(pool.clone(), tools)),
        AgentMode::Shadow => Arc::new(Shadow {
            primary: Arc::new(PlainChain(pool.clone())),
            shadow: Arc::new(Brain::disarmed(pool.clone(), tools)),
            alerts: alerts.clone(),
        }),
        AgentMode::Plain => unreachable!("handled above"),
    }))
}

/// Embedded mode keeps the queue in memory, so a crash loses queued wake-ups; the store does
/// not. At start, replies interrupted mid-send are flagged in doubt (and those in doubt long
/// enough are checked with the provider: `actors::outbox` — found: sent; absent at two
/// checks spaced apart: queued again; unclear: in doubt, alerted), and every lead with
/// stored work is woken again. In `all` every `sending` claim is orphaned (this process
/// was its only sender); a separate scheduler only takes claims older than a whole turn's
/// budget, since a live worker may own the newer ones. RabbitMQ keeps its tasks, so there
/// the re-drive mostly adds duplicate wake-ups (harmless); it stays because it also wakes a
/// lead whose wake-up was dead-lettered, once per start.
pub async fn redrive_pending(state: &AppState, sweep: &OutboxSweep) -> anyhow::Result<()> {
    let stale_after = match state.role {
        Role::All => Duration::ZERO,
        _ => state.settings.lead_turn_timeout,
    };
    let report = sweep
        .sweep_with(stale_after)
        .await
        .context("Failed to resolve interrupted sends")?;
    if report != SweepReport::default() {
        tracing::info!(?report, "outbox recovered");
    }
    let leads = state
        .store
        .leads_with_pending_work()
        .await
        .context("Failed to list leads with pending work")?;
    if !leads.is_empty() {
        tracing::info!(count = leads.len(), "re-driving leads with stored work");
    }
    for lead in leads {
        state.queue.publish(WakeLead { lead }).await?;
    }
    Ok(())
}

/// Writes this process's heartbeat every `HEARTBEAT_SECS`. A worker writes it only while its
/// consumer is up (the queue is ready), so a heartbeat means "consuming", not just "alive".
fn spawn_heartbeat(state: AppState, instance: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = chrono::Utc::now();
        let mut tick = tokio::time::interval(state.settings.scheduler.heartbeat_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            // A consumer that is still connecting (RabbitMQ connects in the background) is
            // re-checked every second, so the first heartbeat lands as soon as it consumes
            // rather than a whole period later — `verify` right after a rollout relies on it.
            while state.role.runs_actors() && !state.queue.is_ready().await {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Err(e) = state
                .store
                .heartbeat(&instance, state.role.name(), started)
                .await
            {
                tracing::warn!(error = %e, "heartbeat not written");
            }
        }
    })
}

/// The periodic sweep of the roles that own the clock: resolve in-doubt replies and wake
/// leads whose stored work has outlived its wake-up. A failed sweep is logged and tried
/// again next period; it never stops the loop.
fn spawn_outbox_sweeps(state: AppState, sweep: Arc<OutboxSweep>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.settings.outbox_sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        tick.tick().await; // the first tick is immediate; start-up already swept
        loop {
            tick.tick().await;
            let mut wake = match sweep.sweep().await {
                Ok(report) => report.requeued,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox sweep failed");
                    Vec::new()
                }
            };
            // Work older than a whole turn's budget has lost its wake-up (dead-lettered, or
            // dropped with a crashed process): wake it again. Duplicates are harmless.
            let cutoff = chrono::Utc::now()
                - chrono::Duration::from_std(state.settings.lead_turn_timeout)
                    .unwrap_or(chrono::Duration::zero());
            match state.store.leads_with_stale_work(cutoff).await {
                Ok(stale) => wake.extend(stale),
                Err(e) => tracing::warn!(error = %e, "stale-work query failed"),
            }
            wake.sort();
            wake.dedup();
            for lead in wake {
                if let Err(e) = state.queue.publish(WakeLead { lead }).await {
                    tracing::warn!(error = %e, "could not wake a lead; the next sweep will try again");
                }
            }
        }
    })
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

    #[test]
    fn a_shared_queue_prefetches_a_third_past_the_model_cap_and_the_in_process_one_double() {
        let embedded = Settings::from_map(&HashMap::from([("LLM_CONCURRENCY", "6")])).unwrap();
        assert_eq!(prefetch(&embedded), 12);
        for (cap, expected) in [("1", 2), ("6", 8), ("7", 10), ("12", 16)] {
            let shared = Settings::from_map(&HashMap::from([
                ("LLM_CONCURRENCY", cap),
                ("AMQP_URL", "amqp://u:p@rabbit:5672/%2f"),
            ]))
            .unwrap();
            assert_eq!(prefetch(&shared), expected, "LLM_CONCURRENCY {cap}");
        }
    }

    #[test]
    fn each_role_runs_its_share() {
        assert!(Role::All.serves_webhook() && Role::All.runs_actors() && Role::All.redrives());
        assert!(Role::Web.serves_webhook() && !Role::Web.runs_actors() && !Role::Web.redrives());
        assert!(!Role::Worker.serves_webhook() && Role::Worker.runs_actors());
        assert!(Role::Scheduler.redrives() && !Role::Scheduler.runs_actors());
    }
}
