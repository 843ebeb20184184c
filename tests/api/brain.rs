//! The brain end to end (`USE_AGENT_CORE`): the fake model asks for a tool, the app runs it
//! (lead context in the store, the matching alert), sends the result back in the provider's
//! documented shape, and texts the model's final answer; shadow mode sends the plain reply.

use actors::brain::context::LeadContextStore;
use actors::ports::LeadId;
use serde_json::json;

use crate::helpers::{TestApp, TestOptions, spawn_app_with, wait_until};
use crate::llm_fakes::*;

const LEAD: &str = "+13125550177";

async fn app_with(mode: &str, anthropic: &FakeProvider, gemini: &FakeProvider) -> TestApp {
    spawn_app_with(TestOptions {
        env: vec![
            ("USE_AGENT_CORE", mode.to_string()),
            ("ANTHROPIC_BASE_URL", anthropic.url.clone()),
            ("ANTHROPIC_MODEL", "claude-test".to_string()),
            ("GOOGLE_API_KEY", "test-google-key".to_string()),
            ("GEMINI_API_BASE", gemini.url.clone()),
        ],
        ..TestOptions::default()
    })
    .await
}

async fn wait_alert(app: &TestApp, event: &str) -> serde_json::Value {
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
async fn a_tour_the_model_schedules_updates_the_lead_and_posts_the_tour_request_alert() {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    anthropic.script(vec![
        Canned::ok(anthropic_tool_use(
            "toolu_01A",
            "schedule_tour",
            json!({"building": "lakeview-lofts", "when": "2026-12-05T11:00"}),
        )),
        Canned::ok(anthropic_text(
            "You\u{2019}re all set \u{2014} tour requested at Lakeview Lofts Sat 11am; the team will confirm.",
        )),
    ]);
    let app = app_with("true", &anthropic, &gemini).await;
    app.post_sms(LEAD, "Can I see Lakeview Saturday at 11?")
        .await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(
        sent,
        vec!["You're all set - tour requested at Lakeview Lofts Sat 11am; the team will confirm."],
        "the final text, folded to GSM characters"
    );

    let ctx = app.store.load_context(&LeadId::new(LEAD)).await.unwrap();
    let tour = ctx.tour.expect("the tour is in the lead's context");
    assert_eq!(tour.building, "lakeview-lofts");
    assert_eq!(tour.when, "2026-12-05T11:00");

    let alert = wait_alert(&app, "tour_request").await;
    assert_eq!(alert["kind"], "tour_request");
    assert_eq!(alert["lead"], LEAD);
    assert!(alert["text"].as_str().unwrap().contains("Lakeview Lofts"));

    // Request shapes: the first declares the tools, the second carries the tool_use and
    // its tool_result.
    let seen = anthropic.requests();
    assert_eq!(seen.len(), 2);
    let first = &seen[0].body;
    assert_eq!(seen[0].headers["x-api-key"], "test-anthropic-key");
    assert_eq!(seen[0].headers["anthropic-version"], "2023-06-01");
    assert_eq!(first["model"], "claude-test");
    assert!(first["system"].as_str().unwrap().contains("Lakeview Lofts"));
    assert!(
        first["system"]
            .as_str()
            .unwrap()
            .contains(actors::fair_housing::PROMPT_RULE),
        "the brain's prompt carries the fair-housing rule"
    );
    let tools = first["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec![
            "record_requirements",
            "schedule_tour",
            "mark_dead_lead",
            "escalate_to_human",
            "suggest_crm_stage",
            "mark_hot_lead",
            "record_opt_out"
        ]
    );
    assert!(
        tools
            .iter()
            .all(|t| t["input_schema"]["type"] == "object" && t["description"].is_string())
    );
    assert_eq!(first["tool_choice"]["type"], "auto");
    assert_eq!(first["messages"][0]["role"], "user");
    assert_eq!(first["messages"][0]["content"][0]["type"], "text");

    let second = &seen[1].body;
    let messages = second["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    let tool_use = messages[n - 2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap();
    assert_eq!(tool_use["id"], "toolu_01A");
    assert_eq!(tool_use["input"]["building"], "lakeview-lofts");
    assert_eq!(messages[n - 1]["role"], "user");
    let result = &messages[n - 1]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(result["tool_use_id"], "toolu_01A");
    assert_eq!(result["is_error"], false);
    assert!(result["content"].as_str().unwrap().contains("requested"));
}

#[tokio::test]
async fn gemini_function_calls_round_trip_with_function_responses() {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    anthropic.always(Some(anthropic_error(529, "overloaded_error", "Overloaded")));
    gemini.script(vec![
        Canned::ok(gemini_function_call(
            "record_requirements",
            json!({"bedrooms": 2, "budget": 1700, "pets": "a cat"}),
            "c2lnbmF0dXJl",
        )),
        Canned::ok(gemini_text(
            "Got it: 2BR under $1,700 with a cat. When do you move?",
        )),
    ]);
    let app = app_with("true", &anthropic, &gemini).await;
    app.post_sms(LEAD, "2 bed, max 1700, I have a cat").await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(
        sent,
        vec!["Got it: 2BR under $1,700 with a cat. When do you move?"]
    );

    let ctx = app.store.load_context(&LeadId::new(LEAD)).await.unwrap();
    assert_eq!(ctx.requirements.bedrooms, Some(2));
    assert_eq!(ctx.requirements.budget, Some(1700));
    assert_eq!(ctx.requirements.pets.as_deref(), Some("a cat"));
    let check = wait_alert(&app, "requirements_check").await;
    assert_eq!(check["kind"], "requirements_check");
    wait_alert(&app, "crm_requirements_note").await;

    let seen = gemini.requests();
    assert_eq!(seen.len(), 2);
    let first = &seen[0].body;
    let decls = first["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap();
    assert_eq!(decls.len(), 7);
    assert!(decls.iter().all(|d| d["parameters"]["type"] == "object"));
    assert_eq!(first["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    let contents = seen[1].body["contents"].as_array().unwrap();
    let n = contents.len();
    assert_eq!(contents[n - 2]["role"], "model");
    assert_eq!(
        contents[n - 2]["parts"][0]["functionCall"]["name"],
        "record_requirements"
    );
    assert_eq!(
        contents[n - 2]["parts"][0]["thoughtSignature"],
        "c2lnbmF0dXJl"
    );
    assert_eq!(contents[n - 1]["role"], "user");
    let response = &contents[n - 1]["parts"][0]["functionResponse"];
    assert_eq!(response["name"], "record_requirements");
    assert_eq!(response["response"]["saved"]["bedrooms"], 2);
    assert!(response["response"]["matching_buildings"].is_array());
}

#[tokio::test]
async fn shadow_mode_texts_the_plain_reply_and_posts_what_the_brain_would_have_done() {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    let app = app_with("shadow", &anthropic, &gemini).await;
    app.post_sms(LEAD, "tour maple court monday 3pm?").await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert_eq!(sent, vec!["Anthropic: tour maple court monday 3pm?"]);
    let diff = wait_alert(&app, "shadow_diff").await;
    assert_eq!(diff["kind"], "agent_reasoning");
    assert!(diff["text"].as_str().unwrap().contains("sent (plain)"));
    // Both ran: one request without tools (plain) and one with them (the brain).
    wait_until(10, "both brains asked", || async { anthropic.count() >= 2 }).await;
    let with_tools = anthropic
        .requests()
        .iter()
        .filter(|r| r.body.get("tools").is_some())
        .count();
    assert_eq!(with_tools, 1);
    assert_eq!(sent.len(), 1, "only the primary's reply is sent");
}

#[tokio::test]
async fn shadow_tools_are_disarmed() {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    let app = app_with("shadow", &anthropic, &gemini).await;
    gemini.always(Some(Canned::ok(gemini_function_call(
        "schedule_tour",
        json!({"building": "maple-court", "when": "2026-12-07T15:00"}),
        "sig",
    ))));
    // Anthropic is down, so both the plain chain and the brain reach Gemini; the plain
    // chain ignores a function call it never offered, and the brain's tour is disarmed.
    anthropic.always(Some(anthropic_error(529, "overloaded_error", "Overloaded")));
    app.post_sms(LEAD, "maple sunday 3").await;
    app.wait_for_sms(LEAD, 1).await;
    let diff = wait_alert(&app, "shadow_diff").await;
    assert!(
        diff["text"]
            .as_str()
            .unwrap()
            .contains("would have run: schedule_tour"),
        "{diff}"
    );
    let ctx = app.store.load_context(&LeadId::new(LEAD)).await.unwrap();
    assert!(ctx.tour.is_none(), "the shadow brain must not act");
    assert!(!app.alert_events().await.iter().any(|e| e == "tour_request"));
}

#[tokio::test]
async fn a_lead_the_model_marks_dead_leaves_the_lifecycle_and_is_alerted() {
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    anthropic.script(vec![
        Canned::ok(anthropic_tool_use(
            "toolu_dead",
            "mark_dead_lead",
            json!({"reason": "signed a lease elsewhere"}),
        )),
        Canned::ok(anthropic_text(
            "Congrats on the new place! Reach out anytime.",
        )),
    ]);
    let app = app_with("true", &anthropic, &gemini).await;
    app.post_sms(LEAD, "We signed somewhere else, thanks").await;
    app.wait_for_sms(LEAD, 1).await;
    assert_eq!(
        app.store
            .lead_dead(&LeadId::new(LEAD))
            .await
            .unwrap()
            .as_deref(),
        Some("signed a lease elsewhere")
    );
    let alert = wait_alert(&app, "dead_lead").await;
    assert_eq!(alert["kind"], "dead_lead");
    // The typed event carries its reason as a field, not only in the text.
    assert_eq!(alert["reason"], "signed a lease elsewhere");
}

#[tokio::test]
async fn a_revocation_the_phrase_set_misses_is_opted_out_by_the_model_s_judgement() {
    // The deterministic set does not read this as a revocation (it is answered by a turn);
    // the model does, and calls record_opt_out: the lead is opted out as after STOP, the
    // model's own reply is not sent, the one confirmation is.
    let words = "All good, I'd rather not hear from you guys again";
    assert!(
        !actors::revocation::is_revocation(words),
        "the phrase set misses it"
    );
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    anthropic.script(vec![
        Canned::ok(anthropic_tool_use(
            "toolu_01X",
            "record_opt_out",
            json!({"words": words}),
        )),
        Canned::ok(anthropic_text("Understood, we won't text you again.")),
    ]);
    let app = app_with("true", &anthropic, &gemini).await;
    let lead = LeadId::new(LEAD);
    app.post_sms(LEAD, words).await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert!(
        sent[0].starts_with("The leasing office: you are opted out"),
        "the confirmation, not the model's reply: {sent:?}"
    );
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1, "one SMS in all");
    assert!(
        actors::ports::Store::is_opted_out(&app.store, &lead)
            .await
            .unwrap()
    );
    let events = app.store.consent_events(&lead).await.unwrap();
    assert!(
        events.iter().any(|e| e.method.as_str() == "revocation"
            && !e.grants
            && e.words.contains("the model's judgement")
            && e.words.contains(words)),
        "{events:?}"
    );
    let conversation = app.conversation(LEAD).await;
    assert!(
        conversation
            .iter()
            .any(|m| m.body.contains("we won't text you again") && m.state == "suppressed"),
        "the model's reply was suppressed at the send: {conversation:?}"
    );
    // Anything later gets nothing.
    app.post_sms(LEAD, "hello?").await;
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_plain_chain_s_model_judges_a_revocation_too_and_its_answer_is_not_sent() {
    // USE_AGENT_CORE=false: no tools; the prompt asks the model to answer OPT_OUT alone.
    let words = "I'd rather not hear from you guys again, thanks";
    assert!(
        !actors::revocation::is_revocation(words),
        "the phrase set misses it"
    );
    let anthropic = FakeProvider::anthropic().await;
    let gemini = FakeProvider::gemini().await;
    anthropic.script(vec![Canned::ok(anthropic_text(
        actors::revocation::MODEL_OPT_OUT,
    ))]);
    let app = app_with("false", &anthropic, &gemini).await;
    let lead = LeadId::new(LEAD);
    app.post_sms(LEAD, words).await;
    let sent = app.wait_for_sms(LEAD, 1).await;
    assert!(
        sent[0].starts_with("The leasing office: you are opted out"),
        "the confirmation, never the sentinel: {sent:?}"
    );
    app.wait_settled(LEAD).await;
    assert_eq!(app.twilio.sent_to(LEAD).len(), 1);
    let system = anthropic.requests()[0].body["system"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(system.contains("answer exactly OPT_OUT"), "{system}");
    assert!(
        actors::ports::Store::is_opted_out(&app.store, &lead)
            .await
            .unwrap()
    );
    let events = app.store.consent_events(&lead).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.method.as_str() == "revocation" && e.words.contains(words)),
        "{events:?}"
    );
    let conversation = app.conversation(LEAD).await;
    assert!(
        conversation
            .iter()
            .any(|m| m.body == words && m.state == "no_reply"),
        "{conversation:?}"
    );
    app.stop().await;
}
