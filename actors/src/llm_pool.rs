//! LlmPool: the per-process cap on concurrent model calls and the provider chain behind it.
//!
//! Owns: the concurrency cap (`LLM_CONCURRENCY`), the soft budget per provider call (on
//! expiry the call is cancelled and the next provider asked), the hard budget for the whole
//! chain (on expiry the turn is abandoned and handed back), the error-class policy (fail
//! over on timeout, 529, 5xx and 429; wait out a 429's retry-after once when it is short;
//! never call a provider again for a request it rejected), a circuit breaker per provider,
//! and what an operator watches (counters, `lead_agent_llm_*` metrics, one tracing span per
//! provider call, an alert when a fallback answered).
//! Must not: hold a permit while not calling a model, or let one stuck call hold a worker
//! past the hard budget. It is a cloneable handle, not an actor: an actor's mailbox would
//! serialise the calls the cap exists to run side by side; a semaphore is what a cap is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use tracing::Instrument;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
use crate::conversation::{AgentReply, AgentRequest, Block};
use crate::ports::{ChatModel, Clock, Completion, LeadId, ModelError, Prompt, SystemClock};

#[derive(Clone, Copy, Debug)]
pub struct LlmPoolConfig {
    pub concurrency: usize,
    /// Per provider call: past it the call is cancelled and the next provider is asked.
    pub soft_timeout: Duration,
    /// For the whole chain: past it the turn is abandoned and retried later.
    pub hard_timeout: Duration,
}

/// How the chain treats failing providers (REFERENCE.md's pool policy).
#[derive(Clone, Copy, Debug)]
pub struct ChainPolicy {
    /// A 429 whose retry-after is at most this is waited out and the provider asked once
    /// more (if the budgets allow); a longer one fails over at once and holds the
    /// provider's breaker open until the time it named.
    pub retry_after_cap: Duration,
    pub breaker: BreakerConfig,
}

impl Default for ChainPolicy {
    fn default() -> Self {
        Self {
            retry_after_cap: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("model chain exceeded its hard budget of {0:?}")]
    HardTimeout(Duration),
    #[error("every provider failed: {0}")]
    AllFailed(String),
}

/// Counters read by /ops, metrics and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicU64,
    pub fallbacks: AtomicU64,
    pub hard_timeouts: AtomicU64,
    /// Provider calls not made because the provider's breaker was open.
    pub refused_by_breaker: AtomicU64,
}

#[derive(Clone)]
pub struct LlmPool {
    inner: Arc<Inner>,
}

struct Link {
    model: Arc<dyn ChatModel>,
    breaker: CircuitBreaker,
}

struct Inner {
    permits: Semaphore,
    chain: Vec<Link>,
    config: LlmPoolConfig,
    policy: ChainPolicy,
    clock: Arc<dyn Clock>,
    alerts: AlertHandle,
    stats: PoolStats,
}

/// Decrements the in-flight count however the call ends (success, error, cancellation,
/// panic), so the gauge cannot drift.
struct InFlight<'a>(&'a PoolStats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a PoolStats) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        metrics::gauge!("lead_agent_llm_in_flight").increment(1.0);
        Self(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("lead_agent_llm_in_flight").decrement(1.0);
    }
}

/// What the chain is asked: a plain reply, or one step of the brain's tool loop.
#[derive(Clone, Copy)]
enum Ask<'a> {
    Plain(&'a Prompt),
    Agent(&'a AgentRequest),
}

impl Ask<'_> {
    fn lead(&self) -> &LeadId {
        match self {
            Ask::Plain(p) => &p.lead,
            Ask::Agent(r) => &r.prompt.lead,
        }
    }

    async fn call(self, model: &dyn ChatModel) -> Result<AgentReply, ModelError> {
        match self {
            Ask::Plain(prompt) => {
                let c = model.complete(prompt).await?;
                Ok(AgentReply {
                    blocks: vec![Block::Text(c.text)],
                    provider: c.provider,
                    input_tokens: c.input_tokens,
                    output_tokens: c.output_tokens,
                })
            }
            Ask::Agent(request) => model.converse(request).await,
        }
    }
}

/// The `outcome` label of `lead_agent_llm_calls_total`.
fn outcome_label(e: &ModelError) -> &'static str {
    match e {
        ModelError::Timeout => "timeout",
        ModelError::RateLimited { .. } => "rate_limited",
        ModelError::Overloaded => "overloaded",
        ModelError::Server { .. } => "server_error",
        ModelError::Rejected { .. } => "rejected",
        ModelError::Transport(_) => "transport_error",
        ModelError::BadResponse(_) => "bad_response",
    }
}

/// Whether a failure says the provider is unhealthy (counts toward opening its breaker).
/// A 400 or 413 is about this request, not the provider: it answered, so it is healthy. A
/// 401/403/404 will fail every request alike (bad key, unknown model), so it counts.
fn counts_against_provider(e: &ModelError) -> bool {
    match e {
        ModelError::Rejected { status, .. } => matches!(status, 401 | 403 | 404),
        _ => true,
    }
}

impl LlmPool {
    /// `chain` is tried in order; its last link should be a responder that cannot fail
    /// (the rules responder) so that a lead never meets silence.
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
        assert!(
            !chain.is_empty(),
            "the provider chain needs at least one model"
        );
        let chain = chain
            .into_iter()
            .map(|model| Link {
                model,
                breaker: CircuitBreaker::new(policy.breaker, clock.clone()),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.concurrency.max(1)),
                chain,
                config,
                policy,
                clock,
                alerts,
                stats: PoolStats::default(),
            }),
        }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.inner.stats
    }

    pub fn config(&self) -> LlmPoolConfig {
        self.inner.config
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.inner
            .chain
            .iter()
            .map(|l| l.model.name().to_string())
            .collect()
    }

    /// Each provider's breaker state, in chain order.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.inner
            .chain
            .iter()
            .map(|l| (l.model.name().to_string(), l.breaker.state()))
            .collect()
    }

    /// Asks the chain for a reply. Waiting for a permit does not count against the budgets:
    /// they bound the time a call holds capacity, not the time spent queueing for it.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, PoolError> {
        let reply = self.ask(Ask::Plain(prompt), &mut None).await?;
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
        self.ask(Ask::Agent(request), deadline).await
    }

    async fn ask(
        &self,
        ask: Ask<'_>,
        deadline: &mut Option<Instant>,
    ) -> Result<AgentReply, PoolError> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| PoolError::AllFailed("pool closed".into()))?;
        let _gauge = InFlight::enter(&inner.stats);
        inner.stats.calls.fetch_add(1, Ordering::Relaxed);
        let hard = inner.config.hard_timeout;
        let deadline = *deadline.get_or_insert(Instant::now() + hard);
        let budget = deadline.saturating_duration_since(Instant::now());
        match timeout(budget, self.run_chain(ask, deadline)).await {
            Ok(result) => result,
            Err(_) => {
                inner.stats.hard_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::HardTimeout(hard))
            }
        }
    }

    async fn run_chain(&self, ask: Ask<'_>, deadline: Instant) -> Result<AgentReply, PoolError> {
        let inner = &self.inner;
        let lead = ask.lead();
        let mut failures: Vec<String> = Vec::new();
        let last = inner.chain.len() - 1;
        for (i, link) in inner.chain.iter().enumerate() {
            let name = link.model.name();
            if link.breaker.admit() == Admission::Refuse {
                inner
                    .stats
                    .refused_by_breaker
                    .fetch_add(1, Ordering::Relaxed);
                metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => "circuit_open").increment(1);
                failures.push(format!("{name}: circuit open"));
                continue;
            }
            let mut waited_once = false;
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let clamped = remaining < inner.config.soft_timeout;
                let started = Instant::now();
                let span = tracing::info_span!("llm_call", provider = name, lead = %lead.log(), retry = waited_once);
                let outcome = timeout(
                    remaining.min(inner.config.soft_timeout),
                    ask.call(link.model.as_ref()),
                )
                .instrument(span)
                .await;
                metrics::histogram!("lead_agent_llm_latency_seconds", "provider" => name.to_string())
                    .record(started.elapsed().as_secs_f64());
                let error = match outcome {
                    // Cut by the chain's deadline rather than its own soft budget: the hard
                    // budget is spent. Not the provider's fault, so the breaker is not told.
                    Err(_) if clamped => {
                        return Err(PoolError::HardTimeout(inner.config.hard_timeout));
                    }
                    Err(_) => ModelError::Timeout,
                    Ok(Ok(reply)) => {
                        link.breaker.on_success();
                        self.record_success(name, &reply);
                        if i > 0 {
                            self.record_fallback(lead, name, i == last, &failures);
                        }
                        return Ok(reply);
                    }
                    Ok(Err(e)) => e,
                };
                metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => outcome_label(&error)).increment(1);
                tracing::warn!(provider = name, error = %error, lead = %lead.log(), "model call failed");
                if counts_against_provider(&error) {
                    if link.breaker.on_failure() {
                        tracing::warn!(
                            provider = name,
                            "circuit opened: provider skipped until a probe succeeds"
                        );
                        inner.alerts.raise(Alert::new(
                            AlertKind::Error,
                            Severity::Warning,
                            "provider_circuit_open",
                            format!(
                                "`{name}` keeps failing ({error}); skipped until a probe succeeds"
                            ),
                        ));
                    }
                } else {
                    link.breaker.on_success();
                }
                if let ModelError::RateLimited {
                    retry_after: Some(after),
                } = &error
                {
                    let after = *after;
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Wait once, and only if the retry still gets a useful share of the
                    // budget; otherwise the next provider is the retry.
                    if !waited_once
                        && after <= inner.policy.retry_after_cap
                        && after + inner.config.soft_timeout / 2 < left
                    {
                        waited_once = true;
                        tracing::info!(
                            provider = name,
                            ?after,
                            "rate limited: waiting as asked, then retrying once"
                        );
                        tokio::time::sleep(after).await;
                        continue;
                    }
                    if after > inner.policy.retry_after_cap
                        && let Ok(after) = chrono::Duration::from_std(after)
                    {
                        link.breaker.hold_until(inner.clock.now() + after);
                    }
                }
                failures.push(format!("{name}: {error}"));
                break;
            }
        }
        let all = failures.join("; ");
        inner.alerts.raise(
            Alert::error(
                "model_chain_failed",
                format!("No model answered {lead}: {all}"),
            )
            .for_lead(lead),
        );
        Err(PoolError::AllFailed(all))
    }

    fn record_success(&self, name: &str, reply: &AgentReply) {
        metrics::counter!("lead_agent_llm_calls_total", "provider" => name.to_string(), "outcome" => "ok").increment(1);
        metrics::counter!("lead_agent_llm_tokens_total", "provider" => name.to_string(), "kind" => "input")
            .increment(reply.input_tokens);
        metrics::counter!("lead_agent_llm_tokens_total", "provider" => name.to_string(), "kind" => "output")
            .increment(reply.output_tokens);
    }

    /// A provider other than the first answered. When it is the chain's last link (the
    /// rules responder) every model failed: that is critical, since leads are now getting
    /// canned replies.
    fn record_fallback(&self, lead: &LeadId, name: &str, last_resort: bool, failures: &[String]) {
        let inner = &self.inner;
        inner.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("lead_agent_llm_fallbacks_total").increment(1);
        let (severity, text) = if last_resort {
            (
                Severity::Critical,
                format!(
                    "Every model failed for {lead}; the last resort `{name}` answered. Failures: {}",
                    failures.join("; ")
                ),
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "Reply for {lead} came from `{name}` after: {}",
                    failures.join("; ")
                ),
            )
        };
        inner
            .alerts
            .raise(Alert::new(AlertKind::Error, severity, "model_fallback", text).for_lead(lead));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;
    use crate::testing::{FakeModel, RecordingAlertSink, test_alerts};

    fn prompt() -> Prompt {
        Prompt {
            lead: LeadId::new("+13125550100"),
            lines: vec![],
            new_messages: 0,
            now: chrono::Utc::now(),
        }
    }

    fn config(concurrency: usize) -> LlmPoolConfig {
        LlmPoolConfig {
            concurrency,
            soft_timeout: Duration::from_secs(5),
            hard_timeout: Duration::from_secs(12),
        }
    }

    #[tokio::test]
    async fn concurrent_calls_never_exceed_the_cap() {
        let (alerts, _sink) = test_alerts().await;
        let model = Arc::new(FakeModel::answering("hi").with_latency(Duration::from_millis(20)));
        let pool = LlmPool::new(vec![model.clone()], config(3), alerts);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move { pool.complete(&prompt()).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(model.max_concurrent(), 3);
        assert_eq!(pool.stats().max_in_flight.load(Ordering::SeqCst), 3);
        assert_eq!(pool.stats().in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_provider_is_cancelled_at_the_soft_budget_and_the_next_one_answers() {
        let (alerts, sink) = test_alerts().await;
        let hanging = Arc::new(FakeModel::hanging());
        let rules = Arc::new(FakeModel::answering("holding reply"));
        let pool = LlmPool::new(vec![hanging.clone(), rules], config(1), alerts);
        let started = Instant::now();
        let reply = pool.complete(&prompt()).await.unwrap();
        assert_eq!(reply.text, "holding reply");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(hanging.in_flight(), 0, "the hung call was dropped");
        assert_eq!(pool.stats().fallbacks.load(Ordering::SeqCst), 1);
        wait_for_alert(&sink, "model_fallback").await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_hard_budget_bounds_the_whole_chain() {
        let (alerts, _sink) = test_alerts().await;
        let chain: Vec<Arc<dyn ChatModel>> = vec![
            Arc::new(FakeModel::hanging()),
            Arc::new(FakeModel::hanging()),
            Arc::new(FakeModel::hanging()),
        ];
        let pool = LlmPool::new(chain, config(1), alerts);
        let started = Instant::now();
        let err = pool.complete(&prompt()).await.unwrap_err();
        assert!(matches!(err, PoolError::HardTimeout(_)), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(12));
        // The permit was released: another call can proceed.
        assert_eq!(pool.inner.permits.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_rejected_request_falls_through_to_the_next_provider_and_all_failing_alerts() {
        let (alerts, sink) = test_alerts().await;
        let bad = Arc::new(FakeModel::failing(ModelError::Rejected {
            status: 400,
            message: "bad".into(),
        }));
        let pool = LlmPool::new(vec![bad.clone(), bad.clone()], config(1), alerts);
        assert!(matches!(
            pool.complete(&prompt()).await,
            Err(PoolError::AllFailed(_))
        ));
        assert_eq!(bad.calls(), 2, "each provider asked once, none retried");
        wait_for_alert(&sink, "model_chain_failed").await;
    }

    fn policy(threshold: u32) -> ChainPolicy {
        ChainPolicy {
            retry_after_cap: Duration::from_secs(3),
            breaker: BreakerConfig {
                failure_threshold: threshold,
                open_for: Duration::from_secs(30),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_retry_after_is_waited_out_and_the_same_provider_asked_once_more() {
        let (alerts, _sink) = test_alerts().await;
        let limited = Arc::new(FakeModel::scripted(
            vec![Err(ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            })],
            "after the wait",
        ));
        let rules = Arc::new(FakeModel::answering("rules"));
        let pool = LlmPool::with_policy(
            vec![limited.clone(), rules.clone()],
            config(1),
            policy(5),
            alerts,
            Arc::new(SystemClock),
        );
        let started = Instant::now();
        let reply = pool.complete(&prompt()).await.unwrap();
        assert_eq!(reply.text, "after the wait");
        assert_eq!(limited.calls(), 2);
        assert_eq!(rules.calls(), 0);
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "the retry-after was honoured"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_past_the_cap_fails_over_and_holds_the_provider_until_then() {
        let (alerts, _sink) = test_alerts().await;
        let clock = ManualClock::new(chrono::Utc::now());
        let limited = Arc::new(FakeModel::scripted(
            vec![Err(ModelError::RateLimited {
                retry_after: Some(Duration::from_secs(60)),
            })],
            "back",
        ));
        let rules = Arc::new(FakeModel::answering("rules"));
        let pool = LlmPool::with_policy(
            vec![limited.clone(), rules.clone()],
            config(1),
            policy(5),
            alerts,
            Arc::new(clock.clone()),
        );
        let started = Instant::now();
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        assert_eq!(started.elapsed(), Duration::ZERO, "no waiting past the cap");
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        assert_eq!(limited.calls(), 1, "held off until the time it named");
        clock.advance(Duration::from_secs(60));
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "back");
    }

    #[tokio::test]
    async fn the_breaker_opens_after_repeated_failures_and_a_successful_probe_closes_it() {
        let (alerts, sink) = test_alerts().await;
        let clock = ManualClock::new(chrono::Utc::now());
        let flaky = Arc::new(FakeModel::scripted(
            vec![
                Err(ModelError::Overloaded),
                Err(ModelError::Server { status: 500 }),
                Err(ModelError::Overloaded),
            ],
            "recovered",
        ));
        let rules = Arc::new(FakeModel::answering("rules"));
        let pool = LlmPool::with_policy(
            vec![flaky.clone(), rules.clone()],
            config(1),
            policy(3),
            alerts,
            Arc::new(clock.clone()),
        );
        for _ in 0..3 {
            assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        }
        assert_eq!(pool.breaker_states()[0].1, BreakerState::Open);
        for _ in 0..4 {
            assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        }
        assert_eq!(
            flaky.calls(),
            3,
            "no call reaches a provider whose breaker is open"
        );
        assert_eq!(pool.stats().refused_by_breaker.load(Ordering::SeqCst), 4);
        wait_for_alert(&sink, "provider_circuit_open").await;

        clock.advance(Duration::from_secs(30));
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "recovered");
        assert_eq!(pool.breaker_states()[0].1, BreakerState::Closed);
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "recovered");
        assert_eq!(flaky.calls(), 5);
    }

    #[tokio::test]
    async fn a_bad_request_is_not_retried_and_does_not_open_the_breaker() {
        let (alerts, _sink) = test_alerts().await;
        let strict = Arc::new(FakeModel::failing(ModelError::Rejected {
            status: 400,
            message: "bad".into(),
        }));
        let rules = Arc::new(FakeModel::answering("rules"));
        let pool = LlmPool::with_policy(
            vec![strict.clone(), rules],
            config(1),
            policy(2),
            alerts,
            Arc::new(SystemClock),
        );
        for _ in 0..5 {
            assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        }
        assert_eq!(strict.calls(), 5, "asked once per call, never twice");
        assert_eq!(pool.breaker_states()[0].1, BreakerState::Closed);
    }

    #[tokio::test]
    async fn when_the_last_resort_answers_the_fallback_alert_is_critical() {
        let (alerts, sink) = test_alerts().await;
        let down = Arc::new(FakeModel::failing(ModelError::Overloaded));
        let rules = Arc::new(FakeModel::answering("rules"));
        let pool = LlmPool::new(vec![down.clone(), down, rules], config(1), alerts);
        assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
        wait_for_alert(&sink, "model_fallback").await;
        let alert = sink
            .alerts()
            .into_iter()
            .find(|a| a.event == "model_fallback")
            .unwrap();
        assert_eq!(alert.severity, Severity::Critical);
        assert!(alert.text.contains("Every model failed"), "{}", alert.text);
    }

    async fn wait_for_alert(sink: &RecordingAlertSink, event: &str) {
        crate::testing::wait_for(|| sink.alerts().iter().any(|a| a.event == event)).await;
    }
}
