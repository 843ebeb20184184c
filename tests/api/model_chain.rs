//! The model chain against fake Anthropic and Gemini servers speaking the documented
//! shapes: failover by error class, no retry of a rejected request, retry-after honoured,
//! the per-provider circuit breaker, and the rules responder as the last resort.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{TestApp, TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;

const LEAD: &str = "+13125550150";

struct Chain {
    app: TestApp,
    anthropic: FakeProvider,
    gemini: FakeProvider,
}

async fn chain(extra: Vec<(&'static str, String)>) -> Chain {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    let mut env = vec![
        ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
        ("ANTHROPIC_MODEL", "claude-test".to_string()),
        ("GOOGLE_API_KEY", "test-google-key".to_string()),
        ("GEMINI_API_BASE", gemini.url.clone()),
    ];
    env.extend(extra);
    let app = spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await;
    Chain {
        app,
        anthropic,
        gemini,
    }
}

fn overloaded() -> Canned {
    anthropic_error(529, "overloaded_error", "Overloaded")
}

async fn provider_of_last_reply(app: &TestApp, lead: &str) -> String {
    app.conversation(lead)
        .await
        .iter()
        .rev()
        .find(|m| m.direction == "outbound")
        .and_then(|m| m.provider.clone())
        .unwrap_or_default()
}

async fn alert(app: &TestApp, event: &str) -> Value {
    wait_until(10, event, || async {
        app.alert_events().await.iter().any(|e| e == event)
    })
    .await;
    app.alerts()
        .await
        .into_iter()
        .find(|a| a["event"] == event)
        .unwrap()
}

#[tokio::test]
async fn anthropic_overloaded_fails_over_to_gemini() {
    let c = chain(vec![]).await;
    c.anthropic.always(Some(overloaded()));
    c.app.post_sms(LEAD, "Any 2 bedrooms?").await;
    let sent = c.app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Gemini: Any 2 bedrooms?"]);
    assert_eq!(provider_of_last_reply(&c.app, LEAD).await, "gemini");
    assert_eq!(
        c.anthropic.count(),
        1,
        "a 529 fails over, it is not hammered"
    );

    // Gemini got the documented request: key header, model in the path, the message.
    let g = &c.gemini.requests()[0];
    assert_eq!(g.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(g.headers["x-goog-api-key"], "test-google-key");
    assert_eq!(g.body["contents"][0]["role"], "user");
    assert_eq!(g.body["contents"][0]["parts"][0]["text"], "Any 2 bedrooms?");
    assert!(g.body["systemInstruction"]["parts"][0]["text"].is_string());
    let fallback = alert(&c.app, "model_fallback").await;
    assert_eq!(fallback["severity"], "warning");
}

#[tokio::test]
async fn with_both_providers_down_the_rules_responder_answers_and_an_alert_is_raised() {
    let c = chain(vec![]).await;
    c.anthropic.always(Some(overloaded()));
    c.gemini.always(Some(gemini_error(
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later.",
        None,
    )));
    c.app.post_sms(LEAD, "Hi, is anything available?").await;
    let sent = c.app.wait_for_sms(LEAD, 1).await;
    assert!(!sent[0].is_empty());
    assert_eq!(provider_of_last_reply(&c.app, LEAD).await, "rules");
    let fallback = alert(&c.app, "model_fallback").await;
    assert_eq!(fallback["severity"], "critical");
    let text = fallback["text"].as_str().unwrap();
    assert!(
        text.contains("Every model failed") && text.contains("rules"),
        "{text}"
    );
    assert!(
        text.contains("anthropic: provider overloaded") && text.contains("gemini"),
        "{text}"
    );
}

#[tokio::test]
async fn a_rejected_request_is_never_sent_again() {
    let c = chain(vec![]).await;
    c.anthropic.always(Some(anthropic_error(
        400,
        "invalid_request_error",
        "messages: roles must alternate",
    )));
    for (i, body) in ["first", "second"].iter().enumerate() {
        c.app.post_sms(LEAD, body).await;
        c.app.wait_for_sms(LEAD, i + 1).await;
    }
    assert_eq!(
        c.anthropic.count(),
        2,
        "one request per turn: a 400 is not retried"
    );
    assert_eq!(c.gemini.count(), 2, "the next provider answers instead");
    let status = c.app.get_json("/ops/status").await;
    assert_eq!(
        status["worker"]["llm"]["breakers"]["anthropic"], "closed",
        "a bad request says nothing about the provider's health: {status}"
    );
}

#[tokio::test]
async fn a_429_retry_after_is_waited_out_before_the_provider_is_asked_again() {
    let c = chain(vec![]).await;
    c.anthropic.script(vec![
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        )
        .with_header("retry-after", "1"),
    ]);
    c.app.post_sms(LEAD, "hello").await;
    let sent = c.app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Anthropic: hello"]);
    let seen = c.anthropic.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1),
        "the second request came before the retry-after"
    );
    assert_eq!(c.gemini.count(), 0);
}

#[tokio::test]
async fn gemini_retry_info_delay_is_honoured_too() {
    let c = chain(vec![]).await;
    c.anthropic.always(Some(anthropic_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )));
    c.gemini.script(vec![gemini_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        Some("1s"),
    )]);
    c.app.post_sms(LEAD, "hello").await;
    let sent = c.app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Gemini: hello"]);
    let seen = c.gemini.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_failing_provider_s_breaker_opens_then_a_successful_probe_closes_it() {
    let c = chain(vec![
        ("LLM_BREAKER_FAILURES", "2".to_string()),
        ("LLM_BREAKER_OPEN_SECS", "4".to_string()),
    ])
    .await;
    let breaker = |app: &TestApp| {
        let app_url = app.ops_url.clone();
        async move {
            let status: Value = reqwest::get(format!("{app_url}/ops/status"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            status["worker"]["llm"]["breakers"]["anthropic"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    c.anthropic.always(Some(overloaded()));
    for (i, body) in ["one", "two"].iter().enumerate() {
        c.app.post_sms(LEAD, body).await;
        c.app.wait_for_sms(LEAD, i + 1).await;
    }
    assert_eq!(c.anthropic.count(), 2);
    assert_eq!(breaker(&c.app).await, "open");
    alert(&c.app, "provider_circuit_open").await;

    // While open, Anthropic is not called at all (it is healthy again, but nobody asks).
    c.anthropic.always(None);
    c.app.post_sms(LEAD, "three").await;
    let sent = c.app.wait_for_sms(LEAD, 3).await;
    assert_eq!(sent[2], "Gemini: three");
    assert_eq!(
        c.anthropic.count(),
        2,
        "no request reaches a provider whose breaker is open"
    );

    // After the open period the next call is the probe; it succeeds and closes the breaker.
    wait_until(15, "the breaker to allow a probe", || async {
        breaker(&c.app).await == "half_open"
    })
    .await;
    c.app.post_sms(LEAD, "four").await;
    let sent = c.app.wait_for_sms(LEAD, 4).await;
    assert_eq!(sent[3], "Anthropic: four");
    assert_eq!(breaker(&c.app).await, "closed");
}
