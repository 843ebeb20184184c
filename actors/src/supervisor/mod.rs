//! LeadSupervisor and LeadRegistry: who runs each active lead, and what happens when one
//! fails, hangs, idles or grows.
//!
//! Owns: activation on demand (a DashMap from lead to actor, so routing a task to a live
//! actor does not pass through this actor's mailbox), restart with an OTP-style intensity
//! limit (more than `restart_max` failures within `restart_window` parks the lead in the
//! store — [`crate::park`], with `PARK_SECS` expiry, seen by every worker — and raises an
//! alert instead of looping), the time budget of one turn (ractor has no handler timeout:
//! a sweep kills an actor whose turn outlives it), the memory budget (an actor whose
//! accounted bytes exceed it is stopped and rebuilt from the store on its next task), and
//! idle deactivation.
//! Must not: do I/O of its own (spawning stays cheap so one slow lead never delays another)
//! — with one exception, the write of a park, which is rare and must be durable before the
//! handed-back task is dispatched again — nor keep its own list of parked leads (the lead
//! actor asks the store before each turn), or lose a task: a task in the mailbox of an actor that dies is handed back to the queue
//! by [`Delivery`]'s drop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort,
    SupervisionEvent,
};

use crate::alert_router::{Alert, AlertKind, Severity};
use crate::intensity::RestartIntensity;
use crate::lead::{LeadActivity, LeadActor, LeadArgs, LeadDeps, LeadMsg, LeadSlot};
use crate::park::ParkReason;
use crate::ports::{Delivery, LeadId};
use crate::root::{RootChild, start_failure};

#[derive(Clone, Copy, Debug)]
pub struct SupervisorConfig {
    pub restart_max: u32,
    pub restart_window: Duration,
    pub idle_after: Duration,
    pub memory_budget_bytes: usize,
    pub turn_budget: Duration,
    /// How often idle and turn budgets are checked. `None`: only on an explicit `Sweep`
    /// (tests drive it with a manual clock).
    pub sweep_every: Option<Duration>,
}

pub enum SupervisorMsg {
    /// Route a task to its lead's actor, activating it if needed.
    Dispatch(Delivery),
    /// Sent by a lead actor after each turn with the bytes its state accounts for.
    TurnFinished {
        lead: LeadId,
        actor: ActorId,
        accounted_bytes: usize,
    },
    /// Check idle actors and turn budgets now.
    Sweep,
    Snapshot(RpcReplyPort<SupervisorSnapshot>),
}

/// What an operator (or a test) can read of the tree.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SupervisorSnapshot {
    pub active: usize,
    pub restarts: u64,
    pub budget_kills: u64,
    pub memory_stops: u64,
    pub idle_stops: u64,
}

type Registry = Arc<DashMap<LeadId, Arc<LeadSlot>>>;

/// The routing front of the tree. Cloneable; lock-free for a lead whose actor is live. It
/// follows the supervisor across restarts by the root supervisor ([`LeadSupervisorChild`]):
/// while none runs, a task is handed back to the queue.
#[derive(Clone)]
pub struct LeadRegistry {
    slots: Registry,
    supervisor: Arc<RwLock<Option<ActorRef<SupervisorMsg>>>>,
}

impl LeadRegistry {
    fn detached() -> Self {
        Self {
            slots: Arc::new(DashMap::new()),
            supervisor: Arc::new(RwLock::new(None)),
        }
    }

    fn attach(&self, supervisor: ActorRef<SupervisorMsg>) {
        *self.supervisor.write().unwrap_or_else(|p| p.into_inner()) = Some(supervisor);
    }

    /// The supervisor died or stopped, and its lead actors with it (ractor kills a dead
    /// actor's children): none of the slots is live any more.
    fn detach(&self) {
        *self.supervisor.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.slots.clear();
    }

    pub fn dispatch(&self, delivery: Delivery) {
        let lead = delivery.task.lead.clone();
        let slot = self.slots.get(&lead).map(|s| s.value().clone());
        let delivery = match slot {
            Some(slot) => match slot.actor.cast(LeadMsg::Wake(delivery)) {
                Ok(()) => return,
                // The actor stopped between lookup and send: let the supervisor activate a
                // new one.
                Err(MessagingErr::SendErr(LeadMsg::Wake(d))) => d,
                Err(e) => {
                    tracing::error!(lead = %lead.log(), error = %e, "lead actor unreachable; task handed back");
                    return;
                }
            },
            None => delivery,
        };
        let Some(supervisor) = self.supervisor() else {
            tracing::warn!(lead = %lead.log(), "lead supervisor is down (restarting); task handed back");
            return; // the delivery is dropped here, which hands it back to the queue
        };
        if let Err(e) = supervisor.cast(SupervisorMsg::Dispatch(delivery)) {
            // The delivery inside the error is dropped here, which hands it back to the queue.
            tracing::error!(lead = %lead.log(), error = %e, "lead supervisor unreachable; task handed back");
        }
    }

    pub fn active_leads(&self) -> usize {
        self.slots.len()
    }

    /// Leads whose actor is in the middle of a turn.
    pub fn busy_leads(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.activity.busy_since_ms.load(Ordering::SeqCst) != 0)
            .count()
    }

    pub fn is_active(&self, lead: &LeadId) -> bool {
        self.slots.contains_key(lead)
    }

    /// The running supervisor, if one runs.
    pub fn supervisor(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.supervisor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub async fn snapshot(&self) -> Option<SupervisorSnapshot> {
        let supervisor = self.supervisor()?;
        ractor::call!(supervisor, SupervisorMsg::Snapshot).ok()
    }
}

pub struct LeadSupervisor;

pub struct SupervisorArgs {
    pub deps: Arc<LeadDeps>,
    pub config: SupervisorConfig,
    pub slots: Registry,
}

pub struct SupervisorState {
    deps: Arc<LeadDeps>,
    config: SupervisorConfig,
    slots: Registry,
    by_actor: HashMap<ActorId, LeadId>,
    failures: HashMap<LeadId, RestartIntensity>,
    killed_for_time: HashSet<ActorId>,
    stats: SupervisorSnapshot,
}

impl LeadSupervisor {
    /// Spawns a tree on its own, unsupervised (actor tests). The service runs it under the
    /// root supervisor instead ([`LeadSupervisorChild`]).
    pub async fn start(
        deps: Arc<LeadDeps>,
        config: SupervisorConfig,
    ) -> Result<(LeadRegistry, ractor::concurrency::JoinHandle<()>), ractor::SpawnErr> {
        let registry = LeadRegistry::detached();
        let (supervisor, join) = Actor::spawn(
            Some(format!("lead-supervisor-{}", uuid_like())),
            LeadSupervisor,
            SupervisorArgs {
                deps,
                config,
                slots: registry.slots.clone(),
            },
        )
        .await?;
        registry.attach(supervisor);
        Ok((registry, join))
    }
}

/// The lead supervisor as a child of the root supervisor. A restart starts an empty tree:
/// the dead one's lead actors died with it, their unsettled tasks were handed back by
/// [`Delivery`]'s drop, and each lead's actor is activated again by its next task.
pub struct LeadSupervisorChild {
    deps: Arc<LeadDeps>,
    config: SupervisorConfig,
    registry: LeadRegistry,
}

impl LeadSupervisorChild {
    pub const NAME: &'static str = "lead_supervisor";

    /// The child, and the registry that follows it across restarts.
    pub fn new(deps: Arc<LeadDeps>, config: SupervisorConfig) -> (Self, LeadRegistry) {
        let registry = LeadRegistry::detached();
        (
            Self {
                deps,
                config,
                registry: registry.clone(),
            },
            registry,
        )
    }
}

#[async_trait::async_trait]
impl RootChild for LeadSupervisorChild {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        // A dead incarnation's slots were cleared when it went; clear again in case a
        // supervisor is started without having been seen to go.
        self.registry.slots.clear();
        let (supervisor, _join) = Actor::spawn_linked(
            Some(format!("lead-supervisor-{}", uuid_like())),
            LeadSupervisor,
            SupervisorArgs {
                deps: self.deps.clone(),
                config: self.config,
                slots: self.registry.slots.clone(),
            },
            root,
        )
        .await
        .map_err(start_failure)?;
        self.registry.attach(supervisor.clone());
        Ok(supervisor.get_cell())
    }

    fn gone(&self, _for_good: bool) {
        self.registry.detach();
    }
}

/// Actor names are global in ractor; several trees may live in one test process.
fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl SupervisorState {
    async fn activate(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        lead: &LeadId,
    ) -> Result<Arc<LeadSlot>, ActorProcessingErr> {
        let activity = Arc::new(LeadActivity::new(self.deps.clock.now().timestamp_millis()));
        let (actor, _join) = Actor::spawn_linked(
            None,
            LeadActor,
            LeadArgs {
                lead: lead.clone(),
                deps: self.deps.clone(),
                supervisor: myself.clone(),
                activity: activity.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        let slot = Arc::new(LeadSlot { actor, activity });
        self.by_actor.insert(slot.actor.get_id(), lead.clone());
        self.slots.insert(lead.clone(), slot.clone());
        Ok(slot)
    }

    /// Forgets an actor that is gone; returns its lead if it was current.
    fn forget(&mut self, id: ActorId) -> Option<LeadId> {
        let lead = self.by_actor.remove(&id)?;
        self.slots
            .remove_if(&lead, |_, slot| slot.actor.get_id() == id);
        Some(lead)
    }

    /// Records a failure; true if the lead is now over its restart intensity and parked.
    fn record_failure(&mut self, lead: &LeadId) -> bool {
        let now = self.deps.clock.now();
        let (max, window) = (self.config.restart_max, self.config.restart_window);
        let over = self
            .failures
            .entry(lead.clone())
            .or_insert_with(|| RestartIntensity::new(max, window))
            .record(now);
        if over {
            self.failures.remove(lead);
        }
        over
    }

    /// Parks the lead in the store for `PARK_SECS`. Awaited here, in the supervisor's own
    /// mailbox, so that the park is stored before the handed-back task can reach a new
    /// actor for the lead (that actor reads the park before its turn). Returns what the
    /// alert should add when the store refused it: the lead is then not parked, and its
    /// next failure tries again.
    async fn park_for_restarts(&self, lead: &LeadId) -> String {
        let park = self
            .deps
            .park_policy
            .park(lead, ParkReason::Restarts, self.deps.clock.now());
        match self.deps.parks.park(&park).await {
            Ok(()) => {
                metrics::counter!("lead_agent_leads_parked_total", "reason" => ParkReason::Restarts.label())
                    .increment(1);
                format!(
                    " Parked until {} (or an unpark: /ops, `lead-agent unpark {lead}`).",
                    park.expires_at.format("%Y-%m-%d %H:%M UTC")
                )
            }
            Err(e) => {
                tracing::error!(lead = %lead.log(), error = %e, "park not stored");
                format!(" The park could not be stored ({e}): the lead is tried again.")
            }
        }
    }

    async fn on_failure(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        lead: LeadId,
        why: String,
    ) -> Result<(), ActorProcessingErr> {
        if self.record_failure(&lead) {
            let parked = self.park_for_restarts(&lead).await;
            self.deps.alerts.raise(
                Alert::error(
                    "lead_parked",
                    format!(
                        "Lead {lead} parked (restarts) after more than {} failures in {:?}; its \
                         messages are stored and wait for a person. Last failure: {why}.{parked}",
                        self.config.restart_max, self.config.restart_window
                    ),
                )
                .for_lead(&lead),
            );
            return Ok(());
        }
        self.stats.restarts += 1;
        metrics::counter!("lead_agent_actor_restarts_total").increment(1);
        self.deps.alerts.raise(
            Alert::new(
                AlertKind::Error,
                Severity::Warning,
                "lead_restarted",
                format!("Lead actor for {lead} restarted: {why}"),
            )
            .for_lead(&lead),
        );
        // Restarted at once (not on the next task) so the handed-back task finds it ready.
        self.activate(myself, &lead).await?;
        Ok(())
    }

    fn sweep(&mut self) {
        let now = self.deps.clock.now().timestamp_millis();
        let budget = self.config.turn_budget.as_millis() as i64;
        let idle = self.config.idle_after.as_millis() as i64;
        let mut idle_stops = Vec::new();
        for entry in self.slots.iter() {
            let slot = entry.value();
            let busy_since = slot.activity.busy_since_ms.load(Ordering::SeqCst);
            if busy_since != 0 {
                if now - busy_since > budget && self.killed_for_time.insert(slot.actor.get_id()) {
                    self.stats.budget_kills += 1;
                    self.deps.alerts.raise(
                        Alert::error(
                            "turn_budget_exceeded",
                            format!(
                                "Turn for {} ran past its {:?} budget; actor killed, task retried",
                                entry.key(),
                                self.config.turn_budget
                            ),
                        )
                        .for_lead(entry.key()),
                    );
                    slot.actor.kill();
                }
            } else if now - slot.activity.last_active_ms.load(Ordering::SeqCst) > idle {
                idle_stops.push(entry.key().clone());
            }
        }
        for lead in idle_stops {
            // Removed before stopping: a task routed from now on activates a fresh actor,
            // and one already in the old mailbox is handed back when it stops.
            if let Some((_, slot)) = self.slots.remove(&lead) {
                self.by_actor.remove(&slot.actor.get_id());
                self.stats.idle_stops += 1;
                slot.actor.stop(Some("idle".into()));
            }
        }
    }
}

impl Actor for LeadSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        if let Some(every) = args.config.sweep_every {
            myself.send_interval(every, || SupervisorMsg::Sweep);
        }
        Ok(SupervisorState {
            deps: args.deps,
            config: args.config,
            slots: args.slots,
            by_actor: HashMap::new(),
            failures: HashMap::new(),
            killed_for_time: HashSet::new(),
            stats: SupervisorSnapshot::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Dispatch(delivery) => {
                // A parked lead still gets an actor: its turn reads the park from the store
                // (every worker's view) and settles the task without a model call.
                let lead = delivery.task.lead.clone();
                let existing = state.slots.get(&lead).map(|s| s.value().clone());
                let slot = match existing {
                    Some(slot) => slot,
                    None => state.activate(&myself, &lead).await?,
                };
                if let Err(MessagingErr::SendErr(LeadMsg::Wake(d))) =
                    slot.actor.cast(LeadMsg::Wake(delivery))
                {
                    // Stopped under our feet: start a fresh one and give it the task.
                    state.forget(slot.actor.get_id());
                    let slot = state.activate(&myself, &lead).await?;
                    let _ = slot.actor.cast(LeadMsg::Wake(d));
                }
            }
            SupervisorMsg::TurnFinished {
                lead,
                actor,
                accounted_bytes,
            } => {
                let current = state
                    .slots
                    .get(&lead)
                    .map(|s| s.value().clone())
                    .filter(|s| s.actor.get_id() == actor);
                if accounted_bytes > state.config.memory_budget_bytes
                    && let Some(slot) = current
                {
                    state.forget(actor);
                    state.stats.memory_stops += 1;
                    slot.actor.stop(Some("memory_budget".into()));
                    let parked = state.record_failure(&lead);
                    let park_note = if parked {
                        state.park_for_restarts(&lead).await
                    } else {
                        String::new()
                    };
                    state.deps.alerts.raise(
                        Alert::error(
                            if parked {
                                "lead_parked"
                            } else {
                                "memory_budget_exceeded"
                            },
                            format!(
                                "Lead actor for {lead} held {accounted_bytes} bytes, over its \
                                 budget of {}; stopped (rebuilt from the store on its next message).{park_note}",
                                state.config.memory_budget_bytes
                            ),
                        )
                        .for_lead(&lead),
                    );
                }
            }
            SupervisorMsg::Sweep => state.sweep(),
            SupervisorMsg::Snapshot(reply) => {
                let mut snap = state.stats.clone();
                snap.active = state.slots.len();
                let _ = reply.send(snap);
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
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let id = cell.get_id();
                if let Some(lead) = state.forget(id) {
                    tracing::error!(lead = %lead.log(), error = %crate::log_phone::scrub(&err.to_string()), "lead actor failed");
                    state.on_failure(&myself, lead, err.to_string()).await?;
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let id = cell.get_id();
                let killed = state.killed_for_time.remove(&id);
                if let Some(lead) = state.forget(id)
                    && killed
                {
                    state
                        .on_failure(&myself, lead, "turn time budget exceeded".into())
                        .await?;
                } else {
                    tracing::debug!(?reason, "lead actor stopped");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
