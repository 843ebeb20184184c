//! [`Role`]: which parts of the service a process runs (`serve --role`). Read by the wiring
//! (`crate::startup`), the HTTP handlers (`crate::http`: readiness, `/ops`), the exposure
//! check and the command line, so it lives on its own rather than in any of them.
//!
//! Must not: know how a role is wired; it only answers what a role does.

/// Which parts of the service this process runs. The same binary plays every role; the
/// seed's pod (gunicorn web, celery beat, two celery workers) maps onto web, scheduler and
/// worker containers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Role {
    /// Everything in one process (the embedded default).
    #[default]
    All,
    /// The Twilio webhook and /ops; publishes work to the queue.
    Web,
    /// Consumes the queue: lead actors and the LLM pool.
    Worker,
    /// The one clock: the periodic jobs (`crate::scheduler`, one leader across replicas),
    /// the start-up re-drive of stored work and the in-doubt check of interrupted sends.
    Scheduler,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Web => "web",
            Role::Worker => "worker",
            Role::Scheduler => "scheduler",
        }
    }
    pub fn serves_webhook(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }
    pub fn runs_actors(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
    pub fn redrives(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }
    pub fn runs_scheduler(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }
    /// Every role but web writes a heartbeat: workers prove they consume, schedulers that
    /// they tick.
    pub fn heartbeats(self) -> bool {
        !matches!(self, Role::Web)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_runs_its_share() {
        assert!(Role::All.serves_webhook() && Role::All.runs_actors() && Role::All.redrives());
        assert!(Role::Web.serves_webhook() && !Role::Web.runs_actors() && !Role::Web.redrives());
        assert!(!Role::Worker.serves_webhook() && Role::Worker.runs_actors());
        assert!(Role::Scheduler.redrives() && !Role::Scheduler.runs_actors());
    }
}
