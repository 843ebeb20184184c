use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::alert_router::AlertKind;
use crate::conversation::{AgentReply, ToolCall};
use crate::llm_pool::LlmPoolConfig;
use crate::ports::{ChatLine, ChatModel, LeadId, ModelError, Role, SystemClock};
use crate::testing::{
    FakeModel, MemLeadContexts, RecordingAlertSink, RecordingCrm, test_alerts, wait_for,
};

/// A tool-using model that plays scripted replies and records each request.
struct ScriptedAgent {
    replies: Mutex<VecDeque<Vec<Block>>>,
    requests: Mutex<Vec<AgentRequest>>,
    latency: Duration,
}

impl ScriptedAgent {
    fn new(replies: Vec<Vec<Block>>) -> Self {
        Self {
            replies: Mutex::new(replies.into()),
            requests: Mutex::new(Vec::new()),
            latency: Duration::ZERO,
        }
    }
    fn slow(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
    fn requests(&self) -> Vec<AgentRequest> {
        self.requests.lock().unwrap().clone()
    }
}

#[async_trait]
impl ChatModel for ScriptedAgent {
    fn name(&self) -> &str {
        "scripted"
    }
    async fn complete(&self, _prompt: &Prompt) -> Result<Completion, ModelError> {
        Err(ModelError::BadResponse("the brain must converse".into()))
    }
    async fn converse(&self, request: &AgentRequest) -> Result<AgentReply, ModelError> {
        self.requests.lock().unwrap().push(request.clone());
        tokio::time::sleep(self.latency).await;
        let blocks = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| vec![Block::Text("(script exhausted)".into())]);
        Ok(AgentReply {
            blocks,
            provider: "scripted".into(),
            input_tokens: 7,
            output_tokens: 3,
        })
    }
}

fn call(id: &str, name: &str, input: serde_json::Value) -> Block {
    Block::ToolCall(ToolCall {
        id: id.into(),
        name: name.into(),
        input,
        signature: None,
    })
}

fn prompt(text: &str) -> Prompt {
    Prompt {
        lead: LeadId::new("+13125550199"),
        lines: vec![ChatLine {
            role: Role::Lead,
            text: text.into(),
        }],
        new_messages: 1,
        now: chrono::Utc::now(),
    }
}

struct Rig {
    contexts: Arc<MemLeadContexts>,
    crm: Arc<RecordingCrm>,
    sink: Arc<RecordingAlertSink>,
    tools: ToolBox,
    pool: LlmPool,
}

async fn rig(chain: Vec<Arc<dyn ChatModel>>) -> Rig {
    let (alerts, sink) = test_alerts().await;
    let contexts = Arc::new(MemLeadContexts::default());
    let crm = Arc::new(RecordingCrm::default());
    let pool = LlmPool::new(
        chain,
        LlmPoolConfig {
            concurrency: 2,
            soft_timeout: Duration::from_secs(5),
            hard_timeout: Duration::from_secs(10),
        },
        alerts.clone(),
    );
    let tools = ToolBox {
        catalog: catalog::SharedCatalog::new(catalog::sample()),
        contexts: contexts.clone(),
        crm: crm.clone(),
        alerts,
        clock: Arc::new(SystemClock),
        sla: None,
        dialer: None,
        revocations: None,
    };
    Rig {
        contexts,
        crm,
        sink,
        tools,
        pool,
    }
}

#[tokio::test]
async fn a_tour_request_updates_the_context_alerts_and_notes_the_crm_then_the_model_answers() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![
            Block::Text("Let me book that.".into()),
            call(
                "toolu_1",
                tools::SCHEDULE_TOUR,
                json!({"building": "lakeview", "when": "2026-12-05T11:00"}),
            ),
        ],
        vec![Block::Text(
            "You\u{2019}re set: tour requested at Lakeview Lofts Saturday 11am \u{2014} the team will confirm."
                .into(),
        )],
    ]));
    let r = rig(vec![model.clone()]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let p = prompt("Saturday 11 at Lakeview works");
    let thought = brain.think(&p).await.unwrap();

    assert_eq!(
        thought.completion.text,
        "You're set: tour requested at Lakeview Lofts Saturday 11am - the team will confirm."
    );
    assert_eq!(thought.steps, 2);
    assert_eq!(thought.completion.input_tokens, 14);
    let ctx = r.contexts.get(&p.lead).expect("context saved");
    let tour = ctx.tour.expect("tour recorded");
    assert_eq!(
        (tour.building.as_str(), tour.when.as_str()),
        ("lakeview", "2026-12-05T11:00")
    );

    // The second request carries the call and its result.
    let second = &model.requests()[1];
    let n = second.turns.len();
    assert_eq!(second.turns[n - 2].speaker, Speaker::Model);
    assert_eq!(second.turns[n - 1].speaker, Speaker::User);
    match &second.turns[n - 1].blocks[0] {
        Block::ToolResult(res) => {
            assert_eq!(res.call_id, "toolu_1");
            assert!(!res.is_error);
            assert!(res.content.contains("requested"));
        }
        other => panic!("expected a tool result, got {other:?}"),
    }
    assert!(
        second.system.contains("Lakeview Lofts"),
        "the catalog is in the prompt"
    );

    wait_for(|| r.sink.events().contains(&"tour_request".to_string())).await;
    let alert = r
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "tour_request")
        .unwrap();
    assert_eq!(alert.kind, AlertKind::TourRequest);
    assert_eq!(alert.lead.as_ref(), Some(&p.lead));
    wait_for(|| !r.crm.notes().is_empty()).await;
    assert!(r.crm.notes()[0].1.contains("Tour requested"));
}

#[tokio::test]
async fn requirements_are_merged_into_the_context_and_the_next_prompt_knows_them() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![call(
            "c1",
            tools::RECORD_REQUIREMENTS,
            json!({"bedrooms": "2", "budget": "$1,700", "voucher": "none"}),
        )],
        vec![Block::Text("Got it. When do you want to move in?".into())],
        vec![Block::Text("Second turn".into())],
    ]));
    let r = rig(vec![model.clone()]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let p = prompt("2br, up to 1700, no voucher");
    brain.think(&p).await.unwrap();
    let ctx = r.contexts.get(&p.lead).unwrap();
    assert_eq!(ctx.requirements.bedrooms, Some(2));
    assert_eq!(ctx.requirements.budget, Some(1700));
    wait_for(|| r.sink.events().contains(&"requirements_check".to_string())).await;
    let check = r
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "requirements_check")
        .unwrap();
    assert!(check.text.contains("Maple Court"), "{}", check.text);
    wait_for(|| {
        r.sink
            .events()
            .contains(&"crm_requirements_note".to_string())
    })
    .await;

    let options = r
        .sink
        .alerts()
        .into_iter()
        .filter(|a| a.kind == AlertKind::BuildingOptions)
        .collect::<Vec<_>>();
    assert_eq!(options.len(), 1, "{options:?}");
    assert!(
        options[0].text.contains("Maple Court"),
        "{}",
        options[0].text
    );
    assert_eq!(options[0].lead, Some(p.lead.clone()));
    assert!(!ctx.offered.is_empty());

    brain.think(&prompt("ok")).await.unwrap();
    let third = &model.requests()[2];
    assert!(third.system.contains("2 bedroom(s)") && third.system.contains("budget $1700/mo"));
}

#[tokio::test]
async fn an_unknown_building_is_refused_to_the_model_and_nothing_is_recorded() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![call(
            "c1",
            tools::SCHEDULE_TOUR,
            json!({"building": "atlantis", "when": "noon"}),
        )],
        vec![Block::Text("Which building did you mean?".into())],
    ]));
    let r = rig(vec![model.clone()]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let thought = brain.think(&prompt("tour atlantis")).await.unwrap();
    assert_eq!(thought.completion.text, "Which building did you mean?");
    match &model.requests()[1].turns.last().unwrap().blocks[0] {
        Block::ToolResult(res) => {
            assert!(res.is_error);
            assert!(
                res.content.contains("lakeview"),
                "the model is told the valid ids"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(r.contexts.get(&prompt("").lead).is_none());
}

#[tokio::test]
async fn a_model_that_keeps_calling_tools_is_made_to_answer_on_the_last_step() {
    let looping: Vec<Vec<Block>> = (0..MAX_STEPS)
        .map(|i| {
            vec![call(
                &format!("c{i}"),
                tools::SUGGEST_CRM_STAGE,
                json!({"stage": "contacted", "reason": "talking"}),
            )]
        })
        .collect();
    let model = Arc::new(ScriptedAgent::new(looping));
    let rules = Arc::new(FakeModel::answering("rules reply"));
    let r = rig(vec![model.clone(), rules]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let thought = brain.think(&prompt("hi")).await.unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), MAX_STEPS);
    assert!(!requests.last().unwrap().allow_tools);
    assert!(requests[..MAX_STEPS - 1].iter().all(|r| r.allow_tools));
    // The last reply had no text: the plain chain answered instead of silence.
    assert_eq!(thought.completion.text, "rules reply");
}

#[tokio::test]
async fn with_every_model_down_the_rules_responder_answers_the_brain() {
    let down = Arc::new(FakeModel::failing(ModelError::Overloaded));
    let rules = Arc::new(FakeModel::answering("canned"));
    let r = rig(vec![down, rules]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let thought = brain.think(&prompt("hello")).await.unwrap();
    assert_eq!(thought.completion.text, "canned");
    wait_for(|| r.sink.events().contains(&"model_fallback".to_string())).await;
}

#[tokio::test]
async fn mark_dead_ends_the_lead_lifecycle() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![call(
            "c1",
            tools::MARK_DEAD_LEAD,
            json!({"reason": "found a place"}),
        )],
        vec![Block::Text("Congrats on the new place!".into())],
    ]));
    let r = rig(vec![model]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let p = prompt("we found a place, thanks");
    brain.think(&p).await.unwrap();
    assert_eq!(
        r.contexts.dead(),
        vec![(p.lead.clone(), "found a place".to_string())]
    );
    wait_for(|| r.sink.events().contains(&"dead_lead".to_string())).await;
}

#[tokio::test]
async fn shadow_sends_the_primary_reply_runs_the_brain_disarmed_and_posts_the_difference() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![call(
            "c1",
            tools::SCHEDULE_TOUR,
            json!({"building": "maple", "when": "2026-12-06T15:00"}),
        )],
        vec![Block::Text("Tour requested at Maple Court.".into())],
    ]));
    let r = rig(vec![model]).await;
    let plain_pool = LlmPool::new(
        vec![Arc::new(FakeModel::answering("plain reply"))],
        r.pool.config(),
        r.tools.alerts.clone(),
    );
    let shadow = Shadow {
        primary: Arc::new(PlainChain(plain_pool)),
        shadow: Arc::new(Brain::disarmed(r.pool.clone(), r.tools.clone())),
        alerts: r.tools.alerts.clone(),
    };
    let p = prompt("can I see maple sunday 3pm");
    let reply = shadow.respond(&p).await.unwrap();
    assert_eq!(reply.text, "plain reply");
    wait_for(|| r.sink.events().contains(&"shadow_diff".to_string())).await;
    let diff = r
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.event == "shadow_diff")
        .unwrap();
    assert_eq!(diff.kind, AlertKind::AgentReasoning);
    assert!(diff.text.contains("replies differ"));
    assert!(diff.text.contains("Tour requested at Maple Court."));
    assert!(diff.text.contains("would have run: schedule_tour: maple"));
    // Disarmed: nothing stored, no tour alert, no CRM note.
    assert!(r.contexts.get(&p.lead).is_none());
    assert!(!r.sink.events().contains(&"tour_request".to_string()));
    assert!(r.crm.notes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_whole_tool_loop_stays_inside_the_pools_hard_budget() {
    // Each step takes 4 s (under the 5 s soft budget); three tool rounds would need 12 s
    // and more, the hard budget is 10 s.
    let steps: Vec<Vec<Block>> = (0..MAX_STEPS)
        .map(|i| {
            vec![call(
                &format!("c{i}"),
                tools::RECORD_REQUIREMENTS,
                json!({"notes": format!("round {i}")}),
            )]
        })
        .collect();
    let model = Arc::new(ScriptedAgent::new(steps).slow(Duration::from_secs(4)));
    let r = rig(vec![model.clone()]).await;
    let brain = Brain::new(r.pool.clone(), r.tools.clone());
    let started = Instant::now();
    let err = brain
        .think(&prompt("hi"))
        .await
        .err()
        .expect("the budget runs out");
    assert!(
        matches!(
            err,
            TurnError::Model(crate::llm_pool::PoolError::HardTimeout(_))
        ),
        "{err}"
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(10),
        "cut exactly at the hard budget"
    );
    assert_eq!(model.requests().len(), 3);
}

#[test]
fn agent_mode_reads_true_false_and_shadow_and_names_anything_else() {
    assert_eq!("true".parse::<AgentMode>(), Ok(AgentMode::Agent));
    assert_eq!("FALSE".parse::<AgentMode>(), Ok(AgentMode::Plain));
    assert_eq!("shadow".parse::<AgentMode>(), Ok(AgentMode::Shadow));
    assert!(
        "maybe"
            .parse::<AgentMode>()
            .unwrap_err()
            .contains("true, false or shadow")
    );
}

/// Runs `record_requirements` with `input` as the model would call it.
async fn record(
    tools: &ToolBox,
    lead: &LeadId,
    ctx: &mut context::LeadContext,
    input: serde_json::Value,
    live: bool,
) {
    let call = ToolCall {
        id: "c".into(),
        name: tools::RECORD_REQUIREMENTS.into(),
        input,
        signature: None,
    };
    tools.run(lead, &call, ctx, live).await.unwrap();
}

#[tokio::test]
async fn building_options_are_alerted_when_the_matching_set_changes_not_on_a_repeat() {
    let r = rig(vec![Arc::new(ScriptedAgent::new(vec![]))]).await;
    let lead = LeadId::new("+13125550188");
    let mut ctx = context::LeadContext::default();
    let options = || {
        r.sink
            .alerts()
            .into_iter()
            .filter(|a| a.kind == AlertKind::BuildingOptions)
            .map(|a| a.text)
            .collect::<Vec<_>>()
    };
    record(&r.tools, &lead, &mut ctx, json!({"bedrooms": 2}), true).await;
    wait_for(|| options().len() == 1).await;
    assert!(options()[0].contains("Maple Court") && options()[0].contains("Lakeview Lofts"));
    assert_eq!(ctx.offered.len(), 2, "{:?}", ctx.offered);

    // The same set again (a note added): no second alert.
    record(
        &r.tools,
        &lead,
        &mut ctx,
        json!({"notes": "near a school"}),
        true,
    )
    .await;
    // A dog narrows the set to the one building that takes dogs: news again.
    record(&r.tools, &lead, &mut ctx, json!({"pets": "a dog"}), true).await;
    wait_for(|| options().len() == 2).await;
    assert!(options()[1].contains("Lakeview Lofts") && !options()[1].contains("Maple Court"));
    let stored = r.contexts.get(&lead).unwrap().offered;
    assert!(
        stored.len() == 1 && stored[0].starts_with("lakeview"),
        "{stored:?}"
    );

    // Shadow mode computes the same result and raises nothing.
    let mut shadow = context::LeadContext::default();
    record(&r.tools, &lead, &mut shadow, json!({"bedrooms": 3}), false).await;
    assert_eq!(options().len(), 2);
}

#[tokio::test]
async fn a_synthetic_leads_requirements_are_alerted_but_never_noted_in_the_crm() {
    let r = rig(vec![Arc::new(ScriptedAgent::new(vec![]))]).await;
    let probe = LeadId::new("+13125550199");
    let real = LeadId::new("+13125550188");
    r.contexts.set_synthetic(&probe);
    let notes_of = |lead: &LeadId| r.crm.notes().iter().filter(|n| &n.0 == lead).count();
    record(
        &r.tools,
        &probe,
        &mut context::LeadContext::default(),
        json!({"bedrooms": 2}),
        true,
    )
    .await;
    record(
        &r.tools,
        &real,
        &mut context::LeadContext::default(),
        json!({"bedrooms": 2}),
        true,
    )
    .await;
    // The real lead's note is the anchor: the probe's was spawned first.
    wait_for(|| notes_of(&real) == 1).await;
    assert_eq!(notes_of(&probe), 0, "{:?}", r.crm.notes());
    let noted: Vec<_> = r
        .sink
        .alerts()
        .into_iter()
        .filter(|a| a.event == "crm_requirements_note")
        .filter_map(|a| a.lead)
        .collect();
    assert!(
        noted.contains(&probe),
        "the alert still goes out: {noted:?}"
    );
}

#[tokio::test]
async fn a_persona_follows_the_system_prompt_and_none_leaves_it_as_it_was() {
    let model = Arc::new(ScriptedAgent::new(vec![
        vec![Block::Text("Which area do you like?".into())],
        vec![Block::Text("Which area do you like?".into())],
    ]));
    let r = rig(vec![model.clone()]).await;
    let p = prompt("Hi");
    Brain::new(r.pool.clone(), r.tools.clone())
        .with_persona(Some("You are the apartment locator.".into()))
        .think(&p)
        .await
        .unwrap();
    Brain::new(r.pool.clone(), r.tools.clone())
        .with_persona(Some("  ".into()))
        .think(&p)
        .await
        .unwrap();
    let requests = model.requests();
    let plain = &requests[1].system;
    assert!(!plain.contains("apartment locator"), "{plain}");
    assert_eq!(
        requests[0].system,
        format!("{plain}\n\nYou are the apartment locator."),
        "the persona is added after the SMS rules and the catalog, which stay"
    );
}
