//! The rules responder's readers as the actors' [`MessageReader`]: what a lead's message
//! asks for besides an answer (a tour, a phone call), read on every turn whichever model
//! answers it.
//!
//! Owns: nothing but the mapping; the word lists are `intents.txt`'s. Must not: word a
//! reply (that is `compose`).

use actors::signals::{MessageReader, Signals};

use super::intents::{is_call_request, is_tour_request};

/// The word-list reader.
#[derive(Clone, Copy, Debug, Default)]
pub struct RulesReader;

impl MessageReader for RulesReader {
    fn read(&self, text: &str) -> Signals {
        Signals {
            tour_request: is_tour_request(text),
            call_request: is_call_request(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_to_be_called_is_read_and_refusing_a_call_is_not() {
        let call = |t| RulesReader.read(t).call_request;
        for t in [
            "can you call me?",
            "Call me please",
            "can someone phone me",
            "give me a call at 5",
            "I'd rather talk on the phone",
        ] {
            assert!(call(t), "{t}");
        }
        for t in [
            "please don't call me, text only",
            "what's the rent?",
            "do not call me",
            "I called my mom",
        ] {
            assert!(!call(t), "{t}");
        }
        assert!(RulesReader.read("can I tour it saturday?").tour_request);
        assert!(!RulesReader.read("can you call me?").tour_request);
    }
}
