//! The chain's failure policy: which failures count against a provider's breaker, how long a
//! 429 may be waited out, and the `outcome` label each failure is counted under.
//!
//! Owns: the classification REFERENCE.md's pool policy asks for, as pure functions.
//! Must not: keep state or call anything — the actor applies it to its breakers, the caller
//! to its retry.

use std::time::Duration;

use crate::breaker::BreakerConfig;
use crate::ports::ModelError;

/// How the chain treats failing providers (REFERENCE.md's pool policy).
#[derive(Clone, Copy, Debug)]
pub struct ChainPolicy {
    /// A 429 whose retry-after is at most this is waited out and the provider asked once
    /// more (if the budgets allow); a longer one fails over at once and holds the
    /// provider's breaker open until the time it named.
    pub retry_after_cap: Duration,
    pub breaker: BreakerConfig,
}

impl Default for ChainPolicy {
    fn default() -> Self {
        Self {
            retry_after_cap: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
        }
    }
}

/// The `outcome` label of `lead_agent_llm_calls_total`.
pub(super) fn outcome_label(e: &ModelError) -> &'static str {
    match e {
        ModelError::Timeout => "timeout",
        ModelError::RateLimited { .. } => "rate_limited",
        ModelError::Overloaded => "overloaded",
        ModelError::Server { .. } => "server_error",
        ModelError::Rejected { .. } => "rejected",
        ModelError::Transport(_) => "transport_error",
        ModelError::BadResponse(_) => "bad_response",
    }
}

/// Whether a failure says the provider is unhealthy (counts toward opening its breaker).
/// A 400 or 413 is about this request, not the provider: it answered, so it is healthy. A
/// 401/403/404 will fail every request alike (bad key, unknown model), so it counts.
pub(super) fn counts_against_provider(e: &ModelError) -> bool {
    match e {
        ModelError::Rejected { status, .. } => matches!(status, 401 | 403 | 404),
        _ => true,
    }
}
