//! Route: how a handle reaches the pool actor's running incarnation, and the three requests
//! a call makes of it (a permit, an admission, an outcome).
//!
//! Owns: the current incarnation (set when one starts, cleared when it is gone — by the root
//! supervisor, or by a caller that found it dead first), "stopped for good", and waiting for
//! a restart: at most one soft budget, so a caller never hangs on a pool that is not coming
//! back.
//! Must not: retry a request anywhere but at a newer incarnation, or wait when the pool was
//! stopped for good.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorId, ActorRef};
use tokio::sync::watch;

use super::Shared;
use super::actor::PoolMsg;
use super::permit::Permit;
use crate::breaker::Admission;
use crate::ports::ModelError;

#[derive(Clone, Default)]
struct Current {
    actor: Option<ActorRef<PoolMsg>>,
    /// Stopped at shutdown, or its root gave up: no incarnation will come.
    abandoned: bool,
}

pub(super) struct Route {
    current: watch::Sender<Current>,
}

/// No incarnation of the pool runs (and none came within the wait).
#[derive(Clone, Copy, Debug)]
pub(super) struct Unavailable(pub(super) &'static str);

impl Route {
    pub(super) fn new() -> Self {
        Self {
            current: watch::Sender::new(Current::default()),
        }
    }

    pub(super) fn attach(&self, actor: ActorRef<PoolMsg>) {
        self.current.send_modify(|c| {
            c.actor = Some(actor);
            c.abandoned = false;
        });
    }

    /// The incarnation died; a restart follows.
    pub(super) fn detach(&self) {
        self.current.send_modify(|c| c.actor = None);
    }

    /// No incarnation will follow: callers get the last resort at once.
    pub(super) fn abandon(&self) {
        self.current.send_modify(|c| {
            c.actor = None;
            c.abandoned = true;
        });
    }

    /// A caller found incarnation `id` dead before the root said so (the root's own
    /// [`Route::detach`] follows); a newer incarnation is left alone.
    fn detach_if(&self, id: ActorId) {
        self.current.send_if_modified(|c| {
            let dead = c.actor.as_ref().is_some_and(|a| a.get_id() == id);
            if dead {
                c.actor = None;
            }
            dead
        });
    }

    pub(super) fn current(&self) -> Option<ActorRef<PoolMsg>> {
        self.current.borrow().actor.clone()
    }

    /// The running incarnation, waiting up to `wait` for one while the pool restarts.
    async fn resolve(&self, wait: Duration) -> Result<ActorRef<PoolMsg>, Unavailable> {
        {
            let now = self.current.borrow();
            if let Some(actor) = &now.actor {
                return Ok(actor.clone());
            }
            if now.abandoned {
                return Err(Unavailable("the pool is stopped"));
            }
        }
        let mut rx = self.current.subscribe();
        match tokio::time::timeout(wait, rx.wait_for(|c| c.actor.is_some() || c.abandoned)).await {
            Ok(Ok(c)) => c.actor.clone().ok_or(Unavailable("the pool is stopped")),
            _ => Err(Unavailable("the pool is restarting")),
        }
    }
}

impl Shared {
    /// Waits for a permit, in order. An incarnation that dies while we wait drops our
    /// request with its queue; we ask the next one.
    pub(super) async fn acquire(&self) -> Result<Permit, Unavailable> {
        loop {
            let actor = self.route.resolve(self.config.soft_timeout).await?;
            match actor.call(PoolMsg::Acquire, None).await {
                Ok(CallResult::Success(permit)) => return Ok(permit),
                _ => self.route.detach_if(actor.get_id()),
            }
        }
    }

    /// Asks whether link `link` may be called now; the answer names the incarnation that
    /// gave it, which is the one the outcome goes to.
    pub(super) async fn admit(
        &self,
        link: usize,
    ) -> Result<(ActorRef<PoolMsg>, Admission), Unavailable> {
        loop {
            let actor = self.route.resolve(self.config.soft_timeout).await?;
            match actor.call(|reply| PoolMsg::Admit(link, reply), None).await {
                Ok(CallResult::Success(admission)) => return Ok((actor, admission)),
                _ => self.route.detach_if(actor.get_id()),
            }
        }
    }

    /// Tells the incarnation that admitted the call how it went, and waits until it has
    /// been applied, so what `/ops` shows once a call returned includes it. If that
    /// incarnation died meanwhile its breakers died with it: nothing to tell.
    pub(super) async fn report(
        &self,
        actor: Option<&ActorRef<PoolMsg>>,
        link: usize,
        result: Result<(), ModelError>,
    ) {
        if let Some(actor) = actor {
            let _ = actor
                .call(|reply| PoolMsg::Report(link, result, reply), None)
                .await;
        }
    }
}
