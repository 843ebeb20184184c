//! The SLA engine's wiring: [`SlaEngine`] binds the actors' [`SlaSweep`] and [`SlaEvents`]
//! (the events that open and resolve SLAs by themselves) to this process's store, SMS
//! sender, alert router and ticket system (Asana or the dry-run log), and wakes the leads
//! whose update SMS it queued.
//!
//! Owns: choosing the ticket adapter from the settings (and saying at start what is off),
//! the one-call entry point the scheduler runs, [`SlaEngine::run_sla_sweep`], and the
//! [`SlaEngine::events`] every other path opens SLAs through. Must not: hold rules (they live in
//! `actors::sla`) or schedule itself (the scheduler owns when it runs).

use std::sync::Arc;
use std::time::Duration;

use actors::alert_router::AlertHandle;
use actors::ports::{LeadId, SmsSender, WakeLead};
use actors::sla::{SlaEvents, SlaSweep, SweepReport, TicketSystem};
use chrono::{DateTime, Utc};

use crate::channels::asana::{AsanaClient, DryRunTickets};
use crate::config::Settings;
use crate::queue::WorkQueue;
use crate::store::SqlStore;

pub struct SlaEngine {
    sweep: SlaSweep,
    events: SlaEvents,
    queue: Arc<dyn WorkQueue>,
}

impl SlaEngine {
    pub fn new(
        settings: &Settings,
        store: &SqlStore,
        queue: Arc<dyn WorkQueue>,
        sms: Arc<dyn SmsSender>,
        alerts: AlertHandle,
    ) -> anyhow::Result<Self> {
        let tickets: Arc<dyn TicketSystem> = match &settings.asana_access_token {
            Some(token) => {
                if settings.asana_project_gid.is_none() {
                    tracing::info!(
                        "SLA tasks are off (dry-run ids): set ASANA_PROJECT_GID to create them in Asana"
                    );
                }
                Arc::new(
                    AsanaClient::new(
                        &settings.asana_api_base,
                        token.clone(),
                        Duration::from_secs(15),
                    )?
                    .with_project(
                        settings.asana_project_gid.clone(),
                        settings.asana_section_gid.clone(),
                    ),
                )
            }
            None => {
                tracing::info!(
                    "Asana is off (SLA tasks get dry-run ids, nags are logged): set ASANA_ACCESS_TOKEN and ASANA_PROJECT_GID to turn it on"
                );
                Arc::new(DryRunTickets)
            }
        };
        let store = Arc::new(store.clone());
        Ok(Self {
            events: SlaEvents::new(store.clone(), tickets.clone(), alerts.clone()),
            sweep: SlaSweep::new(
                store.clone(),
                store,
                tickets,
                sms,
                alerts,
                settings.owner_phone.as_deref().map(LeadId::new),
            )
            .with_quiet_hours(
                settings.scheduler.send_windows.clone(),
                settings.scheduler.time_zone,
            ),
            queue,
        })
    }

    /// Opens and resolves SLAs on events (tour asked for, documents arrived, review done),
    /// with the same ticket system the sweep nags through.
    pub fn events(&self) -> &SlaEvents {
        &self.events
    }

    /// One SLA sweep as of `now` (the scheduler passes the wall clock): every open SLA is
    /// checked, its steps performed and recorded, and each lead with a newly queued update
    /// SMS is woken so that its actor sends it. A wake-up that cannot be published is not
    /// lost work: the update is stored `queued`, and the periodic stale-work sweep (and
    /// every start) wakes leads with queued replies.
    pub async fn run_sla_sweep(&self, now: DateTime<Utc>) -> anyhow::Result<SweepReport> {
        let report = self.sweep.run_sla_sweep(now).await?;
        for lead in &report.wake {
            if let Err(e) = self.queue.publish(WakeLead { lead: lead.clone() }).await {
                tracing::warn!(lead = %lead.log(), error = %e, "could not wake a lead for its SLA update; the stale-work sweep will");
            }
        }
        if report.breaches
            + report.staff_nags
            + report.escalations
            + report.lead_updates
            + report.invoices_opened
            + report.tasks_created
            > 0
        {
            tracing::info!(?report, "SLA sweep");
        }
        Ok(report)
    }
}
