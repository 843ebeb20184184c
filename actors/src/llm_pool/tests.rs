//! The chain's policy through the pool's public API: the cap, the budgets, failover, the
//! retry-after rules, the breakers and the fallback alerts (moved from `llm_pool.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::alert_router::Severity;
use crate::breaker::{BreakerConfig, BreakerState};
use crate::ports::{LeadId, ManualClock, ModelError};
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
    assert_eq!(pool.available_permits(), 1);
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
