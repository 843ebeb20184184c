//! AlertRouter: turns typed alerts into deliveries to one [`AlertSink`], in the order they
//! were raised, and keeps the most recent ones for operators.
//!
//! Owns: the alert kinds (one per channel of the seed's Discord table), truncation to what a
//! chat message can carry, and the rule that a failure to alert never fails the caller.
//! Must not: block or fail a caller ([`AlertHandle::raise`] is fire-and-forget), raise an
//! alert about its own delivery failure (that recursion is how alerts about alerts bury the
//! original problem), or know which chat service is behind the sink.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;

use crate::ports::{Clock, LeadId};

/// The longest alert text delivered; Discord rejects content over 2,000 characters and a
/// rejected alert is a lost alert, so we cut first (the seed's 1,950 + suffix).
pub const MAX_ALERT_CHARS: usize = 1950;
pub const TRUNCATION_SUFFIX: &str = "... (truncated)";
const RECENT_ALERTS_KEPT: usize = 200;

/// One kind per channel of the seed's table. The `key` names the channel setting
/// (`DISCORD_CHANNEL_<KEY>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Unhandled failures: parked leads, restarts, blown budgets, lost sends.
    Error,
    /// The typed event stream of each turn (message_received, ai_response, sms_sent…).
    Event,
    General,
    Locator,
    AgentReasoning,
    Followup,
    DeadLead,
    TourRequest,
    BuildingOptions,
    RequirementsCheck,
    AgentResponse,
    ChatHistoryNotFound,
    Unauthorized,
    RequirementsNote,
    StageSuggestion,
    SanityCheck,
    HitlFeedback,
}

impl AlertKind {
    pub const ALL: [AlertKind; 17] = [
        AlertKind::Error,
        AlertKind::Event,
        AlertKind::General,
        AlertKind::Locator,
        AlertKind::AgentReasoning,
        AlertKind::Followup,
        AlertKind::DeadLead,
        AlertKind::TourRequest,
        AlertKind::BuildingOptions,
        AlertKind::RequirementsCheck,
        AlertKind::AgentResponse,
        AlertKind::ChatHistoryNotFound,
        AlertKind::Unauthorized,
        AlertKind::RequirementsNote,
        AlertKind::StageSuggestion,
        AlertKind::SanityCheck,
        AlertKind::HitlFeedback,
    ];

    pub fn key(self) -> &'static str {
        match self {
            AlertKind::Error => "ERROR",
            AlertKind::Event => "EVENT",
            AlertKind::General => "GENERAL",
            AlertKind::Locator => "LOCATOR",
            AlertKind::AgentReasoning => "AGENT_REASONING",
            AlertKind::Followup => "FOLLOWUP",
            AlertKind::DeadLead => "DEAD_LEAD",
            AlertKind::TourRequest => "TOUR_REQUEST",
            AlertKind::BuildingOptions => "BUILDING_OPTIONS",
            AlertKind::RequirementsCheck => "REQUIREMENTS_CHECK",
            AlertKind::AgentResponse => "AGENT_RESPONSE",
            AlertKind::ChatHistoryNotFound => "CHAT_HISTORY_NOT_FOUND",
            AlertKind::Unauthorized => "UNAUTHORIZED",
            AlertKind::RequirementsNote => "REQUIREMENTS_NOTE",
            AlertKind::StageSuggestion => "STAGE_SUGGESTION",
            AlertKind::SanityCheck => "SANITY_CHECK",
            AlertKind::HitlFeedback => "HITL_FEEDBACK",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub severity: Severity,
    /// A short machine-friendly name of what happened (`lead_parked`, `sms_sent`…).
    pub event: String,
    pub text: String,
    pub lead: Option<LeadId>,
    pub raised_at: DateTime<Utc>,
    /// The held reply (HITL) this alert asks a person to decide on: a chat sink attaches
    /// approve / edit / reject to it.
    pub reply_hold: Option<i64>,
}

impl Alert {
    pub fn new(kind: AlertKind, severity: Severity, event: &str, text: impl Into<String>) -> Self {
        Self {
            kind,
            severity,
            event: event.to_string(),
            text: text.into(),
            lead: None,
            raised_at: DateTime::<Utc>::UNIX_EPOCH,
            reply_hold: None,
        }
    }

    pub fn error(event: &str, text: impl Into<String>) -> Self {
        Self::new(AlertKind::Error, Severity::Critical, event, text)
    }

    pub fn event(event: &str, text: impl Into<String>) -> Self {
        Self::new(AlertKind::Event, Severity::Info, event, text)
    }

    pub fn for_lead(mut self, lead: &LeadId) -> Self {
        self.lead = Some(lead.clone());
        self
    }
}

/// Cuts `text` to at most [`MAX_ALERT_CHARS`] characters including the suffix, on a char
/// boundary.
pub fn truncate_alert_text(text: &str) -> String {
    if text.chars().count() <= MAX_ALERT_CHARS {
        return text.to_string();
    }
    let keep = MAX_ALERT_CHARS - TRUNCATION_SUFFIX.chars().count();
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(TRUNCATION_SUFFIX);
    out
}

#[derive(Debug, thiserror::Error)]
#[error("alert delivery failed: {0}")]
pub struct AlertError(pub String);

/// Where alerts go: the log, or the Discord spool when Discord is configured.
#[async_trait]
pub trait AlertSink: Send + Sync + 'static {
    async fn deliver(&self, alert: &Alert) -> Result<(), AlertError>;
}

pub enum AlertMsg {
    Raise(Alert),
}

/// A cheap, cloneable way to raise alerts. Raising never blocks and never fails.
#[derive(Clone)]
pub struct AlertHandle {
    actor: ActorRef<AlertMsg>,
    recent: Arc<Mutex<VecDeque<Alert>>>,
    clock: Arc<dyn Clock>,
}

impl AlertHandle {
    pub fn raise(&self, mut alert: Alert) {
        alert.raised_at = self.clock.now();
        alert.text = truncate_alert_text(&alert.text);
        metrics::counter!("lead_agent_alerts_total", "kind" => alert.kind.key()).increment(1);
        match self.recent.lock() {
            Ok(mut recent) => {
                if recent.len() == RECENT_ALERTS_KEPT {
                    recent.pop_front();
                }
                recent.push_back(alert.clone());
            }
            Err(_) => tracing::error!("recent-alerts buffer poisoned"),
        }
        if let Err(e) = self.actor.cast(AlertMsg::Raise(alert)) {
            tracing::error!(error = %e, "alert router is gone; alert kept only in the log");
        }
    }

    /// The most recent alerts, oldest first (at most 200): for /ops and tests.
    pub fn recent(&self) -> Vec<Alert> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

pub struct AlertRouter;

pub struct AlertRouterState {
    sink: Arc<dyn AlertSink>,
}

impl AlertRouter {
    /// Spawns the router (unlinked: a router crash must not take the lead tree with it, and
    /// the handle's log fallback keeps alerts visible meanwhile).
    pub async fn start(
        sink: Arc<dyn AlertSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<(AlertHandle, ractor::concurrency::JoinHandle<()>), ractor::SpawnErr> {
        let (actor, join) = Actor::spawn(None, AlertRouter, sink).await?;
        Ok((
            AlertHandle {
                actor,
                recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_ALERTS_KEPT))),
                clock,
            },
            join,
        ))
    }
}

impl Actor for AlertRouter {
    type Msg = AlertMsg;
    type State = AlertRouterState;
    type Arguments = Arc<dyn AlertSink>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        sink: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(AlertRouterState { sink })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AlertMsg::Raise(alert) => {
                // One at a time, in order: the sink sees alerts in the order they were raised.
                if let Err(e) = state.sink.deliver(&alert).await {
                    tracing::error!(error = %e, event = %alert.event, "alert not delivered");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;
    use crate::testing::RecordingAlertSink;

    #[test]
    fn a_long_alert_is_cut_with_a_suffix_within_the_limit() {
        let long = "x".repeat(5000);
        let cut = truncate_alert_text(&long);
        assert_eq!(cut.chars().count(), MAX_ALERT_CHARS);
        assert!(cut.ends_with(TRUNCATION_SUFFIX));
        assert_eq!(truncate_alert_text("short"), "short");
    }

    #[test]
    fn truncation_respects_multibyte_characters() {
        let long = "é".repeat(3000);
        let cut = truncate_alert_text(&long);
        assert_eq!(cut.chars().count(), MAX_ALERT_CHARS);
    }

    #[test]
    fn every_kind_has_a_distinct_channel_key() {
        let mut keys: Vec<_> = AlertKind::ALL.iter().map(|k| k.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), AlertKind::ALL.len());
    }

    #[tokio::test]
    async fn alerts_reach_the_sink_in_order_and_a_failing_sink_does_not_fail_the_caller() {
        let sink = Arc::new(RecordingAlertSink::default());
        let (handle, _join) = AlertRouter::start(sink.clone(), Arc::new(SystemClock))
            .await
            .unwrap();
        for i in 0..20 {
            handle.raise(Alert::event("tick", format!("n{i}")));
        }
        crate::testing::wait_for(|| sink.alerts().len() == 20).await;
        let texts: Vec<_> = sink.alerts().into_iter().map(|a| a.text).collect();
        let expected: Vec<_> = (0..20).map(|i| format!("n{i}")).collect();
        assert_eq!(texts, expected);

        sink.fail_next(3);
        handle.raise(Alert::error("boom", "a"));
        handle.raise(Alert::error("boom", "b"));
        assert_eq!(handle.recent().len(), 22);
    }
}
