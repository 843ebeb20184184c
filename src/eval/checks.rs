//! Judging one turn of an eval conversation: what the service did (the replies sent, a
//! reply held, the tour on the lead's record) against the turn's checks.
//!
//! Owns: each check's meaning — mention (case-insensitive, `|` alternatives), hold for a
//! person, no reply, a booked slot inside the building's `tour_hours`, and no dollar
//! amount or bedroom count that neither the catalog nor the lead gave. Must not: run the
//! service or read the store (`runner` gathers [`TurnOutcome`]).

use actors::brain::catalog::Catalog;
use actors::brain::tour_hours::TourHours;
use chrono::NaiveDateTime;
use serde::Serialize;

use super::corpus::Turn;

/// What the service did with one turn.
#[derive(Clone, Debug, Default)]
pub struct TurnOutcome {
    /// The bodies sent to the lead after the turn's texts, in order.
    pub replies: Vec<String>,
    /// A text of the turn was answered without a reply going out: held for a person.
    pub held: bool,
    /// The tour on the lead's record after the turn, when this turn put it there:
    /// (building id, local time as the booking wrote it).
    pub new_tour: Option<(String, String)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub detail: String,
}

fn result(check: String, passed: bool, detail: impl FnOnce() -> String) -> CheckResult {
    CheckResult {
        check,
        passed,
        detail: if passed { String::new() } else { detail() },
    }
}

/// Words that say a person will take the question: the rules' holding reply, the
/// accommodation hand-off, what a model says when it escalates.
const HOLDING: &[&str] = &[
    "checking with the team",
    "check with the team",
    "get back to you",
    "member of our team",
    "the team will",
    "someone from our team",
    "a person will",
    "will follow up",
    "will reach out",
];

pub fn says_it_holds(text: &str) -> bool {
    let lower = text.to_lowercase();
    HOLDING.iter().any(|h| lower.contains(h))
}

/// A clock time in the text: "11am", "3 pm", "10:30am".
fn has_clock_time(lower: &str) -> bool {
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != ':')
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().enumerate().any(|(i, w)| {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let suffix = &w[digits.len()..];
        let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == ':');
        numeric
            && (matches!(suffix, "am" | "pm")
                || (suffix.is_empty()
                    && words.get(i + 1).is_some_and(|n| matches!(*n, "am" | "pm"))))
    })
}

/// One of the `|`-separated alternatives is in `text` (case-insensitive); `<time>` stands
/// for any clock time.
fn mentions(text: &str, alternatives: &str) -> bool {
    let lower = text.to_lowercase();
    alternatives
        .split('|')
        .map(|a| a.trim().to_lowercase())
        .any(|a| match a.as_str() {
            "" => false,
            "<time>" => has_clock_time(&lower),
            a => lower.contains(a),
        })
}

/// The checks of `turn` on `outcome`. `lead_said` is everything the lead wrote so far
/// (their own numbers may be echoed back).
pub fn check_turn(
    turn: &Turn,
    outcome: &TurnOutcome,
    catalog: &Catalog,
    lead_said: &[String],
) -> Vec<CheckResult> {
    let text = outcome.replies.join("\n");
    let quoted = || format!("reply: {text:?}");
    let mut out = Vec::new();
    for m in &turn.must_mention {
        out.push(result(
            format!("mentions `{m}`"),
            mentions(&text, m),
            quoted,
        ));
    }
    for m in &turn.must_not_mention {
        out.push(result(
            format!("does not mention `{m}`"),
            !mentions(&text, m),
            quoted,
        ));
    }
    if turn.must_hold {
        let held = outcome.held || says_it_holds(&text);
        out.push(result("holds it for a person".into(), held, quoted));
    }
    if turn.must_not_reply {
        out.push(result(
            "sends no reply".into(),
            outcome.replies.is_empty(),
            quoted,
        ));
    }
    if turn.must_book {
        let (ok, why) = booked_within_hours(outcome.new_tour.as_ref(), catalog);
        out.push(result("books a slot within tour hours".into(), ok, || why));
    }
    if turn.catalog_facts_only && !outcome.replies.is_empty() {
        let invented = invented_facts(&text, catalog, lead_said);
        out.push(result(
            "no price or unit the catalog does not list".into(),
            invented.is_empty(),
            || format!("{} in {text:?}", invented.join(", ")),
        ));
    }
    out
}

/// The checks of `turn` when it could not be run at all: each one failed, saying why.
pub fn not_run(turn: &Turn, why: &str) -> Vec<CheckResult> {
    let count = turn.must_mention.len()
        + turn.must_not_mention.len()
        + usize::from(turn.must_hold)
        + usize::from(turn.must_not_reply)
        + usize::from(turn.must_book)
        + usize::from(turn.catalog_facts_only && !turn.must_not_reply);
    (0..count.max(1))
        .map(|_| CheckResult {
            check: "not run".into(),
            passed: false,
            detail: why.to_string(),
        })
        .collect()
}

fn booked_within_hours(tour: Option<&(String, String)>, catalog: &Catalog) -> (bool, String) {
    let Some((building, when)) = tour else {
        return (false, "no tour was booked in this turn".into());
    };
    let Some(b) = catalog.find(building) else {
        return (
            false,
            format!("booked at `{building}`, not a catalog building"),
        );
    };
    let Some(hours) = b.tour_hours.as_deref().and_then(TourHours::parse) else {
        return (false, format!("{} has no readable tour_hours", b.name));
    };
    let at = NaiveDateTime::parse_from_str(when.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(when.trim(), "%Y-%m-%dT%H:%M:%S"));
    match at {
        Ok(at) if hours.contains(at) => (true, String::new()),
        Ok(at) => (false, format!("{at} is outside {}'s tour hours", b.name)),
        Err(_) => (false, format!("`{when}` is not a local date and time")),
    }
}

/// Runs of digits in `text` (commas inside a number dropped: "$1,600" is 1600).
fn numbers(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if c == ',' && !cur.is_empty() && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        {
            continue;
        } else if !cur.is_empty() {
            out.extend(cur.parse::<u32>().ok());
            cur.clear();
        }
    }
    out.extend(cur.parse::<u32>().ok());
    out
}

/// Dollar amounts (`$1,600`) in `text`.
fn dollar_amounts(text: &str) -> Vec<u32> {
    text.split('$')
        .skip(1)
        .filter_map(|rest| numbers(rest.split_whitespace().next()?).first().copied())
        .collect()
}

/// Bedroom counts named in `text`: "2BR", "2 br", "2-bedroom", "2 bedrooms", "2 bed".
fn bedroom_counts(text: &str) -> Vec<u32> {
    let lower = text.to_lowercase().replace('-', " ");
    let words: Vec<&str> = lower.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        let digits: String = w.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            continue;
        }
        let rest = &w[digits.len()..];
        let next = words
            .get(i + 1)
            .map(|n| n.trim_matches(|c: char| !c.is_alphanumeric()))
            .unwrap_or("");
        let unit = |s: &str| matches!(s, "br" | "bd" | "bed" | "beds" | "bedroom" | "bedrooms");
        if unit(rest) || (rest.is_empty() && unit(next)) {
            out.extend(digits.parse::<u32>().ok());
        }
    }
    out
}

/// What the reply states that neither the catalog nor the lead said: each as "$N" or
/// "NBR".
pub fn invented_facts(reply: &str, catalog: &Catalog, lead_said: &[String]) -> Vec<String> {
    let mut known_dollars: Vec<u32> = Vec::new();
    let mut known_bedrooms: Vec<u32> = Vec::new();
    for b in &catalog.buildings {
        for u in &b.units {
            known_dollars.push(u.rent);
            known_bedrooms.push(u32::from(u.bedrooms));
        }
        for words in [&b.pets, &b.notes].into_iter().flatten() {
            known_dollars.extend(numbers(words));
        }
        for a in &b.amenities {
            known_dollars.extend(numbers(a));
        }
    }
    let said: Vec<u32> = lead_said.iter().flat_map(|s| lead_numbers(s)).collect();
    let mut out = Vec::new();
    for d in dollar_amounts(reply) {
        if !known_dollars.contains(&d) && !said.contains(&d) {
            out.push(format!("${d}"));
        }
    }
    for n in bedroom_counts(reply) {
        if !known_bedrooms.contains(&n) && !said.contains(&n) {
            out.push(format!("{n}BR"));
        }
    }
    out
}

/// The numbers a lead wrote, with "1.5k" and "2k" read as thousands.
fn lead_numbers(text: &str) -> Vec<u32> {
    let mut out = numbers(text);
    for w in text.to_lowercase().split_whitespace() {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '.');
        if let Some(k) = w.strip_suffix('k')
            && let Ok(v) = k.trim_start_matches('$').parse::<f64>()
        {
            out.push((v * 1000.0).round() as u32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        crate::catalog::load(None).unwrap()
    }

    fn turn(yaml: &str) -> Turn {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn a_price_or_unit_not_in_the_catalog_is_caught_unless_the_lead_said_it() {
        let c = catalog();
        assert!(invented_facts("Maple Court has a 2BR at $1,600/mo.", &c, &[]).is_empty());
        assert_eq!(
            invented_facts("We have a 4-bedroom at $2,999.", &c, &[]),
            vec!["$2999", "4BR"]
        );
        let said = vec!["4 bedrooms, budget 1.5k".to_string()];
        assert!(invented_facts("Got it - 4 bedrooms, up to $1,500/mo.", &c, &said).is_empty());
        assert!(invented_facts("Pet rent is $35/month.", &c, &[]).is_empty());
    }

    #[test]
    fn a_clock_time_is_not_the_am_of_team() {
        assert!(mentions("I have Tue Dec 8 at 11am or 3pm", "<time>"));
        assert!(mentions("at 3 pm", "<time>"));
        assert!(!mentions("I'm checking with the team", "<time>"));
    }

    #[test]
    fn each_check_can_fail() {
        let c = catalog();
        let t = turn(
            "lead: hi\nmust_mention: [Maple Court|maple]\nmust_not_mention: [checking]\nmust_hold: true\nmust_not_reply: true\nmust_book: true\n",
        );
        let quiet = check_turn(&t, &TurnOutcome::default(), &c, &[]);
        let failed: Vec<&str> = quiet
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.check.as_str())
            .collect();
        assert_eq!(
            failed,
            vec![
                "mentions `Maple Court|maple`",
                "holds it for a person",
                "books a slot within tour hours"
            ]
        );
        let talky = TurnOutcome {
            replies: vec!["I'm checking with the team about maple.".into()],
            held: false,
            new_tour: Some(("maple-court".into(), "2026-12-05T11:00".into())),
        };
        let r = check_turn(&t, &talky, &c, &[]);
        let failed: Vec<&str> = r
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.check.as_str())
            .collect();
        assert_eq!(
            failed,
            vec![
                "does not mention `checking`",
                "sends no reply",
                "books a slot within tour hours"
            ],
            "Saturday is outside Maple Court's Mon-Fri"
        );
        let monday = TurnOutcome {
            new_tour: Some(("maple-court".into(), "2026-12-07T15:00".into())),
            ..talky
        };
        assert!(
            check_turn(&t, &monday, &c, &[])
                .iter()
                .any(|r| r.check.starts_with("books") && r.passed)
        );
    }
}
