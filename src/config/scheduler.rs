//! The scheduler role's settings: the owner's time zone, each job's cron (`SCHEDULE_*`,
//! `off` removes one), the leader lease, the heartbeat, followups and quiet hours, and the
//! response-gap watch.
//!
//! Must not: declare the jobs — the job table is the scheduler's
//! (`crate::scheduler::table`); this reads a schedule for each of its jobs.

use std::time::Duration;

use super::reader::Reader;
use crate::scheduler::table::{Job, MissedTicks, parse_cron};

#[derive(Clone, Debug)]
pub struct JobSetting {
    pub job: Job,
    pub name: &'static str,
    /// Six fields, seconds first, in `SchedulerSettings::time_zone`.
    pub schedule: String,
    pub missed: MissedTicks,
}

#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    pub time_zone: chrono_tz::Tz,
    /// Enabled jobs only (`off` removes one).
    pub jobs: Vec<JobSetting>,
    pub lease: Duration,
    pub heartbeat_every: Duration,
    /// `None`: followups are off.
    pub followups: Option<actors::followup::FollowupPlan>,
    pub quiet_hours: actors::followup::QuietHours,
    /// `quiet_hours`, the federal window and the states' windows: when a proactive message
    /// (a followup, an SLA update to the lead) may go.
    pub send_windows: actors::send_window::SendWindows,
    pub first_response_sla: Duration,
    pub stall_leads: usize,
}

pub(super) fn scheduler_settings(r: &mut Reader<'_>) -> SchedulerSettings {
    let tz_name = r.string("OWNER_TZ");
    let time_zone = tz_name.trim().parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
        r.problems.push(format!(
            "OWNER_TZ={tz_name:?} is not an IANA time zone (e.g. America/Chicago)"
        ));
        chrono_tz::America::Chicago
    });
    let mut jobs = Vec::new();
    for &job in Job::ALL {
        let var = job.schedule_var();
        let schedule = r.string(var).trim().to_string();
        if schedule.eq_ignore_ascii_case("off") {
            continue;
        }
        match parse_cron(&schedule) {
            Ok(_) => jobs.push(JobSetting {
                job,
                name: job.name(),
                schedule,
                missed: job.missed(),
            }),
            Err(e) => r
                .problems
                .push(format!("{var}={schedule:?} is not a cron schedule: {e}")),
        }
    }
    let followups = {
        let v = r.string("FOLLOWUP_HOURS");
        if v.trim().eq_ignore_ascii_case("off") {
            None
        } else {
            actors::followup::FollowupPlan::parse_hours(&v)
                .map_err(|e| r.problems.push(format!("FOLLOWUP_HOURS: {e}")))
                .ok()
        }
    };
    let quiet_hours =
        actors::followup::QuietHours::parse(&r.string("QUIET_HOURS")).unwrap_or_else(|e| {
            r.problems.push(format!("QUIET_HOURS: {e}"));
            actors::followup::QuietHours::parse("21:00-09:00").expect("valid default")
        });
    let send_windows = actors::send_window::SendWindows::new(quiet_hours)
        .with_overrides(&r.string("SEND_WINDOWS_BY_STATE"))
        .unwrap_or_else(|e| {
            r.problems.push(format!("SEND_WINDOWS_BY_STATE: {e}"));
            actors::send_window::SendWindows::new(quiet_hours)
        });
    SchedulerSettings {
        time_zone,
        jobs,
        lease: r.seconds("SCHEDULER_LEASE_SECS"),
        heartbeat_every: r.seconds("HEARTBEAT_SECS"),
        followups,
        quiet_hours,
        send_windows,
        first_response_sla: r.seconds("FIRST_RESPONSE_SLA_SECS"),
        stall_leads: r.positive("RESPONSE_GAP_STALL_LEADS"),
    }
}
