//! Tours: the slots the office offers, how they are written in an offer, and how a lead's
//! answer to an offer is read (a pick, a yes, a no, a time we do not give).
//!
//! Owns: [`Slot`], the notice period and search window, the office's tour hours and local
//! time, [`TourAnswer`], with the answer words in `tour.txt`. Must not: read the clock (now
//! is the prompt's) or word the reply around a slot (`compose`).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, TimeDelta, Utc, Weekday};

use super::dates::{
    format_day, format_hour, parse_day_of_month, parse_meridiem_hour, parse_month, parse_weekday,
    resolve_date, to_24_hour,
};
use super::facts::is_bedroom_unit;
use super::phrases::Sections;
use super::text::{contains_any_phrase, is_negated, normalize_text, split_clauses, split_words};
use super::{OfficeInfo, RulesResponder};

const DATA: &str = include_str!("tour.txt");

struct Words {
    decline_first: Vec<&'static str>,
    decline: Vec<&'static str>,
    accept_first: Vec<&'static str>,
    accept: Vec<&'static str>,
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let mut s = Sections::parse("tour.txt", DATA);
    let words = Words {
        decline_first: s.take("decline first words"),
        decline: s.take("decline phrases"),
        accept_first: s.take("accept first words"),
        accept: s.take("accept phrases"),
    };
    s.finish();
    words
});

/// A tour start in office local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub(super) date: NaiveDate,
    pub(super) hour: u32,
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

pub(super) fn format_slot(slot: Slot) -> String {
    format!("{} at {}", format_day(slot.date), format_hour(slot.hour))
}

/// "Thu Dec 3 at 11am or 3pm", or "Thu Dec 3 at 3pm or Fri Dec 4 at 11am".
pub(super) fn format_offer(slots: &[Slot]) -> String {
    match slots {
        [] => String::new(),
        [one] => format_slot(*one),
        [a, b, ..] if a.date == b.date => {
            format!("{} or {}", format_slot(*a), format_hour(b.hour))
        }
        [a, b, ..] => format!("{} or {}", format_slot(*a), format_slot(*b)),
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
    if parse_month(previous).is_some() || is_bedroom_unit(next) {
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

/// The first word is one of `first_words`, or one of `phrases` appears anywhere.
fn answers_with(text: &str, first_words: &[&str], phrases: &[&str]) -> bool {
    split_words(text)
        .first()
        .is_some_and(|w| first_words.contains(&w.as_str()))
        || contains_any_phrase(&normalize_text(text), phrases)
}

fn declines_tour(text: &str) -> bool {
    answers_with(text, &WORDS.decline_first, &WORDS.decline)
}

fn accepts_tour(text: &str) -> bool {
    answers_with(text, &WORDS.accept_first, &WORDS.accept)
}

/// How the lead answered our tour offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TourAnswer {
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

impl RulesResponder {
    /// Valid configured hours, sorted; the defaults when none are valid, because an office
    /// that offers no tour time would leave a lead who asks for one with nothing.
    pub(super) fn tour_hours(&self) -> Vec<u32> {
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

    pub(super) fn describe_tour_hours(&self) -> String {
        let hours: Vec<String> = self.tour_hours().into_iter().map(format_hour).collect();
        match hours.as_slice() {
            [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
            _ => hours.join(""),
        }
    }

    /// The office's wall clock: in its zone when the responder has one (with the catalog),
    /// else at the fixed offset.
    pub(super) fn local_now(&self, now: DateTime<Utc>) -> NaiveDateTime {
        if let Some((_, zone)) = &self.catalog {
            return now.with_timezone(zone).naive_local();
        }
        let offset = i64::from(self.office.utc_offset_hours.clamp(-12, 14));
        let utc = now.naive_utc();
        utc.checked_add_signed(TimeDelta::hours(offset))
            .unwrap_or(utc)
    }

    /// The next `limit` tour slots, Monday to Saturday, at least [`MIN_TOUR_NOTICE_HOURS`]
    /// after `now`, within [`TOUR_SEARCH_DAYS`].
    pub(super) fn upcoming_slots(&self, now: DateTime<Utc>, limit: usize) -> Vec<Slot> {
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

    pub(super) fn read_tour_answer(
        &self,
        text: &str,
        offered: &[Slot],
        now: DateTime<Utc>,
    ) -> TourAnswer {
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
pub(super) fn parse_offered_slots(agent_text: &str, today: NaiveDate) -> Vec<Slot> {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::fixtures::{OFFER, check_table, chicago, date, office};
    use super::super::topics::{Topic, detect_asked_topic};
    use super::*;

    #[test]
    fn the_word_lists_parse() {
        super::super::phrases::assert_plain_phrases("tour.txt", DATA);
        LazyLock::force(&WORDS);
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
        check_table(
            |text| read_slot_wish(text, today).hour,
            &[
                ("3pm works", Some(15)),
                ("3 pm", Some(15)),
                ("thursday at 3", Some(15)),
                ("11:00 is good", Some(11)),
                ("the 11", Some(11)),
                ("noon", Some(12)),
                ("Dec 3 works for me thanks", None),
            ],
        );
        let wish = read_slot_wish("tomorrow morning", today);
        assert_eq!(wish.day, Some(DayWish::Date(date(12, 4))));
        assert_eq!(wish.morning, Some(true));
        assert!(read_slot_wish("I can't do thursday", today).refused_day);
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
}
