//! Permit: one unit of the pool's concurrency cap, held by a caller for the length of its
//! call.
//!
//! Owns: the count of permits out (`PoolStats::in_flight`, and the
//! `lead_agent_llm_in_flight` gauge), which goes up only when the actor grants and down
//! whenever a permit is dropped — success, error, cancellation or panic — so neither the cap
//! nor the gauge can drift.
//! Must not: be created anywhere but in the actor's grant: one incarnation at a time
//! increments the count, and that is what makes it a cap.
//!
//! The count is shared rather than the actor's own so that a permit granted by an
//! incarnation that has since died still counts against the cap until its call ends, and
//! its return still reaches the incarnation that runs by then (as a `Released` nudge).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;
use super::actor::PoolMsg;

pub(super) struct Permit {
    shared: Arc<Shared>,
}

impl Permit {
    pub(super) fn grant(shared: &Arc<Shared>) -> Self {
        let stats = &shared.stats;
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        metrics::gauge!("lead_agent_llm_in_flight").increment(1.0);
        Self {
            shared: shared.clone(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        metrics::gauge!("lead_agent_llm_in_flight").decrement(1.0);
        // After the decrement, so the actor that handles the nudge sees the freed permit.
        // No incarnation running: the next one reads the count when it grants.
        if let Some(actor) = self.shared.route.current() {
            let _ = actor.cast(PoolMsg::Released);
        }
    }
}
