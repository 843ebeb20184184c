//! The keyless brain (`src/channels/llm/rules.rs`): any conversation — any text, any
//! history, any count of new messages, any instant — gets a reply without a panic, and the
//! reply fits one SMS budget (`actors::lead::MAX_SMS_CHARS`).
#![no_main]

use actors::ports::{ChatLine, LeadId, Prompt, Role};
use chrono::{DateTime, Utc};
use lead_agent::channels::llm::rules::RulesResponder;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    lines: Vec<(bool, String)>,
    new_messages: u8,
    /// Seconds from 2000 to about 2100: the instant the turn starts.
    now: u32,
}

fuzz_target!(|input: Input| {
    let lines: Vec<ChatLine> = input
        .lines
        .into_iter()
        .map(|(ours, text)| ChatLine {
            role: if ours { Role::Agent } else { Role::Lead },
            text,
        })
        .collect();
    let new_messages = usize::from(input.new_messages).min(lines.len());
    let now = DateTime::<Utc>::from_timestamp(946_684_800 + i64::from(input.now), 0)
        .expect("in range");
    let prompt = Prompt {
        lead: LeadId::new("+13125550100"),
        lines,
        new_messages,
        now,
    };
    let reply = RulesResponder::default().compose_reply(&prompt);
    assert!(!reply.trim().is_empty(), "a reply is never empty");
    assert!(reply.chars().count() <= actors::lead::MAX_SMS_CHARS);
});
