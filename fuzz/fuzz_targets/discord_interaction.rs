//! The parsing of a (verified) Discord interaction body (`parse_interaction` in
//! `src/http/discord.rs`): any bytes give an interaction or a 400 reason, never a panic;
//! and the clicker's name it keeps is bounded.
#![no_main]

use lead_agent::http::discord::{Interaction, parse_interaction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match parse_interaction(body) {
        Ok(Interaction::Button { by, .. })
        | Ok(Interaction::EditSubmit { by, .. })
        | Ok(Interaction::DocReview { by, .. })
        | Ok(Interaction::Takeover { by, .. })
        | Ok(Interaction::TakeoverReply { by, .. }) => {
            assert!(by.chars().count() <= 64);
        }
        Ok(Interaction::Ping) | Err(_) => {}
    }
});
