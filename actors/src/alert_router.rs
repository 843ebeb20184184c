//! AlertRouter: turns typed alerts into deliveries to one [`AlertSink`], in the order they
//! were raised, and keeps the most recent ones for operators.
//!
//! Owns: the alert kinds (one per channel of the seed's Discord table), truncation to what a
//! chat message can carry, the rule that a failure to alert never fails the caller, and
//! keeping every alert in the handle until the router has handed it to the sink, so that a
//! router restarted by the root supervisor loses none.
//! Must not: block or fail a caller ([`AlertHandle::raise`] is fire-and-forget), raise an
//! alert about its own delivery failure (that recursion is how alerts about alerts bury the
//! original problem), or know which chat service is behind the sink.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use serde::Serialize;

use crate::ports::{Clock, LeadId};
use crate::root::{RootChild, start_failure};

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
    /// Who the lead is, where known — the seed's typed events carry `client_id`, phone and
    /// name. The CRM's id of the person (Follow Up Boss `personId`); filled in on delivery
    /// from what the store knows when the raiser did not know it (`src/channels/identity.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why, as its own field (a `dead_lead`'s reason), so a reader need not parse the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// This alert asks a person to review the lead's documents: a chat sink attaches
    /// complete / incomplete to it (the same action as `POST /ops/leads/{phone}/documents/review`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub doc_review: bool,
    /// The lead's conversation a person may take over, or has taken (issue 15 item 6): a
    /// chat sink attaches "Take over", or "Reply" and "Release" (`crate::takeover`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takeover: Option<TakeoverButtons>,
}

/// Which takeover buttons an alert about a lead carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeoverButtons {
    /// "Take over" (the same as `POST /ops/leads/{phone}/takeover`): on the lead's HITL alerts.
    Offer,
    /// "Reply" (a reply box, sent as the operator's SMS) and "Release": on a taken-over
    /// lead's forwarded messages.
    Taken,
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
            client_id: None,
            name: None,
            reason: None,
            doc_review: false,
            takeover: None,
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

    /// Attaches the takeover buttons (a chat sink shows them when the alert names a lead).
    pub fn with_takeover(mut self, buttons: TakeoverButtons) -> Self {
        self.takeover = Some(buttons);
        self
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Who the lead is; either part may be unknown.
    pub fn with_identity(mut self, client_id: Option<String>, name: Option<String>) -> Self {
        self.client_id = client_id;
        self.name = name;
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
    /// An alert and its place in the handle's order (see [`Route`]).
    Raise(u64, Alert),
}

/// Most alerts the handle keeps while no router takes them (a router restarting, or a sink
/// slower than the raisers). Past it the oldest goes to the log: memory stays bounded and the
/// alert is still seen.
const UNDELIVERED_KEPT: usize = 10_000;

/// An alert raised and not yet through the sink.
struct Pending {
    seq: u64,
    alert: Alert,
    /// Routers that died while this alert was in their sink.
    deaths_in_sink: u8,
}

/// Where raised alerts go, shared by every clone of the handle and by the router. Every alert
/// stays here until the router has handed it to the sink, so a router that dies loses
/// nothing: its successor is given every undelivered alert, in order, before any new one.
/// An alert that was in the sink when two routers died is the likely cause and goes to the
/// log instead of killing a third.
struct Route {
    router: Option<ActorRef<AlertMsg>>,
    undelivered: VecDeque<Pending>,
    next_seq: u64,
    in_sink: Option<u64>,
    /// The router is gone for good (shutdown, or the root gave it up): alerts go to the log.
    abandoned: bool,
}

fn log_alert(alert: &Alert, why: &str) {
    tracing::error!(event = %alert.event, kind = alert.kind.key(), lead = ?alert.lead.as_ref().map(|l| l.log()), text = %crate::log_phone::scrub(&alert.text), "{why}");
}

impl Route {
    fn push(&mut self, alert: Alert) {
        if self.undelivered.len() == UNDELIVERED_KEPT
            && let Some(old) = self.undelivered.pop_front()
        {
            log_alert(
                &old.alert,
                "alert not delivered (too many waiting); kept only in the log",
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(router) = &self.router
            && router.cast(AlertMsg::Raise(seq, alert.clone())).is_err()
        {
            // Dead: this alert and the ones after it wait for the next router.
            self.router = None;
        }
        self.undelivered.push_back(Pending {
            seq,
            alert,
            deaths_in_sink: 0,
        });
    }
}

/// A cheap, cloneable way to raise alerts. Raising never blocks and never fails; it follows
/// the router across restarts (see [`AlertRouterChild`]).
#[derive(Clone)]
pub struct AlertHandle {
    route: Arc<Mutex<Route>>,
    recent: Arc<Mutex<VecDeque<Alert>>>,
    clock: Arc<dyn Clock>,
}

impl AlertHandle {
    /// A handle with no router yet: alerts raised now are delivered by the first router
    /// attached to it.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            route: Arc::new(Mutex::new(Route {
                router: None,
                undelivered: VecDeque::new(),
                next_seq: 0,
                in_sink: None,
                abandoned: false,
            })),
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_ALERTS_KEPT))),
            clock,
        }
    }

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
        let mut route = lock(&self.route);
        if route.abandoned {
            log_alert(&alert, "alert router is gone; alert kept only in the log");
            return;
        }
        route.push(alert);
    }

    /// The most recent alerts, oldest first (at most 200): for /ops and tests.
    pub fn recent(&self) -> Vec<Alert> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Alerts raised and not yet handed to the sink.
    pub fn undelivered(&self) -> usize {
        lock(&self.route).undelivered.len()
    }

    /// Points the handle at a (new) router and gives it every undelivered alert first.
    fn attach(&self, router: ActorRef<AlertMsg>) {
        let mut route = lock(&self.route);
        if let Some(seq) = route.in_sink.take()
            && let Some(front) = route.undelivered.front_mut()
            && front.seq == seq
        {
            front.deaths_in_sink += 1;
            if front.deaths_in_sink >= 2
                && let Some(poison) = route.undelivered.pop_front()
            {
                log_alert(
                    &poison.alert,
                    "alert dropped: two alert routers died delivering it; kept only in the log",
                );
            }
        }
        for p in &route.undelivered {
            let _ = router.cast(AlertMsg::Raise(p.seq, p.alert.clone()));
        }
        route.router = Some(router);
        route.abandoned = false;
    }

    /// The router died; alerts wait in the handle for the next one.
    fn detach(&self) {
        lock(&self.route).router = None;
    }

    /// No router will come back: what waits goes to the log, and so does every later alert.
    fn abandon(&self) {
        let mut route = lock(&self.route);
        route.router = None;
        route.abandoned = true;
        for p in route.undelivered.drain(..) {
            log_alert(&p.alert, "alert router is gone; alert kept only in the log");
        }
    }

    fn begin_delivery(&self, seq: u64) {
        lock(&self.route).in_sink = Some(seq);
    }

    fn delivered(&self, seq: u64) {
        let mut route = lock(&self.route);
        route.in_sink = None;
        while route.undelivered.front().is_some_and(|p| p.seq <= seq) {
            route.undelivered.pop_front();
        }
    }
}

/// The route holds plain data only, so a panic elsewhere cannot leave it inconsistent.
fn lock(route: &Mutex<Route>) -> std::sync::MutexGuard<'_, Route> {
    route
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub struct AlertRouter;

pub struct AlertRouterArgs {
    sink: Arc<dyn AlertSink>,
    handle: AlertHandle,
}

pub struct AlertRouterState {
    sink: Arc<dyn AlertSink>,
    handle: AlertHandle,
}

impl AlertRouter {
    /// Spawns a router on its own, unsupervised (actor tests and benches). The service runs
    /// it under the root supervisor instead ([`AlertRouterChild`]).
    pub async fn start(
        sink: Arc<dyn AlertSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<(AlertHandle, ractor::concurrency::JoinHandle<()>), ractor::SpawnErr> {
        let handle = AlertHandle::new(clock);
        let (actor, join) = Actor::spawn(
            None,
            AlertRouter,
            AlertRouterArgs {
                sink,
                handle: handle.clone(),
            },
        )
        .await?;
        handle.attach(actor);
        Ok((handle, join))
    }
}

impl Actor for AlertRouter {
    type Msg = AlertMsg;
    type State = AlertRouterState;
    type Arguments = AlertRouterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(AlertRouterState {
            sink: args.sink,
            handle: args.handle,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AlertMsg::Raise(seq, alert) => {
                // One at a time, in order: the sink sees alerts in the order they were raised.
                state.handle.begin_delivery(seq);
                if let Err(e) = state.sink.deliver(&alert).await {
                    tracing::error!(error = %e, event = %alert.event, "alert not delivered");
                }
                state.handle.delivered(seq);
            }
        }
        Ok(())
    }
}

/// The router as a child of the root supervisor: each start attaches the handle to the new
/// router, so every clone of the handle in the process follows the restart.
pub struct AlertRouterChild {
    sink: Arc<dyn AlertSink>,
    handle: AlertHandle,
}

impl AlertRouterChild {
    pub const NAME: &'static str = "alert_router";

    pub fn new(sink: Arc<dyn AlertSink>, handle: AlertHandle) -> Self {
        Self { sink, handle }
    }
}

#[async_trait]
impl RootChild for AlertRouterChild {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        let (actor, _join) = Actor::spawn_linked(
            None,
            AlertRouter,
            AlertRouterArgs {
                sink: self.sink.clone(),
                handle: self.handle.clone(),
            },
            root,
        )
        .await
        .map_err(start_failure)?;
        self.handle.attach(actor.clone());
        Ok(actor.get_cell())
    }

    fn gone(&self, for_good: bool) {
        if for_good {
            self.handle.abandon();
        } else {
            self.handle.detach();
        }
    }

    /// Drained, not stopped: the alerts of the shutdown itself are delivered first.
    async fn stop(&self, cell: ActorCell, timeout: std::time::Duration) {
        if cell.drain_and_wait(Some(timeout)).await.is_err() {
            cell.kill();
        }
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
