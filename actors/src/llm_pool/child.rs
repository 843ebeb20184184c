//! LlmPoolChild: the pool's actor as a child of the root supervisor, so a panic in it is a
//! restart with the root's alert, a count in `lead_agent_root_restarts_total` and a line in
//! `/ready`, like the alert router and the lead supervisor.
//!
//! Owns: starting an incarnation linked under the root and pointing the handle at it;
//! telling the handle when it is gone (a restart follows, or none will).
//! Must not: start an actor before the root asks — the handle it returns serves nothing
//! until then.

use std::sync::Arc;

use async_trait::async_trait;
use ractor::{Actor, ActorCell, ActorProcessingErr};

use super::actor::PoolActor;
use super::{ChainPolicy, LlmPool, LlmPoolConfig};
use crate::alert_router::AlertHandle;
use crate::ports::{ChatModel, Clock};
use crate::root::{RootChild, start_failure};

pub struct LlmPoolChild {
    pool: LlmPool,
}

impl LlmPoolChild {
    pub const NAME: &'static str = "llm_pool";

    /// The child, and the handle that follows it across restarts. Arguments as for
    /// [`LlmPool::with_policy`].
    pub fn new(
        chain: Vec<Arc<dyn ChatModel>>,
        config: LlmPoolConfig,
        policy: ChainPolicy,
        alerts: AlertHandle,
        clock: Arc<dyn Clock>,
    ) -> (Self, LlmPool) {
        let pool = LlmPool::detached(chain, config, policy, alerts, clock);
        (Self { pool: pool.clone() }, pool)
    }
}

#[async_trait]
impl RootChild for LlmPoolChild {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    async fn start(&self, root: ActorCell) -> Result<ActorCell, ActorProcessingErr> {
        let shared = self.pool.shared.clone();
        let (actor, _join) = Actor::spawn_linked(None, PoolActor, shared.clone(), root)
            .await
            .map_err(start_failure)?;
        shared.route.attach(actor.clone());
        Ok(actor.get_cell())
    }

    fn gone(&self, for_good: bool) {
        if for_good {
            self.pool.shared.route.abandon();
        } else {
            self.pool.shared.route.detach();
        }
    }
}
