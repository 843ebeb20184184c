//! Startup: builds the whole application from [`Settings`] in one readable place — store,
//! alert router, model chain and pool, SMS sender, the lead actor tree, the work queue
//! (in-process, or RabbitMQ with its dead-letter alerts) and its consumer, the start-up
//! re-drive, and the HTTP server — and shuts it down in order.
//!
//! Owns: wiring and the shutdown order. Must not: hold business logic; anything a test
//! needs to replace (the model chain, the alert sink) comes in through [`Overrides`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::alert_router::{Alert, AlertHandle, AlertRouter, AlertSink};
use actors::lead::LeadDeps;
use actors::llm_pool::{LlmPool, LlmPoolConfig};
use actors::ports::{ChatModel, Clock, SmsSender, SystemClock, WakeLead};
use actors::supervisor::{LeadRegistry, LeadSupervisor, SupervisorConfig};
use actors::window::WindowLimits;
use anyhow::Context;
use tokio::net::TcpListener;

use crate::channels::dry_run::DryRunSms;
use crate::channels::llm::anthropic::AnthropicClient;
use crate::channels::llm::rules::{OfficeInfo, RulesResponder};
use crate::channels::llm::system_prompt;
use crate::channels::log_alerts::LogAlertSink;
use crate::channels::twilio::TwilioClient;
use crate::config::Settings;
use crate::http::{self, AppState};
use crate::queue::rabbitmq::{DeadLetter, RabbitConfig};
use crate::queue::{InProcessQueue, RabbitQueue, WorkQueue};
use crate::store::SqlStore;

/// How long in-flight turns get to finish after SIGTERM (under Kubernetes' 30 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// What a test may replace.
#[derive(Default)]
pub struct Overrides {
    /// Replaces the configured providers at the front of the chain; the rules responder is
    /// still appended last.
    pub chat_models: Option<Vec<Arc<dyn ChatModel>>>,
    pub alert_sink: Option<Arc<dyn AlertSink>>,
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    consumer: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings, overrides: Overrides) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = SqlStore::connect(settings.database_url.expose()).await?;

        let sink = overrides
            .alert_sink
            .unwrap_or_else(|| Arc::new(LogAlertSink));
        let (alerts, _router) = AlertRouter::start(sink, clock.clone())
            .await
            .context("Failed to start the alert router")?;

        let mut chain: Vec<Arc<dyn ChatModel>> = match overrides.chat_models {
            Some(models) => models,
            None => configured_models(&settings)?,
        };
        chain.push(Arc::new(RulesResponder::new(OfficeInfo {
            office_name: settings.office_name.clone(),
            ..OfficeInfo::default()
        })));
        let pool = LlmPool::new(
            chain,
            LlmPoolConfig {
                concurrency: settings.llm_concurrency,
                soft_timeout: settings.llm_soft_timeout,
                hard_timeout: settings.llm_hard_timeout,
            },
            alerts.clone(),
        );
        tracing::info!(providers = ?pool.provider_names(), cap = settings.llm_concurrency, "model chain ready");

        let sms: Arc<dyn SmsSender> = match &settings.twilio {
            Some(t) => {
                tracing::info!(account = %t.account_sid, "replies go out through Twilio");
                Arc::new(TwilioClient::new(
                    t,
                    &settings.twilio_api_base,
                    Duration::from_secs(15),
                )?)
            }
            None => {
                tracing::warn!(
                    "Twilio is not configured: replies are stored and logged (dry run), not sent"
                );
                Arc::new(DryRunSms::default())
            }
        };
        if settings.twilio_auth_token.is_none() {
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: webhook signatures cannot be checked, so only \
                 loopback peers may post to /twilio/sms"
            );
        }

        let deps = Arc::new(LeadDeps {
            store: Arc::new(store.clone()),
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
        });
        let (registry, _tree) = LeadSupervisor::start(
            deps,
            SupervisorConfig {
                restart_max: settings.lead_restart_max,
                restart_window: settings.lead_restart_window,
                idle_after: settings.lead_idle,
                memory_budget_bytes: settings.lead_memory_budget_bytes,
                turn_budget: settings.lead_turn_timeout,
                sweep_every: Some(Duration::from_secs(1)),
            },
        )
        .await
        .context("Failed to start the lead supervisor")?;

        let queue = build_queue(&settings, &alerts).await?;
        let router = registry.clone();
        let consumer = queue
            .start_consumer(
                settings.llm_concurrency,
                Arc::new(move |delivery| router.dispatch(delivery)),
            )
            .await?;

        let state = AppState {
            settings: settings.clone(),
            store,
            queue,
            alerts,
            registry,
            pool,
            accepting: Arc::new(AtomicBool::new(true)),
        };
        redrive_pending(&state).await?;

        let addr = SocketAddr::new(settings.bind_address, settings.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("Failed to bind {addr}"))?;
        Ok(Self {
            listener,
            state,
            consumer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops in order: readiness off and no new
    /// connections (in-flight requests finish), no new deliveries, in-flight turns get
    /// [`SHUTDOWN_GRACE`] to finish, then the actor tree stops. A turn still running at the
    /// end is cut; its task was never acked, and the re-drive at the next start takes it.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            consumer,
        } = self;
        let accepting = state.accepting.clone();
        let app = http::router(state.clone());
        tracing::info!(addr = %listener.local_addr()?, "listening");
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            accepting.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: no new webhooks");
        })
        .await
        .context("HTTP server failed")?;

        state.queue.stop_consuming();
        let _ = consumer.await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while busy_turns(&state.registry) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = busy_turns(&state.registry);
        if left > 0 {
            tracing::warn!(
                left,
                "turns still running at the end of the grace period; the next start re-drives them"
            );
        }
        state.registry.supervisor().stop(Some("shutdown".into()));
        Ok(())
    }
}

fn busy_turns(registry: &LeadRegistry) -> usize {
    registry.busy_leads()
}

/// `AMQP_URL` set: RabbitMQ, with its dead letters raised as alerts (a task that reaches
/// them will not be retried by anything, so it must not pass silently). Unset: in-process.
async fn build_queue(
    settings: &Settings,
    alerts: &AlertHandle,
) -> anyhow::Result<Arc<dyn WorkQueue>> {
    let Some(amqp) = &settings.amqp else {
        tracing::info!("work queue: in-process (AMQP_URL is not set)");
        return Ok(Arc::new(InProcessQueue::default()));
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
    Ok(Arc::new(queue))
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
    Ok(chain)
}

/// Embedded mode keeps the queue in memory, so a crash loses queued wake-ups; the store does
/// not. At start every lead with stored work is woken again, and every reply interrupted
/// mid-send is flagged in-doubt (it may have gone out: never resent blindly) and alerted.
/// RabbitMQ keeps its tasks, so there the re-drive mostly adds duplicate wake-ups (harmless);
/// it stays because it also wakes a lead whose wake-up was dead-lettered, once per start.
pub async fn redrive_pending(state: &AppState) -> anyhow::Result<()> {
    for (id, lead) in state
        .store
        .flag_interrupted_sends()
        .await
        .context("Failed to flag interrupted sends")?
    {
        state.alerts.raise(
            Alert::error(
                "sms_in_doubt",
                format!("Reply {id} to {lead} was being sent when the process stopped; it may or may not have gone out and is not resent"),
            )
            .for_lead(&lead),
        );
    }
    let leads = state
        .store
        .leads_with_pending_work()
        .await
        .context("Failed to list leads with pending work")?;
    if !leads.is_empty() {
        tracing::info!(
            count = leads.len(),
            "re-driving leads with unanswered messages"
        );
    }
    for lead in leads {
        state.queue.publish(WakeLead { lead }).await?;
    }
    Ok(())
}
