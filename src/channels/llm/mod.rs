//! Chat model clients: Anthropic (the primary brain when a key is set), Gemini (the
//! fallback when `GOOGLE_API_KEY` is set), OpenAI (when `OPENAI_API_KEY` is set; after
//! Gemini unless `LLM_PROVIDERS` orders otherwise) and the built-in rules responder (always
//! last in the chain, so a lead never meets silence).
//!
//! Owns: each provider's wire format and the mapping of its failures onto
//! [`actors::ports::ModelError`]. Must not: retry or fall back (the LLM pool does).

pub mod anthropic;
pub mod exchange;
pub mod gemini;
pub mod openai;
pub mod rules;

/// What the agent is told about its job. Kept short: the conversation carries the rest.
pub fn system_prompt(office_name: &str) -> String {
    format!(
        "You are the leasing agent for {office_name}, answering prospective tenants by SMS. \
         Be warm, brief and concrete: plain text, no markdown, at most two short sentences \
         (under 300 characters), plain ASCII only (no emoji, em dashes or curly quotes: one such \
         character makes the carrier bill the SMS at less than half the length). Qualify the lead one question at a time: bedrooms, move-in \
         date, budget, housing voucher, pets. When they are qualified or ask to see a unit, \
         offer a tour. Never invent prices, availability or policies: say you will check \
         with the team. If several messages arrived together, answer them in one reply. If \
         the lead asks, in any words, to get no more texts from us, answer exactly {} and \
         nothing else.\n\n{}",
        actors::revocation::MODEL_OPT_OUT,
        actors::fair_housing::PROMPT_RULE
    )
}
