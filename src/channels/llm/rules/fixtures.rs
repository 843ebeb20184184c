//! Test fixtures shared by the responder's test modules: an office, a Thursday morning in
//! Chicago, chat lines and the replies every conversation test compares against.
//!
//! Owns: test data only (compiled under `cfg(test)`). Must not: hold assertions about the
//! responder's behaviour — those live with the code they test.

use std::fmt::Debug;

use actors::ports::{ChatLine, LeadId, Prompt, Role};
use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};

use super::{OfficeInfo, RulesResponder};

pub(super) const GREETING_QUESTION: &str = "Hi! Thanks for texting Maple Court and for your interest. How many bedrooms are you looking for?";
pub(super) const OFFER: &str = "Thanks, that covers what I need. Would you like a tour? I have Thu Dec 3 at 11am or 3pm - which works for you?";
pub(super) const HOLDING: &str =
    "Good question - I'm checking with the team and will get back to you shortly.";

/// Checks `read` against each `(input, expected)` row; a failing row names its input.
pub(super) fn check_table<T: Debug + PartialEq>(read: impl Fn(&str) -> T, rows: &[(&str, T)]) {
    for (input, expected) in rows {
        assert_eq!(&read(input), expected, "for {input:?}");
    }
}

pub(super) fn office() -> OfficeInfo {
    OfficeInfo {
        office_name: "Maple Court".to_string(),
        ..OfficeInfo::default()
    }
}

pub(super) fn lead(text: &str) -> ChatLine {
    ChatLine {
        role: Role::Lead,
        text: text.to_string(),
    }
}

pub(super) fn agent(text: &str) -> ChatLine {
    ChatLine {
        role: Role::Agent,
        text: text.to_string(),
    }
}

/// The UTC instant of a Chicago standard-time (UTC-6) wall-clock time.
pub(super) fn chicago(month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, month, day, hour, minute, 0)
        .unwrap()
        + TimeDelta::hours(6)
}

/// Thursday, December 3, 2026, 9am in the office.
pub(super) fn thursday_morning() -> DateTime<Utc> {
    chicago(12, 3, 9, 0)
}

pub(super) fn prompt(lines: Vec<ChatLine>, new_messages: usize, now: DateTime<Utc>) -> Prompt {
    Prompt {
        lead: LeadId::new("+13125550100"),
        lines,
        new_messages,
        now,
    }
}

pub(super) fn reply_with(
    office: OfficeInfo,
    lines: Vec<ChatLine>,
    new: usize,
    now: DateTime<Utc>,
) -> String {
    RulesResponder::new(office).compose_reply(&prompt(lines, new, now))
}

pub(super) fn reply(lines: Vec<ChatLine>, new: usize) -> String {
    reply_with(office(), lines, new, thursday_morning())
}

/// A qualified lead who has just been offered Thursday's two slots.
pub(super) fn offered_history() -> Vec<ChatLine> {
    vec![
        lead("Hi, need a 2br asap, budget $1200, no voucher, no pets"),
        agent(OFFER),
    ]
}

pub(super) fn with(mut lines: Vec<ChatLine>, more: &[ChatLine]) -> Vec<ChatLine> {
    lines.extend_from_slice(more);
    lines
}

pub(super) fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, month, day).unwrap()
}
