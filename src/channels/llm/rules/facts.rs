//! What the lead told us: bedrooms, move-in, budget, voucher and pets, read from one
//! message's words.
//!
//! Owns: the [`Facts`] of a qualification and each extractor that fills one of them, with
//! the word lists in `facts.txt`. Must not: look at the conversation around a message (which
//! question it answers is `conversation`'s job) or word anything for the lead (`compose`).

use std::sync::LazyLock;

use super::dates::{parse_day_of_month, parse_month};
use super::phrases::Sections;
use super::text::{
    contains_any_phrase, is_negated, is_negation, normalize_text, parse_small_count, split_clauses,
    split_words,
};

const DATA: &str = include_str!("facts.txt");

struct Words {
    studio: Vec<&'static str>,
    bedroom_units: Vec<&'static str>,
    may_cues: Vec<&'static str>,
    asap: Vec<&'static str>,
    this_month: Vec<&'static str>,
    next_month: Vec<&'static str>,
    soon: Vec<&'static str>,
    flexible: Vec<&'static str>,
    budget_cues: Vec<&'static str>,
    per_month_cues: Vec<&'static str>,
    not_money_cues: Vec<&'static str>,
    voucher: Vec<&'static str>,
    pets: Vec<&'static str>,
    yes: Vec<&'static str>,
    no: Vec<&'static str>,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let mut s = Sections::parse("facts.txt", DATA);
    let words = Words {
        studio: s.take("studio words"),
        bedroom_units: s.take("bedroom units"),
        may_cues: s.take("may cues"),
        asap: s.take("move-in asap"),
        this_month: s.take("move-in this month"),
        next_month: s.take("move-in next month"),
        soon: s.take("move-in soon"),
        flexible: s.take("move-in flexible"),
        budget_cues: s.take("budget cues"),
        per_month_cues: s.take("per-month cues"),
        not_money_cues: s.take("not-money cues"),
        voucher: s.take("voucher words"),
        pets: s.take("pet words"),
        yes: s.take("yes words"),
        no: s.take("no words"),
    };
    s.finish();
    words
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bedrooms {
    Studio,
    Count(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MoveIn {
    Asap,
    Soon,
    ThisMonth,
    NextMonth,
    Flexible,
    Month(u32),
    Day { month: u32, day: u32 },
}

/// The qualification so far. `None` means the lead has not said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Facts {
    pub(super) bedrooms: Option<Bedrooms>,
    pub(super) move_in: Option<MoveIn>,
    pub(super) budget: Option<u32>,
    pub(super) voucher: Option<bool>,
    pub(super) pets: Option<bool>,
}

impl Facts {
    /// Later statements win: a lead who said "2 bed" and then "actually 3" wants 3.
    pub(super) fn merge(&mut self, later: Facts) {
        self.bedrooms = later.bedrooms.or(self.bedrooms);
        self.move_in = later.move_in.or(self.move_in);
        self.budget = later.budget.or(self.budget);
        self.voucher = later.voucher.or(self.voucher);
        self.pets = later.pets.or(self.pets);
    }

    pub(super) fn is_empty(&self) -> bool {
        *self == Facts::default()
    }
}

/// True for a word that names bedrooms after a count ("bed", "br", ...).
pub(super) fn is_bedroom_unit(word: &str) -> bool {
    WORDS.bedroom_units.contains(&word)
}

/// "studio", "1br", "2 bed", "two bedroom", "3bd", "2-bedroom". A mention after a negation
/// in the same clause is what the lead does not want ("not interested in a studio").
pub(super) fn extract_bedrooms(text: &str) -> Option<Bedrooms> {
    split_clauses(text).iter().find_map(|clause| {
        (0..clause.len())
            .filter(|&i| !clause[..i].iter().any(|w| is_negation(w)))
            .find_map(|i| read_bedrooms_at(clause, i))
    })
}

fn read_bedrooms_at(words: &[String], i: usize) -> Option<Bedrooms> {
    let word = words[i].as_str();
    if WORDS.studio.contains(&word) {
        return Some(Bedrooms::Studio);
    }
    // "2br", "3bd": the count glued to the unit.
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    if digits_end > 0 && is_bedroom_unit(&word[digits_end..]) {
        return parse_small_count(&word[..digits_end]).map(Bedrooms::Count);
    }
    let unit_follows = words.get(i + 1).is_some_and(|unit| is_bedroom_unit(unit));
    parse_small_count(word)
        .filter(|_| unit_follows)
        .map(Bedrooms::Count)
}

/// A lone "2" or "two" counts as bedrooms only as the answer to our bedrooms question.
pub(super) fn extract_bare_count(text: &str) -> Option<u8> {
    let words = split_words(text);
    match words.as_slice() {
        [only] => parse_small_count(only),
        [first, _] | [_, first] if parse_small_count(first).is_some() => parse_small_count(first),
        _ => None,
    }
}

/// "asap", "now", "immediately", "this month", "next month", "March", "Dec 1", "12/1".
pub(super) fn extract_move_in(text: &str) -> Option<MoveIn> {
    let normalized = normalize_text(text);
    if contains_any_phrase(&normalized, &WORDS.asap) {
        return Some(MoveIn::Asap);
    }
    // "now" is everywhere ("I'm now looking..."); it means a date only as the last word of a
    // clause: "I need it now", "now!".
    if split_clauses(text)
        .iter()
        .any(|clause| clause.last().is_some_and(|w| w == "now"))
    {
        return Some(MoveIn::Asap);
    }
    if let Some(date) = find_slash_date(text) {
        return Some(date);
    }
    if let Some(month) = find_month_mention(&split_words(text)) {
        return Some(month);
    }
    if contains_any_phrase(&normalized, &WORDS.this_month) {
        return Some(MoveIn::ThisMonth);
    }
    if contains_any_phrase(&normalized, &WORDS.next_month) {
        return Some(MoveIn::NextMonth);
    }
    if contains_any_phrase(&normalized, &WORDS.soon) {
        return Some(MoveIn::Soon);
    }
    if contains_any_phrase(&normalized, &WORDS.flexible) {
        return Some(MoveIn::Flexible);
    }
    None
}

/// "12/1", "12/01", "12/1/25". Anything else with a slash ("1200/mo", "24/7") is not a date.
fn find_slash_date(text: &str) -> Option<MoveIn> {
    text.split_whitespace().find_map(|raw| {
        let token = raw.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '/');
        let parts: Vec<&str> = token.split('/').collect();
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        if parts.len() == 3 && !matches!(parts[2].len(), 2 | 4) {
            return None;
        }
        let month: u32 = parts[0].parse().ok().filter(|m| (1..=12).contains(m))?;
        let day = parse_day_of_month(parts[1])?;
        Some(MoveIn::Day { month, day })
    })
}

/// "March", "march 1st", "the 1st of March", "in May".
fn find_month_mention(words: &[String]) -> Option<MoveIn> {
    for (i, word) in words.iter().enumerate() {
        let next_day = words.get(i + 1).and_then(|w| parse_day_of_month(w));
        let month = match parse_month(word) {
            Some(m) => m,
            None if word == "may"
                && (next_day.is_some()
                    || i.checked_sub(1)
                        .is_some_and(|p| WORDS.may_cues.contains(&words[p].as_str()))) =>
            {
                5
            }
            None => continue,
        };
        let day_before = i
            .checked_sub(2)
            .filter(|&p| words[p + 1] == "of")
            .and_then(|p| parse_day_of_month(&words[p]));
        return Some(match next_day.or(day_before) {
            Some(day) => MoveIn::Day { month, day },
            None => MoveIn::Month(month),
        });
    }
    None
}

/// "$1200", "$1,200", "1200/mo", "1.2k", "under 1500", "budget is 1100", "1000-1200" (the top
/// of a range is the ceiling). A bare number is rent only in a very short message ("1200")
/// or with a cue, so "2 bed" and "12/1" are never read as money.
pub(super) fn extract_budget(text: &str) -> Option<u32> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let short_message = words.len() <= 3;
    let mut best: Option<u32> = None;
    for (i, raw) in words.iter().enumerate() {
        let word = raw.trim_matches(|c: char| {
            matches!(
                c,
                '(' | ')' | ',' | '.' | '!' | '?' | ';' | ':' | '"' | '~' | '<' | '*'
            )
        });
        let previous: Vec<String> = words[i.saturating_sub(3)..i]
            .iter()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
            .collect();
        let last_previous = previous.last().map(String::as_str).unwrap_or("");
        if WORDS.not_money_cues.contains(&last_previous) || word.starts_with('#') {
            continue;
        }
        // "March 2026" is a year; in "march, 1400" the number is still rent.
        let after_month = parse_month(last_previous).is_some();
        let cued = raw.starts_with('<')
            || raw.starts_with('~')
            || previous
                .iter()
                .any(|w| WORDS.budget_cues.contains(&w.as_str()))
            || words.get(i + 1).is_some_and(|next| {
                WORDS
                    .per_month_cues
                    .contains(&next.trim_end_matches(|c: char| !c.is_alphanumeric()))
            });
        let pieces: Vec<&str> = word.split('-').collect();
        if pieces.len() > 2 {
            continue;
        }
        // "1000-1200" is how people quote rent; a phone number has more dashes.
        let is_range = pieces.len() == 2 && pieces.iter().all(|p| parse_amount(p).is_some());
        let cued = cued || is_range;
        for piece in pieces {
            let Some((amount, explicit)) = parse_amount(piece) else {
                continue;
            };
            let looks_like_year = (1990..=2039).contains(&amount);
            if looks_like_year && after_month {
                continue;
            }
            let accepted = (300..=10_000).contains(&amount)
                && (explicit || cued || (short_message && !looks_like_year));
            if accepted {
                best = Some(best.map_or(amount, |b| b.max(amount)));
            }
        }
    }
    best
}

/// Parses "$1,200", "1200/mo", "1.2k", "1500". Returns the whole-dollar amount and whether
/// the token itself says it is money ("$", "k" or a per-month suffix).
fn parse_amount(token: &str) -> Option<(u32, bool)> {
    let (body, dollar) = match token.strip_prefix('$') {
        Some(rest) => (rest, true),
        None => (token, false),
    };
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
        .unwrap_or(body.len());
    let (number, mut suffix) = body.split_at(number_end);
    let number = number.trim_end_matches(['.', ',']);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let thousands = suffix.starts_with('k');
    if thousands {
        suffix = &suffix[1..];
    }
    let per_month = matches!(suffix, "/mo" | "/month" | "/m" | "/mth" | "mo" | "/mon");
    if !suffix.is_empty() && !per_month {
        return None;
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u32 = whole.replace(',', "").parse().ok()?;
    let amount = if thousands {
        // "1.25k": only the first two decimals matter for rent.
        let cents: u32 = format!("{fraction:0<2}")
            .get(..2)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        whole.checked_mul(1000)?.checked_add(cents * 10)?
    } else {
        whole
    };
    Some((amount, dollar || thousands || per_month))
}

/// Finds a mention of `keyword` in each clause and reports whether it was negated.
/// The first mention decides: "no voucher, but my sister has one" is still no voucher.
fn find_flagged_mention(text: &str, is_keyword: impl Fn(&[String], usize) -> bool) -> Option<bool> {
    split_clauses(text).iter().find_map(|clause| {
        (0..clause.len())
            .find(|&i| is_keyword(clause, i))
            .map(|i| !is_negated(clause, i))
    })
}

/// "section 8", "voucher", "HCV", "CHA", "housing choice"; "no voucher" is an answer too.
pub(super) fn extract_voucher(text: &str) -> Option<bool> {
    find_flagged_mention(text, |words, i| {
        let next = words.get(i + 1).map(String::as_str);
        match words[i].as_str() {
            word if WORDS.voucher.contains(&word) => true,
            "section" | "sec" => matches!(next, Some("8" | "eight")),
            "housing" => matches!(next, Some("choice" | "authority" | "assistance")),
            _ => false,
        }
    })
}

/// "dog", "cat", "pets"; "no pets" and "I don't have a dog" are answers too.
pub(super) fn extract_pets(text: &str) -> Option<bool> {
    find_flagged_mention(text, |words, i| WORDS.pets.contains(&words[i].as_str()))
}

/// A yes or no at the start of a reply, for yes/no questions (voucher, pets).
pub(super) fn extract_yes_no(text: &str) -> Option<bool> {
    let words = split_words(text);
    match words.first().map(String::as_str)? {
        word if WORDS.yes.contains(&word) => Some(true),
        word if WORDS.no.contains(&word) => Some(false),
        "i" if words.get(1).is_some_and(|w| w == "dont") => Some(false),
        "i" if words.get(1).is_some_and(|w| w == "do") => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::check_table;
    use super::*;

    #[test]
    fn the_word_lists_parse() {
        super::super::phrases::assert_plain_phrases("facts.txt", DATA);
        LazyLock::force(&WORDS);
    }

    #[test]
    fn bedrooms_are_read_from_the_common_spellings() {
        check_table(
            extract_bedrooms,
            &[
                ("looking for a studio", Some(Bedrooms::Studio)),
                ("need a 1br", Some(Bedrooms::Count(1))),
                ("2 bed 1 bath", Some(Bedrooms::Count(2))),
                ("Two Bedroom please", Some(Bedrooms::Count(2))),
                ("any 3bd?", Some(Bedrooms::Count(3))),
                ("a 2-bedroom", Some(Bedrooms::Count(2))),
                ("is the 2BR free?", Some(Bedrooms::Count(2))),
            ],
        );
    }

    #[test]
    fn bedrooms_are_not_read_from_unrelated_numbers() {
        check_table(
            extract_bedrooms,
            &[
                ("2 baths and parking", None),
                ("budget is $1200", None),
                ("I need a bed frame", None),
                ("not a studio", None),
                (
                    "not interested in a studio, need 2 bedrooms",
                    Some(Bedrooms::Count(2)),
                ),
            ],
        );
    }

    #[test]
    fn a_bare_count_is_a_number_alone_or_with_one_word() {
        check_table(
            extract_bare_count,
            &[
                ("2", Some(2)),
                ("two please", Some(2)),
                ("just 1", Some(1)),
                ("2 or 3 maybe", None),
                ("hello", None),
            ],
        );
    }

    #[test]
    fn move_in_is_read_from_urgent_words() {
        check_table(
            extract_move_in,
            &[
                ("need it asap", Some(MoveIn::Asap)),
                ("Immediately", Some(MoveIn::Asap)),
                ("I need to move now!", Some(MoveIn::Asap)),
                ("right now, 2br", Some(MoveIn::Asap)),
            ],
        );
    }

    #[test]
    fn now_in_the_middle_of_a_sentence_is_not_a_move_in_date() {
        check_table(
            extract_move_in,
            &[("I'm now looking for a 2br", None), ("i know", None)],
        );
    }

    #[test]
    fn move_in_is_read_from_relative_months() {
        check_table(
            extract_move_in,
            &[
                ("this month if possible", Some(MoveIn::ThisMonth)),
                ("Next month", Some(MoveIn::NextMonth)),
                ("in a couple weeks", Some(MoveIn::Soon)),
                ("I'm flexible", Some(MoveIn::Flexible)),
            ],
        );
    }

    #[test]
    fn move_in_is_read_from_month_names_and_abbreviations() {
        check_table(
            extract_move_in,
            &[
                ("moving in March", Some(MoveIn::Month(3))),
                ("sept", Some(MoveIn::Month(9))),
                ("around Dec 1st", Some(MoveIn::Day { month: 12, day: 1 })),
                ("the 15th of june", Some(MoveIn::Day { month: 6, day: 15 })),
                ("by may", Some(MoveIn::Month(5))),
            ],
        );
    }

    #[test]
    fn may_as_a_verb_is_not_a_month() {
        check_table(extract_move_in, &[("may I ask the price", None)]);
    }

    #[test]
    fn move_in_is_read_from_slash_dates_but_not_other_slashes() {
        check_table(
            extract_move_in,
            &[
                ("12/1", Some(MoveIn::Day { month: 12, day: 1 })),
                ("by 1/15/2026.", Some(MoveIn::Day { month: 1, day: 15 })),
                ("1200/mo", None),
                ("24/7 laundry?", None),
            ],
        );
    }

    #[test]
    fn budget_is_read_from_dollar_amounts_and_rent_phrasing() {
        check_table(
            extract_budget,
            &[
                ("$1200", Some(1200)),
                ("about $1,250.00 a month", Some(1250)),
                ("1200/mo max", Some(1200)),
                ("can do 1.2k", Some(1200)),
                ("I want something under 1500 for a 2br", Some(1500)),
                ("my budget is 1100", Some(1100)),
                ("I can do 1000-1200 for the right place", Some(1200)),
            ],
        );
    }

    #[test]
    fn a_bare_number_is_a_budget_only_in_a_short_reply() {
        check_table(
            extract_budget,
            &[
                ("1200", Some(1200)),
                ("1300 tops", Some(1300)),
                ("2br, march, 1400", Some(1400)),
                ("I live at 1450 N Clark right now", None),
            ],
        );
    }

    #[test]
    fn bedroom_digits_dates_years_and_unit_numbers_are_not_budgets() {
        check_table(
            extract_budget,
            &[
                ("2 bed", None),
                ("2br", None),
                ("12/1", None),
                ("March 2026", None),
                ("moving march 2026, budget 1500", Some(1500)),
                ("is unit 1204 available", None),
                ("at 3pm", None),
                ("I make 50k a year", None),
            ],
        );
    }

    #[test]
    fn voucher_is_read_from_its_many_names() {
        check_table(
            extract_voucher,
            &[
                ("I have section 8", Some(true)),
                ("Section-8 voucher holder", Some(true)),
                ("do you take HCV?", Some(true)),
                ("I'm with CHA", Some(true)),
                ("housing choice", Some(true)),
                ("2br please", None),
            ],
        );
    }

    #[test]
    fn voucher_negations_are_answers_too() {
        check_table(
            extract_voucher,
            &[
                ("no voucher", Some(false)),
                ("I don't have a voucher", Some(false)),
                ("not section 8", Some(false)),
                ("No, I have a voucher", Some(true)),
            ],
        );
    }

    #[test]
    fn pets_are_read_with_their_negations() {
        check_table(
            extract_pets,
            &[
                ("I have a dog", Some(true)),
                ("2 cats", Some(true)),
                ("are pets allowed?", Some(true)),
                ("no pets", Some(false)),
                ("I don't have any pets", Some(false)),
                ("pets: none", Some(false)),
                ("No. I have a dog", Some(true)),
                ("2br asap", None),
            ],
        );
    }

    #[test]
    fn yes_and_no_are_read_from_the_start_of_a_reply() {
        check_table(
            extract_yes_no,
            &[
                ("Yes I do", Some(true)),
                ("nope", Some(false)),
                ("I don't", Some(false)),
                ("maybe", None),
            ],
        );
    }
}
