//! OpenAI in the model chain (`OPENAI_API_KEY`, `LLM_PROVIDERS`) against the fake Chat
//! Completions server: an openai-only chain answers from it with Bearer auth and the
//! documented body; with `LLM_PROVIDERS=openai,anthropic` it answers first, and a quota
//! error (not retryable) fails over to Anthropic at once, without a second OpenAI call.

use serde_json::json;

use crate::helpers::{TestApp, TestOptions, spawn_app_with};
use crate::llm_fakes::*;

const LEAD: &str = "+13125550161";

async fn app_with(
    order: &str,
    openai: &FakeProvider,
    extra: Vec<(&'static str, String)>,
) -> TestApp {
    let mut env = vec![
        ("LLM_PROVIDERS", order.to_string()),
        ("OPENAI_API_KEY", "sk-test-openai".to_string()),
        ("OPENAI_API_BASE", openai.url.clone()),
    ];
    env.extend(extra);
    spawn_app_with(TestOptions {
        env,
        ..TestOptions::default()
    })
    .await
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

#[tokio::test]
async fn an_openai_only_chain_answers_from_openai_with_bearer_auth() {
    let openai = FakeProvider::openai().await;
    let app = app_with("openai", &openai, vec![]).await;
    app.post_sms(LEAD, "Any 2 bedrooms?").await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["OpenAI: Any 2 bedrooms?"]);
    assert_eq!(provider_of_last_reply(&app, LEAD).await, "openai");
    assert!(
        app.llm.requests().is_empty(),
        "Anthropic is keyed but not in LLM_PROVIDERS: never asked"
    );
    let seen = &openai.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.headers["authorization"], "Bearer sk-test-openai");
    assert_eq!(seen.body["model"], "gpt-4o-mini");
    assert_eq!(seen.body["messages"][0]["role"], "system");
    assert_eq!(
        seen.body["messages"][1],
        json!({"role": "user", "content": "Any 2 bedrooms?"})
    );
    app.stop().await;
}

#[tokio::test]
async fn llm_providers_puts_openai_first_and_a_quota_error_fails_over_without_a_retry() {
    let openai = FakeProvider::openai().await;
    let anthropic = FakeProvider::anthropic().await;
    let app = app_with(
        "openai,anthropic",
        &openai,
        vec![
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("ANTHROPIC_MODEL", "claude-test".to_string()),
        ],
    )
    .await;
    app.post_sms(LEAD, "Hello there").await;
    assert_eq!(app.wait_for_sms(LEAD, 1).await, vec!["OpenAI: Hello there"]);
    assert_eq!(anthropic.count(), 0, "OpenAI answered first");

    openai.always(Some(openai_error(
        429,
        "insufficient_quota",
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    )));
    app.post_sms(LEAD, "Is it still available?").await;
    let sent = app.wait_for_sms(LEAD, 2).await;
    assert!(sent[1].starts_with("Anthropic: "), "{sent:?}");
    assert_eq!(provider_of_last_reply(&app, LEAD).await, "anthropic");
    assert_eq!(
        openai.count(),
        2,
        "an exhausted quota is not retried: one call per turn"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_brain_runs_its_tool_loop_on_openai() {
    let openai = FakeProvider::openai().await;
    openai.script(vec![
        Canned::ok(openai_tool_call(
            "call_tour1",
            "schedule_tour",
            json!({"building": "lakeview-lofts", "when": "2026-12-05T11:00"}),
        )),
        Canned::ok(openai_text("Tour requested at Lakeview Lofts Sat 11am.")),
    ]);
    let app = app_with(
        "openai",
        &openai,
        vec![("USE_AGENT_CORE", "true".to_string())],
    )
    .await;
    app.post_sms(LEAD, "Can I see Lakeview Saturday at 11?")
        .await;
    assert_eq!(
        app.wait_for_sms(LEAD, 1).await,
        vec!["Tour requested at Lakeview Lofts Sat 11am."]
    );
    let seen = openai.requests();
    assert_eq!(seen.len(), 2);
    let tools = seen[0].body["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["function"]["name"] == "schedule_tour")
    );
    assert_eq!(seen[0].body["tool_choice"], "auto");
    let messages = seen[1].body["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(messages[n - 2]["tool_calls"][0]["id"], "call_tour1");
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], "call_tour1");
    assert!(
        messages[n - 1]["content"]
            .as_str()
            .unwrap()
            .contains("requested"),
        "{}",
        messages[n - 1]
    );
    app.stop().await;
}
