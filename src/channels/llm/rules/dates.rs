//! Calendar words for the rules responder: month and weekday names, days of the month,
//! clock hours, and their short written forms ("Thu Dec 3", "3pm").
//!
//! Owns: reading and writing those words, and placing a year-less date in the year nearest
//! today. Must not: read the clock (today is always passed in) or decide what a date means
//! to a lead (a move-in date is `facts`, a tour slot is `tour`).

use chrono::{Datelike, NaiveDate, Weekday};

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

const WEEKDAY_ABBREVIATIONS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Month number for a full name or common abbreviation. "may" is left to the caller: it is
/// far more often the verb than the month.
pub(super) fn parse_month(word: &str) -> Option<u32> {
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
pub(super) fn parse_day_of_month(word: &str) -> Option<u32> {
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

pub(super) fn month_name(month: u32) -> &'static str {
    MONTH_NAMES
        .get(month.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("")
}

pub(super) fn month_abbreviation(month: u32) -> &'static str {
    month_name(month).get(..3).unwrap_or("")
}

pub(super) fn parse_weekday(word: &str) -> Option<Weekday> {
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

pub(super) fn format_hour(hour: u32) -> String {
    match hour {
        0 => "12am".to_string(),
        1..=11 => format!("{hour}am"),
        12 => "12pm".to_string(),
        _ => format!("{}pm", hour - 12),
    }
}

/// "Thu Dec 3".
pub(super) fn format_day(date: NaiveDate) -> String {
    format!(
        "{} {} {}",
        WEEKDAY_ABBREVIATIONS[date.weekday().num_days_from_monday() as usize],
        month_abbreviation(date.month()),
        date.day()
    )
}

/// Hour from "11am", "3pm", "noon".
pub(super) fn parse_meridiem_hour(word: &str) -> Option<u32> {
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

pub(super) fn to_24_hour(hour: u32, pm: Option<bool>) -> u32 {
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

/// The year is not written in an offer: take the one that puts the date nearest to today.
pub(super) fn resolve_date(today: NaiveDate, month: u32, day: u32) -> Option<NaiveDate> {
    [today.year() - 1, today.year(), today.year() + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .min_by_key(|d| (*d - today).num_days().abs())
}
