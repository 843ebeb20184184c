//! Composing the answer: from what `conversation`, `intents` and `tour` understood, the one
//! plain-text SMS the lead gets, and its every sentence.
//!
//! Owns: the order of the reply's parts (greeting, acknowledgement, holding reply, the one
//! question or offer), their wording, and the [`MAX_REPLY_CHARS`] bound (the least important
//! part is dropped first, so the question or offer survives). Must not: parse the lead's
//! words itself — anything it needs to know about the messages comes from the readers.

use actors::ports::Prompt;

use super::conversation::read_conversation;
use super::dates::{month_abbreviation, month_name};
use super::desk::{self, Action};
use super::facts::{Bedrooms, Facts, MoveIn};
use super::intents::{Closing, detect_closing, find_question_labels, is_question, is_tour_request};
use super::topics::{QUALIFYING_ORDER, Topic};
use super::tour::{TourAnswer, format_offer, format_slot, parse_offered_slots};
use super::{MAX_REPLY_CHARS, RulesResponder};

/// How much a piece of the reply matters; when the reply is too long the least important
/// pieces are dropped first, so the question or offer always survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Weight {
    Acknowledgement,
    Greeting,
    Holding,
    Core,
    /// A fact from the catalog the lead asked for: kept over the next question.
    Answer,
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

pub(super) fn question_for(topic: Topic) -> &'static str {
    match topic {
        Topic::Bedrooms => "How many bedrooms are you looking for?",
        Topic::MoveIn => "When are you hoping to move in?",
        Topic::Budget => "What monthly budget do you have in mind?",
        Topic::Voucher => "Will you be using a housing voucher (like Section 8)?",
        Topic::Pets => "Do you have any pets?",
        Topic::Tour => "Would you like to come see it?",
    }
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

impl RulesResponder {
    /// The reply to the prompt's new messages, read in the light of its history.
    pub fn compose_reply(&self, prompt: &Prompt) -> String {
        self.compose(prompt).0
    }

    /// The reply and what the turn does besides (save the needs, book a tour): see
    /// `desk`. Without a catalog there are no actions and no building facts.
    pub(super) fn compose(&self, prompt: &Prompt) -> (String, Vec<Action>) {
        let convo = read_conversation(prompt);
        let said = convo.new_messages.join("\n");
        if let Some(closing) = detect_closing(&said) {
            return (truncate_reply(closing_reply(closing)), Vec::new());
        }
        let mut draft = ReplyDraft::default();
        let mut actions = Vec::new();
        if convo.first_contact {
            draft.add(Weight::Greeting, self.greet());
        }
        if let Some(ack) = acknowledge_facts(&convo.new_facts) {
            draft.add(Weight::Acknowledgement, ack);
        }
        let catalog = self.catalog.as_ref().map(|(c, zone)| (c.current(), *zone));
        let catalog = catalog.as_ref().map(|(c, zone)| (c.as_ref(), *zone));
        // The messages still to hold for the team: those the catalog did not answer.
        let mut to_hold: Vec<&str> = convo.new_messages.clone();
        let mut needs = None;
        let mut about = Vec::new();
        if let Some((catalog, _)) = catalog {
            let n = desk::needs_of(&convo.facts, &prompt.lines);
            about = desk::about(catalog, &convo, prompt);
            let (answers, answered) =
                desk::answer_messages(catalog, &n, &about, &convo.new_messages);
            to_hold = convo
                .new_messages
                .iter()
                .zip(&answered)
                .filter(|(_, a)| !**a)
                .map(|(m, _)| *m)
                .collect();
            for a in answers {
                draft.add(Weight::Answer, a);
            }
            // New needs and no unit question answered them: say what matches.
            if !convo.new_facts.is_empty() && !desk::asked_units(&convo.new_messages) {
                let stated_rooms =
                    convo.new_facts.bedrooms.is_some() || convo.new_facts.budget.is_some();
                // The buildings the lead is on, when they named some: not the whole list.
                let on: actors::brain::catalog::Catalog;
                let scope = if about.is_empty() {
                    catalog
                } else {
                    on = actors::brain::catalog::Catalog {
                        buildings: about.iter().map(|b| (*b).clone()).collect(),
                    };
                    &on
                };
                if stated_rooms && let Some(m) = actors::brain::answers::describe_matches(scope, &n)
                {
                    draft.add(Weight::Answer, m);
                }
            }
            actions.extend(desk::requirements_action(&convo.new_facts, &prompt.lines));
            needs = Some(n);
        }

        if convo.last_asked == Some(Topic::Tour) {
            let offered = convo
                .agent_lines
                .last()
                .map(|l| parse_offered_slots(l, self.local_now(prompt.now).date()))
                .unwrap_or_default();
            let offered_at =
                catalog.and_then(|(c, _)| desk::offered_at(c, convo.agent_lines.last().copied()));
            match self.read_tour_answer(&said, &offered, prompt.now) {
                TourAnswer::Picked(slot) => {
                    if let Some(b) = offered_at {
                        let hours = b
                            .tour_hours
                            .as_deref()
                            .and_then(actors::brain::tour_hours::TourHours::parse);
                        let at = desk::slot_time(slot);
                        match (hours, at) {
                            (Some(h), Some(at)) if h.contains(at) => {
                                actions.push(Action::Book { building: b.id.clone(), at });
                                draft.add(
                                    Weight::Core,
                                    format!(
                                        "You're set for {} at {}. A leasing agent will text you to confirm.",
                                        format_slot(slot),
                                        b.name
                                    ),
                                );
                            }
                            _ => draft.add(
                                Weight::Core,
                                format!(
                                    "Sorry, that time isn't open. Tours at {} run {} - what day works for you?",
                                    b.name,
                                    b.tour_hours.as_deref().unwrap_or("by appointment")
                                ),
                            ),
                        }
                        if let Some(holding) = hold_questions(&to_hold, false) {
                            draft.add(Weight::Holding, holding);
                        }
                        return (draft.render(), actions);
                    }
                    draft.add(
                        Weight::Core,
                        format!(
                            "You're set for {}. A leasing agent will text you to confirm.",
                            format_slot(slot)
                        ),
                    );
                    if let Some(holding) = hold_questions(&to_hold, false) {
                        draft.add(Weight::Holding, holding);
                    }
                    return (draft.render(), actions);
                }
                TourAnswer::Accepted => {
                    draft.add(
                        Weight::Core,
                        "Great! A leasing agent will text you shortly to lock in the time.",
                    );
                    return (draft.render(), actions);
                }
                TourAnswer::Declined => {
                    let hours = match offered_at.and_then(|b| Some((b, b.tour_hours.as_deref()?))) {
                        Some((b, h)) => format!("Tours at {} run {h}.", b.name),
                        None => format!("Tours run Mon-Sat at {}.", self.describe_tour_hours()),
                    };
                    draft.add(
                        Weight::Core,
                        format!("No problem - what day works better for you? {hours}"),
                    );
                    return (draft.render(), actions);
                }
                TourAnswer::Unavailable => {
                    let hours = match offered_at.and_then(|b| Some((b, b.tour_hours.as_deref()?))) {
                        Some((b, h)) => format!("Tours at {} run {h}", b.name),
                        None => format!("Tours run Mon-Sat at {}", self.describe_tour_hours()),
                    };
                    draft.add(
                        Weight::Core,
                        format!("Sorry, that time isn't open. {hours} - what day works for you?"),
                    );
                    return (draft.render(), actions);
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
                    return (draft.render(), actions);
                }
                TourAnswer::Unclear => {}
            }
        }

        let tour_requested = convo.new_messages.iter().any(|m| is_tour_request(m));
        let next_question = convo.find_next_question();
        if tour_requested || (next_question.is_none() && convo.may_offer_tour()) {
            if let Some(holding) = hold_questions(&to_hold, true) {
                draft.add(Weight::Holding, holding);
            }
            let lead_in = if tour_requested {
                "Happy to set up a tour!"
            } else if QUALIFYING_ORDER.iter().all(|&t| convo.facts.knows(t)) {
                "Thanks, that covers what I need. Would you like a tour?"
            } else {
                "Would you like a tour?"
            };
            let at_building = catalog.zip(needs.as_ref()).and_then(|((c, zone), n)| {
                let (b, hours) = desk::tour_building(c, &about, n)?;
                let slots = desk::slots(&hours, desk::local_now(zone, prompt.now), 2);
                (!slots.is_empty()).then_some((b, slots))
            });
            let offer = match at_building {
                Some((b, slots)) => format!(
                    "{lead_in} I have {} at {} - which works for you?",
                    format_offer(&slots),
                    b.name
                ),
                None => format!(
                    "{lead_in} I have {} - which works for you?",
                    format_offer(&self.upcoming_slots(prompt.now, 2))
                ),
            };
            draft.add(Weight::Core, offer);
            return (draft.render(), actions);
        }

        let holding = hold_questions(&to_hold, true);
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
            None if draft.parts.iter().any(|(w, _)| *w == Weight::Answer) => {}
            None => draft.add(
                Weight::Core,
                "Thanks! A leasing agent will follow up with you shortly.",
            ),
        }
        (draft.render(), actions)
    }

    fn greet(&self) -> String {
        if let Some(g) = self.office.greeting.as_deref().map(str::trim)
            && !g.is_empty()
        {
            return g.to_string();
        }
        let name = self.office.office_name.trim();
        if name.is_empty() {
            "Hi! Thanks for texting us and for your interest.".to_string()
        } else {
            format!("Hi! Thanks for texting {name} and for your interest.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::OfficeInfo;
    use super::super::fixtures::{lead, office, reply_with, thursday_morning};
    use super::*;

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
    fn an_outsized_office_name_is_dropped_before_the_question() {
        let info = OfficeInfo {
            office_name: "X".repeat(400),
            ..OfficeInfo::default()
        };
        let answer = reply_with(info, vec![lead("Hi")], 1, thursday_morning());
        assert_eq!(answer, question_for(Topic::Bedrooms));
    }

    #[test]
    fn a_profiles_greeting_replaces_the_office_one() {
        let default = reply_with(office(), vec![lead("Hi")], 1, thursday_morning());
        assert!(
            default.starts_with("Hi! Thanks for texting Maple Court"),
            "{default}"
        );
        let info = OfficeInfo {
            greeting: Some("Hi! This is the apartment locator.".into()),
            ..office()
        };
        let answer = reply_with(info, vec![lead("Hi")], 1, thursday_morning());
        assert!(
            answer.starts_with("Hi! This is the apartment locator.")
                && answer.ends_with(question_for(Topic::Bedrooms)),
            "{answer}"
        );
    }

    #[test]
    fn an_overlong_single_piece_is_cut_at_a_word_boundary() {
        let text = "word ".repeat(100);
        let cut = truncate_reply(&text);
        assert!(cut.chars().count() <= MAX_REPLY_CHARS);
        assert!(cut.ends_with("word..."), "{cut}");
    }
}
