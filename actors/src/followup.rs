//! Followup policy: when a silent lead gets the next followup, what it says, when the
//! sequence gives up, and the quiet hours no followup may land in.
//!
//! Owns: pure decisions over a timer's step and a point in time. Must not: read a clock, a
//! store or send anything — the sweep (`src/scheduler/jobs.rs`) holds the timers in the
//! store and calls these with the time it read once.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// `[start, end)` in local time; a window that crosses midnight (21:00–09:00) is the usual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("{x:?} is not a HH:MM time"))
        };
        let (start, end) = (t(a)?, t(b)?);
        if start == end {
            return Err("quiet hours must not start and end at the same time".into());
        }
        Ok(Self { start, end })
    }

    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }

    /// `None` when `at` is outside quiet hours in `tz`; otherwise the moment they end (the
    /// next local `end`), when a held followup may go.
    pub fn hold_until(&self, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&tz);
        if !self.contains(local.time()) {
            return None;
        }
        let mut day = local.date_naive();
        if local.time() >= self.end {
            day = day.succ_opt()?;
        }
        // A DST gap can swallow the end time: take the first valid instant after it.
        let naive = day.and_time(self.end);
        let end = tz.from_local_datetime(&naive).earliest().or_else(|| {
            tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })?;
        Some(end.with_timezone(&Utc))
    }

    /// [`QuietHours::hold_until`] for a lead whose number spans several zones: held until
    /// it is outside quiet hours in every one of them (the lead could be in any), `None`
    /// when it already is.
    pub fn hold_until_all(&self, at: DateTime<Utc>, zones: &[Tz]) -> Option<DateTime<Utc>> {
        let mut until = at;
        // Each round moves to the latest end among the zones still quiet; zones a few hours
        // apart settle in two rounds. The bound only matters for windows that, across the
        // zones, cover the whole day: then the lead waits for the last round's end.
        for _ in 0..=2 * zones.len() {
            match zones
                .iter()
                .filter_map(|tz| self.hold_until(until, *tz))
                .max()
            {
                Some(end) => until = end,
                None => break,
            }
        }
        (until > at).then_some(until)
    }
}

/// What to do with a timer that has come due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowupAction {
    /// Send followup number `number` (1-based); the next one is due at `next_due`.
    Send {
        number: usize,
        next_due: DateTime<Utc>,
    },
    /// Every followup went unanswered: the lead is dead.
    GiveUp { sent: usize },
}

/// The sequence: `waits[0]` after our last reply comes followup 1, `waits[1]` after that
/// followup 2, …; when the wait after the last one passes unanswered (the last wait again),
/// the lead is given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowupPlan {
    pub waits: Vec<Duration>,
}

impl FollowupPlan {
    /// Parses a comma-separated list of hours (`24,72,168`).
    pub fn parse_hours(s: &str) -> Result<Self, String> {
        let waits = s
            .split(',')
            .map(|h| {
                let h: f64 = h
                    .trim()
                    .parse()
                    .map_err(|_| format!("{h:?} is not a number of hours"))?;
                if !(h.is_finite() && h > 0.0) {
                    return Err(format!("{h} must be a positive number of hours"));
                }
                Ok(Duration::from_secs_f64(h * 3600.0))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if waits.is_empty() {
            return Err("at least one followup wait is needed".into());
        }
        Ok(Self { waits })
    }

    pub fn first_wait(&self) -> Duration {
        self.waits[0]
    }

    /// The timer at `step` (followups already sent) came due at `now`.
    pub fn decide(&self, step: usize, now: DateTime<Utc>) -> FollowupAction {
        if step >= self.waits.len() {
            return FollowupAction::GiveUp { sent: step };
        }
        let wait_after = self.waits.get(step + 1).or(self.waits.last()).copied();
        let next_due =
            now + chrono::Duration::from_std(wait_after.unwrap_or_default()).unwrap_or_default();
        FollowupAction::Send {
            number: step + 1,
            next_due,
        }
    }
}

/// The text of followup `number` (1-based). Short, one segment, ASCII, and never pushy: the
/// last one says it is the last.
pub fn followup_text(
    number: usize,
    total: usize,
    office_name: &str,
    at_local_weekday: chrono::Weekday,
) -> String {
    let weekend = matches!(
        at_local_weekday,
        chrono::Weekday::Sat | chrono::Weekday::Sun
    );
    if number >= total {
        format!(
            "Hi, it's {office_name} again. We don't want to crowd your inbox, so this is our last check-in. \
             If you're still looking, just text back anytime and we'll pick up where we left off."
        )
    } else if number == 1 {
        format!(
            "Hi, it's {office_name}. Just checking in - are you still looking for a place? \
             Happy to answer questions or set up a tour{}.",
            if weekend { " this week" } else { "" }
        )
    } else {
        format!(
            "Hi from {office_name}! Still interested in finding a new home? \
             Reply with your move-in date and budget and we'll send options that fit."
        )
    }
}

/// Local weekday of `at` in `tz` (for the text).
pub fn local_weekday(at: DateTime<Utc>, tz: Tz) -> chrono::Weekday {
    at.with_timezone(&tz).weekday()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn chicago() -> Tz {
        "America/Chicago".parse().unwrap()
    }

    fn at_local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_lead_in_several_zones_is_held_until_it_is_day_in_all_of_them() {
        let q = QuietHours::parse("21:00-09:00").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        // 10:00 in New York is 07:00 in Los Angeles: held until 09:00 there.
        assert_eq!(
            q.hold_until_all(at_local(ny, 2026, 11, 27, 10, 0), &[ny, la]),
            Some(at_local(la, 2026, 11, 27, 9, 0))
        );
        // 20:30 in Los Angeles is 23:30 in New York: the night in New York, then the early
        // morning in Los Angeles, hold it until 09:00 Pacific the next day.
        assert_eq!(
            q.hold_until_all(at_local(la, 2026, 11, 27, 20, 30), &[ny, la]),
            Some(at_local(la, 2026, 11, 28, 9, 0))
        );
        // Noon in New York, 09:00 in Los Angeles: day in both.
        assert_eq!(
            q.hold_until_all(at_local(ny, 2026, 11, 27, 12, 0), &[ny, la]),
            None
        );
        // One zone behaves as hold_until.
        let at = at_local(ny, 2026, 11, 27, 22, 0);
        assert_eq!(q.hold_until_all(at, &[ny]), q.hold_until(at, ny));
    }

    #[test]
    fn quiet_hours_cross_midnight_and_hold_until_the_morning() {
        let q = QuietHours::parse("21:00-09:00").unwrap();
        let tz = chicago();
        // 20:59 local: not quiet.
        assert_eq!(q.hold_until(at_local(tz, 2026, 11, 27, 20, 59), tz), None);
        // 21:00 local: quiet until 09:00 the next day.
        assert_eq!(
            q.hold_until(at_local(tz, 2026, 11, 27, 21, 0), tz),
            Some(at_local(tz, 2026, 11, 28, 9, 0))
        );
        // 03:00 local: quiet until 09:00 the same day.
        assert_eq!(
            q.hold_until(at_local(tz, 2026, 11, 28, 3, 0), tz),
            Some(at_local(tz, 2026, 11, 28, 9, 0))
        );
        // 09:00 sharp: open.
        assert_eq!(q.hold_until(at_local(tz, 2026, 11, 28, 9, 0), tz), None);
    }

    #[test]
    fn quiet_hours_follow_the_leads_zone_not_utc() {
        let q = QuietHours::parse("21:00-09:00").unwrap();
        // 15:00 UTC is 09:00 in Chicago (CST) but 07:00 in Los Angeles.
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 15, 0, 0).unwrap();
        assert_eq!(q.hold_until(t, chicago()), None);
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(
            q.hold_until(t, la),
            Some(Utc.with_ymd_and_hms(2026, 11, 27, 17, 0, 0).unwrap())
        );
    }

    #[test]
    fn quiet_hours_within_one_day_and_dst_morning() {
        let q = QuietHours::parse("12:00-13:00").unwrap();
        let tz = chicago();
        assert!(
            q.hold_until(at_local(tz, 2026, 11, 27, 12, 30), tz)
                .is_some()
        );
        assert!(
            q.hold_until(at_local(tz, 2026, 11, 27, 13, 0), tz)
                .is_none()
        );
        // The night clocks spring forward (2027-03-14 in the US): still ends at 09:00 local.
        let q = QuietHours::parse("21:00-09:00").unwrap();
        assert_eq!(
            q.hold_until(at_local(tz, 2027, 3, 13, 23, 0), tz),
            Some(at_local(tz, 2027, 3, 14, 9, 0))
        );
    }

    #[test]
    fn bad_quiet_hours_are_refused() {
        assert!(QuietHours::parse("21-9").is_err());
        assert!(QuietHours::parse("09:00-09:00").is_err());
        assert!(QuietHours::parse("25:00-09:00").is_err());
    }

    #[test]
    fn the_plan_sends_each_followup_then_gives_up() {
        let plan = FollowupPlan::parse_hours("24,72,168").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 15, 0, 0).unwrap();
        assert_eq!(plan.first_wait(), Duration::from_secs(24 * 3600));
        assert_eq!(
            plan.decide(0, now),
            FollowupAction::Send {
                number: 1,
                next_due: now + chrono::Duration::hours(72)
            }
        );
        assert_eq!(
            plan.decide(1, now),
            FollowupAction::Send {
                number: 2,
                next_due: now + chrono::Duration::hours(168)
            }
        );
        // The last followup: the lead then gets the last wait again to answer.
        assert_eq!(
            plan.decide(2, now),
            FollowupAction::Send {
                number: 3,
                next_due: now + chrono::Duration::hours(168)
            }
        );
        assert_eq!(plan.decide(3, now), FollowupAction::GiveUp { sent: 3 });
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(FollowupPlan::parse_hours("").is_err());
        assert!(FollowupPlan::parse_hours("24,x").is_err());
        assert!(FollowupPlan::parse_hours("24,-1").is_err());
    }

    #[test]
    fn texts_are_single_segment_ascii_and_the_last_says_so() {
        for n in 1..=3 {
            let t = followup_text(n, 3, "Maple Leasing", chrono::Weekday::Mon);
            assert!(t.is_ascii());
            assert!(t.len() <= 320, "{} chars", t.len());
        }
        assert!(followup_text(3, 3, "X", chrono::Weekday::Mon).contains("last"));
        assert!(!followup_text(1, 3, "X", chrono::Weekday::Mon).contains("last"));
    }
}
