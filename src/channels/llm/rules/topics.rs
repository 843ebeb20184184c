//! What we asked: the qualifying topics, their order, and which topic one of our own lines
//! (ours or the LLM's before it failed over) asked about.
//!
//! Owns: [`Topic`], the qualifying order, the recognition of a question's topic and of a
//! tour booking, with the word lists in `topics.txt`. Must not: read the lead's lines
//! (`facts`, `intents`) or word a question (`compose` owns the wording).

use std::sync::LazyLock;

use super::facts::Facts;
use super::phrases::Sections;
use super::text::{contains_any_phrase, normalize_text};

const DATA: &str = include_str!("topics.txt");

struct Words {
    bedrooms: Vec<&'static str>,
    move_in: Vec<&'static str>,
    budget: Vec<&'static str>,
    voucher: Vec<&'static str>,
    pets: Vec<&'static str>,
    tour: Vec<&'static str>,
    booking_confirmations: Vec<&'static str>,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let mut s = Sections::parse("topics.txt", DATA);
    let words = Words {
        bedrooms: s.take("asked: bedrooms"),
        move_in: s.take("asked: move-in"),
        budget: s.take("asked: budget"),
        voucher: s.take("asked: voucher"),
        pets: s.take("asked: pets"),
        tour: s.take("asked: tour"),
        booking_confirmations: s.take("booking confirmations"),
    };
    s.finish();
    words
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Topic {
    Bedrooms,
    MoveIn,
    Budget,
    Voucher,
    Pets,
    Tour,
}

/// The order a leasing agent qualifies in: which unit, when, how much, how it is paid, pets.
pub(super) const QUALIFYING_ORDER: [Topic; 5] = [
    Topic::Bedrooms,
    Topic::MoveIn,
    Topic::Budget,
    Topic::Voucher,
    Topic::Pets,
];

impl Facts {
    pub(super) fn knows(&self, topic: Topic) -> bool {
        match topic {
            Topic::Bedrooms => self.bedrooms.is_some(),
            Topic::MoveIn => self.move_in.is_some(),
            Topic::Budget => self.budget.is_some(),
            Topic::Voucher => self.voucher.is_some(),
            Topic::Pets => self.pets.is_some(),
            Topic::Tour => false,
        }
    }
}

/// Words that place a question on a topic.
fn topic_phrases(topic: Topic) -> &'static [&'static str] {
    let words = &*WORDS;
    match topic {
        Topic::Bedrooms => &words.bedrooms,
        Topic::MoveIn => &words.move_in,
        Topic::Budget => &words.budget,
        Topic::Voucher => &words.voucher,
        Topic::Pets => &words.pets,
        Topic::Tour => &words.tour,
    }
}

/// The sentences of `text` that end in a question mark.
fn question_sentences(text: &str) -> Vec<&str> {
    let mut questions = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?' | '\n') {
            if c == '?' {
                questions.push(&text[start..i]);
            }
            start = i + c.len_utf8();
        }
    }
    questions
}

/// Which question one of our lines asked. The last question sentence counts (a greeting may
/// come first); a tour offer names its slots after the word "tour", so tours are judged on
/// the whole line once no qualifying question is found.
pub(super) fn detect_asked_topic(agent_text: &str) -> Option<Topic> {
    let questions = question_sentences(agent_text);
    for question in questions.iter().rev() {
        let normalized = normalize_text(question);
        if let Some(topic) = QUALIFYING_ORDER
            .into_iter()
            .find(|&t| contains_any_phrase(&normalized, topic_phrases(t)))
        {
            return Some(topic);
        }
    }
    (!questions.is_empty()
        && contains_any_phrase(&normalize_text(agent_text), topic_phrases(Topic::Tour)))
    .then_some(Topic::Tour)
}

pub(super) fn is_booking_confirmation(agent_text: &str) -> bool {
    contains_any_phrase(&normalize_text(agent_text), &WORDS.booking_confirmations)
}

#[cfg(test)]
mod tests {
    use super::super::compose::question_for;
    use super::super::fixtures::{HOLDING, check_table};
    use super::*;

    #[test]
    fn the_word_lists_parse() {
        super::super::phrases::assert_plain_phrases("topics.txt", DATA);
        LazyLock::force(&WORDS);
    }

    #[test]
    fn our_questions_are_recognised_by_topic_even_in_llm_wording() {
        for topic in QUALIFYING_ORDER {
            assert_eq!(
                detect_asked_topic(question_for(topic)),
                Some(topic),
                "{topic:?}"
            );
        }
        check_table(
            detect_asked_topic,
            &[
                (
                    "Great! And when would you like to move in?",
                    Some(Topic::MoveIn),
                ),
                (
                    "Thanks for reaching out. Are you working with a Section 8 voucher?",
                    Some(Topic::Voucher),
                ),
                ("Got it - 2 bedrooms.", None),
                (HOLDING, None),
            ],
        );
    }
}
