//! LlmPool: the per-process cap on concurrent model calls and the provider chain behind it —
//! an actor ([`LlmPoolChild`], a child of the root supervisor) and the cloneable handle
//! ([`LlmPool`]) that lead actors and the brain call it through.
//!
//! Owns: the concurrency cap (`LLM_CONCURRENCY`), the soft budget per provider call (on
//! expiry the call is cancelled and the next provider asked), the hard budget for the whole
//! chain (on expiry the turn is abandoned and handed back), the error-class policy (fail
//! over on timeout, 529, 5xx and 429; wait out a 429's retry-after once when it is short;
//! never call a provider again for a request it rejected), a circuit breaker per provider,
//! and what an operator watches (counters, `lead_agent_llm_*` metrics, one tracing span per
//! provider call — GenAI semantic conventions, `call_span.rs` — an alert when a fallback
//! answered).
//!
//! Shape: the actor (`actor.rs`) owns the permits (how many are out, who waits, in order),
//! each provider's breaker and rate-limit hold, and the breaker health `/ops` reads; a call
//! is messages to it — a permit, then an admission per provider, then each outcome. The
//! provider call itself runs in the caller's task (`chain.rs`), outside the actor's handler,
//! so the cap is concurrency: the mailbox only ever holds those short decisions, never a
//! model call. A permit is a guard (`permit.rs`): however the call ends it gives the permit
//! back, to whichever incarnation runs by then (`route.rs`).
//! Must not: hold a permit while not calling a model, let one stuck call hold a worker past
//! the hard budget, or leave a caller waiting on an actor that is gone: a call follows a
//! restart to the next incarnation, and when none runs within one soft budget (or the pool
//! was stopped for good) the chain's last link — the rules responder, which needs neither
//! permit nor breaker — answers.

mod actor;
mod call_span;
mod chain;
mod child;
mod permit;
mod policy;
mod route;

#[cfg(test)]
mod actor_tests;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::alert_router::AlertHandle;
use crate::breaker::{BreakerState, CircuitBreaker};
use crate::conversation::{AgentReply, AgentRequest};
use crate::ports::{ChatModel, Clock, Completion, Prompt, SystemClock};

pub use child::LlmPoolChild;
pub use policy::ChainPolicy;

#[derive(Clone, Copy, Debug)]
pub struct LlmPoolConfig {
    pub concurrency: usize,
    /// Per provider call: past it the call is cancelled and the next provider is asked.
    pub soft_timeout: Duration,
    /// For the whole chain: past it the turn is abandoned and retried later.
    pub hard_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("model chain exceeded its hard budget of {0:?}")]
    HardTimeout(Duration),
    #[error("every provider failed: {0}")]
    AllFailed(String),
}

/// Counters read by /ops, metrics and tests. They are the process's, not an incarnation's:
/// they live in the handle and run on across a restart of the actor.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Permits out right now — the number the actor grants against the cap.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicU64,
    pub fallbacks: AtomicU64,
    pub hard_timeouts: AtomicU64,
    /// Provider calls not made because the provider's breaker was open.
    pub refused_by_breaker: AtomicU64,
}

/// The way to the pool. Cloning it is cheap; every clone follows the actor across restarts.
#[derive(Clone)]
pub struct LlmPool {
    shared: Arc<Shared>,
}

/// What the handle, each incarnation of the actor and every permit share. The chain and
/// the settings never change; the counters, the route and the published breakers do.
struct Shared {
    chain: Vec<Arc<dyn ChatModel>>,
    /// `chain`'s names, read once: the actor names providers without calling into them.
    names: Vec<String>,
    /// `chain`'s model ids, read once: each call's span names the model it asked.
    models: Vec<String>,
    config: LlmPoolConfig,
    policy: ChainPolicy,
    clock: Arc<dyn Clock>,
    alerts: AlertHandle,
    stats: PoolStats,
    route: route::Route,
    /// The running incarnation's breakers, published by it when it starts (fresh, closed
    /// ones before the first start): what [`LlmPool::breaker_states`] reads. Only the
    /// actor changes them.
    breakers: Mutex<Vec<Arc<CircuitBreaker>>>,
}

impl Shared {
    fn fresh_breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        self.chain
            .iter()
            .map(|_| Arc::new(CircuitBreaker::new(self.policy.breaker, self.clock.clone())))
            .collect()
    }

    fn publish_breakers(&self, breakers: Vec<Arc<CircuitBreaker>>) {
        *self.breakers.lock().unwrap_or_else(|p| p.into_inner()) = breakers;
    }
}

impl LlmPool {
    /// `chain` is tried in order; its last link should be a responder that cannot fail
    /// (the rules responder) so that a lead never meets silence. Starts the pool's actor on
    /// its own, unsupervised (actor tests, benches); call it inside a tokio runtime. The
    /// service runs the actor under the root supervisor instead ([`LlmPoolChild::new`]).
    pub fn new(chain: Vec<Arc<dyn ChatModel>>, config: LlmPoolConfig, alerts: AlertHandle) -> Self {
        Self::with_policy(
            chain,
            config,
            ChainPolicy::default(),
            alerts,
            Arc::new(SystemClock),
        )
    }

    /// Like [`LlmPool::new`] with an explicit failure policy; the breakers read `clock`.
    pub fn with_policy(
        chain: Vec<Arc<dyn ChatModel>>,
        config: LlmPoolConfig,
        policy: ChainPolicy,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let pool = Self::detached(chain, config, policy, alerts, clock);
        actor::spawn_standalone(&pool.shared);
        pool
    }

    /// A handle no actor serves yet: [`LlmPoolChild`] starts one under the root.
    fn detached(
        chain: Vec<Arc<dyn ChatModel>>,
        config: LlmPoolConfig,
        policy: ChainPolicy,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
    ) -> Self {
        assert!(
            !chain.is_empty(),
            "the provider chain needs at least one model"
        );
        let names = chain.iter().map(|m| m.name().to_string()).collect();
        let models = chain.iter().map(|m| m.model().to_string()).collect();
        let shared = Arc::new(Shared {
            chain,
            names,
            models,
            config,
            policy,
            clock,
            alerts,
            stats: PoolStats::default(),
            route: route::Route::new(),
            breakers: Mutex::new(Vec::new()),
        });
        shared.publish_breakers(shared.fresh_breakers());
        Self { shared }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.shared.stats
    }

    pub fn config(&self) -> LlmPoolConfig {
        self.shared.config
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.shared.names.clone()
    }

    /// Each provider's breaker state, in chain order, as the running incarnation holds it.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let breakers = self
            .shared
            .breakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.shared
            .names
            .iter()
            .cloned()
            .zip(breakers.iter().map(|b| b.state()))
            .collect()
    }

    /// Asks the chain for a reply. Waiting for a permit does not count against the budgets:
    /// they bound the time a call holds capacity, not the time spent queueing for it.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, PoolError> {
        let reply = chain::ask(&self.shared, chain::Ask::Plain(prompt), &mut None).await?;
        Ok(Completion {
            text: reply.text(),
            provider: reply.provider,
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
        })
    }

    /// One step of a tool loop. `deadline` is the loop's own hard budget: `None` on the
    /// first step, when it is set to the pool's hard budget from the moment this step got
    /// its permit (queueing for capacity does not count, as for a plain call); later steps
    /// pass it back, so every step and tool of the loop together stay inside
    /// `LLM_HARD_TIMEOUT_SECS`.
    pub async fn converse(
        &self,
        request: &AgentRequest,
        deadline: &mut Option<Instant>,
    ) -> Result<AgentReply, PoolError> {
        chain::ask(&self.shared, chain::Ask::Agent(request), deadline).await
    }

    /// Permits not out right now.
    #[cfg(test)]
    fn available_permits(&self) -> usize {
        let cap = self.shared.config.concurrency.max(1);
        let out = self
            .shared
            .stats
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst);
        cap.saturating_sub(out)
    }
}
