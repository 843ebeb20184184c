//! Built-in rules responder: the deterministic fallback brain that answers a lead when no LLM
//! is configured or every provider failed, so a lead never meets silence.
//!
//! Owns: reading what the lead has told us so far (bedrooms, move-in, budget, voucher, pets)
//! and what we already asked, choosing the next step (qualify, offer a tour, confirm a tour,
//! hold a question for the team, close politely) and wording it as one plain-text SMS of at
//! most [`MAX_REPLY_CHARS`] characters.
//! Must not: do I/O, read the clock (time comes only from [`Prompt::now`]) or use randomness.
//! The same prompt always gets the same reply, which is what makes a retried turn safe and
//! every branch testable.

use actors::ports::{ChatLine, ChatModel, Completion, ModelError, Prompt, Role};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeDelta, Utc, Weekday};

/// Two SMS segments' worth: long enough to answer a burst, short enough to read on a phone.
pub const MAX_REPLY_CHARS: usize = 320;

// ---------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------

/// Lowercase words. Apostrophes are dropped ("don't" -> "dont") so contractions compare as
/// one word; every other non-alphanumeric character separates words, so "2-bed" and
/// "Section-8" read like "2 bed" and "section 8".
fn split_words(text: &str) -> Vec<String> {
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
fn normalize_text(text: &str) -> String {
    format!(" {} ", split_words(text).join(" "))
}

fn contains_phrase(normalized: &str, phrase: &str) -> bool {
    normalized.contains(&format!(" {phrase} "))
}

fn contains_any_phrase(normalized: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| contains_phrase(normalized, p))
}

/// Words per clause. Negation and "now" are judged inside one clause so that
/// "No. I have a dog" is not read as "no dog".
fn split_clauses(text: &str) -> Vec<Vec<String>> {
    text.split(['.', ',', '!', '?', ';', '\n'])
        .map(split_words)
        .filter(|c| !c.is_empty())
        .collect()
}

const NEGATIONS: &[&str] = &[
    "no", "not", "dont", "doesnt", "didnt", "without", "never", "cant", "cannot", "wont", "isnt",
    "arent", "zero",
];

/// True when one of the three words before `index` negates it ("I don't have a dog"), or
/// the word after is "none" ("pets: none").
fn is_negated(words: &[String], index: usize) -> bool {
    let before = &words[index.saturating_sub(3)..index];
    before.iter().any(|w| NEGATIONS.contains(&w.as_str()))
        || words.get(index + 1).is_some_and(|w| w == "none")
}

fn parse_small_count(word: &str) -> Option<u8> {
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

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Month number for a full name or common abbreviation. "may" is left to the caller: it is
/// far more often the verb than the month.
fn parse_month(word: &str) -> Option<u32> {
    let month = match word {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sept" | "sep" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    };
    Some(month)
}

/// Day of the month from "3", "3rd", "21st".
fn parse_day_of_month(word: &str) -> Option<u32> {
    let digits = word
        .strip_suffix("st")
        .or_else(|| word.strip_suffix("nd"))
        .or_else(|| word.strip_suffix("rd"))
        .or_else(|| word.strip_suffix("th"))
        .unwrap_or(word);
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|d| (1..=31).contains(d))
}

// ---------------------------------------------------------------------------------------
// What the lead told us
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bedrooms {
    Studio,
    Count(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MoveIn {
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
struct Facts {
    bedrooms: Option<Bedrooms>,
    move_in: Option<MoveIn>,
    budget: Option<u32>,
    voucher: Option<bool>,
    pets: Option<bool>,
}

impl Facts {
    /// Later statements win: a lead who said "2 bed" and then "actually 3" wants 3.
    fn merge(&mut self, later: Facts) {
        self.bedrooms = later.bedrooms.or(self.bedrooms);
        self.move_in = later.move_in.or(self.move_in);
        self.budget = later.budget.or(self.budget);
        self.voucher = later.voucher.or(self.voucher);
        self.pets = later.pets.or(self.pets);
    }

    fn is_empty(&self) -> bool {
        *self == Facts::default()
    }
}

const BEDROOM_UNITS: &[&str] = &[
    "br", "brs", "bd", "bds", "bdr", "bdrm", "bdrms", "bed", "beds", "bedroom", "bedrooms",
    "bedrm", "bedrms",
];

/// "studio", "1br", "2 bed", "two bedroom", "3bd", "2-bedroom". A mention after a negation
/// in the same clause is what the lead does not want ("not interested in a studio").
fn extract_bedrooms(text: &str) -> Option<Bedrooms> {
    split_clauses(text).iter().find_map(|clause| {
        (0..clause.len())
            .filter(|&i| !clause[..i].iter().any(|w| NEGATIONS.contains(&w.as_str())))
            .find_map(|i| read_bedrooms_at(clause, i))
    })
}

fn read_bedrooms_at(words: &[String], i: usize) -> Option<Bedrooms> {
    let word = words[i].as_str();
    if matches!(word, "studio" | "studios" | "efficiency") {
        return Some(Bedrooms::Studio);
    }
    // "2br", "3bd": the count glued to the unit.
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    if digits_end > 0 && BEDROOM_UNITS.contains(&&word[digits_end..]) {
        return parse_small_count(&word[..digits_end]).map(Bedrooms::Count);
    }
    let unit_follows = words
        .get(i + 1)
        .is_some_and(|unit| BEDROOM_UNITS.contains(&unit.as_str()));
    parse_small_count(word)
        .filter(|_| unit_follows)
        .map(Bedrooms::Count)
}

/// A lone "2" or "two" counts as bedrooms only as the answer to our bedrooms question.
fn extract_bare_count(text: &str) -> Option<u8> {
    let words = split_words(text);
    match words.as_slice() {
        [only] => parse_small_count(only),
        [first, _] | [_, first] if parse_small_count(first).is_some() => parse_small_count(first),
        _ => None,
    }
}

/// Words that make a following "may" the month: "in May", "by May", "early May".
const MAY_CUES: &[&str] = &[
    "in", "by", "of", "early", "mid", "late", "before", "after", "around", "until", "til",
    "starting",
];

/// "asap", "now", "immediately", "this month", "next month", "March", "Dec 1", "12/1".
fn extract_move_in(text: &str) -> Option<MoveIn> {
    let normalized = normalize_text(text);
    if contains_any_phrase(
        &normalized,
        &[
            "asap",
            "immediately",
            "right away",
            "right now",
            "as soon as possible",
            "urgently",
        ],
    ) {
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
    if contains_any_phrase(
        &normalized,
        &["this month", "end of the month", "end of month"],
    ) {
        return Some(MoveIn::ThisMonth);
    }
    if contains_phrase(&normalized, "next month") {
        return Some(MoveIn::NextMonth);
    }
    if contains_any_phrase(
        &normalized,
        &[
            "soon",
            "this week",
            "next week",
            "couple weeks",
            "couple of weeks",
            "few weeks",
            "2 weeks",
            "two weeks",
        ],
    ) {
        return Some(MoveIn::Soon);
    }
    if contains_any_phrase(
        &normalized,
        &[
            "flexible",
            "whenever",
            "no rush",
            "not in a rush",
            "anytime",
        ],
    ) {
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
                        .is_some_and(|p| MAY_CUES.contains(&words[p].as_str()))) =>
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

/// Words that, shortly before a number, make it a rent figure: "budget is 1100",
/// "under 1500", "up to 1400".
const BUDGET_CUES: &[&str] = &[
    "budget", "under", "below", "max", "maximum", "up", "around", "about", "afford", "pay",
    "spend", "less", "most", "between", "rent", "range", "within", "approx", "roughly",
];
/// Words right after a number that make it monthly rent: "1200 a month", "1200 tops".
const PER_MONTH_CUES: &[&str] = &[
    "/mo", "/month", "mo", "month", "monthly", "per", "a", "max", "tops", "budget",
];
/// Words before a number that make it something other than money.
const NOT_MONEY_CUES: &[&str] = &[
    "unit",
    "apt",
    "apartment",
    "number",
    "suite",
    "building",
    "bldg",
    "address",
    "zip",
];

/// "$1200", "$1,200", "1200/mo", "1.2k", "under 1500", "budget is 1100", "1000-1200" (the top
/// of a range is the ceiling). A bare number is rent only in a very short message ("1200")
/// or with a cue, so "2 bed" and "12/1" are never read as money.
fn extract_budget(text: &str) -> Option<u32> {
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
        if NOT_MONEY_CUES.contains(&last_previous) || word.starts_with('#') {
            continue;
        }
        // "March 2026" is a year; in "march, 1400" the number is still rent.
        let after_month = parse_month(last_previous).is_some();
        let cued = raw.starts_with('<')
            || raw.starts_with('~')
            || previous.iter().any(|w| BUDGET_CUES.contains(&w.as_str()))
            || words.get(i + 1).is_some_and(|next| {
                PER_MONTH_CUES.contains(&next.trim_end_matches(|c: char| !c.is_alphanumeric()))
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
fn extract_voucher(text: &str) -> Option<bool> {
    find_flagged_mention(text, |words, i| {
        let next = words.get(i + 1).map(String::as_str);
        match words[i].as_str() {
            "voucher" | "vouchers" | "hcv" | "cha" | "section8" | "sec8" | "s8" => true,
            "section" | "sec" => matches!(next, Some("8" | "eight")),
            "housing" => matches!(next, Some("choice" | "authority" | "assistance")),
            _ => false,
        }
    })
}

/// "dog", "cat", "pets"; "no pets" and "I don't have a dog" are answers too.
fn extract_pets(text: &str) -> Option<bool> {
    find_flagged_mention(text, |words, i| {
        matches!(
            words[i].as_str(),
            "pet"
                | "pets"
                | "dog"
                | "dogs"
                | "cat"
                | "cats"
                | "puppy"
                | "puppies"
                | "kitten"
                | "kittens"
                | "animal"
                | "animals"
        )
    })
}

/// A yes or no at the start of a reply, for yes/no questions (voucher, pets).
fn extract_yes_no(text: &str) -> Option<bool> {
    let words = split_words(text);
    match words.first().map(String::as_str)? {
        "yes" | "yeah" | "yep" | "yup" | "ya" | "yea" | "sure" | "correct" | "absolutely"
        | "definitely" => Some(true),
        "no" | "nope" | "nah" | "none" | "negative" => Some(false),
        "i" if words.get(1).is_some_and(|w| w == "dont") => Some(false),
        "i" if words.get(1).is_some_and(|w| w == "do") => Some(true),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// What we asked
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Bedrooms,
    MoveIn,
    Budget,
    Voucher,
    Pets,
    Tour,
}

/// The order a leasing agent qualifies in: which unit, when, how much, how it is paid, pets.
const QUALIFYING_ORDER: [Topic; 5] = [
    Topic::Bedrooms,
    Topic::MoveIn,
    Topic::Budget,
    Topic::Voucher,
    Topic::Pets,
];

impl Facts {
    fn knows(&self, topic: Topic) -> bool {
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

fn question_for(topic: Topic) -> &'static str {
    match topic {
        Topic::Bedrooms => "How many bedrooms are you looking for?",
        Topic::MoveIn => "When are you hoping to move in?",
        Topic::Budget => "What monthly budget do you have in mind?",
        Topic::Voucher => "Will you be using a housing voucher (like Section 8)?",
        Topic::Pets => "Do you have any pets?",
        Topic::Tour => "Would you like to come see it?",
    }
}

/// Words that place a question on a topic. Matched loosely on purpose: the line may have been
/// written by the LLM before it failed over to us, in its own words.
fn topic_phrases(topic: Topic) -> &'static [&'static str] {
    match topic {
        Topic::Bedrooms => &[
            "bedroom",
            "bedrooms",
            "bed",
            "beds",
            "br",
            "studio",
            "how many rooms",
        ],
        Topic::MoveIn => &["move", "moving", "movein", "move in"],
        Topic::Budget => &[
            "budget",
            "price range",
            "afford",
            "spend",
            "rent range",
            "looking to pay",
        ],
        Topic::Voucher => &[
            "voucher",
            "vouchers",
            "section 8",
            "hcv",
            "housing choice",
            "cha",
        ],
        Topic::Pets => &[
            "pet", "pets", "dog", "dogs", "cat", "cats", "animal", "animals", "furry",
        ],
        Topic::Tour => &[
            "tour",
            "tours",
            "showing",
            "showings",
            "visit",
            "come see",
            "come by",
            "see it",
            "see the unit",
            "see the apartment",
            "see the place",
            "viewing",
        ],
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
fn detect_asked_topic(agent_text: &str) -> Option<Topic> {
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

fn is_booking_confirmation(agent_text: &str) -> bool {
    contains_any_phrase(
        &normalize_text(agent_text),
        &[
            "youre set for",
            "you are set for",
            "youre booked",
            "you are booked",
            "tour is confirmed",
            "tour is booked",
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Reading the conversation
// ---------------------------------------------------------------------------------------

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
    if asked == Some(Topic::Tour)
        && !contains_any_phrase(&normalize_text(text), &["move", "moving", "movein"])
    {
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

struct Conversation<'a> {
    /// The new, unanswered lead messages this reply answers.
    new_messages: Vec<&'a str>,
    /// All the lead has told us, history and new messages.
    facts: Facts,
    /// What the new messages alone told us: what the reply acknowledges.
    new_facts: Facts,
    first_contact: bool,
    /// The question our last line asked, if it asked one.
    last_asked: Option<Topic>,
    /// Our earlier lines, oldest first.
    agent_lines: Vec<&'a str>,
    tour_booked: bool,
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
    fn find_next_question(&self) -> Option<Topic> {
        QUALIFYING_ORDER.into_iter().find(|&topic| {
            !self.facts.knows(topic)
                && self.last_asked != Some(topic)
                && self.times_asked(topic) < 2
        })
    }

    fn may_offer_tour(&self) -> bool {
        !self.tour_booked
            && self.last_asked != Some(Topic::Tour)
            && self.times_asked(Topic::Tour) < 2
    }
}

fn read_conversation(prompt: &Prompt) -> Conversation<'_> {
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

// ---------------------------------------------------------------------------------------
// What the new messages ask for
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
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

fn detect_closing(text: &str) -> Option<Closing> {
    let normalized = normalize_text(text);
    if contains_any_phrase(&normalized, &["wrong number", "wrong person", "wrong #"]) {
        return Some(Closing::WrongNumber);
    }
    let not_interested = [
        "not interested",
        "no longer interested",
        "not really interested",
        "not looking",
        "no longer looking",
    ]
    .iter()
    .any(|p| mentions_unqualified(&normalized, p));
    let moved_on = contains_any_phrase(
        &normalized,
        &[
            "found a place",
            "found an apartment",
            "found an apt",
            "found a home",
            "found a new place",
            "found somewhere",
            "found something",
            "already found",
            "already signed",
            "signed a lease",
            "signed elsewhere",
            "went with another",
            "going with another",
            "decided to stay",
            "stopped looking",
            "changed my mind",
            "no thanks",
            "no thank you",
            "stop texting",
            "stop messaging",
            "stop contacting",
            "dont text",
            "do not text",
            "dont contact",
            "do not contact",
            "remove me",
            "take me off",
            "lose my number",
            "leave me alone",
        ],
    );
    (not_interested || moved_on).then_some(Closing::NotInterested)
}

fn is_tour_request(text: &str) -> bool {
    contains_any_phrase(
        &normalize_text(text),
        &[
            "tour",
            "tours",
            "showing",
            "showings",
            "visit",
            "viewing",
            "view it",
            "view the",
            "see it",
            "see the unit",
            "see the apartment",
            "see the apt",
            "see the place",
            "see inside",
            "see a unit",
            "see one",
            "come see",
            "come by",
            "stop by",
            "come look",
            "look at it",
            "check it out",
            "walk through",
            "walkthrough",
            "open house",
            "in person",
        ],
    )
}

/// Questions the rules cannot answer, by what they are about, so the holding reply can say
/// "about parking" and the lead knows every question was heard. `free`/`open` are weak: "is
/// parking free?" is about parking, not availability.
const QUESTION_TOPICS: &[(&str, &[&str])] = &[
    (
        "availability",
        &[
            "available",
            "availability",
            "vacant",
            "vacancy",
            "vacancies",
            "openings",
            "still have",
        ],
    ),
    (
        "price",
        &[
            "price", "prices", "pricing", "how much", "cost", "costs", "rent", "rate", "rates",
        ],
    ),
    ("parking", &["parking", "park", "garage"]),
    (
        "utilities",
        &[
            "utilities",
            "utility",
            "heat",
            "heating",
            "water",
            "electric",
            "electricity",
            "gas",
            "internet",
            "wifi",
        ],
    ),
    (
        "your application",
        &[
            "application",
            "apply",
            "applied",
            "approved",
            "approval",
            "background check",
            "credit check",
            "screening",
        ],
    ),
    (
        "deposits and fees",
        &[
            "deposit",
            "deposits",
            "fee",
            "fees",
            "move in cost",
            "move in costs",
        ],
    ),
    ("laundry", &["laundry", "washer", "dryer"]),
    (
        "the pet policy",
        &[
            "pets allowed",
            "pet friendly",
            "allow pets",
            "allow dogs",
            "allow cats",
            "dogs allowed",
            "cats allowed",
            "pet policy",
        ],
    ),
    (
        "vouchers",
        &[
            "accept section 8",
            "take section 8",
            "accept vouchers",
            "take vouchers",
            "accept voucher",
            "take voucher",
            "accept hcv",
            "take hcv",
        ],
    ),
    (
        "the location",
        &["where", "address", "located", "location", "neighborhood"],
    ),
    (
        "the lease",
        &["lease", "lease term", "month to month", "short term"],
    ),
];

fn find_question_labels(text: &str) -> Vec<&'static str> {
    let normalized = normalize_text(text);
    let mut labels: Vec<&'static str> = QUESTION_TOPICS
        .iter()
        .filter(|(_, phrases)| contains_any_phrase(&normalized, phrases))
        .map(|(label, _)| *label)
        .collect();
    if labels.is_empty() && contains_any_phrase(&normalized, &["free", "open"]) {
        labels.push("availability");
    }
    labels
}

const INQUIRY_STARTS: &[&str] = &[
    "how", "hows", "what", "whats", "where", "wheres", "when", "which", "who", "why", "is", "are",
    "does", "do", "can", "could",
];

/// A question by its mark, its first word, or a one- or two-word topic ("price", "parking?").
fn is_question(text: &str) -> bool {
    let words = split_words(text);
    text.contains('?')
        || words
            .first()
            .is_some_and(|w| INQUIRY_STARTS.contains(&w.as_str()))
        || (words.len() <= 2 && !find_question_labels(text).is_empty())
}

fn join_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [only] => (*only).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The holding reply for questions only the team can answer, or `None` when there are none.
/// With `count_unlabelled` false, only questions about a known topic count: the "?" in
/// "Thursday at 11?" is answered by the confirmation itself.
fn hold_questions(messages: &[&str], count_unlabelled: bool) -> Option<String> {
    let mut labels: Vec<&str> = Vec::new();
    let mut questions = 0;
    for message in messages.iter().filter(|m| is_question(m)) {
        let found = find_question_labels(message);
        if found.is_empty() && (!count_unlabelled || is_tour_request(message)) {
            continue;
        }
        questions += 1;
        for label in found {
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
    }
    if questions == 0 {
        return None;
    }
    let plural = if questions > 1 || labels.len() > 1 {
        "s"
    } else {
        ""
    };
    let about = if labels.is_empty() {
        String::new()
    } else {
        format!(" about {}", join_list(&labels[..labels.len().min(3)]))
    };
    Some(format!(
        "Good question{plural}{about} - I'm checking with the team and will get back to you shortly."
    ))
}

// ---------------------------------------------------------------------------------------
// Acknowledging
// ---------------------------------------------------------------------------------------

fn format_dollars(amount: u32) -> String {
    let digits = amount.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("${out}")
}

fn month_name(month: u32) -> &'static str {
    MONTH_NAMES
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("")
}

fn month_abbreviation(month: u32) -> &'static str {
    month_name(month).get(..3).unwrap_or("")
}

fn describe_move_in(move_in: MoveIn) -> String {
    match move_in {
        MoveIn::Asap => "moving in ASAP".to_string(),
        MoveIn::Soon => "moving in soon".to_string(),
        MoveIn::ThisMonth => "moving in this month".to_string(),
        MoveIn::NextMonth => "moving in next month".to_string(),
        MoveIn::Flexible => "flexible on move-in".to_string(),
        MoveIn::Month(m) => format!("moving in {}", month_name(m)),
        MoveIn::Day { month, day } => format!("moving in on {} {day}", month_abbreviation(month)),
    }
}

/// "Got it - 2 bedrooms, moving in March." for what the new messages told us.
fn acknowledge_facts(facts: &Facts) -> Option<String> {
    if facts.is_empty() {
        return None;
    }
    let mut said = Vec::new();
    match facts.bedrooms {
        Some(Bedrooms::Studio) => said.push("a studio".to_string()),
        Some(Bedrooms::Count(1)) => said.push("1 bedroom".to_string()),
        Some(Bedrooms::Count(n)) => said.push(format!("{n} bedrooms")),
        None => {}
    }
    if let Some(move_in) = facts.move_in {
        said.push(describe_move_in(move_in));
    }
    if let Some(budget) = facts.budget {
        said.push(format!("up to {}/mo", format_dollars(budget)));
    }
    match facts.voucher {
        Some(true) => said.push("using a housing voucher".to_string()),
        Some(false) => said.push("no voucher".to_string()),
        None => {}
    }
    match facts.pets {
        Some(true) => said.push("with a pet".to_string()),
        Some(false) => said.push("no pets".to_string()),
        None => {}
    }
    Some(format!("Got it - {}.", said.join(", ")))
}

// ---------------------------------------------------------------------------------------
// Tours
// ---------------------------------------------------------------------------------------

/// A tour start in office local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    date: NaiveDate,
    hour: u32,
}

impl Slot {
    fn starts_at(&self) -> Option<NaiveDateTime> {
        self.date.and_hms_opt(self.hour, 0, 0)
    }
}

/// An agent needs time to confirm and the lead time to get there: no slot sooner than this.
const MIN_TOUR_NOTICE_HOURS: i64 = 2;
/// How far ahead a requested day is looked for.
const TOUR_SEARCH_DAYS: u64 = 14;

const WEEKDAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

fn parse_weekday(word: &str) -> Option<Weekday> {
    let day = match word {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tues" | "tuesday" => Weekday::Tue,
        "wed" | "weds" | "wednesday" => Weekday::Wed,
        "thu" | "thur" | "thurs" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    };
    Some(day)
}

fn format_hour(hour: u32) -> String {
    match hour {
        0 => "12am".to_string(),
        1..=11 => format!("{hour}am"),
        12 => "12pm".to_string(),
        _ => format!("{}pm", hour - 12),
    }
}

fn format_day(date: NaiveDate) -> String {
    format!(
        "{} {} {}",
        WEEKDAY_ABBREVIATIONS[date.weekday().num_days_from_monday() as usize],
        month_abbreviation(date.month()),
        date.day()
    )
}

fn format_slot(slot: Slot) -> String {
    format!("{} at {}", format_day(slot.date), format_hour(slot.hour))
}

/// "Thu Dec 3 at 11am or 3pm", or "Thu Dec 3 at 3pm or Fri Dec 4 at 11am".
fn format_offer(slots: &[Slot]) -> String {
    match slots {
        [] => String::new(),
        [one] => format_slot(*one),
        [a, b, ..] if a.date == b.date => {
            format!("{} or {}", format_slot(*a), format_hour(b.hour))
        }
        [a, b, ..] => format!("{} or {}", format_slot(*a), format_slot(*b)),
    }
}

/// Hour from "11am", "3pm", "noon".
fn parse_meridiem_hour(word: &str) -> Option<u32> {
    if word == "noon" {
        return Some(12);
    }
    let (digits, pm) = match (word.strip_suffix("am"), word.strip_suffix("pm")) {
        (Some(d), _) => (d, false),
        (_, Some(d)) => (d, true),
        _ => return None,
    };
    let hour: u32 = digits.parse().ok().filter(|h| (1..=12).contains(h))?;
    Some(to_24_hour(hour, Some(pm)))
}

fn to_24_hour(hour: u32, pm: Option<bool>) -> u32 {
    match (hour, pm) {
        (12, Some(false)) => 0,
        (12, _) => 12,
        (h, Some(true)) => h + 12,
        (h, Some(false)) => h,
        // Nobody tours at 3 in the morning: a bare 1-7 is afternoon.
        (h, None) if h <= 7 => h + 12,
        (h, None) => h,
    }
}

/// An hour the lead names at `words[i]`: "11am", "3 pm", "3:00", "at 3", or a lone "3".
fn parse_hour_at(words: &[String], i: usize) -> Option<u32> {
    let word = words[i].as_str();
    if let Some(hour) = parse_meridiem_hour(word) {
        return Some(hour);
    }
    let hour: u32 = word.parse().ok().filter(|h| (1..=12).contains(h))?;
    let next = words.get(i + 1).map(String::as_str).unwrap_or("");
    let previous = i.checked_sub(1).map(|p| words[p].as_str()).unwrap_or("");
    if parse_month(previous).is_some() || BEDROOM_UNITS.contains(&next) {
        return None;
    }
    let minutes_pm = next
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_string();
    match (next, minutes_pm.as_str()) {
        ("am", _) | (_, "am") => return Some(to_24_hour(hour, Some(false))),
        ("pm", _) | (_, "pm") => return Some(to_24_hour(hour, Some(true))),
        _ => {}
    }
    let clock_like = next == "oclock" || (!next.is_empty() && minutes_pm.is_empty());
    let cued = matches!(previous, "at" | "around" | "by" | "the");
    (clock_like || cued || words.len() <= 3).then(|| to_24_hour(hour, None))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DayWish {
    On(Weekday),
    Date(NaiveDate),
}

/// What a lead's answer to a tour offer asks for.
#[derive(Debug, Default)]
struct SlotWish {
    day: Option<DayWish>,
    hour: Option<u32>,
    morning: Option<bool>,
    ordinal: Option<usize>,
    refused_day: bool,
}

impl SlotWish {
    fn is_specific(&self) -> bool {
        self.day.is_some()
            || self.hour.is_some()
            || self.morning.is_some()
            || self.ordinal.is_some()
    }

    fn fits(&self, slot: &Slot) -> bool {
        let day_fits = match self.day {
            Some(DayWish::On(weekday)) => slot.date.weekday() == weekday,
            Some(DayWish::Date(date)) => slot.date == date,
            None => true,
        };
        day_fits
            && self.hour.is_none_or(|h| h == slot.hour)
            && self.morning.is_none_or(|m| (slot.hour < 12) == m)
    }
}

fn read_slot_wish(text: &str, today: NaiveDate) -> SlotWish {
    let mut wish = SlotWish::default();
    for clause in split_clauses(text) {
        for (i, word) in clause.iter().enumerate() {
            let day = match word.as_str() {
                "today" => Some(DayWish::Date(today)),
                "tomorrow" | "tmrw" | "tmr" | "tomorow" => {
                    today.checked_add_days(Days::new(1)).map(DayWish::Date)
                }
                _ => parse_weekday(word).map(DayWish::On),
            };
            if let Some(day) = day {
                if is_negated(&clause, i) {
                    wish.refused_day = true;
                } else if wish.day.is_none() {
                    wish.day = Some(day);
                }
                continue;
            }
            if wish.hour.is_none() {
                wish.hour = parse_hour_at(&clause, i);
            }
            match word.as_str() {
                "morning" => wish.morning = Some(true),
                "afternoon" | "evening" => wish.morning = Some(false),
                "first" | "1st" | "earlier" | "earliest" | "former" => wish.ordinal = Some(0),
                "second" | "2nd" | "later" | "latter" | "last" => wish.ordinal = Some(1),
                _ => {}
            }
        }
    }
    wish
}

fn declines_tour(text: &str) -> bool {
    let normalized = normalize_text(text);
    matches!(
        split_words(text).first().map(String::as_str),
        Some("no" | "nope" | "nah")
    ) || contains_any_phrase(
        &normalized,
        &[
            "neither",
            "none of",
            "not available",
            "wont work",
            "doesnt work",
            "dont work",
            "cant make",
            "cannot make",
            "cant do",
            "cannot do",
            "cant come",
            "busy",
            "another time",
            "other time",
            "different time",
            "different day",
            "another day",
            "other day",
            "reschedule",
            "not those",
        ],
    )
}

fn accepts_tour(text: &str) -> bool {
    let normalized = normalize_text(text);
    matches!(
        split_words(text).first().map(String::as_str),
        Some(
            "yes"
                | "yeah"
                | "yep"
                | "yup"
                | "ya"
                | "yea"
                | "sure"
                | "ok"
                | "okay"
                | "k"
                | "perfect"
                | "great"
                | "sounds"
                | "works"
                | "definitely"
                | "absolutely"
                | "either"
                | "any"
                | "whichever"
                | "book"
                | "lets"
                | "cool"
                | "alright"
        )
    ) || contains_any_phrase(
        &normalized,
        &[
            "sounds good",
            "that works",
            "works for me",
            "either one",
            "any time",
            "anytime",
        ],
    )
}

/// How the lead answered our tour offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TourAnswer {
    Picked(Slot),
    /// A yes to an offer whose times we cannot read (the LLM wrote it).
    Accepted,
    Declined,
    /// They named a time we do not give tours at.
    Unavailable,
    /// A yes to slots that have passed since.
    Expired,
    /// Not an answer to the offer at all.
    Unclear,
}

// ---------------------------------------------------------------------------------------
// Composing
// ---------------------------------------------------------------------------------------

/// How much a piece of the reply matters; when the reply is too long the least important
/// pieces are dropped first, so the question or offer always survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Weight {
    Acknowledgement,
    Greeting,
    Holding,
    Core,
}

#[derive(Default)]
struct ReplyDraft {
    parts: Vec<(Weight, String)>,
}

impl ReplyDraft {
    fn add(&mut self, weight: Weight, text: impl Into<String>) {
        self.parts.push((weight, text.into()));
    }

    fn render(mut self) -> String {
        loop {
            let text = self
                .parts
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if text.chars().count() <= MAX_REPLY_CHARS || self.parts.len() <= 1 {
                return truncate_reply(&text);
            }
            let lightest = (0..self.parts.len())
                .min_by_key(|&i| (self.parts[i].0, std::cmp::Reverse(i)))
                .unwrap_or(0);
            self.parts.remove(lightest);
        }
    }
}

/// Last resort for a reply that is too long on its own (an outsized office name): cut at a
/// word boundary rather than send something the carrier splits badly.
fn truncate_reply(text: &str) -> String {
    if text.chars().count() <= MAX_REPLY_CHARS {
        return text.to_string();
    }
    let kept: String = text.chars().take(MAX_REPLY_CHARS - 3).collect();
    let cut = kept
        .rfind(' ')
        .filter(|&i| i > kept.len() / 2)
        .unwrap_or(kept.len());
    format!("{}...", kept[..cut].trim_end())
}

fn closing_reply(closing: Closing) -> &'static str {
    match closing {
        Closing::WrongNumber => "Sorry about that - thanks for letting us know. Have a great day!",
        Closing::NotInterested => {
            "Understood - thanks for letting us know, and best of luck! If anything changes, just text us here."
        }
    }
}

// ---------------------------------------------------------------------------------------
// The responder
// ---------------------------------------------------------------------------------------

/// What the rules need to know about the office.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfficeInfo {
    pub office_name: String,
    /// Local hours (0-23) at which tours start, Monday to Saturday.
    pub tour_hours: Vec<u32>,
    /// Office local time minus UTC. Fixed: daylight saving is not followed, so set it to the
    /// offset in force (Chicago is -6 in winter, -5 in summer).
    pub utc_offset_hours: i32,
}

impl Default for OfficeInfo {
    fn default() -> Self {
        Self {
            office_name: "the leasing office".to_string(),
            tour_hours: vec![11, 15],
            utc_offset_hours: -6,
        }
    }
}

/// The deterministic fallback [`ChatModel`]: last in the provider chain, never fails.
#[derive(Clone, Debug, Default)]
pub struct RulesResponder {
    office: OfficeInfo,
}

impl RulesResponder {
    pub fn new(office: OfficeInfo) -> Self {
        Self { office }
    }

    /// The reply to the prompt's new messages, read in the light of its history.
    pub fn compose_reply(&self, prompt: &Prompt) -> String {
        let convo = read_conversation(prompt);
        let said = convo.new_messages.join("\n");
        if let Some(closing) = detect_closing(&said) {
            return truncate_reply(closing_reply(closing));
        }
        let mut draft = ReplyDraft::default();
        if convo.first_contact {
            draft.add(Weight::Greeting, self.greet());
        }
        if let Some(ack) = acknowledge_facts(&convo.new_facts) {
            draft.add(Weight::Acknowledgement, ack);
        }

        if convo.last_asked == Some(Topic::Tour) {
            let offered = convo
                .agent_lines
                .last()
                .map(|l| parse_offered_slots(l, self.local_now(prompt.now).date()))
                .unwrap_or_default();
            match self.read_tour_answer(&said, &offered, prompt.now) {
                TourAnswer::Picked(slot) => {
                    draft.add(
                        Weight::Core,
                        format!(
                            "You're set for {}. A leasing agent will text you to confirm.",
                            format_slot(slot)
                        ),
                    );
                    if let Some(holding) = hold_questions(&convo.new_messages, false) {
                        draft.add(Weight::Holding, holding);
                    }
                    return draft.render();
                }
                TourAnswer::Accepted => {
                    draft.add(
                        Weight::Core,
                        "Great! A leasing agent will text you shortly to lock in the time.",
                    );
                    return draft.render();
                }
                TourAnswer::Declined => {
                    draft.add(
                        Weight::Core,
                        format!(
                            "No problem - what day works better for you? Tours run Mon-Sat at {}.",
                            self.describe_tour_hours()
                        ),
                    );
                    return draft.render();
                }
                TourAnswer::Unavailable => {
                    draft.add(
                        Weight::Core,
                        format!(
                            "Sorry, that time isn't open. Tours run Mon-Sat at {} - what day works for you?",
                            self.describe_tour_hours()
                        ),
                    );
                    return draft.render();
                }
                TourAnswer::Expired => {
                    let slots = self.upcoming_slots(prompt.now, 2);
                    draft.add(
                        Weight::Core,
                        format!(
                            "Sorry, those times have passed. I have {} for a tour - which works for you?",
                            format_offer(&slots)
                        ),
                    );
                    return draft.render();
                }
                TourAnswer::Unclear => {}
            }
        }

        let tour_requested = convo.new_messages.iter().any(|m| is_tour_request(m));
        let next_question = convo.find_next_question();
        if tour_requested || (next_question.is_none() && convo.may_offer_tour()) {
            if let Some(holding) = hold_questions(&convo.new_messages, true) {
                draft.add(Weight::Holding, holding);
            }
            let lead_in = if tour_requested {
                "Happy to set up a tour!"
            } else if QUALIFYING_ORDER.iter().all(|&t| convo.facts.knows(t)) {
                "Thanks, that covers what I need. Would you like a tour?"
            } else {
                "Would you like a tour?"
            };
            let slots = self.upcoming_slots(prompt.now, 2);
            draft.add(
                Weight::Core,
                format!(
                    "{lead_in} I have {} - which works for you?",
                    format_offer(&slots)
                ),
            );
            return draft.render();
        }

        let holding = hold_questions(&convo.new_messages, true);
        let has_holding = holding.is_some();
        if let Some(holding) = holding {
            draft.add(Weight::Holding, holding);
        }
        match next_question {
            Some(topic) => {
                if draft.parts.is_empty() {
                    draft.add(Weight::Acknowledgement, "Thanks!");
                }
                draft.add(Weight::Core, question_for(topic));
            }
            None if has_holding => {}
            None if convo.tour_booked => draft.add(
                Weight::Core,
                "Thanks! A leasing agent will text you to confirm your tour.",
            ),
            None => draft.add(
                Weight::Core,
                "Thanks! A leasing agent will follow up with you shortly.",
            ),
        }
        draft.render()
    }

    fn greet(&self) -> String {
        let name = self.office.office_name.trim();
        if name.is_empty() {
            "Hi! Thanks for texting us and for your interest.".to_string()
        } else {
            format!("Hi! Thanks for texting {name} and for your interest.")
        }
    }

    /// Valid configured hours, sorted; the defaults when none are valid, because an office
    /// that offers no tour time would leave a lead who asks for one with nothing.
    fn tour_hours(&self) -> Vec<u32> {
        let mut hours: Vec<u32> = self
            .office
            .tour_hours
            .iter()
            .copied()
            .filter(|h| *h < 24)
            .collect();
        hours.sort_unstable();
        hours.dedup();
        if hours.is_empty() {
            OfficeInfo::default().tour_hours
        } else {
            hours
        }
    }

    fn describe_tour_hours(&self) -> String {
        let hours: Vec<String> = self.tour_hours().into_iter().map(format_hour).collect();
        match hours.as_slice() {
            [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
            _ => hours.join(""),
        }
    }

    fn local_now(&self, now: DateTime<Utc>) -> NaiveDateTime {
        let offset = i64::from(self.office.utc_offset_hours.clamp(-12, 14));
        let utc = now.naive_utc();
        utc.checked_add_signed(TimeDelta::hours(offset))
            .unwrap_or(utc)
    }

    /// The next `limit` tour slots, Monday to Saturday, at least [`MIN_TOUR_NOTICE_HOURS`]
    /// after `now`, within [`TOUR_SEARCH_DAYS`].
    fn upcoming_slots(&self, now: DateTime<Utc>, limit: usize) -> Vec<Slot> {
        let local_now = self.local_now(now);
        let earliest = local_now
            .checked_add_signed(TimeDelta::hours(MIN_TOUR_NOTICE_HOURS))
            .unwrap_or(local_now);
        let hours = self.tour_hours();
        (0..TOUR_SEARCH_DAYS)
            .filter_map(|d| local_now.date().checked_add_days(Days::new(d)))
            .filter(|date| date.weekday() != Weekday::Sun)
            .flat_map(|date| hours.iter().map(move |&hour| Slot { date, hour }))
            .filter(|slot| slot.starts_at().is_some_and(|t| t >= earliest))
            .take(limit)
            .collect()
    }

    fn read_tour_answer(&self, text: &str, offered: &[Slot], now: DateTime<Utc>) -> TourAnswer {
        let local_now = self.local_now(now);
        let live: Vec<Slot> = offered
            .iter()
            .copied()
            .filter(|s| s.starts_at().is_some_and(|t| t > local_now))
            .collect();
        let wish = read_slot_wish(text, local_now.date());
        if wish.is_specific() {
            let named_time = wish.day.is_some() || wish.hour.is_some();
            if let Some(slot) = wish.ordinal.and_then(|i| live.get(i))
                && !named_time
            {
                return TourAnswer::Picked(*slot);
            }
            if let Some(slot) = live.iter().find(|s| wish.fits(s)) {
                return TourAnswer::Picked(*slot);
            }
            if named_time {
                return self
                    .upcoming_slots(now, usize::MAX)
                    .into_iter()
                    .find(|s| wish.fits(s))
                    .map_or(TourAnswer::Unavailable, TourAnswer::Picked);
            }
        }
        if wish.refused_day || declines_tour(text) {
            return TourAnswer::Declined;
        }
        if wish.is_specific() || accepts_tour(text) {
            return match (live.first(), offered.is_empty()) {
                (Some(slot), _) => TourAnswer::Picked(*slot),
                (None, true) => TourAnswer::Accepted,
                (None, false) => TourAnswer::Expired,
            };
        }
        TourAnswer::Unclear
    }
}

/// The slots one of our tour offers named ("Thu Dec 3 at 11am or 3pm"), so a "yes" or a
/// "Thursday" can be matched to what the lead was actually shown.
fn parse_offered_slots(agent_text: &str, today: NaiveDate) -> Vec<Slot> {
    let words = split_words(agent_text);
    let mut date: Option<NaiveDate> = None;
    let mut slots = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if parse_weekday(word).is_some() {
            let month = words.get(i + 1).and_then(|w| parse_month(w));
            let day = words.get(i + 2).and_then(|w| parse_day_of_month(w));
            if let (Some(month), Some(day)) = (month, day) {
                date = resolve_date(today, month, day);
            }
            continue;
        }
        if let (Some(date), Some(hour)) = (date, parse_meridiem_hour(word)) {
            slots.push(Slot { date, hour });
        }
    }
    slots
}

/// The year is not written in an offer: take the one that puts the date nearest to today.
fn resolve_date(today: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    [today.year() - 1, today.year(), today.year() + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|d| (*d - today).num_days().abs())
}

#[async_trait]
impl ChatModel for RulesResponder {
    fn name(&self) -> &str {
        "rules"
    }

    async fn complete(&self, prompt: &Prompt) -> Result<Completion, ModelError> {
        Ok(Completion {
            text: self.compose_reply(prompt),
            provider: "rules".to_string(),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrooms_are_read_from_the_common_spellings() {
        assert_eq!(
            extract_bedrooms("looking for a studio"),
            Some(Bedrooms::Studio)
        );
        assert_eq!(extract_bedrooms("need a 1br"), Some(Bedrooms::Count(1)));
        assert_eq!(extract_bedrooms("2 bed 1 bath"), Some(Bedrooms::Count(2)));
        assert_eq!(
            extract_bedrooms("Two Bedroom please"),
            Some(Bedrooms::Count(2))
        );
        assert_eq!(extract_bedrooms("any 3bd?"), Some(Bedrooms::Count(3)));
        assert_eq!(extract_bedrooms("a 2-bedroom"), Some(Bedrooms::Count(2)));
        assert_eq!(
            extract_bedrooms("is the 2BR free?"),
            Some(Bedrooms::Count(2))
        );
    }

    #[test]
    fn bedrooms_are_not_read_from_unrelated_numbers() {
        assert_eq!(extract_bedrooms("2 baths and parking"), None);
        assert_eq!(extract_bedrooms("budget is $1200"), None);
        assert_eq!(extract_bedrooms("I need a bed frame"), None);
        assert_eq!(extract_bedrooms("not a studio"), None);
        assert_eq!(
            extract_bedrooms("not interested in a studio, need 2 bedrooms"),
            Some(Bedrooms::Count(2))
        );
    }

    #[test]
    fn a_bare_count_is_a_number_alone_or_with_one_word() {
        assert_eq!(extract_bare_count("2"), Some(2));
        assert_eq!(extract_bare_count("two please"), Some(2));
        assert_eq!(extract_bare_count("just 1"), Some(1));
        assert_eq!(extract_bare_count("2 or 3 maybe"), None);
        assert_eq!(extract_bare_count("hello"), None);
    }

    #[test]
    fn move_in_is_read_from_urgent_words() {
        assert_eq!(extract_move_in("need it asap"), Some(MoveIn::Asap));
        assert_eq!(extract_move_in("Immediately"), Some(MoveIn::Asap));
        assert_eq!(extract_move_in("I need to move now!"), Some(MoveIn::Asap));
        assert_eq!(extract_move_in("right now, 2br"), Some(MoveIn::Asap));
    }

    #[test]
    fn now_in_the_middle_of_a_sentence_is_not_a_move_in_date() {
        assert_eq!(extract_move_in("I'm now looking for a 2br"), None);
        assert_eq!(extract_move_in("i know"), None);
    }

    #[test]
    fn move_in_is_read_from_relative_months() {
        assert_eq!(
            extract_move_in("this month if possible"),
            Some(MoveIn::ThisMonth)
        );
        assert_eq!(extract_move_in("Next month"), Some(MoveIn::NextMonth));
        assert_eq!(extract_move_in("in a couple weeks"), Some(MoveIn::Soon));
        assert_eq!(extract_move_in("I'm flexible"), Some(MoveIn::Flexible));
    }

    #[test]
    fn move_in_is_read_from_month_names_and_abbreviations() {
        assert_eq!(extract_move_in("moving in March"), Some(MoveIn::Month(3)));
        assert_eq!(extract_move_in("sept"), Some(MoveIn::Month(9)));
        assert_eq!(
            extract_move_in("around Dec 1st"),
            Some(MoveIn::Day { month: 12, day: 1 })
        );
        assert_eq!(
            extract_move_in("the 15th of june"),
            Some(MoveIn::Day { month: 6, day: 15 })
        );
        assert_eq!(extract_move_in("by may"), Some(MoveIn::Month(5)));
    }

    #[test]
    fn may_as_a_verb_is_not_a_month() {
        assert_eq!(extract_move_in("may I ask the price"), None);
    }

    #[test]
    fn move_in_is_read_from_slash_dates_but_not_other_slashes() {
        assert_eq!(
            extract_move_in("12/1"),
            Some(MoveIn::Day { month: 12, day: 1 })
        );
        assert_eq!(
            extract_move_in("by 1/15/2026."),
            Some(MoveIn::Day { month: 1, day: 15 })
        );
        assert_eq!(extract_move_in("1200/mo"), None);
        assert_eq!(extract_move_in("24/7 laundry?"), None);
    }

    #[test]
    fn budget_is_read_from_dollar_amounts_and_rent_phrasing() {
        assert_eq!(extract_budget("$1200"), Some(1200));
        assert_eq!(extract_budget("about $1,250.00 a month"), Some(1250));
        assert_eq!(extract_budget("1200/mo max"), Some(1200));
        assert_eq!(extract_budget("can do 1.2k"), Some(1200));
        assert_eq!(
            extract_budget("I want something under 1500 for a 2br"),
            Some(1500)
        );
        assert_eq!(extract_budget("my budget is 1100"), Some(1100));
        assert_eq!(
            extract_budget("I can do 1000-1200 for the right place"),
            Some(1200)
        );
    }

    #[test]
    fn a_bare_number_is_a_budget_only_in_a_short_reply() {
        assert_eq!(extract_budget("1200"), Some(1200));
        assert_eq!(extract_budget("1300 tops"), Some(1300));
        assert_eq!(extract_budget("2br, march, 1400"), Some(1400));
        assert_eq!(extract_budget("I live at 1450 N Clark right now"), None);
    }

    #[test]
    fn bedroom_digits_dates_years_and_unit_numbers_are_not_budgets() {
        assert_eq!(extract_budget("2 bed"), None);
        assert_eq!(extract_budget("2br"), None);
        assert_eq!(extract_budget("12/1"), None);
        assert_eq!(extract_budget("March 2026"), None);
        assert_eq!(extract_budget("moving march 2026, budget 1500"), Some(1500));
        assert_eq!(extract_budget("is unit 1204 available"), None);
        assert_eq!(extract_budget("at 3pm"), None);
        assert_eq!(extract_budget("I make 50k a year"), None);
    }

    #[test]
    fn voucher_is_read_from_its_many_names() {
        assert_eq!(extract_voucher("I have section 8"), Some(true));
        assert_eq!(extract_voucher("Section-8 voucher holder"), Some(true));
        assert_eq!(extract_voucher("do you take HCV?"), Some(true));
        assert_eq!(extract_voucher("I'm with CHA"), Some(true));
        assert_eq!(extract_voucher("housing choice"), Some(true));
        assert_eq!(extract_voucher("2br please"), None);
    }

    #[test]
    fn voucher_negations_are_answers_too() {
        assert_eq!(extract_voucher("no voucher"), Some(false));
        assert_eq!(extract_voucher("I don't have a voucher"), Some(false));
        assert_eq!(extract_voucher("not section 8"), Some(false));
        assert_eq!(extract_voucher("No, I have a voucher"), Some(true));
    }

    #[test]
    fn pets_are_read_with_their_negations() {
        assert_eq!(extract_pets("I have a dog"), Some(true));
        assert_eq!(extract_pets("2 cats"), Some(true));
        assert_eq!(extract_pets("are pets allowed?"), Some(true));
        assert_eq!(extract_pets("no pets"), Some(false));
        assert_eq!(extract_pets("I don't have any pets"), Some(false));
        assert_eq!(extract_pets("pets: none"), Some(false));
        assert_eq!(extract_pets("No. I have a dog"), Some(true));
        assert_eq!(extract_pets("2br asap"), None);
    }

    #[test]
    fn yes_and_no_are_read_from_the_start_of_a_reply() {
        assert_eq!(extract_yes_no("Yes I do"), Some(true));
        assert_eq!(extract_yes_no("nope"), Some(false));
        assert_eq!(extract_yes_no("I don't"), Some(false));
        assert_eq!(extract_yes_no("maybe"), None);
    }

    // -----------------------------------------------------------------------------------
    // Conversations
    // -----------------------------------------------------------------------------------

    use actors::ports::LeadId;
    use chrono::TimeZone;

    const GREETING_QUESTION: &str = "Hi! Thanks for texting Maple Court and for your interest. How many bedrooms are you looking for?";
    const OFFER: &str = "Thanks, that covers what I need. Would you like a tour? I have Thu Dec 3 at 11am or 3pm - which works for you?";
    const HOLDING: &str =
        "Good question - I'm checking with the team and will get back to you shortly.";

    fn office() -> OfficeInfo {
        OfficeInfo {
            office_name: "Maple Court".to_string(),
            ..OfficeInfo::default()
        }
    }

    fn lead(text: &str) -> ChatLine {
        ChatLine {
            role: Role::Lead,
            text: text.to_string(),
        }
    }

    fn agent(text: &str) -> ChatLine {
        ChatLine {
            role: Role::Agent,
            text: text.to_string(),
        }
    }

    /// The UTC instant of a Chicago standard-time (UTC-6) wall-clock time.
    fn chicago(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
            .unwrap()
            + TimeDelta::hours(6)
    }

    /// Thursday, December 3, 2026, 9am in the office.
    fn thursday_morning() -> DateTime<Utc> {
        chicago(12, 3, 9, 0)
    }

    fn prompt(lines: Vec<ChatLine>, new_messages: usize, now: DateTime<Utc>) -> Prompt {
        Prompt {
            lead: LeadId::new("+13125550100"),
            lines,
            new_messages,
            now,
        }
    }

    fn reply_with(
        office: OfficeInfo,
        lines: Vec<ChatLine>,
        new: usize,
        now: DateTime<Utc>,
    ) -> String {
        RulesResponder::new(office).compose_reply(&prompt(lines, new, now))
    }

    fn reply(lines: Vec<ChatLine>, new: usize) -> String {
        reply_with(office(), lines, new, thursday_morning())
    }

    /// A qualified lead who has just been offered Thursday's two slots.
    fn offered_history() -> Vec<ChatLine> {
        vec![
            lead("Hi, need a 2br asap, budget $1200, no voucher, no pets"),
            agent(OFFER),
        ]
    }

    fn with(mut lines: Vec<ChatLine>, more: &[ChatLine]) -> Vec<ChatLine> {
        lines.extend_from_slice(more);
        lines
    }

    fn date(month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, month, day).unwrap()
    }

    #[test]
    fn our_questions_are_recognised_by_topic_even_in_llm_wording() {
        for topic in QUALIFYING_ORDER {
            assert_eq!(detect_asked_topic(question_for(topic)), Some(topic));
        }
        assert_eq!(
            detect_asked_topic("Great! And when would you like to move in?"),
            Some(Topic::MoveIn)
        );
        assert_eq!(
            detect_asked_topic(
                "Thanks for reaching out. Are you working with a Section 8 voucher?"
            ),
            Some(Topic::Voucher)
        );
        assert_eq!(detect_asked_topic("Got it - 2 bedrooms."), None);
        assert_eq!(detect_asked_topic(HOLDING), None);
    }

    #[test]
    fn a_tour_offer_is_recognised_and_its_slots_read_back() {
        assert_eq!(detect_asked_topic(OFFER), Some(Topic::Tour));
        assert_eq!(
            parse_offered_slots(OFFER, date(12, 3)),
            vec![
                Slot {
                    date: date(12, 3),
                    hour: 11
                },
                Slot {
                    date: date(12, 3),
                    hour: 15
                },
            ]
        );
        let across_new_year =
            "I have Thu Dec 31 at 3pm or Sat Jan 2 at 11am - which works for you?";
        assert_eq!(
            parse_offered_slots(across_new_year, date(12, 30)),
            vec![
                Slot {
                    date: date(12, 31),
                    hour: 15
                },
                Slot {
                    date: NaiveDate::from_ymd_opt(2027, 1, 2).unwrap(),
                    hour: 11
                },
            ]
        );
    }

    #[test]
    fn tour_times_are_read_in_the_ways_people_write_them() {
        let today = date(12, 3);
        let hour = |text: &str| read_slot_wish(text, today).hour;
        assert_eq!(hour("3pm works"), Some(15));
        assert_eq!(hour("3 pm"), Some(15));
        assert_eq!(hour("thursday at 3"), Some(15));
        assert_eq!(hour("11:00 is good"), Some(11));
        assert_eq!(hour("the 11"), Some(11));
        assert_eq!(hour("noon"), Some(12));
        assert_eq!(hour("Dec 3 works for me thanks"), None);
        let wish = read_slot_wish("tomorrow morning", today);
        assert_eq!(wish.day, Some(DayWish::Date(date(12, 4))));
        assert_eq!(wish.morning, Some(true));
        assert!(read_slot_wish("I can't do thursday", today).refused_day);
    }

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

    #[test]
    fn the_acknowledgement_repeats_what_the_lead_just_said() {
        let facts = Facts {
            bedrooms: Some(Bedrooms::Studio),
            move_in: Some(MoveIn::Day { month: 12, day: 1 }),
            budget: Some(1250),
            voucher: Some(true),
            pets: Some(true),
        };
        assert_eq!(
            acknowledge_facts(&facts).as_deref(),
            Some(
                "Got it - a studio, moving in on Dec 1, up to $1,250/mo, using a housing voucher, with a pet."
            )
        );
        assert_eq!(acknowledge_facts(&Facts::default()), None);
        assert_eq!(format_dollars(12500), "$12,500");
    }

    #[test]
    fn a_first_message_gets_a_greeting_and_the_first_missing_question() {
        assert_eq!(reply(vec![lead("Hi")], 1), GREETING_QUESTION);
    }

    #[test]
    fn an_empty_conversation_still_gets_a_greeting_and_a_question() {
        assert_eq!(reply(vec![], 0), GREETING_QUESTION);
    }

    #[test]
    fn a_first_message_with_details_is_acknowledged_and_skips_known_questions() {
        assert_eq!(
            reply(vec![lead("Hi, looking for a 2br for March")], 1),
            "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms, moving in March. What monthly budget do you have in mind?"
        );
    }

    #[test]
    fn the_readme_example_is_acknowledged_in_full() {
        assert_eq!(
            reply(vec![lead("2 bedrooms, moving in March, budget 1500")], 1),
            "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms, moving in March, up to $1,500/mo. Will you be using a housing voucher (like Section 8)?"
        );
    }

    #[test]
    fn a_burst_of_messages_gets_one_reply_addressing_all_of_them() {
        let lines = vec![lead("Hi"), lead("is the 2BR free?"), lead("price?")];
        assert_eq!(
            reply(lines, 3),
            "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms. Good questions about availability and price - I'm checking with the team and will get back to you shortly. When are you hoping to move in?"
        );
    }

    #[test]
    fn only_the_new_messages_are_acknowledged() {
        let lines = vec![
            lead("Hi, 2 bedrooms please"),
            agent(question_for(Topic::MoveIn)),
            lead("March"),
        ];
        assert_eq!(
            reply(lines, 1),
            "Got it - moving in March. What monthly budget do you have in mind?"
        );
    }

    #[test]
    fn a_lead_who_is_not_interested_gets_a_polite_close_without_questions() {
        let expected = "Understood - thanks for letting us know, and best of luck! If anything changes, just text us here.";
        for message in [
            "not interested",
            "We already found a place, thanks",
            "please stop texting me",
            "no thanks",
        ] {
            let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead(message)], 1);
            assert_eq!(answer, expected, "for {message:?}");
        }
    }

    #[test]
    fn a_wrong_number_gets_an_apology_and_no_questions() {
        let answer = reply(vec![lead("wrong number")], 1);
        assert_eq!(
            answer,
            "Sorry about that - thanks for letting us know. Have a great day!"
        );
    }

    #[test]
    fn not_interested_in_one_unit_type_is_not_a_close() {
        let answer = reply(
            vec![
                lead("Hi"),
                agent(GREETING_QUESTION),
                lead("not interested in a studio, need 2 bedrooms"),
            ],
            1,
        );
        assert_eq!(
            answer,
            "Got it - 2 bedrooms. When are you hoping to move in?"
        );
    }

    #[test]
    fn a_bare_answer_to_our_question_is_understood_in_context() {
        let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead("2")], 1);
        assert_eq!(
            answer,
            "Got it - 2 bedrooms. When are you hoping to move in?"
        );

        let lines = vec![
            lead("2br asap, about 1200"),
            agent(question_for(Topic::Voucher)),
            lead("no"),
        ];
        assert_eq!(
            reply(lines, 1),
            "Got it - no voucher. Do you have any pets?"
        );
    }

    #[test]
    fn an_unanswered_question_is_not_asked_twice_in_a_row() {
        let answer = reply(vec![lead("Hi"), agent(GREETING_QUESTION), lead("ok")], 1);
        assert_eq!(answer, "Thanks! When are you hoping to move in?");
    }

    #[test]
    fn a_question_asked_twice_already_is_not_asked_again() {
        let lines = vec![
            lead("Hi"),
            agent(GREETING_QUESTION),
            lead("ok"),
            agent(question_for(Topic::MoveIn)),
            lead("hmm"),
            agent(question_for(Topic::Bedrooms)),
            lead("ok"),
            agent(question_for(Topic::MoveIn)),
            lead("sure"),
        ];
        assert_eq!(
            reply(lines, 1),
            "Thanks! What monthly budget do you have in mind?"
        );
    }

    #[test]
    fn a_question_we_cannot_answer_gets_a_holding_reply_and_the_next_question() {
        let answer = reply(
            vec![
                lead("Hi"),
                agent(GREETING_QUESTION),
                lead("do you have a gym?"),
            ],
            1,
        );
        assert_eq!(answer, format!("{HOLDING} When are you hoping to move in?"));

        let answer = reply(
            vec![
                lead("Hi"),
                agent(GREETING_QUESTION),
                lead("2 bed. Is parking included?"),
            ],
            1,
        );
        assert_eq!(
            answer,
            "Got it - 2 bedrooms. Good question about parking - I'm checking with the team and will get back to you shortly. When are you hoping to move in?"
        );
    }

    #[test]
    fn a_tour_request_gets_two_concrete_slots_from_now() {
        assert_eq!(
            reply(vec![lead("can I see it?")], 1),
            "Hi! Thanks for texting Maple Court and for your interest. Happy to set up a tour! I have Thu Dec 3 at 11am or 3pm - which works for you?"
        );
    }

    #[test]
    fn a_tour_request_with_a_price_question_gets_the_slots_and_a_holding_reply() {
        let answer = reply(
            vec![
                lead("Hi"),
                agent(GREETING_QUESTION),
                lead("can I tour it? how much is rent?"),
            ],
            1,
        );
        assert_eq!(
            answer,
            "Good question about price - I'm checking with the team and will get back to you shortly. Happy to set up a tour! I have Thu Dec 3 at 11am or 3pm - which works for you?"
        );
    }

    #[test]
    fn tour_slots_skip_sunday_across_a_weekend() {
        let responder = RulesResponder::new(office());
        let saturday_noon = responder.upcoming_slots(chicago(12, 5, 12, 0), 2);
        assert_eq!(
            format_offer(&saturday_noon),
            "Sat Dec 5 at 3pm or Mon Dec 7 at 11am"
        );
        let saturday_evening = responder.upcoming_slots(chicago(12, 5, 17, 0), 2);
        assert_eq!(format_offer(&saturday_evening), "Mon Dec 7 at 11am or 3pm");
    }

    #[test]
    fn tour_slots_late_in_the_day_start_the_next_business_day() {
        let answer = reply_with(
            office(),
            vec![lead("want a tour")],
            1,
            chicago(12, 3, 16, 0),
        );
        assert!(
            answer.contains("I have Fri Dec 4 at 11am or 3pm"),
            "{answer}"
        );
    }

    #[test]
    fn tour_slots_are_never_sooner_than_the_notice_period() {
        let slots = RulesResponder::new(office()).upcoming_slots(chicago(12, 3, 10, 0), 2);
        assert_eq!(
            format_offer(&slots),
            "Thu Dec 3 at 3pm or Fri Dec 4 at 11am"
        );
    }

    #[test]
    fn tour_slots_follow_the_office_offset_and_configured_hours() {
        let instant = Utc.with_ymd_and_hms(2026, 12, 3, 14, 0, 0).unwrap();
        let chicago_office = RulesResponder::new(office());
        assert_eq!(
            format_offer(&chicago_office.upcoming_slots(instant, 2)),
            "Thu Dec 3 at 11am or 3pm"
        );
        let utc_office = RulesResponder::new(OfficeInfo {
            utc_offset_hours: 0,
            ..office()
        });
        assert_eq!(
            format_offer(&utc_office.upcoming_slots(instant, 2)),
            "Fri Dec 4 at 11am or 3pm"
        );
        let custom = RulesResponder::new(OfficeInfo {
            tour_hours: vec![13, 99, 10, 13],
            ..office()
        });
        assert_eq!(custom.tour_hours(), vec![10, 13]);
        let unset = RulesResponder::new(OfficeInfo {
            tour_hours: vec![],
            ..office()
        });
        assert_eq!(unset.tour_hours(), vec![11, 15]);
    }

    #[test]
    fn a_complete_qualification_leads_to_a_tour_offer() {
        let lines = vec![
            lead("2br asap, $1200"),
            agent(
                "Got it - 2 bedrooms, moving in ASAP, up to $1,200/mo. Will you be using a housing voucher (like Section 8)?",
            ),
            lead("no voucher, and I have a cat"),
        ];
        assert_eq!(
            reply(lines, 1),
            format!("Got it - no voucher, with a pet. {OFFER}")
        );
    }

    #[test]
    fn picking_an_offered_time_confirms_that_slot() {
        let answer = reply(with(offered_history(), &[lead("3pm works")]), 1);
        assert_eq!(
            answer,
            "You're set for Thu Dec 3 at 3pm. A leasing agent will text you to confirm."
        );
    }

    #[test]
    fn a_yes_to_a_tour_offer_confirms_the_first_slot() {
        let answer = reply(with(offered_history(), &[lead("Yes!")]), 1);
        assert_eq!(
            answer,
            "You're set for Thu Dec 3 at 11am. A leasing agent will text you to confirm."
        );
    }

    #[test]
    fn naming_another_day_books_that_day() {
        let answer = reply(
            with(offered_history(), &[lead("how about saturday at 3")]),
            1,
        );
        assert_eq!(
            answer,
            "You're set for Sat Dec 5 at 3pm. A leasing agent will text you to confirm."
        );
    }

    #[test]
    fn a_confirmation_still_answers_a_question_in_the_same_message() {
        let answer = reply(
            with(
                offered_history(),
                &[lead("thursday at 11? also is parking free?")],
            ),
            1,
        );
        assert_eq!(
            answer,
            "You're set for Thu Dec 3 at 11am. A leasing agent will text you to confirm. Good question about parking - I'm checking with the team and will get back to you shortly."
        );
    }

    #[test]
    fn declining_the_offered_times_asks_what_works_instead() {
        let answer = reply(with(offered_history(), &[lead("I can't do thursday")]), 1);
        assert_eq!(
            answer,
            "No problem - what day works better for you? Tours run Mon-Sat at 11am or 3pm."
        );
    }

    #[test]
    fn a_day_without_tours_is_answered_with_the_tour_days() {
        let answer = reply(with(offered_history(), &[lead("sunday?")]), 1);
        assert_eq!(
            answer,
            "Sorry, that time isn't open. Tours run Mon-Sat at 11am or 3pm - what day works for you?"
        );
    }

    #[test]
    fn a_yes_to_slots_that_have_passed_gets_fresh_slots() {
        let answer = reply_with(
            office(),
            with(offered_history(), &[lead("yes")]),
            1,
            chicago(12, 5, 17, 0),
        );
        assert_eq!(
            answer,
            "Sorry, those times have passed. I have Mon Dec 7 at 11am or 3pm for a tour - which works for you?"
        );
    }

    #[test]
    fn a_yes_to_an_offer_we_cannot_read_is_passed_to_the_team() {
        let lines = vec![
            lead("2br asap, $1200, no voucher, no pets"),
            agent("Would you like to schedule a tour this week?"),
            lead("yes please"),
        ];
        assert_eq!(
            reply(lines, 1),
            "Great! A leasing agent will text you shortly to lock in the time."
        );
    }

    #[test]
    fn a_question_after_a_tour_offer_does_not_repeat_the_offer() {
        let answer = reply(with(offered_history(), &[lead("what's the rent?")]), 1);
        assert_eq!(
            answer,
            "Good question about price - I'm checking with the team and will get back to you shortly."
        );
    }

    #[test]
    fn a_booked_lead_saying_thanks_is_not_asked_anything() {
        let lines = with(
            offered_history(),
            &[
                lead("Thu 3pm"),
                agent("You're set for Thu Dec 3 at 3pm. A leasing agent will text you to confirm."),
                lead("thanks!"),
            ],
        );
        assert_eq!(
            reply(lines, 1),
            "Thanks! A leasing agent will text you to confirm your tour."
        );
    }

    #[test]
    fn a_prompt_that_miscounts_its_new_messages_still_answers_the_trailing_lead_lines() {
        let lines = vec![lead("Hi"), agent(GREETING_QUESTION), lead("2 bedrooms")];
        let expected = "Got it - 2 bedrooms. When are you hoping to move in?";
        assert_eq!(reply(lines.clone(), 0), expected);
        assert_eq!(
            reply(vec![lead("Hi"), lead("2 bedrooms")], 99),
            "Hi! Thanks for texting Maple Court and for your interest. Got it - 2 bedrooms. When are you hoping to move in?"
        );
    }

    /// One conversation per branch of `compose_reply`.
    fn every_branch() -> Vec<(Vec<ChatLine>, usize, DateTime<Utc>)> {
        let morning = thursday_morning();
        vec![
            (vec![lead("Hi")], 1, morning),
            (
                vec![
                    lead("Hi"),
                    lead("is the 2BR free?"),
                    lead("price?"),
                    lead("parking? utilities? deposit? laundry? lease?"),
                ],
                4,
                morning,
            ),
            (vec![lead("not interested")], 1, morning),
            (vec![lead("wrong number")], 1, morning),
            (
                vec![lead("can I see it? how much is it? where is it?")],
                1,
                morning,
            ),
            (
                vec![lead("Studio asap $1,200 with a housing voucher and 2 cats")],
                1,
                morning,
            ),
            (with(offered_history(), &[lead("3pm")]), 1, morning),
            (
                with(
                    offered_history(),
                    &[lead("yes, is parking free? utilities?")],
                ),
                1,
                morning,
            ),
            (with(offered_history(), &[lead("neither")]), 1, morning),
            (
                with(offered_history(), &[lead("sunday at 8pm")]),
                1,
                morning,
            ),
            (
                with(offered_history(), &[lead("yes")]),
                1,
                chicago(12, 9, 9, 0),
            ),
            (
                vec![lead("Hi"), agent(GREETING_QUESTION), lead("ok")],
                1,
                morning,
            ),
            (
                vec![lead("Hi"), agent(GREETING_QUESTION), lead("what?")],
                1,
                morning,
            ),
        ]
    }

    #[test]
    fn every_branch_replies_in_plain_text_within_320_characters() {
        let long_name = "The Residences at Maple Court and Lakeshore Gardens Apartment Homes, a Premier Lakefront Rental Community on the North Side of Chicago with Resort-Style Amenities, a Fitness Center, a Rooftop Pool and Covered Parking".to_string();
        for name in ["Maple Court".to_string(), long_name.clone()] {
            let info = OfficeInfo {
                office_name: name,
                ..OfficeInfo::default()
            };
            for (lines, new, now) in every_branch() {
                let answer = reply_with(info.clone(), lines.clone(), new, now);
                let length = answer.chars().count();
                assert!(
                    (1..=MAX_REPLY_CHARS).contains(&length),
                    "{length} chars: {answer}"
                );
                assert!(
                    !answer.contains(['*', '#', '`', '_', '[', ']', '\n']),
                    "markdown in: {answer}"
                );
                // One non-GSM-7 character (an em dash, a curly quote) switches the whole SMS
                // to UCS-2: 70 characters a segment instead of 160, more than twice the cost.
                assert!(answer.is_ascii(), "non-GSM-7 character in: {answer}");
            }
        }
        // The long name really does push a greeting past the limit: the bound is being enforced,
        // not merely never reached.
        assert!(long_name.chars().count() + 150 > MAX_REPLY_CHARS);
    }

    #[test]
    fn an_outsized_office_name_is_dropped_before_the_question() {
        let info = OfficeInfo {
            office_name: "X".repeat(400),
            ..OfficeInfo::default()
        };
        let answer = reply_with(info, vec![lead("Hi")], 1, thursday_morning());
        assert_eq!(answer, question_for(Topic::Bedrooms));
    }

    #[test]
    fn an_overlong_single_piece_is_cut_at_a_word_boundary() {
        let text = "word ".repeat(100);
        let cut = truncate_reply(&text);
        assert!(cut.chars().count() <= MAX_REPLY_CHARS);
        assert!(cut.ends_with("word..."), "{cut}");
    }

    #[test]
    fn the_same_prompt_always_gets_the_same_reply() {
        for (lines, new, now) in every_branch() {
            let p = prompt(lines, new, now);
            let first = RulesResponder::new(office()).compose_reply(&p);
            let second = RulesResponder::new(office()).compose_reply(&p.clone());
            assert_eq!(first, second);
        }
    }

    #[tokio::test]
    async fn the_chat_model_answers_as_rules_with_no_tokens_and_never_fails() {
        let responder = RulesResponder::new(office());
        let p = prompt(vec![lead("Hi")], 1, thursday_morning());
        let completion = responder.complete(&p).await.unwrap();
        assert_eq!(responder.name(), "rules");
        assert_eq!(
            completion,
            Completion {
                text: GREETING_QUESTION.to_string(),
                provider: "rules".to_string(),
                input_tokens: 0,
                output_tokens: 0,
            }
        );
        let default = RulesResponder::default().complete(&p).await.unwrap();
        assert!(
            default
                .text
                .starts_with("Hi! Thanks for texting the leasing office and for your interest.")
        );
    }
}
