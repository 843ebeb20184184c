//! [`TurnError`]: why a turn must be handed back and tried again. Returned by the lead
//! actor's turn and by what answers its prompt (`crate::brain::Responder`), so it lives
//! apart from both: the responder abstraction must not depend on the actor that calls it.
//!
//! Must not: decide the retry — the lead actor does, by variant.

use crate::llm_pool::PoolError;
use crate::ports::{SmsError, StoreError};

/// Why a turn must be handed back and tried again.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] PoolError),
    #[error("SMS still failing after retries: {0}")]
    SmsTemporary(SmsError),
    #[error("another worker is running a turn for this lead")]
    LeadBusy,
}
