//! "The same business day" as a deadline: the office's hours (`BUSINESS_HOURS`, in
//! `OWNER_TZ`) and the close a request made at some moment must be answered by.
//!
//! Owns: parsing the hours and the deadline rule — during business hours, today's close;
//! outside them, the next business day's close. Must not: read a clock or know what the
//! deadline is for (the accommodation SLA is its one user).

use chrono::{DateTime, Datelike, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusinessHours {
    /// Monday first.
    pub days: [bool; 7],
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub tz: Tz,
}

impl BusinessHours {
    /// `mon-fri 09:00-17:00`, `mon-sat 10:00-18:00`, `mon,wed,fri 09:00-13:00`.
    pub fn parse(s: &str, tz: Tz) -> Result<Self, String> {
        let (days, hours) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{s:?} is not DAYS HH:MM-HH:MM (e.g. mon-fri 09:00-17:00)"))?;
        let day = |d: &str| {
            d.trim()
                .parse::<Weekday>()
                .map_err(|_| format!("{d:?} is not a weekday (mon…sun)"))
        };
        let mut set = [false; 7];
        for part in days.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    let mut d = a;
                    loop {
                        set[d.num_days_from_monday() as usize] = true;
                        if d == b {
                            break;
                        }
                        d = d.succ();
                    }
                }
                None => set[day(part)?.num_days_from_monday() as usize] = true,
            }
        }
        let (a, b) = hours
            .trim()
            .split_once('-')
            .ok_or_else(|| format!("{hours:?} is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("{x:?} is not a HH:MM time"))
        };
        let (open, close) = (t(a)?, t(b)?);
        if open >= close {
            return Err(format!("{hours:?}: the office opens before it closes"));
        }
        Ok(Self {
            days: set,
            open,
            close,
            tz,
        })
    }

    fn is_business_day(&self, d: Weekday) -> bool {
        self.days[d.num_days_from_monday() as usize]
    }

    /// The close by which a request made at `at` is answered "the same business day":
    /// today's close when `at` is before it on a business day (a request at 07:00 is
    /// answered that day), else the next business day's.
    pub fn same_day_deadline(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let local = at.with_timezone(&self.tz);
        let mut day = local.date_naive();
        if !(self.is_business_day(day.weekday()) && local.time() < self.close) {
            day = day.succ_opt().unwrap_or(day);
        }
        for _ in 0..7 {
            if self.is_business_day(day.weekday()) {
                let naive = day.and_time(self.close);
                if let Some(t) = self.tz.from_local_datetime(&naive).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            day = day.succ_opt().unwrap_or(day);
        }
        // No business day at all cannot be parsed; a day is the sane fallback.
        at + chrono::Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::Chicago;

    fn local(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        // December 2026: the 7th is a Monday.
        Chicago
            .with_ymd_and_hms(2026, 12, d, h, m, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_deadline_is_todays_close_or_the_next_business_days() {
        let h = BusinessHours::parse("mon-fri 09:00-17:00", Chicago).unwrap();
        let cases = [
            (local(7, 10, 0), local(7, 17, 0)), // Monday morning: Monday's close
            (local(7, 7, 0), local(7, 17, 0)),  // before opening: still today
            (local(7, 17, 0), local(8, 17, 0)), // at close: tomorrow
            (local(11, 18, 0), local(14, 17, 0)), // Friday evening: Monday
            (local(12, 11, 0), local(14, 17, 0)), // Saturday: Monday
        ];
        for (at, want) in cases {
            assert_eq!(h.same_day_deadline(at), want, "{at}");
        }
    }

    #[test]
    fn day_lists_and_bad_hours() {
        let h = BusinessHours::parse("mon,wed,fri-sat 10:00-13:00", Chicago).unwrap();
        assert_eq!(h.days, [true, false, true, false, true, true, false]);
        for bad in [
            "mon-fri",
            "weekdays 09:00-17:00",
            "mon-fri 17:00-09:00",
            "mon-fri 9-5",
        ] {
            assert!(BusinessHours::parse(bad, Chicago).is_err(), "{bad}");
        }
    }
}
