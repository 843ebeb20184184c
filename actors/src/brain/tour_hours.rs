//! A building's `tour_hours` read as a schedule: which weekdays and which hours tours run
//! ("Mon-Sat 10am-6pm", "Mon-Fri 11am-5pm", "Daily 9am-7pm"), the slots it offers after a
//! moment, and whether a time falls inside it.
//!
//! Owns: the reading of the catalog's words into [`TourHours`] and the slot arithmetic, in
//! the office's local time (the caller converts with the office's zone, `OWNER_TZ`).
//! Must not: read the clock or guess: words it cannot read give `None`, and a caller with
//! `None` says it will check with the team rather than offer a time the catalog does not
//! give.

use chrono::{Datelike, Days, NaiveDateTime, Timelike, Weekday};

/// When tours run at one building, in office local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TourHours {
    /// Monday = index 0.
    days: [bool; 7],
    /// First hour a tour may start (0-23).
    pub open: u32,
    /// The hour tours end by: the last start is `close - 1`.
    pub close: u32,
}

/// No slot sooner than this after now: an agent confirms, the lead gets there.
pub const MIN_NOTICE_HOURS: i64 = 2;
/// How far ahead slots are looked for.
pub const SEARCH_DAYS: u64 = 14;

fn weekday_of(word: &str) -> Option<usize> {
    let w = word.trim().to_lowercase();
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    names.iter().position(|n| w.starts_with(n))
}

/// "10am", "6pm", "12pm", "9:30am" (minutes dropped: slots start on the hour), "18:00".
fn hour_of(word: &str) -> Option<u32> {
    let w = word.trim().to_lowercase();
    let (num, meridiem) = if let Some(n) = w.strip_suffix("am") {
        (n, Some(false))
    } else if let Some(n) = w.strip_suffix("pm") {
        (n, Some(true))
    } else {
        (w.as_str(), None)
    };
    let hour: u32 = num.trim().split(':').next()?.parse().ok()?;
    match meridiem {
        Some(pm) if (1..=12).contains(&hour) => Some(match (hour, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        }),
        None if hour <= 24 => Some(hour),
        _ => None,
    }
}

impl TourHours {
    /// Reads "DAYS HOURS": days `Daily`, `Mon-Fri`, `Mon,Wed,Fri` or one day; hours
    /// `10am-6pm`. Anything else is `None`.
    pub fn parse(words: &str) -> Option<Self> {
        let words = words.trim();
        let (days_part, hours_part) = words.rsplit_once(' ')?;
        let mut days = [false; 7];
        let days_part = days_part.trim().to_lowercase();
        if matches!(days_part.as_str(), "daily" | "every day" | "7 days") {
            days = [true; 7];
        } else {
            for piece in days_part.split(',') {
                match piece.split_once('-') {
                    Some((from, to)) => {
                        let (from, to) = (weekday_of(from)?, weekday_of(to)?);
                        let mut d = from;
                        loop {
                            days[d] = true;
                            if d == to {
                                break;
                            }
                            d = (d + 1) % 7;
                        }
                    }
                    None => days[weekday_of(piece)?] = true,
                }
            }
        }
        let (open, close) = hours_part.split_once('-')?;
        let (open, close) = (hour_of(open)?, hour_of(close)?);
        (open < close).then_some(Self { days, open, close })
    }

    pub fn runs_on(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// A tour starting at `at` (local) starts on a tour day, at or after the opening hour
    /// and at least an hour before closing.
    pub fn contains(&self, at: NaiveDateTime) -> bool {
        self.runs_on(at.weekday()) && at.hour() >= self.open && at.hour() < self.close
    }

    /// The hours a day's offer names: the opening hour and four hours later (as the office
    /// has always offered 11am and 3pm), the second kept inside the hours.
    fn offered_hours(&self) -> Vec<u32> {
        let second = (self.open + 4).min(self.close - 1);
        if second > self.open {
            vec![self.open, second]
        } else {
            vec![self.open]
        }
    }

    /// The next `limit` slots after `local_now` (at least [`MIN_NOTICE_HOURS`] ahead,
    /// within [`SEARCH_DAYS`]).
    pub fn upcoming(&self, local_now: NaiveDateTime, limit: usize) -> Vec<NaiveDateTime> {
        let earliest = local_now + chrono::TimeDelta::hours(MIN_NOTICE_HOURS);
        (0..SEARCH_DAYS)
            .filter_map(|d| local_now.date().checked_add_days(Days::new(d)))
            .filter(|date| self.runs_on(date.weekday()))
            .flat_map(|date| {
                self.offered_hours()
                    .into_iter()
                    .filter_map(move |h| date.and_hms_opt(h, 0, 0))
            })
            .filter(|t| *t >= earliest)
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn the_sample_catalogs_hours_are_read() {
        let lakeview = TourHours::parse("Mon-Sat 10am-6pm").unwrap();
        assert!(lakeview.runs_on(Weekday::Sat) && !lakeview.runs_on(Weekday::Sun));
        assert_eq!((lakeview.open, lakeview.close), (10, 18));
        let maple = TourHours::parse("Mon-Fri 11am-5pm").unwrap();
        assert!(!maple.runs_on(Weekday::Sat));
        let daily = TourHours::parse("Daily 9am-7pm").unwrap();
        assert!(daily.runs_on(Weekday::Sun));
        let some = TourHours::parse("Mon,Wed,Fri 12pm-4pm").unwrap();
        assert!(some.runs_on(Weekday::Wed) && !some.runs_on(Weekday::Tue));
        assert_eq!(some.open, 12);
        let wrap = TourHours::parse("Sat-Mon 10am-2pm").unwrap();
        assert!(wrap.runs_on(Weekday::Sun) && !wrap.runs_on(Weekday::Tue));
    }

    #[test]
    fn words_it_cannot_read_are_none_not_a_guess() {
        for words in [
            "by appointment",
            "",
            "Mon-Fri",
            "Mon-Fri 6pm-10am",
            "Funday 1pm-2pm",
        ] {
            assert_eq!(TourHours::parse(words), None, "{words:?}");
        }
    }

    #[test]
    fn slots_are_inside_the_hours_with_notice_and_skip_closed_days() {
        let maple = TourHours::parse("Mon-Fri 11am-5pm").unwrap();
        // Friday Dec 4, 2026 at 2pm: 3pm is too soon? 2pm + 2 h = 4pm > 3pm, so Monday.
        let slots = maple.upcoming(at(12, 4, 14), 2);
        assert_eq!(slots, vec![at(12, 7, 11), at(12, 7, 15)]);
        assert!(slots.iter().all(|s| maple.contains(*s)));
        // Thursday Dec 3 at 8am: both that day.
        assert_eq!(
            maple.upcoming(at(12, 3, 8), 2),
            vec![at(12, 3, 11), at(12, 3, 15)]
        );
        let short = TourHours::parse("Mon-Sun 1pm-2pm").unwrap();
        assert_eq!(
            short.upcoming(at(12, 3, 8), 2),
            vec![at(12, 3, 13), at(12, 4, 13)]
        );
        assert!(!maple.contains(at(12, 5, 11)), "Saturday");
        assert!(!maple.contains(at(12, 3, 17)), "at closing");
        assert!(maple.contains(at(12, 3, 16)));
    }
}
