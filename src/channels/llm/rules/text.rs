//! Text helpers for the rules responder: words, clauses, whole-word phrase search, negation
//! and small counts.
//!
//! Owns: how a message is cut into lowercase words and clauses, and what a "phrase match"
//! and a "negated word" mean, so every reader of lead text agrees on them.
//! Must not: know about leases, tours or replies (that is `facts`, `tour` and `compose`).

use std::sync::LazyLock;

use super::phrases::Sections;

const DATA: &str = include_str!("text.txt");

struct Words {
    negations: Vec<&'static str>,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let mut sections = Sections::parse("text.txt", DATA);
    let words = Words {
        negations: sections.take("negations"),
    };
    sections.finish();
    words
});

/// Lowercase words. Apostrophes are dropped ("don't" -> "dont") so contractions compare as
/// one word; every other non-alphanumeric character separates words, so "2-bed" and
/// "Section-8" read like "2 bed" and "section 8".
pub(super) fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Words joined by single spaces and padded with one space each side, so a phrase search for
/// `" no pets "` can only match whole words.
pub(super) fn normalize_text(text: &str) -> String {
    format!(" {} ", split_words(text).join(" "))
}

pub(super) fn contains_phrase(normalized: &str, phrase: &str) -> bool {
    normalized.contains(&format!(" {phrase} "))
}

pub(super) fn contains_any_phrase(normalized: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(normalized, p))
}

/// Words per clause. Negation and "now" are judged inside one clause so that
/// "No. I have a dog" is not read as "no dog".
pub(super) fn split_clauses(text: &str) -> Vec<Vec<String>> {
    text.split(['.', ',', '!', '?', ';', '\n'])
        .map(split_words)
        .filter(|c| !c.is_empty())
        .collect()
}

/// True when `word` is a negation ("no", "dont", ...).
pub(super) fn is_negation(word: &str) -> bool {
    WORDS.negations.contains(&word)
}

/// True when one of the three words before `index` negates it ("I don't have a dog"), or
/// the word after is "none" ("pets: none").
pub(super) fn is_negated(words: &[String], index: usize) -> bool {
    let before = &words[index.saturating_sub(3)..index];
    before.iter().any(|w| is_negation(w)) || words.get(index + 1).is_some_and(|w| w == "none")
}

pub(super) fn parse_small_count(word: &str) -> Option<u8> {
    match word {
        "1" | "one" => Some(1),
        "2" | "two" => Some(2),
        "3" | "three" => Some(3),
        "4" | "four" => Some(4),
        "5" | "five" => Some(5),
        "6" | "six" => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_lists_parse() {
        super::super::phrases::assert_plain_phrases("text.txt", DATA);
        assert!(is_negation("dont") && is_negation("zero") && !is_negation("now"));
    }
}
