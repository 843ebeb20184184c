//! LeadActor: one per active lead, the only writer of that lead's conversation.
//!
//! Owns: one turn at a time for its lead — flush replies left unsent by a crash, read the
//! unanswered messages from the store, ask the LLM pool, commit the reply to the outbox
//! together with marking the messages answered, send it, and only then settle the task.
//! Messages that arrive while a turn runs are answered together by the next turn (one reply
//! to a burst, as a person would). Before a turn it asks the store whether the lead is
//! parked, or would go over a reply cap ([`crate::park::check_turn`]): then no model call
//! and no SMS, and its messages stay pending. A lead an operator has taken over
//! ([`crate::takeover`]) gets no model call either: its messages are recorded and forwarded
//! to the operator, and only the operator's texts (queued in the outbox) go out.
//! Must not: keep anything that cannot be rebuilt from the store (its window is a cache —
//! dropped on any doubt and reloaded), send a reply that is not committed, or send one to an
//! opted-out lead. It does not retry forever: a failed turn is handed back to the queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::alert_router::{Alert, AlertHandle, AlertKind, Severity};
use crate::hitl::{ReplyHolds, held_reply_alert};
use crate::llm_pool::{LlmPool, PoolError};
use crate::park::{self, ParkPolicy, ParkStore, TurnGate};
use crate::ports::{Clock, Delivery, LeadId, OutboxReply, Prompt, Role, SmsSender, Store};
use crate::supervisor::SupervisorMsg;
pub use crate::turn_error::TurnError;
use crate::window::{ChatWindow, WindowLimits};

pub mod sanity;
mod send;

use send::send_reply;
pub use send::{MAX_SMS_CHARS, clamp_sms};

/// Where a voucher, accessibility or accommodation question goes (fair housing: a person
/// answers it, the lead is told so in neutral words).
#[derive(Clone)]
pub struct AccommodationHandoff {
    pub sla: crate::sla::SlaEvents,
    pub reply: String,
}

/// What every lead actor shares: the ports and the pool.
pub struct LeadDeps {
    pub store: Arc<dyn Store>,
    /// Parks (`park.rs`): consulted before every turn, written by the reply caps and the
    /// supervisor's restart limit.
    pub parks: Arc<dyn ParkStore>,
    /// `REPLY_CAP_PER_HOUR`, `REPLY_CAP_PER_DAY`, `PARK_SECS`.
    pub park_policy: ParkPolicy,
    pub sms: Arc<dyn SmsSender>,
    pub pool: LlmPool,
    pub alerts: AlertHandle,
    pub clock: Arc<dyn Clock>,
    pub window: WindowLimits,
    /// Names this process in the turn records (`host:pid`).
    pub worker_id: String,
    /// Send attempts for a temporary SMS failure before the reply waits for a later turn.
    pub sms_attempts: u32,
    /// Pause before a failed turn is handed back, so a store outage is not a hot loop.
    pub retry_delay: Duration,
    /// `Some` with HITL_ENABLED: replies are held for a person instead of sent.
    pub holds: Option<Arc<dyn ReplyHolds>>,
    /// Where a reply the fair-housing check stops is held for a person, HITL or not (the
    /// store, in production). `None` (and no `holds`): such a reply is refused, unsent.
    pub guard_holds: Option<Arc<dyn ReplyHolds>>,
    /// A question about a voucher, accessibility or an accommodation is answered with
    /// `reply` and handed to a person (`accommodation_request` SLA), not to the model.
    /// `None`: the model answers it like any message.
    pub accommodation: Option<AccommodationHandoff>,
    /// Where a revocation the plain chain's model judged ([`crate::revocation::MODEL_OPT_OUT`])
    /// is recorded; `None`: such an answer is refused, unsent.
    pub revocations: Option<Arc<dyn crate::brain::tools::JudgedRevocations>>,
    /// What answers the prompt (`USE_AGENT_CORE`: the brain, or shadow); `None` asks the
    /// pool's plain chain.
    pub responder: Option<Arc<dyn crate::brain::Responder>>,
}

/// What the supervisor and the actor both see of one active lead: the registry entry.
pub struct LeadSlot {
    pub actor: ActorRef<LeadMsg>,
    pub activity: Arc<LeadActivity>,
}

/// Written by the actor around each turn, read by the supervisor's sweep (idle
/// deactivation, turn time budget). Atomics, because ractor gives no handler timeout: the
/// supervisor must see a stuck turn without asking the stuck actor.
#[derive(Debug)]
pub struct LeadActivity {
    /// Milliseconds since the epoch when the running turn began; 0 when idle.
    pub busy_since_ms: AtomicI64,
    pub last_active_ms: AtomicI64,
}

impl LeadActivity {
    pub fn new(now_ms: i64) -> Self {
        Self {
            busy_since_ms: AtomicI64::new(0),
            last_active_ms: AtomicI64::new(now_ms),
        }
    }

    fn mark_busy(&self, now_ms: i64) {
        self.busy_since_ms.store(now_ms, Ordering::SeqCst);
        self.last_active_ms.store(now_ms, Ordering::SeqCst);
    }

    fn mark_idle(&self, now_ms: i64) {
        self.busy_since_ms.store(0, Ordering::SeqCst);
        self.last_active_ms.store(now_ms, Ordering::SeqCst);
    }
}

pub enum LeadMsg {
    /// The lead has stored work: run a turn, then settle the delivery.
    Wake(Delivery),
}

pub struct LeadActor;

pub struct LeadArgs {
    pub lead: LeadId,
    pub deps: Arc<LeadDeps>,
    pub supervisor: ActorRef<SupervisorMsg>,
    pub activity: Arc<LeadActivity>,
}

pub struct LeadState {
    lead: LeadId,
    deps: Arc<LeadDeps>,
    supervisor: ActorRef<SupervisorMsg>,
    activity: Arc<LeadActivity>,
    /// `None` while cold: loaded from the store on the first turn and after any failure.
    window: Option<ChatWindow>,
    /// True while turns keep failing: the event stream gets one `error` per streak, not one
    /// per retry (a store outage retries every second).
    failing: bool,
}

impl LeadState {
    pub fn accounted_bytes(&self) -> usize {
        self.window.as_ref().map_or(0, ChatWindow::accounted_bytes)
    }
}

/// How a turn ended when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum TurnOutcome {
    /// Nothing was pending (the burst was already answered by an earlier turn).
    Nothing,
    Replied,
    /// The lead had opted out: messages recorded, no reply.
    OptedOut,
    /// Another turn answered these messages first; this one wrote nothing.
    Superseded,
    /// HITL: the reply waits for a person.
    Held,
    /// The lead is parked (`park.rs`): its messages stay pending, unanswered, until it is
    /// unparked or the park expires.
    Parked,
    /// The reply failed the sanity check (`sanity.rs`): not sent, alerted, the messages
    /// left pending.
    Refused,
    /// A voucher, accessibility or accommodation question: acknowledged and handed to a
    /// person (`fair_housing.rs`), no model call.
    HandedOff,
    /// An operator holds the lead (`takeover.rs`): messages recorded and forwarded, no reply.
    TakenOver,
}

impl Actor for LeadActor {
    type Msg = LeadMsg;
    type State = LeadState;
    type Arguments = LeadArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: LeadArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Cheap on purpose: the supervisor awaits this, so no store read happens here.
        Ok(LeadState {
            lead: args.lead,
            deps: args.deps,
            supervisor: args.supervisor,
            activity: args.activity,
            window: None,
            failing: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let LeadMsg::Wake(delivery) = msg;
        let clock = state.deps.clock.clone();
        state.activity.mark_busy(clock.now().timestamp_millis());
        let span = turn_span(&state.lead);
        let result = run_turn(state).instrument(span.clone()).await;
        record_turn(&span, &result);
        match result {
            Ok(outcome) => {
                tracing::debug!(lead = %state.lead.log(), ?outcome, "turn done");
                state.failing = false;
                delivery.ack();
            }
            Err(TurnError::LeadBusy) => {
                tracing::debug!(lead = %state.lead.log(), "lead busy in another worker; task handed back");
                tokio::time::sleep(state.deps.retry_delay).await;
                delivery.requeue();
            }
            Err(e) => {
                // Whatever we held may be stale now; the store is the truth.
                state.window = None;
                tracing::warn!(lead = %state.lead.log(), error = %crate::log_phone::scrub(&e.to_string()), "turn failed; handing the task back");
                if !state.failing {
                    state.failing = true;
                    state.deps.alerts.raise(
                        Alert::new(
                            AlertKind::Event,
                            Severity::Warning,
                            "error",
                            format!("{}: turn failed, retrying: {e}", state.lead),
                        )
                        .for_lead(&state.lead),
                    );
                }
                if matches!(e, TurnError::Model(PoolError::HardTimeout(_))) {
                    state.deps.alerts.raise(
                        Alert::error(
                            "turn_abandoned",
                            format!("Turn for {} abandoned and retried: {e}", state.lead),
                        )
                        .for_lead(&state.lead),
                    );
                }
                tokio::time::sleep(state.deps.retry_delay).await;
                delivery.requeue();
            }
        }
        state.activity.mark_idle(clock.now().timestamp_millis());
        let _ = state.supervisor.cast(SupervisorMsg::TurnFinished {
            lead: state.lead.clone(),
            actor: myself.get_id(),
            accounted_bytes: state.accounted_bytes(),
        });
        Ok(())
    }
}

/// The span of one task's turns (the root of its trace: the model calls and the sends are
/// its children). The lead is masked (`LOG_PHONE`), as on every log line; no message text.
fn turn_span(lead: &LeadId) -> tracing::Span {
    tracing::info_span!(
        "turn",
        otel.name = "lead.turn",
        otel.status_code = tracing::field::Empty,
        lead = %lead.log(),
        outcome = tracing::field::Empty,
        error = tracing::field::Empty,
        langsmith.span.kind = "chain",
    )
}

fn record_turn(span: &tracing::Span, result: &Result<TurnOutcome, TurnError>) {
    let outcome = match result {
        Ok(TurnOutcome::Nothing) => "nothing",
        Ok(TurnOutcome::Replied) => "replied",
        Ok(TurnOutcome::OptedOut) => "opted_out",
        Ok(TurnOutcome::Superseded) => "superseded",
        Ok(TurnOutcome::Held) => "held",
        Ok(TurnOutcome::Parked) => "parked",
        Ok(TurnOutcome::Refused) => "refused",
        Ok(TurnOutcome::HandedOff) => "handed_off",
        Ok(TurnOutcome::TakenOver) => "taken_over",
        Err(TurnError::LeadBusy) => "lead_busy",
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            span.record(
                "error",
                tracing::field::display(crate::log_phone::scrub(&e.to_string())),
            );
            "failed"
        }
    };
    span.record("outcome", outcome);
}

/// Most turns one task may run back to back while it holds the lead's lock.
const MAX_TURNS_PER_TASK: usize = 5;

/// Runs the lead's turns under its lock. Another process holding the lock is running this
/// lead right now: the task goes back to the queue (`LeadBusy`) and comes back later. While
/// holding the lock, messages that arrived during a turn are drained by the next one here
/// (up to [`MAX_TURNS_PER_TASK`]) instead of waiting for their own task, which another worker
/// may have received and had to hand back.
pub async fn run_turn(state: &mut LeadState) -> Result<TurnOutcome, TurnError> {
    let store = state.deps.store.clone();
    let Some(lock) = store.try_lock_lead(&state.lead).await? else {
        return Err(TurnError::LeadBusy);
    };
    let mut result = Ok(TurnOutcome::Nothing);
    for _ in 0..MAX_TURNS_PER_TASK {
        match run_one_turn(state).await {
            Ok(TurnOutcome::Nothing) => break,
            // Its messages stay pending: another turn now would only ask again.
            Ok(TurnOutcome::Parked) => {
                result = Ok(TurnOutcome::Parked);
                break;
            }
            Ok(outcome) => result = Ok(outcome),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    lock.release().await;
    result
}

/// One turn. Each store call is its own transaction, ordered so that a crash between any two
/// of them leaves a state the next turn (or the start-up re-drive) completes without sending
/// anything twice.
async fn run_one_turn(state: &mut LeadState) -> Result<TurnOutcome, TurnError> {
    let deps = state.deps.clone();
    let lead = state.lead.clone();

    // One read for the unsent replies, the pending messages and the opt-out: messages that
    // arrive while the unsent replies go out are the next turn's (the loop in `run_turn`).
    let work = deps.store.lead_work(&lead).await?;
    // A reply committed by an earlier turn that crashed before sending goes first, so the
    // lead reads our answers in order.
    if !work.unsent.is_empty() {
        // Written outside this actor (an approved HITL reply, a holding message, a crashed
        // turn): the cached window does not have them, so it is reloaded after.
        state.window = None;
    }
    for reply in &work.unsent {
        send_reply(&deps, reply).await?;
    }

    let pending = work.pending;
    if pending.is_empty() {
        return Ok(TurnOutcome::Nothing);
    }
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    // Taken over by an operator: no draft. The messages are recorded as not ours to answer
    // (a release hands back the *next* message, never these), then forwarded; a crash
    // between the two loses the forward, not a message (it is stored, and /ops shows it).
    if let (Some(operator), false) = (&work.taken_by, work.opted_out) {
        let turn = deps.store.begin_turn(&lead, &deps.worker_id).await?;
        deps.store
            .mark_no_reply(&ids, crate::takeover::TAKEN_OVER)
            .await?;
        deps.store.finish_turn(turn, "taken_over").await?;
        let bodies: Vec<&str> = pending.iter().map(|p| p.body.as_str()).collect();
        deps.alerts
            .raise(crate::takeover::forwarded_alert(&lead, operator, &bodies));
        // The operator's texts are written outside this actor: reload the window later.
        state.window = None;
        return Ok(TurnOutcome::TakenOver);
    }
    // Parked, or parked now by a reply cap: no model call, no SMS; the messages stay
    // pending in the store (an opted-out lead's are still recorded no_reply below, since
    // that costs nothing and is final).
    if !work.opted_out {
        match park::check_turn(
            deps.parks.as_ref(),
            &deps.park_policy,
            &deps.alerts,
            &lead,
            deps.clock.now(),
        )
        .await?
        {
            TurnGate::Go => {}
            TurnGate::Parked(p) | TurnGate::NewlyParked(p) => {
                tracing::debug!(lead = %lead.log(), reason = p.reason.label(), "lead parked; no turn");
                return Ok(TurnOutcome::Parked);
            }
        }
    }
    let turn = deps.store.begin_turn(&lead, &deps.worker_id).await?;

    if work.opted_out {
        deps.store.mark_no_reply(&ids, "opted_out").await?;
        deps.store.finish_turn(turn, "opted_out").await?;
        deps.alerts.raise(
            Alert::event(
                "opted_out",
                format!(
                    "{lead}: {} message(s) from an opted-out lead, not answered",
                    ids.len()
                ),
            )
            .for_lead(&lead),
        );
        return Ok(TurnOutcome::OptedOut);
    }

    deps.alerts.raise(
        Alert::event(
            "message_received",
            format!(
                "{lead}: {}",
                pending
                    .iter()
                    .map(|p| p.body.as_str())
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
        )
        .for_lead(&lead),
    );

    if let Some(handoff) = &deps.accommodation
        && let Some((about, said)) = pending.iter().find_map(|p| {
            crate::fair_housing::accommodation_request(&p.body).map(|a| (a, p.body.as_str()))
        })
    {
        // Opened first and idempotently: a turn that fails after it opens nothing twice.
        handoff
            .sla
            .accommodation_requested(&lead, deps.clock.now(), about, said)
            .await?;
        let body = clamp_sms(handoff.reply.trim());
        let Some(reply_id) = deps
            .store
            .commit_reply(&lead, &ids, &body, "accommodation")
            .await?
        else {
            state.window = None;
            deps.store.finish_turn(turn, "superseded").await?;
            return Ok(TurnOutcome::Superseded);
        };
        // The next turn reloads the history with this exchange in it.
        state.window = None;
        deps.alerts.raise(
            Alert::event(
                "accommodation_acknowledged",
                format!(
                    "{lead} ← [accommodation] {body} (a person answers: SLA accommodation_request)"
                ),
            )
            .for_lead(&lead),
        );
        send_reply(
            &deps,
            &OutboxReply {
                id: reply_id,
                lead: lead.clone(),
                body,
            },
        )
        .await?;
        deps.store.finish_turn(turn, "handed_off").await?;
        return Ok(TurnOutcome::HandedOff);
    }

    if state.window.is_none() {
        let history = deps
            .store
            .load_history(&lead, deps.window.max_messages)
            .await?;
        if history.is_empty() {
            // The seed's CHAT_HISTORY_NOT_FOUND: a message from a lead the store has no
            // conversation with (first contact, or history lost); answered from this
            // message alone.
            deps.alerts.raise(
                Alert::new(
                    AlertKind::ChatHistoryNotFound,
                    Severity::Info,
                    "chat_history_not_found",
                    format!(
                        "{lead}: no stored conversation; answering from {} new message(s) alone",
                        pending.len()
                    ),
                )
                .for_lead(&lead),
            );
        }
        state.window = Some(ChatWindow::from_history(deps.window, history));
    }
    let window = state.window.as_mut().expect("window loaded above");
    for p in &pending {
        window.push_text(Role::Lead, &p.body);
    }
    let prompt = Prompt {
        lead: lead.clone(),
        lines: window.lines().cloned().collect(),
        new_messages: pending.len().min(window.len()),
        now: deps.clock.now(),
    };

    let completion = match &deps.responder {
        Some(responder) => responder.respond(&prompt).await?,
        None => deps.pool.complete(&prompt).await?,
    };
    if completion.text.trim() == crate::revocation::MODEL_OPT_OUT {
        // The model read a revocation the phrase set missed: the same effect as STOP (the
        // adapter queues the one confirmation, which the next turn of this task sends).
        let said: Vec<&str> = pending.iter().map(|p| p.body.as_str()).collect();
        state.window = None;
        let Some(revocations) = &deps.revocations else {
            deps.store.finish_turn(turn, "refused").await?;
            return Ok(TurnOutcome::Refused);
        };
        let said = said.join(" / ");
        let newly = revocations.revoke(&lead, &said).await?;
        deps.store.mark_no_reply(&ids, "opted_out").await?;
        deps.store.finish_turn(turn, "opted_out").await?;
        deps.alerts.raise(crate::brain::tools::judged_opt_out_alert(
            &lead,
            Some(&completion.provider),
            &said,
            newly,
        ));
        return Ok(TurnOutcome::OptedOut);
    }
    let check = sanity::check_reply(&completion.text);
    let refused = check.refuses() && deps.holds.is_none();
    let fair_housing = crate::fair_housing::check_draft(&completion.text);
    for problem in &check.problems {
        deps.alerts.raise(
            Alert::new(
                AlertKind::SanityCheck,
                if check.refuses() {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                problem.event(),
                format!(
                    "{lead}: {} [{}]{}\n{}",
                    problem.describe(),
                    completion.provider,
                    if refused {
                        " — not sent: the messages stay unanswered for the next turn"
                    } else if check.refuses() {
                        " — held for a person"
                    } else {
                        ""
                    },
                    clamp_sms(completion.text.trim())
                ),
            )
            .for_lead(&lead),
        );
    }
    if refused {
        state.window = None;
        deps.store.finish_turn(turn, "refused").await?;
        return Ok(TurnOutcome::Refused);
    }
    let body = clamp_sms(completion.text.trim());

    // A draft that asks about or conditions on a protected characteristic waits for a
    // person, whether or not every reply does (HITL).
    let guard = fair_housing
        .as_ref()
        .and_then(|_| deps.holds.as_ref().or(deps.guard_holds.as_ref()));
    if let Some(finding) = &fair_housing {
        deps.alerts.raise(
            Alert::new(
                AlertKind::SanityCheck,
                Severity::Critical,
                "reply_fair_housing",
                format!(
                    "{lead}: {} [{}] — {}\n{body}",
                    finding.describe(),
                    completion.provider,
                    if guard.is_some() {
                        "held for a person"
                    } else {
                        "not sent: the messages stay unanswered for the next turn"
                    }
                ),
            )
            .for_lead(&lead)
            .with_reason(finding.describe()),
        );
        if guard.is_none() {
            state.window = None;
            deps.store.finish_turn(turn, "refused").await?;
            return Ok(TurnOutcome::Refused);
        }
    }

    if let Some(holds) = guard.or(deps.holds.as_ref()) {
        let Some(hold_id) = holds
            .hold_reply(&lead, &ids, &body, &completion.provider)
            .await?
        else {
            state.window = None;
            deps.store.finish_turn(turn, "superseded").await?;
            return Ok(TurnOutcome::Superseded);
        };
        // The draft is not history until a person approves it.
        state.window = None;
        let inbound: Vec<&str> = pending.iter().map(|p| p.body.as_str()).collect();
        let mut held = held_reply_alert(&lead, hold_id, &inbound, &body);
        if let Some(finding) = &fair_housing {
            held.text = format!("{}\n\nHeld because: {}", held.text, finding.describe());
            held.reason = Some(finding.describe());
        }
        deps.alerts.raise(held);
        deps.alerts.raise(
            Alert::event(
                "reply_held",
                format!(
                    "{lead} ← [{}] held for approval (#{hold_id}): {body}",
                    completion.provider
                ),
            )
            .for_lead(&lead),
        );
        deps.store.finish_turn(turn, "held").await?;
        return Ok(TurnOutcome::Held);
    }

    let Some(reply_id) = deps
        .store
        .commit_reply(&lead, &ids, &body, &completion.provider)
        .await?
    else {
        state.window = None;
        deps.store.finish_turn(turn, "superseded").await?;
        return Ok(TurnOutcome::Superseded);
    };
    if let Some(w) = state.window.as_mut() {
        w.push_text(Role::Agent, &body);
    }
    deps.alerts.raise(
        Alert::event(
            "ai_response",
            format!("{lead} ← [{}] {body}", completion.provider),
        )
        .for_lead(&lead),
    );

    send_reply(
        &deps,
        &OutboxReply {
            id: reply_id,
            lead: lead.clone(),
            body,
        },
    )
    .await?;
    deps.store.finish_turn(turn, "replied").await?;
    Ok(TurnOutcome::Replied)
}

#[cfg(test)]
mod tests;
