//! Built-in rules responder: the deterministic fallback brain that answers a lead when no LLM
//! is configured or every provider failed, so a lead never meets silence.
//!
//! Owns: reading what the lead has told us so far (bedrooms, move-in, budget, voucher, pets)
//! and what we already asked, choosing the next step (qualify, offer a tour, confirm a tour,
//! hold a question for the team, close politely) and wording it as one plain-text SMS of at
//! most [`MAX_REPLY_CHARS`] characters.
//! Must not: do I/O, read the clock (time comes only from [`Prompt::now`]) or use randomness.
//! The same prompt always gets the same reply, which is what makes a retried turn safe and
//! every branch testable.
//!
//! # Layout
//!
//! Understanding the messages, each reader knowing nothing of replies:
//! - `text`: words, clauses, whole-word phrase search, negation.
//! - `dates`: month and weekday names, days of the month, clock hours.
//! - `facts`: bedrooms, move-in, budget, voucher and pets from one message.
//! - `topics`: which topic one of our own lines asked about.
//! - `intents`: closes, tour requests, questions only the team can answer.
//! - `conversation`: the prompt read as a whole: new lines, facts so far, what to ask next.
//! - `tour`: tour slots, and a lead's answer to an offer.
//!
//! The catalog: `desk` asks `actors::brain::answers` what the building catalog says to the
//! new messages (availability and rent, pets, amenities, tour hours, the address, the
//! matches for the lead's needs) and reads tour slots from a building's `tour_hours` in
//! the office's zone; a turn that saves needs or books a tour returns those as the brain's
//! tool calls (`converse`), so they run through the same tool box as a model's.
//!
//! Composing the answer: `compose` turns what the readers found into the reply, and holds
//! every sentence the lead reads. The seam between the two is what the readers return —
//! `conversation::Conversation`, `intents::Closing` and the question labels, `tour::Slot` and
//! `tour::TourAnswer`: a reader writes no sentence (`dates` and `tour` write a slot as "Thu
//! Dec 3 at 3pm", nothing more), and the composer never looks at a word of the messages
//! itself (it asks a reader).
//!
//! The word lists are data, not code: `text.txt`, `facts.txt`, `topics.txt`, `intents.txt`
//! and `tour.txt` beside their modules, in the format of `phrases`, parsed on first use.

mod compose;
mod conversation;
mod dates;
mod desk;
mod facts;
mod intents;
mod phrases;
pub mod signals;
mod text;
mod topics;
mod tour;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use actors::brain::catalog::SharedCatalog;
use actors::conversation::{AgentReply, AgentRequest, Block, ToolCall};
use actors::ports::{ChatModel, Completion, ModelError, Prompt};
use async_trait::async_trait;

/// Two SMS segments' worth: long enough to answer a burst, short enough to read on a phone.
pub const MAX_REPLY_CHARS: usize = 320;

/// What the rules need to know about the office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfficeInfo {
    pub office_name: String,
    /// The agent profile's first line to a new lead (`config::profile`); `None`: "Hi!
    /// Thanks for texting <office>".
    pub greeting: Option<String>,
    /// Local hours (0-23) at which tours start, Monday to Saturday.
    pub tour_hours: Vec<u32>,
    /// Office local time minus UTC. Fixed: daylight saving is not followed, so set it to the
    /// offset in force (Chicago is -6 in winter, -5 in summer).
    pub utc_offset_hours: i32,
}

impl Default for OfficeInfo {
    fn default() -> Self {
        Self {
            office_name: "the leasing office".to_string(),
            greeting: None,
            tour_hours: vec![11, 15],
            utc_offset_hours: -6,
        }
    }
}

/// The deterministic fallback [`ChatModel`]: last in the provider chain, never fails.
#[derive(Clone, Debug, Default)]
pub struct RulesResponder {
    office: OfficeInfo,
    /// The building catalog it answers from, and the office's zone its tour slots are in
    /// (`OWNER_TZ`). `None`: the office's fixed hours and offset, no building facts.
    catalog: Option<(SharedCatalog, chrono_tz::Tz)>,
}

impl RulesResponder {
    pub fn new(office: OfficeInfo) -> Self {
        Self {
            office,
            catalog: None,
        }
    }

    /// The same responder answering from `catalog` (the brain's, so both say the same
    /// and a building-service refresh reaches both), its tours in `zone`.
    pub fn with_catalog(mut self, catalog: SharedCatalog, zone: chrono_tz::Tz) -> Self {
        self.catalog = Some((catalog, zone));
        self
    }
}

#[async_trait]
impl ChatModel for RulesResponder {
    fn name(&self) -> &str {
        "rules"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        Ok(Completion {
            text: self.compose_reply(prompt),
            provider: "rules".to_string(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }

    /// The reply, and — when the brain offers tools and none has run yet this turn — the
    /// turn's actions as tool calls (save the needs, book the picked slot). The brain runs
    /// them and asks again; seeing their results, this answers in text alone, the same
    /// text (it is a function of the prompt).
    async fn converse(&self, request: &AgentRequest) -> Result<AgentReply, ModelError> {
        let (text, actions) = self.compose(&request.prompt);
        let tools_ran = request
            .turns
            .last()
            .is_some_and(|t| t.blocks.iter().any(|b| matches!(b, Block::ToolResult(_))));
        let mut blocks = vec![Block::Text(text)];
        if request.allow_tools && !request.tools.is_empty() && !tools_ran {
            for (i, action) in actions.iter().enumerate() {
                let (name, input) = action.tool_call();
                if request.tools.iter().any(|t| t.name == name) {
                    blocks.push(Block::ToolCall(ToolCall {
                        id: format!("rules-{i}"),
                        name: name.to_string(),
                        input,
                        signature: None,
                    }));
                }
            }
        }
        Ok(AgentReply {
            blocks,
            provider: "rules".to_string(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}
