//! The worker's half: the model chain (the configured providers, then the rules responder)
//! and the LLM pool over it, the responder `USE_AGENT_CORE` picks, the lead actor tree
//! under the root supervisor, and how many deliveries the consumer may hold.
//!
//! Must not: call a model or consume the queue itself; it builds what does.

use std::sync::Arc;
use std::time::Duration;

use actors::alert_router::AlertHandle;
use actors::brain::catalog::SharedCatalog;
use actors::brain::context::CrmNotes;
use actors::brain::tools::ToolBox;
use actors::brain::{AgentMode, Brain, PlainChain, Responder, Shadow};
use actors::breaker::BreakerConfig;
use actors::dialer::{Dialer, DialerHandoff};
use actors::hitl::ReplyHolds;
use actors::lead::{AccommodationHandoff, LeadDeps};
use actors::llm_pool::{ChainPolicy, LlmPool, LlmPoolChild, LlmPoolConfig};
use actors::ports::{ChatModel, Clock, SmsSender};
use actors::root::RootHandle;
use actors::signals::Listening;
use actors::sla::SlaEvents;
use actors::supervisor::{LeadSupervisorChild, SupervisorConfig};
use actors::window::WindowLimits;
use anyhow::Context;

use crate::building_service::{self, BuildingService};
use crate::channels::crm::{DryRunCrm, FollowUpBoss};
use crate::channels::dialer::{DryRunDialer, HttpDialer};
use crate::channels::llm::anthropic::AnthropicClient;
use crate::channels::llm::gemini::GeminiClient;
use crate::channels::llm::openai::OpenAiClient;
use crate::channels::llm::rules::signals::RulesReader;
use crate::channels::llm::rules::{OfficeInfo, RulesResponder};
use crate::channels::llm::system_prompt;
use crate::config::Settings;
use crate::http::WorkerState;
use crate::store::SqlStore;

/// What a lead's turn acts through besides the model chain: the SMS sender, and the SLA
/// events a tour request or a booked tour opens or resolves.
pub(super) struct TurnEffects {
    pub sms: Arc<dyn SmsSender>,
    pub sla: SlaEvents,
}

/// The worker's half: the model chain and pool, the SMS sender and the lead actor tree.
pub(super) async fn start_worker(
    settings: &Settings,
    store: &SqlStore,
    roots: &RootHandle,
    alerts: &AlertHandle,
    clock: Arc<dyn Clock>,
    effects: TurnEffects,
    chat_models: Option<Vec<Arc<dyn ChatModel>>>,
) -> anyhow::Result<WorkerState> {
    let TurnEffects { sms, sla } = effects;
    let accommodation = Some(AccommodationHandoff {
        sla: sla.clone().with_business_hours(settings.business_hours),
        reply: settings.accommodation_reply.clone(),
    });
    let holds = settings.hitl.enabled.then(|| {
        tracing::info!("HITL_ENABLED: replies are held for approval in Discord");
        Arc::new(store.clone()) as Arc<dyn ReplyHolds>
    });
    let mut chain: Vec<Arc<dyn ChatModel>> = match chat_models {
        Some(models) => models,
        None => configured_models(settings)?,
    };
    // No model in front of the rules: the rules responder is the brain (README's first
    // command), and it runs as the brain does, with the tool box (see `build_responder`).
    let keyless = chain.is_empty();
    // One catalog for the rules responder and the brain's tools, so both say the same.
    let catalog = load_catalog(settings, alerts).await?;
    chain.push(Arc::new(
        RulesResponder::new(OfficeInfo {
            office_name: settings.office_name.clone(),
            greeting: settings.profile.greeting.clone(),
            ..OfficeInfo::default()
        })
        .with_catalog(catalog.clone(), settings.scheduler.time_zone),
    ));
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
    let dialer = Arc::new(build_dialer(settings, store, alerts, &clock)?);
    let inner = build_responder(
        settings,
        store,
        alerts,
        &clock,
        &pool,
        Effects {
            sla: &sla,
            dialer: &dialer,
        },
        catalog,
        keyless,
    )?;
    // Every turn's new messages are read for a tour or a call request, whichever model
    // answers (the plain chain, the brain or shadow).
    let responder: Option<Arc<dyn Responder>> = Some(Arc::new(Listening {
        inner,
        pool: pool.clone(),
        reader: Arc::new(RulesReader),
        sla: Some(sla),
        dialer: Some(dialer),
    }));

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
        // Fair-housing holds go to the store whether or not HITL holds every reply.
        guard_holds: Some(Arc::new(store.clone()) as Arc<dyn ReplyHolds>),
        accommodation,
        revocations: Some(Arc::new(crate::judged_revocations::StoreRevocations {
            store: store.clone(),
            confirmation: settings.opt_out_confirmation.clone(),
        })),
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
pub(super) fn prefetch(settings: &Settings) -> usize {
    let cap = settings.llm_concurrency;
    if settings.has_shared_queue() {
        cap + cap.div_ceil(3)
    } else {
        cap * 2
    }
}

/// The providers in `LLM_PROVIDERS` order (default: Anthropic, Gemini, then OpenAI when
/// keyed); a listed provider without its key is off, said once in the log.
fn configured_models(settings: &Settings) -> anyhow::Result<Vec<Arc<dyn ChatModel>>> {
    use crate::config::providers::Provider;
    let system = settings
        .profile
        .extend_prompt(system_prompt(&settings.office_name));
    let timeout = settings.llm_hard_timeout;
    let mut chain: Vec<Arc<dyn ChatModel>> = Vec::new();
    for &provider in &settings.brain.providers.order {
        let model: Option<Arc<dyn ChatModel>> = match provider {
            Provider::Anthropic => match &settings.anthropic {
                Some(a) => Some(Arc::new(AnthropicClient::new(
                    &settings.anthropic_base_url,
                    a.api_key.clone(),
                    a.model.clone(),
                    system.clone(),
                    timeout,
                )?)),
                None => None,
            },
            Provider::Gemini => match &settings.brain.gemini {
                Some(g) => Some(Arc::new(GeminiClient::new(
                    &settings.brain.gemini_base_url,
                    g.api_key.clone(),
                    g.model.clone(),
                    system.clone(),
                    timeout,
                )?)),
                None => None,
            },
            Provider::OpenAi => match &settings.brain.providers.openai {
                Some(o) => Some(Arc::new(OpenAiClient::new(
                    &settings.brain.providers.openai_base_url,
                    o.api_key.clone(),
                    o.model.clone(),
                    system.clone(),
                    timeout,
                )?)),
                None => None,
            },
        };
        match model {
            Some(m) => chain.push(m),
            None => tracing::info!(
                provider = provider.name(),
                "model provider off: set {} to turn it on",
                provider.key_var()
            ),
        }
    }
    Ok(chain)
}

/// The dialer hand-off: `HOMEEASY_DIALER_URL` (bearer `VOICE_AI_API_KEY`), or the dry run.
fn build_dialer(
    settings: &Settings,
    store: &SqlStore,
    alerts: &AlertHandle,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<DialerHandoff> {
    let dialer: Arc<dyn Dialer> = match &settings.dialer_url {
        Some(url) => {
            if settings.voice_ai_api_key.is_none() {
                tracing::warn!(
                    "HOMEEASY_DIALER_URL is set without VOICE_AI_API_KEY: hand-offs carry no Authorization header"
                );
            }
            Arc::new(HttpDialer::new(
                url,
                settings.voice_ai_api_key.clone(),
                Duration::from_secs(10),
            )?)
        }
        None => {
            tracing::info!(
                "the dialer hand-off is off (logged and recorded, not posted): set HOMEEASY_DIALER_URL to turn it on"
            );
            Arc::new(DryRunDialer)
        }
    };
    Ok(DialerHandoff::new(
        Arc::new(store.clone()),
        dialer,
        alerts.clone(),
        clock.clone(),
    ))
}

/// The building catalog the rules responder and the brain read: from
/// `BUILDING_SERVICE_API` when set (fetched at start, refreshed in the background, the
/// last good copy kept), else `BUILDINGS_FILE`, else the bundled sample. Always loaded, so
/// a broken file stops start-up whichever brain answers.
async fn load_catalog(settings: &Settings, alerts: &AlertHandle) -> anyhow::Result<SharedCatalog> {
    let file = settings.brain.buildings_file.as_deref();
    let load_file = || crate::catalog::load(file);
    Ok(match &settings.brain.building_service {
        Some(url) => {
            let service = BuildingService::new(url)?;
            let (catalog, answered) =
                building_service::initial_catalog(&service, load_file, alerts).await?;
            let shared = SharedCatalog::new(catalog);
            building_service::spawn_refresh(
                service,
                shared.downgrade(),
                settings.brain.building_refresh,
                alerts.clone(),
                answered,
            );
            shared
        }
        None => {
            tracing::info!(
                "building service off: set BUILDING_SERVICE_API to fetch the catalog from it"
            );
            if file.is_none() {
                tracing::warn!(
                    "BUILDINGS_FILE is not set: the agent leases the bundled SAMPLE buildings"
                );
            }
            SharedCatalog::new(load_file()?)
        }
    })
}

/// What the brain's tools open or hand over besides the store.
struct Effects<'a> {
    sla: &'a SlaEvents,
    dialer: &'a Arc<DialerHandoff>,
}

/// `USE_AGENT_CORE`: `None` lets the lead actor ask the plain chain; otherwise the brain,
/// or the shadow pair. Keyless (no provider configured) the brain answers whatever the
/// variable says: its only model is the rules responder, which then saves the lead's
/// needs and books tours through the brain's tool box (`record_requirements`,
/// `schedule_tour`: the alerts, SLA and CRM notes a model's calls raise).
#[allow(clippy::too_many_arguments)]
fn build_responder(
    settings: &Settings,
    store: &SqlStore,
    alerts: &AlertHandle,
    clock: &Arc<dyn Clock>,
    pool: &LlmPool,
    effects: Effects<'_>,
    catalog: SharedCatalog,
    keyless: bool,
) -> anyhow::Result<Option<Arc<dyn Responder>>> {
    let Effects { sla, dialer } = effects;
    let mode = match settings.brain.agent_mode {
        AgentMode::Plain if keyless => AgentMode::Agent,
        mode => mode,
    };
    if mode == AgentMode::Plain {
        return Ok(None);
    }
    let crm: Arc<dyn CrmNotes> = match &settings.brain.fub_api {
        Some(key) => Arc::new(
            FollowUpBoss::new(
                &settings.brain.fub_api_base,
                key.clone(),
                Duration::from_secs(10),
            )?
            .with_system(
                settings.brain.fub_system.clone(),
                settings.brain.fub_system_key.clone(),
            ),
        ),
        None => Arc::new(DryRunCrm),
    };
    let tools = ToolBox {
        catalog,
        contexts: Arc::new(store.clone()),
        crm,
        alerts: alerts.clone(),
        clock: clock.clone(),
        sla: Some(sla.clone()),
        dialer: Some(dialer.clone()),
        revocations: Some(Arc::new(crate::judged_revocations::StoreRevocations {
            store: store.clone(),
            confirmation: settings.opt_out_confirmation.clone(),
        })),
    };
    tracing::info!(
        ?mode,
        buildings = tools.catalog.current().buildings.len(),
        "agent core on"
    );
    let persona = settings.profile.prompt_addition();
    Ok(Some(match mode {
        AgentMode::Agent => Arc::new(Brain::new(pool.clone(), tools).with_persona(persona)),
        AgentMode::Shadow => Arc::new(Shadow {
            primary: Arc::new(PlainChain(pool.clone())),
            shadow: Arc::new(Brain::disarmed(pool.clone(), tools).with_persona(persona)),
            alerts: alerts.clone(),
        }),
        AgentMode::Plain => unreachable!("handled above"),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

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
}
