//! The agent's brain: a leasing agent for the buildings of a catalog that answers a lead by
//! running a tool loop on the LLM pool — the model may record requirements, request a tour,
//! mark the lead dead, escalate to a person or suggest a CRM stage before it answers.
//!
//! Owns: the system prompt (catalog + what we know of the lead), the loop (model asks for
//! tools → we run them → results go back → final text), keeping the loop inside the pool's
//! hard budget, fitting the reply to SMS, and the `USE_AGENT_CORE` modes behind the
//! [`Responder`] trait the lead actor calls: the plain chain, the brain, or shadow (plain
//! answers, the brain runs beside it with its tools disarmed and the difference goes to the
//! agent-reasoning channel).
//! Must not: send SMS or commit replies (the lead actor does), or run past the pool's
//! budgets. Tools act through ports only ([`context::LeadContextStore`],
//! [`context::CrmNotes`], the alert handle).

pub mod answers;
pub mod catalog;
pub mod context;
pub mod sms;
pub mod tools;
pub mod tour_hours;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;
use tracing::Instrument;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::conversation::{AgentRequest, Block, Speaker, Turn, turns_from_prompt};
use crate::llm_pool::LlmPool;
use crate::ports::{Completion, Prompt};
use crate::turn_error::TurnError;
use catalog::Catalog;
use context::LeadContext;
use tools::{ToolBox, tool_specs};

/// Model steps in one loop: up to three rounds of tools, then a text-only answer.
pub const MAX_STEPS: usize = 4;

/// What answers a turn's prompt. The lead actor calls this; `USE_AGENT_CORE` picks which.
#[async_trait]
pub trait Responder: Send + Sync + 'static {
    async fn respond(&self, prompt: &Prompt) -> Result<Completion, TurnError>;
}

/// `USE_AGENT_CORE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentMode {
    /// `false`: the plain chain answers (no tools).
    Plain,
    /// `true`: the brain answers.
    Agent,
    /// `shadow`: the plain chain answers; the brain runs beside it, tools disarmed.
    Shadow,
}

impl std::str::FromStr for AgentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "false" | "0" | "off" | "no" => Ok(AgentMode::Plain),
            "true" | "1" | "on" | "yes" => Ok(AgentMode::Agent),
            "shadow" => Ok(AgentMode::Shadow),
            other => Err(format!("`{other}` must be true, false or shadow")),
        }
    }
}

/// The plain chain as a [`Responder`].
pub struct PlainChain(pub LlmPool);

#[async_trait]
impl Responder for PlainChain {
    async fn respond(&self, prompt: &Prompt) -> Result<Completion, TurnError> {
        let mut c = self.0.complete(prompt).await?;
        c.text = sms::fit_sms(c.text.trim());
        Ok(c)
    }
}

/// One answered turn and what the brain did on the way.
pub struct Thought {
    pub completion: Completion,
    /// One line per tool call, in order.
    pub actions: Vec<String>,
    pub steps: usize,
}

pub struct Brain {
    pool: LlmPool,
    tools: ToolBox,
    /// False in shadow mode: tools compute their result but touch nothing.
    live: bool,
    /// The agent profile's addition to the system prompt (who the agent is, its tone).
    persona: Option<String>,
}

impl Brain {
    pub fn new(pool: LlmPool, tools: ToolBox) -> Self {
        Self {
            pool,
            tools,
            live: true,
            persona: None,
        }
    }

    /// The same brain with its tools disarmed (shadow mode).
    pub fn disarmed(pool: LlmPool, tools: ToolBox) -> Self {
        Self {
            pool,
            tools,
            live: false,
            persona: None,
        }
    }

    /// The same brain told who it is: `persona` follows the system prompt (the SMS rules
    /// stay; a profile only adds).
    pub fn with_persona(mut self, persona: Option<String>) -> Self {
        self.persona = persona.filter(|p| !p.trim().is_empty());
        self
    }

    /// The catalog as it is now (the building service may replace it between turns).
    pub fn catalog(&self) -> std::sync::Arc<Catalog> {
        self.tools.catalog.current()
    }

    /// Runs the tool loop for one turn. The loop's deadline is set once, by the pool when
    /// the first step gets capacity, so all its model steps and tools together stay within
    /// the hard budget.
    pub async fn think(&self, prompt: &Prompt) -> Result<Thought, TurnError> {
        let mut deadline: Option<Instant> = None;
        let lead = &prompt.lead;
        let mut ctx = self.tools.contexts.load_context(lead).await?;
        let mut system = system_prompt(&self.tools.catalog.current(), &ctx, prompt);
        if let Some(persona) = &self.persona {
            system.push_str("\n\n");
            system.push_str(persona);
        }
        let mut turns = turns_from_prompt(prompt);
        let mut actions = Vec::new();
        let (mut input_tokens, mut output_tokens) = (0, 0);
        let mut provider = String::new();
        let mut earlier_text = String::new();
        let mut text = String::new();
        let mut steps = 0;
        for step in 0..MAX_STEPS {
            steps = step + 1;
            let allow_tools = step + 1 < MAX_STEPS;
            let request = AgentRequest {
                prompt: prompt.clone(),
                system: system.clone(),
                turns: turns.clone(),
                tools: tool_specs(),
                allow_tools,
            };
            let reply = self.pool.converse(&request, &mut deadline).await?;
            input_tokens += reply.input_tokens;
            output_tokens += reply.output_tokens;
            provider = reply.provider.clone();
            let calls: Vec<_> = reply.tool_calls().into_iter().cloned().collect();
            text = reply.text();
            if calls.is_empty() || !allow_tools {
                break;
            }
            // Text said alongside a tool call ("Let me check...") is kept in case the
            // final step says nothing.
            if !text.trim().is_empty() {
                earlier_text = text.clone();
            }
            turns.push(Turn {
                speaker: Speaker::Model,
                blocks: reply.blocks.clone(),
            });
            let mut results = Vec::new();
            for call in &calls {
                let span = tracing::info_span!("brain_tool", tool = %call.name, lead = %lead.log());
                let outcome = self
                    .tools
                    .run(lead, call, &mut ctx, self.live)
                    .instrument(span)
                    .await?;
                actions.push(outcome.summary);
                results.push(Block::ToolResult(outcome.result));
            }
            turns.push(Turn {
                speaker: Speaker::User,
                blocks: results,
            });
        }
        if text.trim().is_empty() {
            text = earlier_text;
        }
        let completion = if text.trim().is_empty() {
            // A model that ends on silence still owes the lead an answer: the plain chain.
            tracing::warn!(lead = %lead.log(), "the brain ended without text; asking the plain chain");
            let mut c = self.pool.complete(prompt).await?;
            c.text = sms::fit_sms(c.text.trim());
            c
        } else {
            Completion {
                text: sms::fit_sms(text.trim()),
                provider,
                input_tokens,
                output_tokens,
            }
        };
        Ok(Thought {
            completion,
            actions,
            steps,
        })
    }
}

#[async_trait]
impl Responder for Brain {
    async fn respond(&self, prompt: &Prompt) -> Result<Completion, TurnError> {
        let thought = self.think(prompt).await?;
        if !thought.actions.is_empty() {
            tracing::info!(lead = %prompt.lead.log(), actions = ?thought.actions, "brain acted");
        }
        Ok(thought.completion)
    }
}

/// Shadow mode: the primary answers; the shadow brain runs beside it (tools disarmed) and
/// what each would have said goes to the agent-reasoning channel.
pub struct Shadow {
    pub primary: Arc<dyn Responder>,
    pub shadow: Arc<Brain>,
    pub alerts: AlertHandle,
}

#[async_trait]
impl Responder for Shadow {
    async fn respond(&self, prompt: &Prompt) -> Result<Completion, TurnError> {
        let (primary, shadow) =
            tokio::join!(self.primary.respond(prompt), self.shadow.think(prompt));
        let shadow_text = match &shadow {
            Ok(t) => format!(
                "[{}] {}{}",
                t.completion.provider,
                t.completion.text,
                if t.actions.is_empty() {
                    String::new()
                } else {
                    format!("\nwould have run: {}", t.actions.join(" | "))
                }
            ),
            Err(e) => format!("(failed: {e})"),
        };
        let primary_text = match &primary {
            Ok(c) => format!("[{}] {}", c.provider, c.text),
            Err(e) => format!("(failed: {e})"),
        };
        let same = matches!((&primary, &shadow), (Ok(p), Ok(s)) if p.text == s.completion.text);
        self.alerts.raise(
            Alert::new(
                AlertKind::AgentReasoning,
                Severity::Info,
                "shadow_diff",
                format!(
                    "{}: {}\nsent (plain): {primary_text}\nagent (shadow): {shadow_text}",
                    prompt.lead,
                    if same { "same reply" } else { "replies differ" }
                ),
            )
            .for_lead(&prompt.lead),
        );
        primary
    }
}

/// The system prompt: the job, the SMS rules, the catalog, and what we know of this lead.
pub fn system_prompt(catalog: &Catalog, ctx: &LeadContext, prompt: &Prompt) -> String {
    let mut s = String::from(
        "You are the leasing agent for the buildings listed below, answering prospective \
         tenants by SMS. Be warm, brief and concrete: plain text, no markdown, one or two \
         short sentences (under 300 characters), plain ASCII (no emoji, em dashes or curly \
         quotes). Qualify the lead one question at a time: bedrooms, move-in date, budget, \
         housing voucher, pets. Quote only facts from the catalog; for anything else say you \
         will check with the team and call escalate_to_human. Use the tools: \
         record_requirements whenever the lead states a requirement, schedule_tour once they \
         agree to a building and a time (say it is requested, the team confirms), \
         suggest_crm_stage when they qualify or book, mark_hot_lead when they are ready to \
         rent now or ask for a phone call, mark_dead_lead only when they are clearly no \
         longer looking, record_opt_out at once when they ask in any words to get no more \
         texts. If several messages arrived together, answer them in \
         one reply.\n\n",
    );
    s.push_str(crate::fair_housing::PROMPT_RULE);
    s.push_str("\n\n");
    s.push_str(&format!(
        "Today is {} (UTC).\n\nBuildings:\n",
        prompt.now.format("%A %Y-%m-%d")
    ));
    s.push_str(&catalog.render());
    s.push_str("\nWhat we know about this lead: ");
    s.push_str(&ctx.requirements.summary());
    s.push('.');
    let missing = ctx.requirements.missing();
    if !missing.is_empty() {
        s.push_str(&format!(" Still unknown: {}.", missing.join(", ")));
    }
    if let Some(t) = &ctx.tour {
        s.push_str(&format!(
            " Tour already requested: {} at {}.",
            t.building, t.when
        ));
    }
    if let Some(stage) = &ctx.stage {
        s.push_str(&format!(" CRM stage: {stage}."));
    }
    if let Some(e) = &ctx.escalation {
        s.push_str(&format!(" Handed to a person earlier: {e}."));
    }
    if let Some(d) = &ctx.dead_reason {
        s.push_str(&format!(
            " Marked dead earlier ({d}); if they are looking again, help them."
        ));
    }
    s
}

#[cfg(test)]
mod tests;
