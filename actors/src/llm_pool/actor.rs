//! PoolActor: the pool's decisions, one at a time — who gets a permit, whether a provider may
//! be called, what a call's outcome does to that provider's breaker.
//!
//! Owns: the queue of callers waiting for a permit (first come, first served) and the grant
//! against the cap; each provider's `CircuitBreaker`, including the hold a long 429
//! retry-after puts on it; publishing those breakers for `/ops`; the
//! `provider_circuit_open` alert and the `circuit_open` count.
//! Must not: call a model, sleep or await anything in a handler — every message is a
//! decision of microseconds, so the mailbox never stands between a caller and capacity.
//!
//! A restart starts with closed breakers and an empty queue: the breakers of an incarnation
//! that crashed are not trusted, and re-learn a failing provider within
//! `LLM_BREAKER_FAILURES` calls; the callers that waited in the dead queue ask the new one.
//! Permits still out from the dead one keep counting against the cap (`permit.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ractor::{Actor, ActorProcessingErr, ActorRef, ActorRuntime, RpcReplyPort};

use super::Shared;
use super::permit::Permit;
use super::policy::counts_against_provider;
use crate::alert_router::{Alert, AlertKind, Severity};
use crate::breaker::{Admission, CircuitBreaker};
use crate::ports::ModelError;

pub(super) enum PoolMsg {
    /// Answered with a permit once one is free.
    Acquire(RpcReplyPort<Permit>),
    /// A permit came back (from this incarnation or a dead one): the next waiter may go.
    Released,
    /// May link `.0` be called now?
    Admit(usize, RpcReplyPort<Admission>),
    /// How the call to link `.0`, admitted here, ended.
    Report(usize, Result<(), ModelError>, RpcReplyPort<()>),
}

pub(super) struct PoolActor;

pub(super) struct PoolState {
    shared: Arc<Shared>,
    breakers: Vec<Arc<CircuitBreaker>>,
    waiting: VecDeque<RpcReplyPort<Permit>>,
}

/// Starts an incarnation nobody supervises ([`super::LlmPool::new`]); when it ends, the
/// pool is stopped for good, so callers get the last resort instead of waiting.
pub(super) fn spawn_standalone(shared: &Arc<Shared>) {
    let (actor, started) = ActorRuntime::spawn_instant(None, PoolActor, shared.clone())
        .expect("an unnamed actor cannot clash with a registered name");
    shared.route.attach(actor);
    let watched = shared.clone();
    tokio::spawn(async move {
        if let Ok(Ok(join)) = started.await {
            let _ = join.await;
        }
        watched.route.abandon();
    });
}

impl PoolState {
    fn cap(&self) -> usize {
        self.shared.config.concurrency.max(1)
    }

    /// Grants permits to the waiters in order while the cap allows. A waiter that gave up
    /// is skipped; a permit whose waiter went away between the check and the send is
    /// dropped, which gives it back at once.
    fn grant(&mut self) {
        while self.shared.stats.in_flight.load(Ordering::SeqCst) < self.cap() {
            let Some(waiter) = self.waiting.pop_front() else {
                return;
            };
            if waiter.is_closed() {
                continue;
            }
            let _ = waiter.send(Permit::grant(&self.shared));
        }
    }

    fn admit(&self, link: usize) -> Admission {
        let admission = self.breakers[link].admit();
        if admission == Admission::Refuse {
            self.shared
                .stats
                .refused_by_breaker
                .fetch_add(1, Ordering::Relaxed);
            metrics::counter!("lead_agent_llm_calls_total", "provider" => self.shared.names[link].clone(), "outcome" => "circuit_open").increment(1);
        }
        admission
    }

    fn report(&self, link: usize, result: Result<(), ModelError>) {
        let breaker = &self.breakers[link];
        let error = match result {
            Ok(()) => return breaker.on_success(),
            Err(e) => e,
        };
        let name = self.shared.names[link].as_str();
        if counts_against_provider(&error) {
            if breaker.on_failure() {
                tracing::warn!(
                    provider = name,
                    "circuit opened: provider skipped until a probe succeeds"
                );
                self.shared.alerts.raise(Alert::new(
                    AlertKind::Error,
                    Severity::Warning,
                    "provider_circuit_open",
                    format!("`{name}` keeps failing ({error}); skipped until a probe succeeds"),
                ));
            }
        } else {
            breaker.on_success();
        }
        // A retry-after within the cap is the caller's to wait out; a longer one is the
        // provider saying when to come back.
        if let ModelError::RateLimited {
            retry_after: Some(after),
        } = error
            && after > self.shared.policy.retry_after_cap
            && let Ok(after) = chrono::Duration::from_std(after)
        {
            breaker.hold_until(self.shared.clock.now() + after);
        }
    }
}

impl Actor for PoolActor {
    type Msg = PoolMsg;
    type State = PoolState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let breakers = shared.fresh_breakers();
        shared.publish_breakers(breakers.clone());
        Ok(PoolState {
            shared,
            breakers,
            waiting: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PoolMsg::Acquire(reply) => {
                state.waiting.push_back(reply);
                state.grant();
            }
            PoolMsg::Released => state.grant(),
            PoolMsg::Admit(link, reply) => {
                let _ = reply.send(state.admit(link));
            }
            PoolMsg::Report(link, result, reply) => {
                state.report(link, result);
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}
