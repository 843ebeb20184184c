//! The per-reply sanity check: what a model's answer must not be before it may reach a
//! lead — empty, longer than one SMS can carry, an echo of the system prompt, or a
//! template placeholder left unfilled. Each finding is a `SANITY_CHECK` alert (raised by
//! the turn); a reply that is [`ReplyCheck::refuses`] is not sent at all, so the lead's
//! messages stay unanswered and the response-gap watch re-drives them.
//!
//! Owns: the rules (pure). Must not: reword a reply, or refuse one on a guess — each
//! pattern below is something no answer to a tenant contains.

use super::MAX_SMS_CHARS;

/// Phrases of the brain's system prompt and tool names (actors/src/brain/): a reply that
/// carries one is the model repeating its instructions.
const PROMPT_ECHOES: [&str; 8] = [
    "you are the leasing agent for the buildings listed below",
    "qualify the lead one question at a time",
    "record_requirements",
    "schedule_tour",
    "suggest_crm_stage",
    "mark_dead_lead",
    "escalate_to_human",
    "what we know about this lead:",
];

/// Unfilled template slots (compared lower-case).
const PLACEHOLDERS: [&str; 10] = [
    "{{",
    "}}",
    "[name]",
    "[lead name]",
    "[your name]",
    "[first name]",
    "[insert",
    "<insert",
    "lorem ipsum",
    "[placeholder]",
];

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyProblem {
    Empty,
    /// Longer than one SMS (`MAX_SMS_CHARS`): cut before sending.
    OverLength {
        chars: usize,
    },
    EchoesPrompt(&'static str),
    Placeholder(&'static str),
}

impl ReplyProblem {
    /// The alert's event name.
    pub fn event(&self) -> &'static str {
        match self {
            ReplyProblem::Empty => "reply_empty",
            ReplyProblem::OverLength { .. } => "reply_over_length",
            ReplyProblem::EchoesPrompt(_) => "reply_echoes_prompt",
            ReplyProblem::Placeholder(_) => "reply_placeholder",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ReplyProblem::Empty => "the reply is empty".into(),
            ReplyProblem::OverLength { chars } => {
                format!("the reply is {chars} characters, cut to {MAX_SMS_CHARS}")
            }
            ReplyProblem::EchoesPrompt(p) => format!("the reply repeats the prompt ({p:?})"),
            ReplyProblem::Placeholder(p) => {
                format!("the reply has an unfilled placeholder ({p:?})")
            }
        }
    }
}

/// Every problem of one raw reply (before the SMS cut).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyCheck {
    pub problems: Vec<ReplyProblem>,
}

impl ReplyCheck {
    /// True when the reply must not be sent: anything but a length to cut.
    pub fn refuses(&self) -> bool {
        self.problems
            .iter()
            .any(|p| !matches!(p, ReplyProblem::OverLength { .. }))
    }
}

pub fn check_reply(raw: &str) -> ReplyCheck {
    let text = raw.trim();
    let mut problems = Vec::new();
    if text.is_empty() {
        problems.push(ReplyProblem::Empty);
        return ReplyCheck { problems };
    }
    let chars = text.chars().count();
    if chars > MAX_SMS_CHARS {
        problems.push(ReplyProblem::OverLength { chars });
    }
    let lower = text.to_lowercase();
    if let Some(p) = PROMPT_ECHOES.iter().find(|p| lower.contains(*p)) {
        problems.push(ReplyProblem::EchoesPrompt(p));
    }
    if let Some(p) = PLACEHOLDERS.iter().find(|p| lower.contains(*p)) {
        problems.push(ReplyProblem::Placeholder(p));
    }
    ReplyCheck { problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ordinary_reply_passes() {
        for reply in [
            "Hi! Yes, the 2BR at Maple Court is available now at $1,600/mo. When are you hoping to move in?",
            "Sure - I can set up a tour (the team confirms). Does Saturday at 11 work?",
            "Cats and dogs under 40 lb are welcome at Lakeview Lofts [pet rent $35].",
        ] {
            assert_eq!(check_reply(reply), ReplyCheck::default(), "{reply}");
        }
    }

    #[test]
    fn empty_echoed_or_templated_replies_are_refused_and_a_long_one_only_cut() {
        assert_eq!(check_reply("  \n").problems, vec![ReplyProblem::Empty]);
        assert!(check_reply("").refuses());

        let long = "a".repeat(MAX_SMS_CHARS + 5);
        let c = check_reply(&long);
        assert_eq!(
            c.problems,
            vec![ReplyProblem::OverLength {
                chars: MAX_SMS_CHARS + 5
            }]
        );
        assert!(!c.refuses());

        let echo = check_reply("Sure! I'll call schedule_tour for Maple now.");
        assert_eq!(
            echo.problems,
            vec![ReplyProblem::EchoesPrompt("schedule_tour")]
        );
        assert!(echo.refuses());
        assert!(
            check_reply("You are the leasing agent for the buildings listed below, answering…")
                .refuses()
        );

        let templ = check_reply("Hi {{first_name}}, thanks for reaching out!");
        assert_eq!(templ.problems, vec![ReplyProblem::Placeholder("{{")]);
        assert!(templ.refuses());
        assert!(check_reply("Thanks [Name], we'll be in touch").refuses());
    }
}
