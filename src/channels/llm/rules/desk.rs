//! The catalog at the rules responder's desk: what the lead's messages ask that the
//! building catalog answers, the buildings the conversation is about, tour slots from a
//! building's `tour_hours` in the office's zone, and the actions a turn takes (save the
//! lead's needs, book a tour) as the brain's tool calls.
//!
//! Owns: the seam between the readers (`conversation`, `facts`) and the catalog's pure
//! answers (`actors::brain::answers`, `actors::brain::tour_hours`). Must not: word a
//! catalog fact itself (the actor crate does, so the brain and the rules say the same), or
//! act: an [`Action`] becomes a `record_requirements` or `schedule_tour` call that the
//! brain's tool box runs, the same path a model's call takes.

use actors::brain::answers::{self, Ask, Needs};
use actors::brain::catalog::{Building, Catalog};
use actors::brain::tour_hours::TourHours;
use actors::ports::{ChatLine, Prompt, Role};
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde_json::{Value, json};

use super::conversation::Conversation;
use super::dates::month_name;
use super::facts::{Bedrooms, Facts, MoveIn};
use super::tour::Slot;

/// What a turn does besides answering: the brain's tools run these.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Action {
    /// `record_requirements` with this input: the needs the new messages stated.
    Requirements(Value),
    /// `schedule_tour` at a building (id) at a local time.
    Book { building: String, at: NaiveDateTime },
}

impl Action {
    pub(super) fn tool_call(&self) -> (&'static str, Value) {
        use actors::brain::tools::{RECORD_REQUIREMENTS, SCHEDULE_TOUR};
        match self {
            Action::Requirements(input) => (RECORD_REQUIREMENTS, input.clone()),
            Action::Book { building, at } => (
                SCHEDULE_TOUR,
                json!({
                    "building": building,
                    "when": at.format("%Y-%m-%dT%H:%M").to_string(),
                    "notes": "booked by the rules responder from the offered slots",
                }),
            ),
        }
    }
}

pub(super) fn needs_of(facts: &Facts, lines: &[ChatLine]) -> Needs {
    let pet = if facts.pets == Some(false) {
        None
    } else {
        lines
            .iter()
            .rev()
            .filter(|l| l.role == Role::Lead)
            .find_map(|l| answers::read_pet(&l.text))
    };
    Needs {
        bedrooms: facts.bedrooms.map(|b| match b {
            Bedrooms::Studio => 0,
            Bedrooms::Count(n) => n,
        }),
        budget: facts.budget,
        voucher: facts.voucher,
        pet,
    }
}

/// The buildings the conversation is on: those the new messages name, else those the
/// latest line naming any building named.
pub(super) fn about<'c>(
    catalog: &'c Catalog,
    convo: &Conversation<'_>,
    prompt: &Prompt,
) -> Vec<&'c Building> {
    let named_now: Vec<&Building> = convo
        .new_messages
        .iter()
        .flat_map(|m| answers::named_in(catalog, m))
        .collect();
    if !named_now.is_empty() {
        return dedup(named_now);
    }
    prompt
        .lines
        .iter()
        .rev()
        .map(|l| answers::named_in(catalog, &l.text))
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

fn dedup(mut found: Vec<&Building>) -> Vec<&Building> {
    let mut seen = std::collections::HashSet::new();
    found.retain(|b| seen.insert(b.id.clone()));
    found
}

/// The catalog's answers to the new messages, and which messages they answered (those are
/// not held for the team).
pub(super) fn answer_messages(
    catalog: &Catalog,
    needs: &Needs,
    about: &[&Building],
    messages: &[&str],
) -> (Vec<String>, Vec<bool>) {
    let mut said: Vec<String> = Vec::new();
    let mut answered = Vec::new();
    for m in messages {
        let asks = answers::read_asks(m);
        let replies: Vec<String> = asks
            .iter()
            .filter_map(|&ask| answers::answer(catalog, needs, ask, about, m))
            .collect();
        // Answered only when every question in it was: half an answer is still held.
        answered.push(!asks.is_empty() && replies.len() == asks.len());
        for r in replies {
            if !said.contains(&r) {
                said.push(r);
            }
        }
    }
    (said, answered)
}

/// Asked whether a unit is available (or what it costs) by name of a topic: the answer
/// already names the matches, so they are not repeated.
pub(super) fn asked_units(messages: &[&str]) -> bool {
    messages
        .iter()
        .any(|m| answers::read_asks(m).contains(&Ask::Units))
}

/// The `record_requirements` input for what the new messages said, or `None`.
pub(super) fn requirements_action(new: &Facts, lines: &[ChatLine]) -> Option<Action> {
    let mut input = serde_json::Map::new();
    match new.bedrooms {
        Some(Bedrooms::Studio) => {
            input.insert("bedrooms".into(), json!(0));
        }
        Some(Bedrooms::Count(n)) => {
            input.insert("bedrooms".into(), json!(n));
        }
        None => {}
    }
    if let Some(b) = new.budget {
        input.insert("budget".into(), json!(b));
    }
    if let Some(v) = new.voucher {
        input.insert("voucher".into(), json!(if v { "yes" } else { "none" }));
    }
    if let Some(p) = new.pets {
        let described = p
            .then(|| needs_of(new, lines).pet.map(|p| p.describe()))
            .flatten()
            .unwrap_or_else(|| if p { "yes".into() } else { "none".into() });
        input.insert("pets".into(), json!(described));
    }
    if let Some(m) = new.move_in {
        input.insert("move_in_date".into(), json!(describe_move_in(m)));
    }
    (!input.is_empty()).then_some(Action::Requirements(Value::Object(input)))
}

fn describe_move_in(m: MoveIn) -> String {
    match m {
        MoveIn::Asap => "asap".into(),
        MoveIn::Soon => "soon".into(),
        MoveIn::ThisMonth => "this month".into(),
        MoveIn::NextMonth => "next month".into(),
        MoveIn::Flexible => "flexible".into(),
        MoveIn::Month(n) => month_name(n).to_string(),
        MoveIn::Day { month, day } => format!("{} {day}", month_name(month)),
    }
}

/// Where a tour goes: the building the conversation is on, else the best match for the
/// lead's needs, else the first with tour hours. Only a building whose hours can be read.
pub(super) fn tour_building<'c>(
    catalog: &'c Catalog,
    about: &[&'c Building],
    needs: &Needs,
) -> Option<(&'c Building, TourHours)> {
    let with_hours = |b: &'c Building| Some((b, TourHours::parse(b.tour_hours.as_deref()?)?));
    about
        .iter()
        .find_map(|b| with_hours(b))
        .or_else(|| {
            answers::matches(catalog, needs)
                .into_iter()
                .find_map(|(b, _)| with_hours(b))
        })
        .or_else(|| catalog.buildings.iter().find_map(with_hours))
}

/// The office's wall clock now.
pub(super) fn local_now(zone: chrono_tz::Tz, now: DateTime<Utc>) -> NaiveDateTime {
    now.with_timezone(&zone).naive_local()
}

pub(super) fn slots(hours: &TourHours, local_now: NaiveDateTime, limit: usize) -> Vec<Slot> {
    hours
        .upcoming(local_now, limit)
        .into_iter()
        .map(|t| Slot {
            date: t.date(),
            hour: t.hour(),
        })
        .collect()
}

pub(super) fn slot_time(slot: Slot) -> Option<NaiveDateTime> {
    slot.date.and_hms_opt(slot.hour, 0, 0)
}

/// The building our last line offered a tour at: the one named last in it (the offer
/// ends "... at Maple Court - which works for you?", after any matches it listed).
pub(super) fn offered_at<'c>(
    catalog: &'c Catalog,
    last_agent_line: Option<&str>,
) -> Option<&'c Building> {
    let line = last_agent_line?;
    let lower = line.to_lowercase();
    answers::named_in(catalog, line)
        .into_iter()
        .max_by_key(|b| lower.rfind(&b.name.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offer_is_at_the_building_named_last_in_our_line() {
        let catalog = crate::catalog::load(None).unwrap();
        let line = "Got it - 2 bedrooms. Maple Court has a 2BR at $1,600/mo (available now). Lakeview Lofts has a 2BR at $1,900/mo (available Jan 1). Happy to set up a tour! I have Tue Dec 8 at 11am or 3pm at Maple Court - which works for you?";
        assert_eq!(offered_at(&catalog, Some(line)).unwrap().id, "maple-court");
    }
}
