//! When a proactive message may reach a lead: the federal calling window, the operator's
//! `QUIET_HOURS`, and the stricter window of the lead's state, all in the lead's local time.
//! A message outside the window is held until the window next opens, never dropped.
//!
//! Owns: the table of state windows (built in, with `SEND_WINDOWS_BY_STATE` overrides), the
//! rule that a moment must lie inside every window that applies, and the search for the
//! next moment that does. Must not: read a clock, a store or decide what is proactive — the
//! followup and SLA sweeps ask; replies to a lead's own message never come here.
//!
//! The windows are facts of law the operator's counsel should confirm: 47 CFR
//! 64.1200(c)(1) (08:00–21:00), and the state statutes of issue 15 (FL, OK, MD, MS, NJ
//! 08:00–20:00; TX 09:00–21:00 Monday to Saturday and 12:00–21:00 Sunday; CT 09:00–20:00).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::followup::QuietHours;
use crate::phone_zone::state::states_for_phone;

/// `[open, close)` on one local day, `open < close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DayWindow {
    pub open: NaiveTime,
    pub close: NaiveTime,
}

impl DayWindow {
    fn hm(open: (u32, u32), close: (u32, u32)) -> Self {
        let t = |(h, m)| NaiveTime::from_hms_opt(h, m, 0).expect("a valid built-in time");
        Self {
            open: t(open),
            close: t(close),
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|_| format!("{x:?} is not a HH:MM time"))
        };
        let (open, close) = (t(a)?, t(b)?);
        if open >= close {
            return Err(format!(
                "{s:?}: a sending window opens before it closes on the same day"
            ));
        }
        Ok(Self { open, close })
    }

    fn contains(&self, t: NaiveTime) -> bool {
        self.open <= t && t < self.close
    }
}

/// One state's window for each weekday (Monday first); `None`: no proactive message that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRule {
    pub days: [Option<DayWindow>; 7],
}

impl StateRule {
    fn every_day(w: DayWindow) -> Self {
        Self { days: [Some(w); 7] }
    }

    fn on(&self, day: Weekday) -> Option<DayWindow> {
        self.days[day.num_days_from_monday() as usize]
    }

    /// `HH:MM-HH:MM` every day, then `,sun=HH:MM-HH:MM` (or `,sun=none`) per day
    /// (`mon`…`sun`).
    fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.split(',');
        let base = DayWindow::parse(parts.next().unwrap_or_default())?;
        let mut rule = Self::every_day(base);
        for part in parts {
            let (day, window) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not DAY=HH:MM-HH:MM"))?;
            let day: Weekday = day
                .trim()
                .parse()
                .map_err(|_| format!("{day:?} is not a weekday (mon…sun)"))?;
            rule.days[day.num_days_from_monday() as usize] = match window.trim() {
                "none" => None,
                w => Some(DayWindow::parse(w)?),
            };
        }
        Ok(rule)
    }
}

/// The federal window, 47 CFR 64.1200(c)(1): no solicitation before 08:00 or after 21:00
/// at the called party's location. The default row of the table, for every lead.
pub fn federal() -> DayWindow {
    DayWindow::hm((8, 0), (21, 0))
}

/// The state rules this service knows, from issue 15.
pub fn built_in_states() -> BTreeMap<String, StateRule> {
    let eight_to_eight = StateRule::every_day(DayWindow::hm((8, 0), (20, 0)));
    let mut t = BTreeMap::new();
    for st in ["FL", "OK", "MD", "MS", "NJ"] {
        t.insert(st.to_string(), eight_to_eight);
    }
    let mut tx = StateRule::every_day(DayWindow::hm((9, 0), (21, 0)));
    tx.days[Weekday::Sun.num_days_from_monday() as usize] = Some(DayWindow::hm((12, 0), (21, 0)));
    t.insert("TX".into(), tx);
    t.insert(
        "CT".into(),
        StateRule::every_day(DayWindow::hm((9, 0), (20, 0))),
    );
    t
}

/// Every window that applies to a proactive message, for any lead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendWindows {
    pub quiet: QuietHours,
    /// Every lead's window whatever its state: [`federal`] unless `FEDERAL=…` overrides it;
    /// `None` (`FEDERAL=off`): `QUIET_HOURS` and the states' rules only.
    pub federal: Option<StateRule>,
    pub states: BTreeMap<String, StateRule>,
}

impl SendWindows {
    /// The built-in state table under `quiet`.
    pub fn new(quiet: QuietHours) -> Self {
        Self {
            quiet,
            federal: Some(StateRule::every_day(federal())),
            states: built_in_states(),
        }
    }

    /// Applies `SEND_WINDOWS_BY_STATE`: `ST=RULE;ST=RULE…` where RULE is a
    /// [`StateRule`] (`TX=09:00-21:00,sun=12:00-21:00`) or `off` (the federal window and
    /// `QUIET_HOURS` only). Each entry replaces the built-in one for its state; the key
    /// `FEDERAL` replaces the window every lead has (`FEDERAL=off` removes it: only for a
    /// test that must send at any hour, or counsel's advice).
    pub fn with_overrides(mut self, spec: &str) -> Result<Self, String> {
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (st, rule) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?} is not ST=HH:MM-HH:MM[,DAY=…] or ST=off"))?;
            let st = st.trim().to_ascii_uppercase();
            if st == "FEDERAL" {
                self.federal = match rule.trim() {
                    "off" => None,
                    r => Some(StateRule::parse(r).map_err(|e| format!("FEDERAL: {e}"))?),
                };
                continue;
            }
            if st.len() != 2 || !st.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("{st:?} is not a two-letter state code"));
            }
            if rule.trim() == "off" {
                self.states.remove(&st);
            } else {
                let rule = StateRule::parse(rule).map_err(|e| format!("{st}: {e}"))?;
                self.states.insert(st, rule);
            }
        }
        self.check()?;
        Ok(self)
    }

    /// Refuses a combination that leaves some lead no moment in the week: the message would
    /// wait for ever.
    pub fn check(&self) -> Result<(), String> {
        let rules = std::iter::once(("any state", None))
            .chain(self.states.iter().map(|(st, r)| (st.as_str(), Some(r))));
        for (name, rule) in rules {
            let open_some_day = (0..7).any(|d| {
                let day = NaiveDateTime::default().date() + chrono::Duration::days(d);
                candidates(self, &[rule], day.weekday())
                    .iter()
                    .any(|&t| self.allowed_at(&[rule], day.weekday(), t))
            });
            if !open_some_day {
                return Err(format!(
                    "{name}: QUIET_HOURS, the federal window and the state's window leave no moment of the week to send in"
                ));
            }
        }
        Ok(())
    }

    fn allowed_at(&self, rules: &[Option<&StateRule>], day: Weekday, t: NaiveTime) -> bool {
        !self.quiet.contains(t)
            && rules
                .iter()
                .flatten()
                .copied()
                .chain(self.federal.as_ref())
                .all(|r| r.on(day).is_some_and(|w| w.contains(t)))
    }

    fn rules_for(&self, phone: &str) -> Vec<Option<&StateRule>> {
        states_for_phone(phone)
            .into_iter()
            .map(|st| self.states.get(st))
            .collect()
    }

    /// `None` when a proactive message may go to `phone` at `at` in zone `tz`; otherwise the
    /// next moment it may (the first that lies in every window), within a week.
    pub fn hold_until(&self, at: DateTime<Utc>, phone: &str, tz: Tz) -> Option<DateTime<Utc>> {
        let rules = self.rules_for(phone);
        let local = at.with_timezone(&tz).naive_local();
        if self.allowed_at(&rules, local.weekday(), local.time()) {
            return None;
        }
        // A window opens only where one of them opens: try those instants, day by day.
        for d in 0..=7 {
            let day = local.date() + chrono::Duration::days(d);
            for t in candidates(self, &rules, day.weekday()) {
                let naive = day.and_time(t);
                if naive <= local || !self.allowed_at(&rules, day.weekday(), t) {
                    continue;
                }
                // A DST gap can swallow the instant: take the first valid one after it.
                let instant = tz.from_local_datetime(&naive).earliest().or_else(|| {
                    tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                        .earliest()
                });
                if let Some(instant) = instant {
                    return Some(instant.with_timezone(&Utc));
                }
            }
        }
        // `check` refuses windows that never open; should one slip through, wait a day
        // rather than send.
        Some(at + chrono::Duration::days(1))
    }

    /// [`SendWindows::hold_until`] for a lead whose number spans several zones: held until
    /// the moment is inside the windows in every one of them, `None` when it already is.
    pub fn hold_until_all(
        &self,
        at: DateTime<Utc>,
        phone: &str,
        zones: &[Tz],
    ) -> Option<DateTime<Utc>> {
        let mut until = at;
        for _ in 0..=2 * zones.len() + 1 {
            match zones
                .iter()
                .filter_map(|tz| self.hold_until(until, phone, *tz))
                .max()
            {
                Some(end) => until = end,
                None => break,
            }
        }
        (until > at).then_some(until)
    }
}

/// The local times at which some window opens on `day`, sorted.
fn candidates(w: &SendWindows, rules: &[Option<&StateRule>], day: Weekday) -> Vec<NaiveTime> {
    let mut times = vec![NaiveTime::MIN, w.quiet.end];
    times.extend(
        rules
            .iter()
            .flatten()
            .copied()
            .chain(w.federal.as_ref())
            .filter_map(|r| r.on(day))
            .map(|d| d.open),
    );
    times.sort();
    times.dedup();
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Chicago, New_York};

    fn windows(quiet: &str) -> SendWindows {
        SendWindows::new(QuietHours::parse(quiet).unwrap())
    }

    /// `at` local in `tz` as UTC.
    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    const IL: &str = "+13125550100"; // no state rule
    const TX: &str = "+12145550100"; // Dallas
    const FL: &str = "+13055550100"; // Miami
    const CT: &str = "+18605550100";

    /// The table: (lead, local time in its zone, what happens): `None` sends now,
    /// `Some((h, m, days later))` holds until that local time.
    #[test]
    fn the_state_table_holds_each_lead_until_its_window() {
        // 2026-12-06 is a Sunday, 2026-12-07 a Monday.
        type Case = (&'static str, Tz, (u32, u32, u32), Option<(u32, u32, u32)>);
        let w = windows("21:30-08:00"); // wider than every state, inside the federal window
        let cases: [Case; 14] = [
            // No state rule: the federal window and QUIET_HOURS.
            (IL, Chicago, (7, 7, 10), Some((8, 0, 0))),
            (IL, Chicago, (7, 20, 30), None),
            (IL, Chicago, (7, 21, 0), Some((8, 0, 1))), // federal close, before quiet
            // Florida: 08:00-20:00.
            (FL, New_York, (7, 19, 59), None),
            (FL, New_York, (7, 20, 0), Some((8, 0, 1))),
            (FL, New_York, (7, 7, 59), Some((8, 0, 0))),
            // Connecticut: 09:00-20:00.
            (CT, New_York, (7, 8, 30), Some((9, 0, 0))),
            (CT, New_York, (7, 20, 15), Some((9, 0, 1))),
            // Texas: 09:00-21:00 Monday to Saturday, noon to 21:00 on Sunday.
            (TX, Chicago, (7, 8, 30), Some((9, 0, 0))),
            (TX, Chicago, (7, 20, 45), None),
            (TX, Chicago, (6, 10, 0), Some((12, 0, 0))), // Sunday morning waits for noon
            (TX, Chicago, (6, 12, 0), None),
            (TX, Chicago, (5, 21, 0), Some((12, 0, 1))), // Saturday night → Sunday noon
            (TX, Chicago, (5, 10, 0), None),
        ];
        for (phone, tz, (d, h, m), want) in cases {
            let at = local(tz, 2026, 12, d, h, m);
            let got = w.hold_until(at, phone, tz);
            let want = want.map(|(wh, wm, later)| local(tz, 2026, 12, d + later, wh, wm));
            assert_eq!(got, want, "{phone} at 12-{d} {h:02}:{m:02} {tz}");
        }
    }

    #[test]
    fn quiet_hours_narrow_the_state_window_never_widen_it() {
        // QUIET_HOURS 21:00-09:00: Florida's 08:00 opening waits for 09:00.
        let w = windows("21:00-09:00");
        let at = local(New_York, 2026, 12, 7, 8, 15);
        assert_eq!(
            w.hold_until(at, FL, New_York),
            Some(local(New_York, 2026, 12, 7, 9, 0))
        );
        // A QUIET_HOURS that would allow the night is held to the federal window.
        let w = windows("03:00-04:00");
        let at = local(Chicago, 2026, 12, 7, 22, 0);
        assert_eq!(
            w.hold_until(at, IL, Chicago),
            Some(local(Chicago, 2026, 12, 8, 8, 0))
        );
    }

    #[test]
    fn dst_edges_are_local_time() {
        let w = windows("21:00-09:00");
        // 2026-03-08: clocks spring forward at 02:00 in Chicago. Saturday 21:30 → Sunday
        // noon for Texas, 09:00 for Illinois, each in the new offset.
        let at = local(Chicago, 2026, 3, 7, 21, 30);
        let tx = w.hold_until(at, TX, Chicago).unwrap();
        assert_eq!(tx, local(Chicago, 2026, 3, 8, 12, 0));
        assert_eq!(
            (tx - at).num_minutes(),
            14 * 60 + 30 - 60,
            "an hour shorter"
        );
        assert_eq!(
            w.hold_until(at, IL, Chicago),
            Some(local(Chicago, 2026, 3, 8, 9, 0))
        );
        // 2026-11-01: clocks fall back at 02:00. 20:30 Saturday in Florida → Sunday 09:00.
        let at = local(New_York, 2026, 10, 31, 20, 30);
        let fl = w.hold_until(at, FL, New_York).unwrap();
        assert_eq!(fl, local(New_York, 2026, 11, 1, 9, 0));
        assert_eq!((fl - at).num_minutes(), 12 * 60 + 30 + 60, "an hour longer");
    }

    #[test]
    fn a_number_in_two_zones_waits_for_the_window_in_both() {
        let w = windows("21:00-09:00");
        // 09:30 in New York is 08:30 in Chicago: a lead that could be in either waits.
        let at = local(New_York, 2026, 12, 7, 9, 30);
        assert_eq!(
            w.hold_until_all(at, IL, &[New_York, Chicago]),
            Some(local(Chicago, 2026, 12, 7, 9, 0))
        );
        assert_eq!(w.hold_until_all(at, IL, &[New_York]), None);
    }

    #[test]
    fn overrides_replace_add_and_remove_state_rules() {
        let w = windows("21:30-08:00")
            .with_overrides("wa=08:00-20:00; TX=off ;MS=08:00-20:00,sun=none")
            .unwrap();
        assert!(!w.states.contains_key("TX"));
        assert_eq!(
            w.states["WA"],
            StateRule::every_day(DayWindow::hm((8, 0), (20, 0)))
        );
        // Mississippi on a Sunday: nothing until Monday 08:00.
        let ms = "+16015550100";
        let at = local(Chicago, 2026, 12, 6, 10, 0);
        assert_eq!(
            w.hold_until(at, ms, Chicago),
            Some(local(Chicago, 2026, 12, 7, 8, 0))
        );
        // Texas is off: Sunday 10:00 goes at once.
        assert_eq!(w.hold_until(at, TX, Chicago), None);
    }

    #[test]
    fn the_federal_row_can_be_narrowed_or_removed() {
        let at = local(Chicago, 2026, 12, 7, 22, 0);
        let off = windows("03:00-04:00")
            .with_overrides("FEDERAL=off")
            .unwrap();
        assert_eq!(off.hold_until(at, IL, Chicago), None, "QUIET_HOURS only");
        assert_eq!(
            off.hold_until(at, TX, Chicago),
            Some(local(Chicago, 2026, 12, 8, 9, 0)),
            "a state's rule still holds"
        );
        let narrow = windows("03:00-04:00")
            .with_overrides("federal=10:00-18:00")
            .unwrap();
        assert_eq!(
            narrow.hold_until(at, IL, Chicago),
            Some(local(Chicago, 2026, 12, 8, 10, 0))
        );
    }

    #[test]
    fn bad_overrides_and_windows_that_never_open_are_refused() {
        for bad in [
            "TX",
            "Texas=09:00-21:00",
            "TX=21:00-09:00",
            "TX=9-21",
            "TX=09:00-21:00,sun=21:00-12:00",
            "TX=09:00-21:00,xyz=none",
        ] {
            assert!(windows("21:00-09:00").with_overrides(bad).is_err(), "{bad}");
        }
        let never = "TX=06:00-07:00";
        let e = windows("21:00-09:00").with_overrides(never).unwrap_err();
        assert!(e.contains("TX") && e.contains("no moment"), "{e}");
        // QUIET_HOURS alone that covers the whole federal window.
        assert!(windows("07:00-22:00").check().is_err());
        assert!(windows("21:00-09:00").check().is_ok());
    }
}
