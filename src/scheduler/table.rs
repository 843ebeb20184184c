//! The scheduler's job table: every periodic job, declared once with its name, the variable
//! that sets its cron and what a new leader does with the ticks it missed; and the cron
//! dialect the schedules are written in.
//!
//! Must not: run a job (`super::jobs`) or read a schedule (`crate::config::scheduler`).

/// Declares the scheduler's jobs once. The same lines make the [`Job`] enum the scheduler
/// dispatches on (`scheduler::jobs::run_job` matches it exhaustively, so a job body cannot
/// exist without a variant) and [`Job::ALL`], the schedule every scheduler registers (so a
/// variant cannot exist without its schedule): the SLA sweep once had a body and a
/// `SCHEDULE_SLA_SWEEP` variable but no line in a hand-kept table, and never ran.
macro_rules! scheduler_jobs {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $var:literal, $missed:ident;)+) => {
        /// A periodic job of the scheduler.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Job {
            $($(#[$doc])* $variant),+
        }

        impl Job {
            /// Every job, in the order `inspect scheduled` lists them.
            pub const ALL: &'static [Job] = &[$(Job::$variant),+];

            /// The job's name in `/ops/scheduled`, the tick claims and the metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $(Job::$variant => $name),+
                }
            }

            /// The variable that sets its cron (`off` disables it).
            pub fn schedule_var(self) -> &'static str {
                match self {
                    $(Job::$variant => $var),+
                }
            }

            /// What happens to ticks missed while no scheduler ran.
            pub fn missed(self) -> MissedTicks {
                match self {
                    $(Job::$variant => MissedTicks::$missed),+
                }
            }
        }
    };
}

scheduler_jobs! {
    /// Due followup timers: send, hold for quiet hours, or mark the lead dead.
    FollowupSweep => "followup_sweep", "SCHEDULE_FOLLOWUP_SWEEP", RunOnce;
    /// Old tick claims, heartbeats and reports.
    StaleContextCleanup => "stale_context_cleanup", "SCHEDULE_STALE_CONTEXT_CLEANUP", Skip;
    /// Open SLAs: staff nags, lead updates, owner escalations.
    SlaSweep => "sla_sweep", "SCHEDULE_SLA_SWEEP", RunOnce;
    /// The 07:00 owner report.
    OwnerReport => "owner_report", "SCHEDULE_OWNER_REPORT", RunOnce;
    /// The daily self-check: one SANITY_CHECK alert on the office's health.
    SelfCheck => "self_check", "SCHEDULE_SELF_CHECK", RunOnce;
    /// Inbound messages unanswered past the first-response SLA.
    ResponseGapWatch => "response_gap_watch", "SCHEDULE_RESPONSE_GAP_WATCH", Skip;
    /// The scheduler's own heartbeat, and the check that some worker is alive.
    Heartbeat => "heartbeat", "SCHEDULE_HEARTBEAT", Skip;
    /// SMS not yet on the lead's Follow Up Boss timeline (`FUB_API`).
    CrmTextLog => "crm_text_log", "SCHEDULE_CRM_TEXT_LOG", Skip;
    /// Mail with documents from known leads (`GMAIL_SERVICE_ACCOUNT_JSON`).
    DocIntake => "doc_intake", "SCHEDULE_DOC_INTAKE", Skip;
    /// Human takeovers idle for `TAKEOVER_IDLE_HOURS`: released, alerted.
    TakeoverIdleRelease => "takeover_idle_release", "SCHEDULE_TAKEOVER_IDLE_RELEASE", RunOnce;
}

/// What a new scheduler leader does with ticks nobody ran (the process was down, or the old
/// leader died). Never "all of them": beat's surprise catch-up of old ticks is what we avoid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedTicks {
    /// Count them; the next regular tick runs.
    Skip,
    /// Count them and run the job once now.
    RunOnce,
}

impl MissedTicks {
    pub fn name(self) -> &'static str {
        match self {
            MissedTicks::Skip => "skip",
            MissedTicks::RunOnce => "run_once",
        }
    }
}

/// Parses a 6-field cron (seconds first), the one dialect the scheduler runs.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    if s.split_whitespace().count() != 6 {
        return Err("needs 6 fields (sec min hour day month weekday)".into());
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{ENV_VARS, Settings};

    #[test]
    fn every_schedule_variable_is_a_job_and_every_job_is_scheduled_by_default() {
        // Independent of the `Job` table: the declared variables are what operators set.
        let vars: Vec<&str> = ENV_VARS
            .iter()
            .map(|v| v.name)
            .filter(|n| n.starts_with("SCHEDULE_"))
            .collect();
        for var in &vars {
            assert!(
                Job::ALL.iter().any(|j| j.schedule_var() == *var),
                "{var} is declared but no scheduler job reads it"
            );
        }
        assert_eq!(
            vars.len(),
            Job::ALL.len(),
            "one SCHEDULE_* variable per job"
        );
        let s = Settings::from_map(&HashMap::new()).unwrap();
        let scheduled: Vec<&str> = s.scheduler.jobs.iter().map(|j| j.name).collect();
        for job in Job::ALL {
            assert!(
                scheduled.contains(&job.name()),
                "{} is not in the default schedule",
                job.name()
            );
            assert_eq!(
                job.name(),
                job.schedule_var()
                    .trim_start_matches("SCHEDULE_")
                    .to_ascii_lowercase(),
                "a job is named after its variable"
            );
        }
        let off = Settings::from_map(&HashMap::from([("SCHEDULE_SLA_SWEEP", "off")])).unwrap();
        assert!(off.scheduler.jobs.iter().all(|j| j.job != Job::SlaSweep));
    }
}
