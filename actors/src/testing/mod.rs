//! In-memory implementations of the ports, for this crate's tests and for the binary's
//! harness: a store, an SMS sink, scriptable models, a recording alert sink, an acker, and a
//! bounded `wait_for`.
//!
//! Must not: be used on a production path. They keep everything in memory and hold locks
//! across nothing but plain data.
//!
//! Built for this crate's own tests and, through the `testing` feature, for the binary's
//! tests and benches (a dev-dependency there): never part of a production build.

mod acker;
mod alerts;
mod brain;
mod model;
mod sms;
mod store;

use std::time::Duration;

pub use acker::TestAcker;
pub use alerts::{RecordingAlertSink, test_alerts};
pub use brain::{MemLeadContexts, RecordingCrm};
pub use model::FakeModel;
pub use sms::FakeSms;
pub use store::MemStore;

/// Polls `cond` every 10 ms for at most 10 s; panics with a clear message if it never holds.
/// Tests wait on effects with this, never with a bare sleep.
pub async fn wait_for(mut cond: impl FnMut() -> bool) {
    wait_for_within(Duration::from_secs(10), &mut cond).await
}

pub async fn wait_for_within(limit: Duration, cond: &mut impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > limit {
            panic!("condition not met within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
