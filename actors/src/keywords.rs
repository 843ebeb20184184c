//! Carrier keywords: which inbound texts opt a lead out, back in, or ask for help — and,
//! beyond the carrier's single words, consent revoked in plain language
//! ([`crate::revocation`]: the law reads any reasonable means as revocation).
//!
//! Owns: the carrier's keyword lists and the rule that they count only as a whole,
//! single-word message (REFERENCE.md, Twilio opt-out: Twilio itself blocks and confirms
//! these). Must not: decide what to do about them — the webhook records the opt-out, the
//! lead actor and the sender honour it.

/// What a single inbound text means to the carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// STOP and friends: no SMS may go to this lead until it opts back in.
    OptOut,
    /// START / YES / UNSTOP: opts back in. Only meaningful for a lead that had opted out;
    /// otherwise "yes" is an ordinary answer to a question.
    OptIn,
    /// HELP / INFO: the carrier answers these itself.
    Help,
    /// Consent revoked in other words ("please stop texting me", "alto", "stop please"):
    /// an opt-out as binding as STOP, which the carrier does not see as one.
    Revocation,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    "CANCEL",
];
const OPT_IN: &[&str] = &["START", "YES", "UNSTOP"];
const HELP: &[&str] = &["HELP", "INFO"];

/// Classifies a message body. Surrounding whitespace and trailing punctuation are ignored
/// ("Stop." opts out); a message of more words is a carrier keyword never, but may revoke
/// consent all the same ("stop texting me please": [`Keyword::Revocation`]).
pub fn classify(body: &str) -> Option<Keyword> {
    carrier_keyword(body)
        .or_else(|| crate::revocation::is_revocation(body).then_some(Keyword::Revocation))
}

fn carrier_keyword(body: &str) -> Option<Keyword> {
    let word = body
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_ascii_uppercase();
    if word.is_empty() || word.contains(char::is_whitespace) {
        return None;
    }
    if OPT_OUT.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_opt_out_word_opts_out_in_any_case() {
        for w in OPT_OUT {
            assert_eq!(classify(w), Some(Keyword::OptOut), "{w}");
            assert_eq!(
                classify(&format!("  {}. ", w.to_lowercase())),
                Some(Keyword::OptOut)
            );
        }
    }

    #[test]
    fn opt_in_and_help_words_are_recognised() {
        assert_eq!(classify("start"), Some(Keyword::OptIn));
        assert_eq!(classify("Yes!"), Some(Keyword::OptIn));
        assert_eq!(classify("HELP"), Some(Keyword::Help));
        assert_eq!(classify("info?"), Some(Keyword::Help));
    }

    #[test]
    fn a_keyword_inside_a_sentence_is_no_carrier_keyword_but_may_revoke() {
        assert_eq!(classify("please stop"), Some(Keyword::Revocation));
        assert_eq!(classify("stop texting me"), Some(Keyword::Revocation));
        assert_eq!(
            classify("STOP"),
            Some(Keyword::OptOut),
            "the carrier's word wins"
        );
        assert_eq!(classify("yes I want a tour"), None);
        assert_eq!(classify("stopping by tomorrow"), None);
        assert_eq!(classify("stop by tomorrow?"), None);
        assert_eq!(classify(""), None);
    }
}
