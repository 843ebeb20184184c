//! Reading the conversation: which lines are new, what each lead line means against the
//! question we had just asked, and what we have asked so far.
//!
//! Owns: [`Conversation`], everything the composer knows about the chat, and the rules for
//! what to ask next (never the question just asked, never one asked twice). Must not: word
//! anything (`compose`) or read the clock: it sees only the prompt's lines.

use actors::ports::{ChatLine, Prompt, Role};

use super::facts::{
    Bedrooms, Facts, extract_bare_count, extract_bedrooms, extract_budget, extract_move_in,
    extract_pets, extract_voucher, extract_yes_no,
};
use super::text::{contains_any_phrase, normalize_text};
use super::topics::{QUALIFYING_ORDER, Topic, detect_asked_topic, is_booking_confirmation};

/// Words that make a date in a tour pick a move-in date after all: three words, kept here.
const MOVE_WORDS: &[&str] = &["move", "moving", "movein"];

/// Facts from one lead line. `asked` is our question the line answers, which gives a bare
/// "2", "yes" or "no" its meaning.
fn read_lead_line(text: &str, asked: Option<Topic>) -> Facts {
    let mut facts = Facts {
        bedrooms: extract_bedrooms(text),
        move_in: extract_move_in(text),
        budget: extract_budget(text),
        voucher: extract_voucher(text),
        pets: extract_pets(text),
    };
    // A lead picking a tour slot ("Dec 3 works") is not telling us a move-in date.
    if asked == Some(Topic::Tour) && !contains_any_phrase(&normalize_text(text), MOVE_WORDS) {
        facts.move_in = None;
    }
    match asked {
        Some(Topic::Bedrooms) if facts.bedrooms.is_none() => {
            facts.bedrooms = extract_bare_count(text).map(Bedrooms::Count);
        }
        Some(Topic::Voucher) if facts.voucher.is_none() => facts.voucher = extract_yes_no(text),
        Some(Topic::Pets) if facts.pets.is_none() => facts.pets = extract_yes_no(text),
        _ => {}
    }
    facts
}

/// Everything the lead said in `lines`, read in order so each line is understood against the
/// question we had asked just before it.
fn gather_facts(lines: &[ChatLine], mut asked: Option<Topic>) -> Facts {
    let mut facts = Facts::default();
    for line in lines {
        match line.role {
            Role::Agent => asked = detect_asked_topic(&line.text),
            Role::Lead => facts.merge(read_lead_line(&line.text, asked)),
        }
    }
    facts
}

/// Index of the first new line. A prompt that counted no new messages still gets its trailing
/// lead lines answered: replying to nothing would be the one useless answer.
fn find_new_lines_start(prompt: &Prompt) -> usize {
    let lines = &prompt.lines;
    let count = prompt.new_messages.min(lines.len());
    if count > 0 {
        return lines.len() - count;
    }
    lines
        .iter()
        .rposition(|l| l.role == Role::Agent)
        .map_or(0, |i| i + 1)
}

pub(super) struct Conversation<'a> {
    /// The new, unanswered lead messages this reply answers.
    pub(super) new_messages: Vec<&'a str>,
    /// All the lead has told us, history and new messages.
    pub(super) facts: Facts,
    /// What the new messages alone told us: what the reply acknowledges.
    pub(super) new_facts: Facts,
    pub(super) first_contact: bool,
    /// The question our last line asked, if it asked one.
    pub(super) last_asked: Option<Topic>,
    /// Our earlier lines, oldest first.
    pub(super) agent_lines: Vec<&'a str>,
    pub(super) tour_booked: bool,
}

impl Conversation<'_> {
    fn times_asked(&self, topic: Topic) -> usize {
        self.agent_lines
            .iter()
            .filter(|l| detect_asked_topic(l) == Some(topic))
            .count()
    }

    /// The next qualifying question: never the one we just asked (the lead chose not to
    /// answer it) and never one asked twice already (we would be nagging).
    pub(super) fn find_next_question(&self) -> Option<Topic> {
        QUALIFYING_ORDER.into_iter().find(|&topic| {
            !self.facts.knows(topic)
                && self.last_asked != Some(topic)
                && self.times_asked(topic) < 2
        })
    }

    pub(super) fn may_offer_tour(&self) -> bool {
        !self.tour_booked
            && self.last_asked != Some(Topic::Tour)
            && self.times_asked(Topic::Tour) < 2
    }
}

pub(super) fn read_conversation(prompt: &Prompt) -> Conversation<'_> {
    let start = find_new_lines_start(prompt);
    let (history, new) = prompt.lines.split_at(start);
    let agent_lines: Vec<&str> = history
        .iter()
        .filter(|l| l.role == Role::Agent)
        .map(|l| l.text.as_str())
        .collect();
    let last_asked = agent_lines.last().and_then(|l| detect_asked_topic(l));
    Conversation {
        new_messages: new
            .iter()
            .filter(|l| l.role == Role::Lead)
            .map(|l| l.text.as_str())
            .collect(),
        facts: gather_facts(&prompt.lines, None),
        new_facts: gather_facts(new, last_asked),
        first_contact: prompt.lines.iter().all(|l| l.role != Role::Agent),
        last_asked,
        tour_booked: agent_lines.iter().any(|l| is_booking_confirmation(l)),
        agent_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::super::compose::question_for;
    use super::super::facts::MoveIn;
    use super::super::fixtures::{OFFER, agent, lead};
    use super::*;

    #[test]
    fn a_date_in_a_tour_pick_is_not_taken_as_a_move_in_date() {
        assert_eq!(
            gather_facts(&[agent(OFFER), lead("Dec 3 at 11 works")], None).move_in,
            None
        );
        assert_eq!(
            gather_facts(&[lead("Dec 3")], None).move_in,
            Some(MoveIn::Day { month: 12, day: 3 })
        );
    }

    #[test]
    fn a_later_answer_replaces_an_earlier_one() {
        let lines = [
            lead("2 bed"),
            agent(question_for(Topic::MoveIn)),
            lead("actually 3 bedrooms, in March"),
        ];
        let facts = gather_facts(&lines, None);
        assert_eq!(facts.bedrooms, Some(Bedrooms::Count(3)));
        assert_eq!(facts.move_in, Some(MoveIn::Month(3)));
    }
}
