//! The provider-neutral shape of a tool-using conversation: what the brain sends a model
//! (system prompt, turns with text, tool calls and tool results, the tools on offer) and
//! what comes back (text and tool calls, token usage).
//!
//! Owns: these data types and the rule that a transcript must be replayable on any
//! provider, so the pool can fail over in the middle of a tool loop (Anthropic asked for a
//! tool, Anthropic then fails, Gemini gets the same transcript with the tool's result).
//! Must not: know a wire format. Each client in `src/channels/llm/` translates.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ports::Prompt;

/// A tool the model may call. `parameters` is a JSON Schema object using only the subset
/// both providers accept (type, properties, required, enum, description).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: Value,
}

/// A call the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (Anthropic `toolu_…`); Gemini has none, so the client
    /// makes one up. A tool result answers the call with the same id.
    pub id: String,
    pub name: String,
    pub input: Value,
    /// Opaque data the provider asks to get back with the call (Gemini's
    /// `thoughtSignature`); echoed verbatim, never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What we tell the model a tool did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub call_id: String,
    pub name: String,
    pub content: String,
    pub is_error: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Block {
    Text(String),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Speaker {
    /// The lead, or us reporting tool results (both providers put results on the user side).
    User,
    Model,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Speaker,
    pub blocks: Vec<Block>,
}

impl Turn {
    pub fn text(speaker: Speaker, text: impl Into<String>) -> Self {
        Self {
            speaker,
            blocks: vec![Block::Text(text.into())],
        }
    }
}

/// One request in a tool loop.
#[derive(Clone, Debug)]
pub struct AgentRequest {
    /// The turn's plain prompt: what a model without tools (the rules responder) answers.
    pub prompt: Prompt,
    pub system: String,
    /// Alternating user/model turns, starting with the user.
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    /// False on the loop's last step: the model must answer in text.
    pub allow_tools: bool,
}

/// One model response in a tool loop.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentReply {
    pub blocks: Vec<Block>,
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl AgentReply {
    pub fn text(&self) -> String {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    pub fn tool_calls(&self) -> Vec<&ToolCall> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::ToolCall(c) => Some(c),
                _ => None,
            })
            .collect()
    }
}

/// Provider-side conversation turns from the prompt's chat lines: consecutive lines of one
/// side joined, and a window that opens on our own line gets a user placeholder first (both
/// providers want the user to speak first).
pub fn turns_from_prompt(prompt: &Prompt) -> Vec<Turn> {
    use crate::ports::Role;
    let mut out: Vec<Turn> = Vec::new();
    for line in &prompt.lines {
        let speaker = match line.role {
            Role::Lead => Speaker::User,
            Role::Agent => Speaker::Model,
        };
        match out.last_mut() {
            Some(Turn { speaker: s, blocks }) if *s == speaker => {
                if let Some(Block::Text(t)) = blocks.last_mut() {
                    t.push('\n');
                    t.push_str(&line.text);
                }
            }
            _ => out.push(Turn::text(speaker, line.text.clone())),
        }
    }
    if out.first().is_some_and(|t| t.speaker == Speaker::Model) {
        out.insert(
            0,
            Turn::text(Speaker::User, "(earlier conversation omitted)"),
        );
    }
    if out.is_empty() {
        out.push(Turn::text(Speaker::User, "(no message)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{ChatLine, LeadId, Role};

    #[test]
    fn turns_alternate_and_start_with_the_user() {
        let prompt = Prompt {
            lead: LeadId::new("+1"),
            lines: vec![
                ChatLine {
                    role: Role::Agent,
                    text: "Hi! How many bedrooms?".into(),
                },
                ChatLine {
                    role: Role::Lead,
                    text: "2".into(),
                },
                ChatLine {
                    role: Role::Lead,
                    text: "and a dog".into(),
                },
            ],
            new_messages: 2,
            now: chrono::Utc::now(),
        };
        let turns = turns_from_prompt(&prompt);
        let speakers: Vec<_> = turns.iter().map(|t| t.speaker).collect();
        assert_eq!(speakers, vec![Speaker::User, Speaker::Model, Speaker::User]);
        assert_eq!(turns[2].blocks, vec![Block::Text("2\nand a dog".into())]);
    }
}
