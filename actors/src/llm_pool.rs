//! LlmPool: the per-process cap on concurrent model calls and the provider chain behind it.
//!
//! Owns: the concurrency cap (`LLM_CONCURRENCY`), the soft budget per provider call (on
//! expiry the call is cancelled and the next provider asked), the hard budget for the whole
//! chain (on expiry the turn is abandoned and handed back), and the counters an operator
//! watches (in flight, the most ever in flight, fallbacks).
//! Must not: hold a permit while not calling a model, or let one stuck call hold a worker
//! past the hard budget. It is a cloneable handle, not an actor: an actor's mailbox would
//! serialise the calls the cap exists to run side by side; a semaphore is what a cap is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::ports::{ChatModel, Completion, ModelError, Prompt};

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

/// Counters read by /ops, metrics and tests.
#[derive(Debug, Default)]
pub struct PoolStats {
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub calls: AtomicU64,
    pub fallbacks: AtomicU64,
    pub hard_timeouts: AtomicU64,
}

#[derive(Clone)]
pub struct LlmPool {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Semaphore,
    chain: Vec<Arc<dyn ChatModel>>,
    config: LlmPoolConfig,
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
        Self(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LlmPool {
    /// `chain` is tried in order; its last link should be a responder that cannot fail
    /// (the rules responder) so that a lead never meets silence.
    pub fn new(chain: Vec<Arc<dyn ChatModel>>, config: LlmPoolConfig, alerts: AlertHandle) -> Self {
        assert!(
            !chain.is_empty(),
            "the provider chain needs at least one model"
        );
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.concurrency.max(1)),
                chain,
                config,
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
            .map(|m| m.name().to_string())
            .collect()
    }

    /// Asks the chain for a reply. Waiting for a permit does not count against the budgets:
    /// they bound the time a call holds capacity, not the time spent queueing for it.
    pub async fn complete(&self, prompt: &Prompt) -> Result<Completion, PoolError> {
        let inner = &self.inner;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|_| PoolError::AllFailed("pool closed".into()))?;
        let _gauge = InFlight::enter(&inner.stats);
        inner.stats.calls.fetch_add(1, Ordering::Relaxed);
        let hard = inner.config.hard_timeout;
        match timeout(hard, self.run_chain(prompt, Instant::now() + hard)).await {
            Ok(result) => result,
            Err(_) => {
                inner.stats.hard_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(PoolError::HardTimeout(hard))
            }
        }
    }

    async fn run_chain(&self, prompt: &Prompt, deadline: Instant) -> Result<Completion, PoolError> {
        let inner = &self.inner;
        let mut failures: Vec<String> = Vec::new();
        for (i, model) in inner.chain.iter().enumerate() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let clamped = remaining < inner.config.soft_timeout;
            let outcome = match timeout(
                remaining.min(inner.config.soft_timeout),
                model.complete(prompt),
            )
            .await
            {
                Ok(r) => r,
                // Cut by the chain's deadline rather than its own soft budget: the hard
                // budget is spent.
                Err(_) if clamped => return Err(PoolError::HardTimeout(inner.config.hard_timeout)),
                Err(_) => Err(ModelError::Timeout),
            };
            match outcome {
                Ok(completion) => {
                    if i > 0 {
                        inner.stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                        inner.alerts.raise(
                            Alert::new(
                                AlertKind::Error,
                                Severity::Warning,
                                "model_fallback",
                                format!(
                                    "Reply for {} came from `{}` after: {}",
                                    prompt.lead,
                                    model.name(),
                                    failures.join("; ")
                                ),
                            )
                            .for_lead(&prompt.lead),
                        );
                    }
                    return Ok(completion);
                }
                Err(e) => {
                    tracing::warn!(provider = model.name(), error = %e, lead = %prompt.lead, "model call failed");
                    failures.push(format!("{}: {e}", model.name()));
                }
            }
        }
        let all = failures.join("; ");
        inner.alerts.raise(
            Alert::error(
                "model_chain_failed",
                format!("No model answered {}: {all}", prompt.lead),
            )
            .for_lead(&prompt.lead),
        );
        Err(PoolError::AllFailed(all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::LeadId;
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

    async fn wait_for_alert(sink: &RecordingAlertSink, event: &str) {
        crate::testing::wait_for(|| sink.alerts().iter().any(|a| a.event == event)).await;
    }
}
