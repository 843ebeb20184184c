//! The compliance texts' settings (issue 15): the HELP/INFO reply CTIA expects — the
//! program's name, how to stop, the message frequency, "Msg & data rates may apply" and a
//! contact — unless Twilio's Advanced Opt-Out answers HELP for us
//! (`TWILIO_ADVANCED_OPT_OUT=true`).
//!
//! And the one confirmation of a revocation in plain words (`OPT_OUT_CONFIRMATION`), and
//! the neutral answer to a voucher or accessibility question (`ACCOMMODATION_REPLY`) with
//! the office hours its same-business-day deadline is counted in (`BUSINESS_HOURS`), and
//! how long a human takeover lasts without operator activity (`TAKEOVER_IDLE_HOURS`).
//!
//! Owns: the default wordings and the rule that a custom `HELP_REPLY` still names how to
//! stop. Must not: send anything (the intake queues the reply, the lead's actor sends it).

use super::reader::Reader;

/// Longest HELP reply accepted: one Twilio message body (REFERENCE.md: 1,600).
const MAX_HELP_CHARS: usize = 1600;

/// What we answer to HELP/INFO; `None`: Twilio's Advanced Opt-Out answers it.
pub(super) fn help_reply(r: &mut Reader<'_>, office: &str) -> Option<String> {
    let advanced = r.flag("TWILIO_ADVANCED_OPT_OUT");
    let contact = r
        .raw("OFFICE_CONTACT")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let custom = r
        .raw("HELP_REPLY")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(text) = &custom {
        if !text.to_ascii_uppercase().contains("STOP") {
            r.problems.push(format!(
                "HELP_REPLY={text:?} must say how to opt out (CTIA): include \"STOP\""
            ));
        }
        if text.chars().count() > MAX_HELP_CHARS {
            r.problems.push(format!(
                "HELP_REPLY is longer than one SMS body ({MAX_HELP_CHARS} characters)"
            ));
        }
    }
    if advanced {
        return None;
    }
    Some(custom.unwrap_or_else(|| default_help(office, contact.as_deref())))
}

/// The one confirmation of a revocation in plain words (one Twilio does not see as an
/// opt-out, so it neither blocks nor confirms it); `None`: Twilio's Advanced Opt-Out
/// answers opt-outs for us (`TWILIO_ADVANCED_OPT_OUT=true`).
pub(super) fn opt_out_confirmation(r: &mut Reader<'_>, office: &str) -> Option<String> {
    let custom = r
        .raw("OPT_OUT_CONFIRMATION")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if let Some(text) = &custom
        && text.chars().count() > MAX_HELP_CHARS
    {
        r.problems.push(format!(
            "OPT_OUT_CONFIRMATION is longer than one SMS body ({MAX_HELP_CHARS} characters)"
        ));
    }
    if r.flag("TWILIO_ADVANCED_OPT_OUT") {
        return None;
    }
    Some(custom.unwrap_or_else(|| default_confirmation(office)))
}

/// What a lead who asks about a voucher, accessibility or an accommodation is told: that a
/// person answers, and nothing else (no question about it, no judgement).
pub const DEFAULT_ACCOMMODATION_REPLY: &str = "Thanks for asking. A member of our team will get back to you about that personally, the same business day.";

/// `ACCOMMODATION_REPLY`, else [`DEFAULT_ACCOMMODATION_REPLY`].
pub(super) fn accommodation_reply(r: &mut Reader<'_>) -> String {
    let text = r
        .raw("ACCOMMODATION_REPLY")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| DEFAULT_ACCOMMODATION_REPLY.to_string());
    if text.chars().count() > MAX_HELP_CHARS {
        r.problems.push(format!(
            "ACCOMMODATION_REPLY is longer than one SMS body ({MAX_HELP_CHARS} characters)"
        ));
    }
    if let Some(f) = actors::fair_housing::check_draft(&text) {
        r.problems
            .push(format!("ACCOMMODATION_REPLY: {}", f.describe()));
    }
    text
}

/// `BUSINESS_HOURS` in the office's zone.
pub(super) fn business_hours(
    r: &mut Reader<'_>,
    tz: chrono_tz::Tz,
) -> actors::sla::business_day::BusinessHours {
    use actors::sla::business_day::BusinessHours;
    let spec = r.string("BUSINESS_HOURS");
    BusinessHours::parse(&spec, tz).unwrap_or_else(|e| {
        r.problems.push(format!("BUSINESS_HOURS: {e}"));
        BusinessHours::parse("mon-fri 09:00-17:00", tz).expect("valid default")
    })
}

/// `TAKEOVER_IDLE_HOURS`: hours, fractions allowed (a test's `0.001` is 3.6 s).
pub(super) fn takeover_idle(r: &mut Reader<'_>) -> std::time::Duration {
    let hours: f64 = r.parse("TAKEOVER_IDLE_HOURS");
    if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 365.0) {
        r.problems.push(format!(
            "TAKEOVER_IDLE_HOURS={hours} must be a positive number of hours (at most a year)"
        ));
        return std::time::Duration::from_secs(4 * 3600);
    }
    std::time::Duration::from_secs_f64(hours * 3600.0)
}

/// Not marketing, as the rule asks: who, that nothing more comes, how to undo it.
pub fn default_confirmation(office: &str) -> String {
    format!(
        "{}: you are opted out and will get no more messages from us. Reply START to opt back in.",
        capitalised(office.trim())
    )
}

/// CTIA's five parts, in one SMS.
pub fn default_help(office: &str, contact: Option<&str>) -> String {
    let mut text = format!(
        "{}: texts about your apartment search. Msg frequency varies. Msg & data rates may \
         apply. Reply STOP to opt out.",
        capitalised(office.trim())
    );
    match contact {
        Some(c) => text.push_str(&format!(" Help: {c}")),
        None => text.push_str(" Reply with your question and the team will answer."),
    }
    text
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "The leasing office".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_help_has_ctias_five_parts() {
        let text = default_help("the leasing office", Some("(312) 555-0100"));
        for part in [
            "The leasing office",
            "Reply STOP to opt out",
            "Msg frequency varies",
            "Msg & data rates may apply",
            "Help: (312) 555-0100",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(text.chars().count() <= 160, "one segment: {text}");
        let confirm = default_confirmation("the leasing office");
        assert!(
            confirm.starts_with("The leasing office: you are opted out"),
            "{confirm}"
        );
        assert!(confirm.chars().count() <= 160, "one segment: {confirm}");
    }
}
