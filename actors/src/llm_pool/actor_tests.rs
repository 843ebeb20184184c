//! The pool as an actor: the cap it grants under many concurrent calls, the breakers it owns
//! sending calls down the chain, and its life under the root supervisor — a crash is a
//! restart the next call does not notice, callers queued in the dead incarnation are served
//! by the next one within the same cap, and a pool stopped for good answers from the last
//! resort at once. Breakers read a `ManualClock`; model calls wait on a gate the test opens.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Semaphore;

use super::*;
use crate::alert_router::{AlertHandle, Severity};
use crate::breaker::{BreakerConfig, BreakerState};
use crate::ports::{LeadId, ManualClock, ModelError};
use crate::root::{GiveUpHook, RootConfig, RootHandle, RootSupervisor};
use crate::testing::{FakeModel, RecordingAlertSink, test_alerts, wait_for};

/// A model whose calls wait until the test opens the gate, one call per opening, and that
/// counts how many of its calls ran at once.
struct GatedModel {
    gate: Semaphore,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_concurrent: AtomicUsize,
}

impl Default for GatedModel {
    fn default() -> Self {
        Self {
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
        }
    }
}

impl GatedModel {
    fn open(&self, calls: usize) {
        self.gate.add_permits(calls);
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    fn max_concurrent(&self) -> usize {
        self.max_concurrent.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChatModel for GatedModel {
    fn name(&self) -> &str {
        "gated"
    }

    async fn complete(&self, _prompt: &Prompt) -> Result<Completion, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        let passed = self.gate.acquire().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        passed.expect("the gate is never closed").forget();
        Ok(Completion {
            text: "through the gate".into(),
            provider: "gated".into(),
            input_tokens: 1,
            output_tokens: 1,
        })
    }
}

fn prompt() -> Prompt {
    Prompt {
        lead: LeadId::new("+13125550123"),
        lines: vec![],
        new_messages: 0,
        now: chrono::Utc::now(),
    }
}

/// Budgets no test reaches: the gate, not a timeout, decides when a call ends.
fn config(concurrency: usize) -> LlmPoolConfig {
    LlmPoolConfig {
        concurrency,
        soft_timeout: Duration::from_secs(60),
        hard_timeout: Duration::from_secs(120),
    }
}

fn policy(failures: u32) -> ChainPolicy {
    ChainPolicy {
        retry_after_cap: Duration::from_secs(3),
        breaker: BreakerConfig {
            failure_threshold: failures,
            open_for: Duration::from_secs(30),
        },
    }
}

fn spawn_calls(pool: &LlmPool, n: usize) -> Vec<tokio::task::JoinHandle<String>> {
    (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.complete(&prompt()).await.unwrap().text })
        })
        .collect()
}

async fn all_answered(calls: Vec<tokio::task::JoinHandle<String>>) -> Vec<String> {
    let mut texts = Vec::new();
    for call in calls {
        texts.push(call.await.expect("the call did not panic"));
    }
    texts
}

async fn wait_for_alert(sink: &RecordingAlertSink, event: &str, containing: &str) {
    wait_for(|| {
        sink.alerts()
            .iter()
            .any(|a| a.event == event && a.text.contains(containing))
    })
    .await;
}

#[tokio::test]
async fn the_cap_holds_under_many_concurrent_calls_and_each_is_granted_in_turn() {
    let (alerts, _sink) = test_alerts().await;
    let gated = Arc::new(GatedModel::default());
    let pool = LlmPool::new(vec![gated.clone()], config(3), alerts);
    let calls = spawn_calls(&pool, 12);

    wait_for(|| gated.in_flight() == 3).await;
    assert_eq!(pool.stats().in_flight.load(Ordering::SeqCst), 3);
    // Each call that ends lets exactly one waiter in: the count of calls that reached the
    // model moves one step at a time, and never more than three run.
    for reached in 4..=12 {
        gated.open(1);
        wait_for(|| gated.calls() == reached).await;
        assert!(
            gated.in_flight() <= 3,
            "{} calls at once",
            gated.in_flight()
        );
    }
    gated.open(3);
    let texts = all_answered(calls).await;

    assert_eq!(texts.len(), 12);
    assert!(texts.iter().all(|t| t == "through the gate"));
    assert_eq!(gated.max_concurrent(), 3);
    assert_eq!(pool.stats().max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(pool.stats().calls.load(Ordering::SeqCst), 12);
    wait_for(|| pool.available_permits() == 3).await;
}

#[tokio::test]
async fn a_breaker_that_opens_sends_calls_to_the_next_provider_until_its_probe() {
    let (alerts, sink) = test_alerts().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let down = Arc::new(FakeModel::failing(ModelError::Overloaded));
    let next = Arc::new(FakeModel::answering("from the next provider"));
    let pool = LlmPool::with_policy(
        vec![down.clone(), next.clone()],
        config(2),
        policy(2),
        alerts,
        Arc::new(clock.clone()),
    );

    for _ in 0..2 {
        let reply = pool.complete(&prompt()).await.unwrap();
        assert_eq!(reply.text, "from the next provider");
    }
    assert_eq!(down.calls(), 2);
    assert_eq!(pool.breaker_states()[0].1, BreakerState::Open);
    wait_for_alert(&sink, "provider_circuit_open", "keeps failing").await;

    let reply = pool.complete(&prompt()).await.unwrap();
    assert_eq!(reply.text, "from the next provider");
    assert_eq!(
        down.calls(),
        2,
        "an open breaker keeps the call from the provider"
    );
    assert_eq!(next.calls(), 3);
    assert_eq!(pool.stats().refused_by_breaker.load(Ordering::SeqCst), 1);

    clock.advance(Duration::from_secs(30));
    assert_eq!(pool.breaker_states()[0].1, BreakerState::HalfOpen);
    pool.complete(&prompt()).await.unwrap();
    assert_eq!(down.calls(), 3, "after the open period one probe goes out");
    assert_eq!(
        pool.breaker_states()[0].1,
        BreakerState::Open,
        "the failed probe opened it again"
    );
}

struct Tree {
    root: RootHandle,
    pool: LlmPool,
    sink: Arc<RecordingAlertSink>,
}

async fn pool_under_a_root(chain: Vec<Arc<dyn ChatModel>>, concurrency: usize) -> Tree {
    let (alerts, sink) = test_alerts().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let hook: GiveUpHook = Arc::new(|why| panic!("the root gave up: {why}"));
    let root = RootSupervisor::start(
        RootConfig::new(5, Duration::from_secs(60)),
        AlertHandle::clone(&alerts),
        clock.clone(),
        hook,
    )
    .await
    .unwrap();
    let (child, pool) = LlmPoolChild::new(chain, config(concurrency), policy(5), alerts, clock);
    root.add(Arc::new(child)).await.unwrap();
    Tree { root, pool, sink }
}

/// Kills the running incarnation as a crash would and waits for the root's restart.
async fn crash_and_wait_for_restart(root: &RootHandle) {
    let dead = root.child(LlmPoolChild::NAME).expect("the pool runs");
    dead.kill();
    wait_for(|| {
        root.child(LlmPoolChild::NAME)
            .is_some_and(|c| c.get_id() != dead.get_id())
    })
    .await;
}

#[tokio::test]
async fn a_crashed_pool_actor_is_restarted_and_alerted_and_the_next_call_succeeds() {
    let model = Arc::new(FakeModel::answering("hello"));
    let tree = pool_under_a_root(vec![model.clone()], 2).await;
    assert_eq!(tree.pool.complete(&prompt()).await.unwrap().text, "hello");

    crash_and_wait_for_restart(&tree.root).await;

    let status = tree.root.status();
    let pool = status.iter().find(|c| c.name == "llm_pool").unwrap();
    assert!(pool.up);
    assert_eq!(pool.restarts, 1);
    wait_for_alert(&tree.sink, "root_child_restarted", "llm_pool").await;
    assert_eq!(tree.pool.complete(&prompt()).await.unwrap().text, "hello");
    assert_eq!(model.calls(), 2, "the model was asked, not a fallback");
}

#[tokio::test]
async fn callers_queued_in_a_crashed_pool_are_served_by_the_next_one_within_the_cap() {
    let gated = Arc::new(GatedModel::default());
    let rules = Arc::new(FakeModel::answering("rules"));
    let tree = pool_under_a_root(vec![gated.clone(), rules.clone()], 1).await;
    let calls = spawn_calls(&tree.pool, 3);
    // One call holds the permit at the model; two wait in the actor's queue.
    wait_for(|| gated.in_flight() == 1).await;

    crash_and_wait_for_restart(&tree.root).await;

    // The permit granted by the dead incarnation still counts: the queued callers, now in
    // the new one's queue, get theirs one at a time as the calls end.
    for reached in 2..=3 {
        gated.open(1);
        wait_for(|| gated.calls() == reached).await;
        assert_eq!(gated.in_flight(), 1);
    }
    gated.open(1);
    let texts = all_answered(calls).await;
    assert!(texts.iter().all(|t| t == "through the gate"), "{texts:?}");
    assert_eq!(rules.calls(), 0, "nobody fell back");
    assert_eq!(gated.max_concurrent(), 1);
    assert_eq!(tree.pool.stats().max_in_flight.load(Ordering::SeqCst), 1);
    wait_for(|| tree.pool.available_permits() == 1).await;
}

#[tokio::test]
async fn a_pool_stopped_for_good_answers_from_the_last_resort_at_once() {
    let model = Arc::new(FakeModel::answering("model"));
    let rules = Arc::new(FakeModel::answering("rules"));
    let tree = pool_under_a_root(vec![model.clone(), rules.clone()], 2).await;
    tree.root.stop_child(LlmPoolChild::NAME).await;

    let started = tokio::time::Instant::now();
    assert_eq!(tree.pool.complete(&prompt()).await.unwrap().text, "rules");
    assert!(started.elapsed() < Duration::from_secs(5), "no wait");
    assert_eq!(model.calls(), 0);
    wait_for_alert(&tree.sink, "model_fallback", "No model was asked").await;
    let alert = tree
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "model_fallback")
        .unwrap();
    assert_eq!(alert.severity, Severity::Critical);
    assert_eq!(tree.pool.stats().fallbacks.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pool_whose_actor_does_not_come_back_answers_from_the_last_resort_after_a_soft_budget() {
    let (alerts, _sink) = test_alerts().await;
    let model = Arc::new(FakeModel::answering("model"));
    let rules = Arc::new(FakeModel::answering("rules"));
    let pool = LlmPool::new(
        vec![model.clone(), rules.clone()],
        LlmPoolConfig {
            concurrency: 1,
            soft_timeout: Duration::from_secs(5),
            hard_timeout: Duration::from_secs(12),
        },
        alerts,
    );
    // As between a death and a restart that does not come: no incarnation to ask.
    pool.shared.route.detach();

    let started = tokio::time::Instant::now();
    assert_eq!(pool.complete(&prompt()).await.unwrap().text, "rules");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(model.calls(), 0);
}
