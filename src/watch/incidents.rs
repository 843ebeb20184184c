//! Incidents: what the watch tells people, decided from what its checks see. One alert
//! when a check starts failing, nothing while it keeps failing (however its reason
//! changes), one recovery message when it passes again — per check, so two faults are two
//! incidents and one fault is one.
//!
//! Owns: the per-check state and the transitions that produce a [`Notice`]. A check that
//! could not be judged ([`Observation::Unknown`], e.g. the heartbeats while the service
//! does not answer at all: that is the `ready` incident) changes nothing, so one outage
//! is one alert and not one per check that depends on the service.
//! Must not: do I/O or read a clock (time is passed in): the whole machine is unit-tested.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One thing the watch checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `/ready`: the service answers, its store and queue are up.
    Ready,
    /// A fresh worker heartbeat: someone consumes the work queue.
    Workers,
    /// A fresh scheduler heartbeat and no job well past its fire time.
    Scheduler,
    /// The oldest alert still spooled for Discord is not too old.
    AlertSpool,
    /// A signed synthetic SMS gets its reply.
    EndToEnd,
}

impl Check {
    pub const ALL: [Check; 5] = [
        Check::Ready,
        Check::Workers,
        Check::Scheduler,
        Check::AlertSpool,
        Check::EndToEnd,
    ];

    /// The name in alerts (`watch_<name>_down`), logs and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Ready => "ready",
            Check::Workers => "workers",
            Check::Scheduler => "scheduler",
            Check::AlertSpool => "alert_spool",
            Check::EndToEnd => "end_to_end",
        }
    }
}

/// What one run of a check saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Pass(String),
    Fail(String),
    /// Could not be judged this time (why); the check's state stays as it was.
    Unknown(String),
}

/// What the watch must tell people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    Down {
        check: Check,
        detail: String,
        at: DateTime<Utc>,
    },
    Recovered {
        check: Check,
        detail: String,
        down_since: DateTime<Utc>,
        at: DateTime<Utc>,
    },
}

impl Notice {
    pub fn check(&self) -> Check {
        match self {
            Notice::Down { check, .. } | Notice::Recovered { check, .. } => *check,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Notice::Down { at, .. } | Notice::Recovered { at, .. } => *at,
        }
    }

    /// `watch_<check>_down` or `watch_<check>_recovered`: how alerts are told apart.
    pub fn event(&self) -> String {
        match self {
            Notice::Down { check, .. } => format!("watch_{}_down", check.name()),
            Notice::Recovered { check, .. } => format!("watch_{}_recovered", check.name()),
        }
    }
}

/// Where a check stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Not judged yet.
    Pending,
    Ok,
    Failing {
        since: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckStatus {
    #[serde(flatten)]
    pub health: Health,
    /// The last thing the check saw, whatever it was.
    pub detail: String,
    /// The last observation was `Unknown`.
    pub unknown: bool,
    pub checked_at: Option<DateTime<Utc>>,
}

impl Default for CheckStatus {
    fn default() -> Self {
        Self {
            health: Health::Pending,
            detail: String::new(),
            unknown: false,
            checked_at: None,
        }
    }
}

/// Every check's state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Incidents {
    checks: BTreeMap<Check, CheckStatus>,
}

impl Incidents {
    /// Records `observation` of `check` at `now`; returns the notice it calls for, if any.
    pub fn observe(
        &mut self,
        check: Check,
        observation: Observation,
        now: DateTime<Utc>,
    ) -> Option<Notice> {
        let status = self.checks.entry(check).or_default();
        status.checked_at = Some(now);
        let (notice, health, detail, unknown) = match (observation, &status.health) {
            (Observation::Unknown(why), health) => (None, health.clone(), why, true),
            (Observation::Pass(detail), Health::Failing { since }) => (
                Some(Notice::Recovered {
                    check,
                    detail: detail.clone(),
                    down_since: *since,
                    at: now,
                }),
                Health::Ok,
                detail,
                false,
            ),
            (Observation::Pass(detail), _) => (None, Health::Ok, detail, false),
            (Observation::Fail(detail), Health::Failing { since }) => {
                (None, Health::Failing { since: *since }, detail, false)
            }
            (Observation::Fail(detail), _) => (
                Some(Notice::Down {
                    check,
                    detail: detail.clone(),
                    at: now,
                }),
                Health::Failing { since: now },
                detail,
                false,
            ),
        };
        status.health = health;
        status.detail = detail;
        status.unknown = unknown;
        notice
    }

    pub fn is_failing(&self, check: Check) -> bool {
        matches!(
            self.checks.get(&check).map(|s| &s.health),
            Some(Health::Failing { .. })
        )
    }

    pub fn status(&self, check: Check) -> CheckStatus {
        self.checks.get(&check).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_700_000_000 + secs)
    }

    fn pass() -> Observation {
        Observation::Pass("fine".into())
    }

    fn fail(why: &str) -> Observation {
        Observation::Fail(why.into())
    }

    #[test]
    fn a_healthy_check_says_nothing_and_a_first_pass_is_not_a_recovery() {
        let mut i = Incidents::default();
        assert_eq!(i.status(Check::Ready).health, Health::Pending);
        for s in 0..5 {
            assert_eq!(i.observe(Check::Ready, pass(), t(s)), None);
        }
        assert_eq!(i.status(Check::Ready).health, Health::Ok);
    }

    #[test]
    fn an_incident_is_one_alert_however_long_it_lasts_then_one_recovery() {
        let mut i = Incidents::default();
        i.observe(Check::Scheduler, pass(), t(0));
        let down = i.observe(Check::Scheduler, fail("heartbeat stale"), t(60));
        assert_eq!(
            down,
            Some(Notice::Down {
                check: Check::Scheduler,
                detail: "heartbeat stale".into(),
                at: t(60)
            })
        );
        assert_eq!(down.unwrap().event(), "watch_scheduler_down");
        // Still failing, even for another reason: no second alert.
        for (s, why) in [(120, "heartbeat stale"), (180, "sla_sweep 3 min late")] {
            assert_eq!(i.observe(Check::Scheduler, fail(why), t(s)), None);
        }
        assert_eq!(i.status(Check::Scheduler).detail, "sla_sweep 3 min late");
        let up = i.observe(Check::Scheduler, pass(), t(240)).unwrap();
        assert_eq!(
            up,
            Notice::Recovered {
                check: Check::Scheduler,
                detail: "fine".into(),
                down_since: t(60),
                at: t(240)
            }
        );
        assert_eq!(up.event(), "watch_scheduler_recovered");
        assert_eq!(i.observe(Check::Scheduler, pass(), t(300)), None);
        // A new failure is a new incident.
        assert!(matches!(
            i.observe(Check::Scheduler, fail("again"), t(360)),
            Some(Notice::Down { at, .. }) if at == t(360)
        ));
    }

    #[test]
    fn a_failure_seen_at_start_is_alerted() {
        let mut i = Incidents::default();
        assert!(matches!(
            i.observe(Check::EndToEnd, fail("no reply"), t(0)),
            Some(Notice::Down { .. })
        ));
        assert!(i.is_failing(Check::EndToEnd));
    }

    #[test]
    fn unknown_changes_nothing_neither_opening_nor_closing_an_incident() {
        let mut i = Incidents::default();
        i.observe(Check::Workers, pass(), t(0));
        assert_eq!(
            i.observe(
                Check::Workers,
                Observation::Unknown("service down".into()),
                t(60)
            ),
            None
        );
        assert_eq!(i.status(Check::Workers).health, Health::Ok);
        assert!(i.status(Check::Workers).unknown);
        i.observe(Check::Workers, fail("no worker"), t(120));
        assert_eq!(
            i.observe(
                Check::Workers,
                Observation::Unknown("service down".into()),
                t(180)
            ),
            None
        );
        assert!(i.is_failing(Check::Workers), "still the same incident");
        assert!(matches!(
            i.observe(Check::Workers, pass(), t(240)),
            Some(Notice::Recovered { down_since, .. }) if down_since == t(120)
        ));
    }

    #[test]
    fn checks_are_separate_incidents() {
        let mut i = Incidents::default();
        assert!(i.observe(Check::Ready, fail("refused"), t(0)).is_some());
        assert!(i.observe(Check::EndToEnd, fail("no reply"), t(0)).is_some());
        assert!(matches!(
            i.observe(Check::Ready, pass(), t(60)),
            Some(Notice::Recovered {
                check: Check::Ready,
                ..
            })
        ));
        assert!(i.is_failing(Check::EndToEnd));
    }
}
