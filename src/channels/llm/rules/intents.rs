//! What the lead's new messages ask for: a close (wrong number, not interested), a tour,
//! or answers only the team has (parking, price, ...).
//!
//! Owns: [`Closing`], the tour-request and call-request tests, what counts as a question and the labels of
//! the questions we hold for the team, with the word lists in `intents.txt`. Must not: read
//! qualification facts (`facts`) or word the reply (`compose` turns labels into a sentence).

use std::sync::LazyLock;

use super::phrases::Sections;
use super::text::{contains_any_phrase, normalize_text, split_words};

const DATA: &str = include_str!("intents.txt");

struct Words {
    wrong_number: Vec<&'static str>,
    not_interested: Vec<&'static str>,
    moved_on: Vec<&'static str>,
    tour_request: Vec<&'static str>,
    call_request: Vec<&'static str>,
    call_refusal: Vec<&'static str>,
    inquiry_starts: Vec<&'static str>,
    question_topics: Vec<(&'static str, Vec<&'static str>)>,
    weak_availability: Vec<&'static str>,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let mut s = Sections::parse("intents.txt", DATA);
    let words = Words {
        wrong_number: s.take("wrong number"),
        not_interested: s.take("not interested"),
        moved_on: s.take("moved on"),
        tour_request: s.take("tour request"),
        call_request: s.take("call request"),
        call_refusal: s.take("call refusal"),
        inquiry_starts: s.take("inquiry starts"),
        question_topics: s.take_prefixed("question: "),
        weak_availability: s.take("weak availability"),
    };
    s.finish();
    words
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    WrongNumber,
    NotInterested,
}

/// "not interested" closes, "not interested in a studio" qualifies.
fn mentions_unqualified(normalized: &str, phrase: &str) -> bool {
    let needle = format!(" {phrase} ");
    normalized.match_indices(&needle).any(|(i, _)| {
        let next = normalized[i + needle.len()..]
            .split(' ')
            .next()
            .unwrap_or("");
        !matches!(next, "in" | "for" | "to" | "at" | "into")
    })
}

pub(super) fn detect_closing(text: &str) -> Option<Closing> {
    let normalized = normalize_text(text);
    if contains_any_phrase(&normalized, &WORDS.wrong_number) {
        return Some(Closing::WrongNumber);
    }
    let not_interested = WORDS
        .not_interested
        .iter()
        .any(|p| mentions_unqualified(&normalized, p));
    let moved_on = contains_any_phrase(&normalized, &WORDS.moved_on);
    (not_interested || moved_on).then_some(Closing::NotInterested)
}

pub(super) fn is_tour_request(text: &str) -> bool {
    contains_any_phrase(&normalize_text(text), &WORDS.tour_request)
}

/// "can you call me?", "give me a call" — and not "please don't call me".
pub(super) fn is_call_request(text: &str) -> bool {
    let normalized = normalize_text(text);
    contains_any_phrase(&normalized, &WORDS.call_request)
        && !contains_any_phrase(&normalized, &WORDS.call_refusal)
}

/// The labels of the questions in `text` that only the team can answer, in the order of
/// `intents.txt`.
pub(super) fn find_question_labels(text: &str) -> Vec<&'static str> {
    let normalized = normalize_text(text);
    let mut labels: Vec<&'static str> = WORDS
        .question_topics
        .iter()
        .filter(|(_, phrases)| contains_any_phrase(&normalized, phrases))
        .map(|(label, _)| *label)
        .collect();
    if labels.is_empty() && contains_any_phrase(&normalized, &WORDS.weak_availability) {
        labels.push("availability");
    }
    labels
}

/// A question by its mark, its first word, or a one- or two-word topic ("price", "parking?").
pub(super) fn is_question(text: &str) -> bool {
    let words = split_words(text);
    text.contains('?')
        || words
            .first()
            .is_some_and(|w| WORDS.inquiry_starts.contains(&w.as_str()))
        || (words.len() <= 2 && !find_question_labels(text).is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_lists_parse() {
        super::super::phrases::assert_plain_phrases("intents.txt", DATA);
        LazyLock::force(&WORDS);
        let labels: Vec<&str> = WORDS.question_topics.iter().map(|(l, _)| *l).collect();
        assert_eq!(
            labels,
            [
                "availability",
                "price",
                "parking",
                "utilities",
                "your application",
                "deposits and fees",
                "laundry",
                "the pet policy",
                "vouchers",
                "the location",
                "the lease",
            ],
            "the labels the holding reply names, in the order it names them"
        );
    }
}
