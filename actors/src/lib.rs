//! The actor crate: how one lead's conversation is run, supervised and bounded, with no
//! knowledge of HTTP, SQL or AMQP.
//!
//! Owns: the root supervisor, the lead actors and their supervisor, the chat window, the LLM pool, the
//! SLA engine, the alert router, and the traits ([`ports`]) through which they reach the world.
//! Must not: depend on axum, sqlx, lapin or reqwest. `src/` implements the ports; tests here
//! use the in-memory fakes in `testing` (the `testing` feature) and a [`ports::ManualClock`].

pub mod alert_router;
pub mod backoff;
pub mod brain;
pub mod breaker;
pub mod conversation;
pub mod dialer;
pub mod fair_housing;
pub mod followup;
pub mod hitl;
pub mod intensity;
pub mod keywords;
pub mod lead;
pub mod llm_pool;
pub mod log_phone;
pub mod outbox;
pub mod park;
pub mod phone_zone;
pub mod ports;
pub mod revocation;
pub mod root;
pub mod send_window;
pub mod signals;
pub mod sla;
pub mod supervisor;
pub mod takeover;
// In-memory ports for tests: this crate's own, and the binary's through the `testing`
// feature (its dev-dependency); a production build does not compile them.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod turn_error;
pub mod window;
