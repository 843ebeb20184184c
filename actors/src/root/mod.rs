//! RootSupervisor: the top of the process's actor tree. The long-lived actors the rest of
//! the process depends on — the alert router, the lead supervisor, the scheduler — run
//! linked under it; it restarts one that fails or stops without being asked to, and gives
//! the process up when they keep dying.
//!
//! Owns: each child's lifecycle (first start, restart, stop at shutdown); the OTP-style
//! restart intensity across all its children (more than `restart_max` restarts within
//! `restart_window`: give up); a backoff between attempts at one child (the first restart is
//! immediate, a child that keeps dying or cannot start waits longer each time); the status
//! `/ready` reports; one ERROR alert per restart attempt. A child is a [`RootChild`]: it
//! starts itself linked under the root and points the handles others hold at its new
//! incarnation, so a child defined in `src/` (the scheduler) is supervised like those here.
//! Must not: do I/O of its own (a child's start may, and the root awaits it), decide what
//! giving up means for the process — that is the injected [`GiveUpHook`] (`src/` shuts the
//! process down and exits non-zero, so Kubernetes restarts the pod) — or restart anything
//! once it gave up. ractor has no restart policy of its own: a linked child's death is only
//! an event here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor::{SpawnErr, SupervisionEvent};
use serde::Serialize;

use crate::alert_router::{Alert, AlertHandle};
use crate::intensity::RestartIntensity;
use crate::ports::Clock;

/// One long-lived actor of the process, as the root supervisor sees it.
#[async_trait]
pub trait RootChild: Send + Sync + 'static {
    /// Stable and unique under one root: `/ready`, alerts and metrics name the child by it.
    fn name(&self) -> &'static str;

    /// Starts a new incarnation linked under `root` (`Actor::spawn_linked(.., root)`) and
    /// points every handle that reaches the child at it, before returning its cell.
    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr>;

    /// The running incarnation is gone (died, or was stopped): handles must stop pointing at
    /// it. `for_good`: no restart follows (stopped at shutdown, or the root gave up).
    fn gone(&self, _for_good: bool) {}

    /// Stops the running incarnation at shutdown.
    async fn stop(&self, cell: ActorCell, timeout: Duration) {
        if cell
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await
            .is_err()
        {
            cell.kill();
        }
    }
}

/// A child's spawn error as the root reports it: the start's own error, without ractor's
/// "Actor panicked during startup" wrapping (an `Err` from `pre_start` is not a panic).
pub fn start_failure(e: SpawnErr) -> ActorProcessingErr {
    match e {
        SpawnErr::StartupFailed(inner) => inner,
        other => other.into(),
    }
}

/// Why the root stopped restarting; handed to the [`GiveUpHook`].
#[derive(Clone, Debug)]
pub struct GiveUp {
    /// The child whose death went over the limit (`root` when the root itself died).
    pub child: &'static str,
    pub reason: String,
    pub restart_max: u32,
    pub restart_window: Duration,
}

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is down ({}) and its root is past its limit of {} restarts in {:?}",
            self.child, self.reason, self.restart_max, self.restart_window
        )
    }
}

/// What giving up does to the process. Called once. Tests record it; `src/` shuts down.
pub type GiveUpHook = Arc<dyn Fn(GiveUp) + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub struct RootConfig {
    pub restart_max: u32,
    pub restart_window: Duration,
    /// Wait before the second attempt at a child within the window; doubles per attempt.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    /// How long a child may take to stop at shutdown before it is killed.
    pub stop_timeout: Duration,
}

impl RootConfig {
    pub fn new(restart_max: u32, restart_window: Duration) -> Self {
        Self {
            restart_max,
            restart_window,
            backoff_first: Duration::from_millis(250),
            backoff_max: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// The wait before attempt `k` at one child within the window (1: the first restart, at
    /// once — a crash is usually a one-off; later ones wait for whatever refuses the start).
    fn backoff(&self, k: u32) -> Duration {
        if k <= 1 {
            return Duration::ZERO;
        }
        let doubled = self.backoff_first.saturating_mul(1u32 << (k - 2).min(16));
        doubled.min(self.backoff_max)
    }
}

/// What `/ready` and `/ops` see of one child.
#[derive(Clone, Debug, Serialize)]
pub struct ChildStatus {
    pub name: &'static str,
    pub up: bool,
    /// Restart attempts since the process started.
    pub restarts: u64,
    pub down_since: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
}

/// What the root's actor and every handle share.
struct Shared {
    children: Mutex<Vec<(ChildStatus, Option<ActorCell>)>>,
    gave_up: AtomicBool,
    stopping: AtomicBool,
    hook: GiveUpHook,
    config: RootConfig,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ChildStatus, Option<ActorCell>)>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls the hook unless it was called already.
    fn give_up(&self, why: GiveUp) -> bool {
        if self.gave_up.swap(true, Ordering::SeqCst) {
            return false;
        }
        tracing::error!(child = why.child, reason = %why.reason, "root supervisor gives up: {why}");
        (self.hook)(why);
        true
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("the root supervisor is gone")]
    Gone,
    #[error("a root child named {0} exists already")]
    Duplicate(&'static str),
}

pub enum RootMsg {
    Add(Arc<dyn RootChild>, RpcReplyPort<Result<(), RootError>>),
    /// A scheduled attempt at starting child `idx` again.
    Restart(usize),
    Stop(&'static str, RpcReplyPort<()>),
    Shutdown(RpcReplyPort<()>),
}

/// The process's way to the root: add children, read their status, stop them at shutdown.
#[derive(Clone)]
pub struct RootHandle {
    actor: ActorRef<RootMsg>,
    shared: Arc<Shared>,
}

impl RootHandle {
    /// Adds a child and makes the first attempt at starting it. A child that cannot start is
    /// not an error here: it is retried like one that died (and alerted, and counted), so a
    /// dependency that refuses for a moment costs a retry and one that keeps refusing ends
    /// in the give-up.
    pub async fn add(&self, child: Arc<dyn RootChild>) -> Result<(), RootError> {
        ractor::call!(self.actor, RootMsg::Add, child).map_err(|_| RootError::Gone)?
    }

    /// Stops a child for good (shutdown): it is not restarted. Returns once it stopped.
    pub async fn stop_child(&self, name: &'static str) {
        let _ = ractor::call!(self.actor, RootMsg::Stop, name);
    }

    /// Stops every child, the last added first, then the root.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = ractor::call!(self.actor, RootMsg::Shutdown);
    }

    pub fn status(&self) -> Vec<ChildStatus> {
        self.shared.lock().iter().map(|(s, _)| s.clone()).collect()
    }

    /// The children that are down right now (dying, restarting, or given up).
    pub fn down(&self) -> Vec<ChildStatus> {
        self.status().into_iter().filter(|s| !s.up).collect()
    }

    /// The running incarnation of a child: for tests and fire drills that kill it as a
    /// crash would (`.kill()`). Nothing in the service calls it.
    pub fn child(&self, name: &str) -> Option<ActorCell> {
        self.shared
            .lock()
            .iter()
            .find(|(s, _)| s.name == name)
            .and_then(|(_, cell)| cell.clone())
    }

    pub fn gave_up(&self) -> bool {
        self.shared.gave_up.load(Ordering::SeqCst)
    }

    pub fn config(&self) -> RootConfig {
        self.shared.config
    }
}

struct Child {
    spec: Arc<dyn RootChild>,
    cell: Option<ActorCell>,
    /// Stopped on purpose: never restarted.
    retired: bool,
    /// This child's attempts within the window: its backoff.
    recent: RestartIntensity,
    /// Why it went down, until it is up again (for the restart's alert).
    down_reason: Option<String>,
}

pub struct RootSupervisor;

pub struct RootArgs {
    alerts: AlertHandle,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
}

pub struct RootState {
    alerts: AlertHandle,
    clock: Arc<dyn Clock>,
    shared: Arc<Shared>,
    children: Vec<Child>,
    intensity: RestartIntensity,
}

impl RootSupervisor {
    /// Spawns the root (itself unsupervised: if it dies, nothing is supervised any more, so
    /// its death is a give-up too). `alerts` may have no router yet: the router is usually
    /// the first child, and alerts raised before it runs wait in the handle.
    pub async fn start(
        config: RootConfig,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
        hook: GiveUpHook,
    ) -> Result<RootHandle, SpawnErr> {
        let shared = Arc::new(Shared {
            children: Mutex::new(Vec::new()),
            gave_up: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            hook,
            config,
        });
        let (actor, join) = Actor::spawn(
            None,
            RootSupervisor,
            RootArgs {
                alerts,
                clock,
                shared: shared.clone(),
            },
        )
        .await?;
        let watched = shared.clone();
        tokio::spawn(async move {
            let _ = join.await;
            if !watched.stopping.load(Ordering::SeqCst) {
                for (status, cell) in watched.lock().iter_mut() {
                    status.up = false;
                    *cell = None;
                }
                watched.give_up(GiveUp {
                    child: "root",
                    reason: "the root supervisor itself stopped".into(),
                    restart_max: watched.config.restart_max,
                    restart_window: watched.config.restart_window,
                });
            }
        });
        Ok(RootHandle { actor, shared })
    }
}

impl RootState {
    fn find(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == id))
    }

    fn name(&self, idx: usize) -> &'static str {
        self.children[idx].spec.name()
    }

    fn set_up(&self, idx: usize, cell: ActorCell) {
        let mut children = self.shared.lock();
        let (status, slot) = &mut children[idx];
        status.up = true;
        status.down_since = None;
        *slot = Some(cell);
    }

    fn set_down(&self, idx: usize, why: &str) {
        let now = self.clock.now();
        let mut children = self.shared.lock();
        let (status, slot) = &mut children[idx];
        if status.up || status.down_since.is_none() {
            status.down_since = Some(now);
        }
        status.up = false;
        status.last_failure = Some(why.to_string());
        *slot = None;
    }

    fn raise(&self, event: &str, text: String) {
        self.alerts.raise(Alert::error(event, text));
    }

    fn limit(&self) -> String {
        let c = &self.shared.config;
        format!("limit {} in {:?}", c.restart_max, c.restart_window)
    }

    /// One attempt at starting child `idx`, unless it runs, was retired, or we gave up.
    async fn attempt(&mut self, myself: &ActorRef<RootMsg>, idx: usize) {
        let child = &self.children[idx];
        if child.cell.is_some()
            || child.retired
            || self.shared.gave_up.load(Ordering::SeqCst)
            || self.shared.stopping.load(Ordering::SeqCst)
        {
            return;
        }
        let name = self.name(idx);
        match child.spec.clone().start(myself.get_cell()).await {
            Ok(cell) => {
                self.children[idx].cell = Some(cell.clone());
                self.set_up(idx, cell);
                if let Some(why) = self.children[idx].down_reason.take() {
                    tracing::warn!(child = name, "root child restarted");
                    self.raise(
                        "root_child_restarted",
                        format!(
                            "{name} went down ({why}) and was restarted ({} root restarts in the \
                             window, {})",
                            self.intensity.recent(),
                            self.limit()
                        ),
                    );
                }
            }
            Err(e) => self.down(myself, idx, format!("could not start: {e}"), true),
        }
    }

    /// Child `idx` is down: forget it, then restart it (after its backoff) or give up.
    fn down(&mut self, myself: &ActorRef<RootMsg>, idx: usize, why: String, start_failed: bool) {
        let name = self.name(idx);
        self.children[idx].cell = None;
        self.set_down(idx, &why);
        if self.children[idx].retired || self.shared.stopping.load(Ordering::SeqCst) {
            self.children[idx].spec.gone(true);
            return;
        }
        self.children[idx].spec.gone(false);
        if self.shared.gave_up.load(Ordering::SeqCst) {
            return;
        }
        let first_death = self.children[idx]
            .down_reason
            .get_or_insert_with(|| why.clone())
            .clone();
        let now = self.clock.now();
        let over = self.intensity.record(now);
        self.children[idx].recent.record(now);
        if over {
            self.raise(
                "root_gave_up",
                format!(
                    "{name} is down ({why}); more root restarts than allowed ({}): the process \
                     exits so that it is restarted whole",
                    self.limit()
                ),
            );
            self.children[idx].spec.gone(true);
            self.shared.give_up(GiveUp {
                child: name,
                reason: why,
                restart_max: self.shared.config.restart_max,
                restart_window: self.shared.config.restart_window,
            });
            return;
        }
        metrics::counter!("lead_agent_root_restarts_total", "child" => name).increment(1);
        self.shared.lock()[idx].0.restarts += 1;
        let delay = self
            .shared
            .config
            .backoff(self.children[idx].recent.recent());
        if start_failed {
            let next = if delay.is_zero() {
                "at once".to_string()
            } else {
                format!("in {delay:?}")
            };
            tracing::error!(child = name, error = %why, next = %next, "root child could not start; retrying");
            let went_down = if first_death == why {
                String::new()
            } else {
                format!(" after it went down ({first_death})")
            };
            self.raise(
                "root_child_start_failed",
                format!(
                    "{name} {why}{went_down}; next attempt {next} ({} root restarts in the \
                     window, {})",
                    self.intensity.recent(),
                    self.limit()
                ),
            );
        } else {
            tracing::error!(child = name, reason = %why, "root child went down; restarting");
        }
        if delay.is_zero() {
            let _ = myself.send_message(RootMsg::Restart(idx));
        } else {
            myself.send_after(delay, move || RootMsg::Restart(idx));
        }
    }

    async fn retire(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        child.retired = true;
        if let Some(cell) = child.cell.take() {
            child.spec.stop(cell, self.shared.config.stop_timeout).await;
        }
        self.set_down(idx, "stopped");
        self.children[idx].spec.gone(true);
    }
}

impl Actor for RootSupervisor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RootArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let config = args.shared.config;
        Ok(RootState {
            alerts: args.alerts,
            clock: args.clock,
            shared: args.shared,
            children: Vec::new(),
            intensity: RestartIntensity::new(config.restart_max, config.restart_window),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RootMsg::Add(spec, reply) => {
                let name = spec.name();
                if state.children.iter().any(|c| c.spec.name() == name) {
                    let _ = reply.send(Err(RootError::Duplicate(name)));
                    return Ok(());
                }
                let config = state.shared.config;
                state.children.push(Child {
                    spec,
                    cell: None,
                    retired: false,
                    recent: RestartIntensity::new(config.restart_max, config.restart_window),
                    down_reason: None,
                });
                state.shared.lock().push((
                    ChildStatus {
                        name,
                        up: false,
                        restarts: 0,
                        down_since: Some(state.clock.now()),
                        last_failure: None,
                    },
                    None,
                ));
                let idx = state.children.len() - 1;
                state.attempt(&myself, idx).await;
                let _ = reply.send(Ok(()));
            }
            RootMsg::Restart(idx) => state.attempt(&myself, idx).await,
            RootMsg::Stop(name, reply) => {
                if let Some(idx) = state.children.iter().position(|c| c.spec.name() == name) {
                    state.retire(idx).await;
                }
                let _ = reply.send(());
            }
            RootMsg::Shutdown(reply) => {
                for idx in (0..state.children.len()).rev() {
                    state.retire(idx).await;
                }
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Events of an incarnation that is no longer current (stopped on purpose, or already
        // replaced) match no child and are ignored.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(idx) = state.find(cell.get_id()) {
                    state.down(&myself, idx, format!("failed: {err}"), false);
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(idx) = state.find(cell.get_id()) {
                    let reason = reason.unwrap_or_else(|| "no reason given".into());
                    state.down(
                        &myself,
                        idx,
                        format!("stopped unexpectedly: {reason}"),
                        false,
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
