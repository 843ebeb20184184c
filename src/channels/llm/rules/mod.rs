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
}

impl RulesResponder {
    pub fn new(office: OfficeInfo) -> Self {
        Self { office }
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
}
