//! The ordered stop: readiness off, the listeners drained, no new deliveries, in-flight
//! turns given their grace, then the actor tree, then the trace flush; and the root supervisor's give-up turned
//! into that same stop followed by a non-zero exit.
//!
//! Must not: exit the process while the stop can still finish (the backstop waits out the
//! grace first).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actors::root::{GiveUp, GiveUpHook};
use anyhow::Context;

use super::Application;
use crate::http::{self, AppState};

impl Application {
    /// Serves until `shutdown` resolves, then stops in order: readiness off and no new
    /// connections (in-flight requests get `HTTP_SHUTDOWN_SECS`, then what is left of the
    /// connections is dropped), no new deliveries, in-flight turns get
    /// `SHUTDOWN_GRACE_SECS` to finish, then the actor tree stops. A turn still running at the
    /// end is cut; its task was never acked, and the re-drive at the next start takes it.
    ///
    /// The root supervisor giving up starts the same shutdown, and the run then ends with an
    /// error, so `serve` exits non-zero and Kubernetes restarts the container.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            ops_listener,
            state,
            consumer,
            sweeps,
            scheduler,
            heartbeat,
            background,
            give_up,
        } = self;
        let GiveUpWatch {
            reason: gave_up,
            alive,
        } = give_up;
        let mut gave_up_signal = gave_up.clone();
        let accepting = state.accepting.clone();
        // One stop for both listeners: SIGTERM (or the root giving up) ends readiness, then
        // each server stops taking connections and lets its requests finish.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let given_up = async move {
                if gave_up_signal.wait_for(Option::is_some).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = shutdown => {}
                _ = given_up => {}
            }
            accepting.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: no new webhooks");
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut stop = stop_rx.clone();
            async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            }
        };
        {
            let public = http::public_router(state.clone());
            let ops = http::ops_router(state.clone());
            tracing::info!(addr = %listener.local_addr()?, ops_addr = %ops_listener.local_addr()?, "listening");
            // Each returns within HTTP_SHUTDOWN_SECS of the signal, open connections or not,
            // so the ordered stop below always runs inside the pod's grace period.
            let limits = &state.settings.http;
            tokio::try_join!(
                async {
                    http::server::serve(listener, public, limits, stopped())
                        .await
                        .context("the public HTTP listener failed")
                },
                async {
                    http::server::serve(ops_listener, ops, limits, stopped())
                        .await
                        .context("the ops HTTP listener failed")
                },
            )?;
        }

        if let Some(sweeps) = sweeps {
            sweeps.abort();
        }
        if let Some(scheduler) = scheduler {
            // Hands the lease over now, so a standby need not wait for it to expire.
            scheduler.stop().await;
        }
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
        }
        // The inbound drain stops with the consumers (an entry in hand goes back to the
        // broker); the rest only retry, and what they hold is durable elsewhere.
        for task in background {
            task.abort();
        }
        state.queue.stop_consuming();
        if let Some(consumer) = consumer {
            let _ = consumer.await;
        }
        let deadline = tokio::time::Instant::now() + state.settings.shutdown_grace;
        while busy_turns(&state) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = busy_turns(&state);
        if left > 0 {
            tracing::warn!(
                left,
                "turns still running at the end of the grace period; the next start re-drives them"
            );
        }
        // The lead supervisor, then the alert router (drained: the shutdown's own alerts are
        // delivered), each stopped for good so that the root restarts neither.
        state.roots.shutdown().await;
        // Last: every turn's and job's span has ended by now; what the exporters still
        // queue goes out (within its own bound) before the process exits.
        crate::telemetry::flush().await;
        drop(alive);
        if let Some(why) = gave_up.borrow().clone() {
            anyhow::bail!("the root supervisor gave up: {why}");
        }
        tracing::info!(left, "stopped in order");
        Ok(())
    }
}

/// How this process takes the root supervisor's give-up: an orderly shutdown (the same path
/// as SIGTERM) and then a non-zero exit, rather than `std::process::exit(1)` at once —
/// webhooks in flight still get their answer (a 200 means stored), the scheduler hands its
/// lease over instead of leaving a standby to wait for it to expire, and RabbitMQ gets its
/// unsettled tasks back from a closed channel. A root child dying is a failure of that
/// actor, not of the process's memory, so the rest can still stop cleanly.
pub(super) struct GiveUpWatch {
    /// `Some(why)` once the root gave up.
    reason: tokio::sync::watch::Receiver<Option<String>>,
    /// Alive while this application may still run its shutdown; the backstop exits only then.
    alive: Arc<()>,
}

/// Past the shutdown grace, how long the give-up's shutdown may take before the backstop ends
/// the process anyway.
const GIVE_UP_BACKSTOP: Duration = Duration::from_secs(15);

pub(super) fn give_up_hook(grace: Duration) -> (GiveUpHook, GiveUpWatch) {
    let (tx, reason) = tokio::sync::watch::channel(None);
    let alive = Arc::new(());
    let app = Arc::downgrade(&alive);
    let hook: GiveUpHook = Arc::new(move |why: GiveUp| {
        tracing::error!(child = why.child, reason = %why.reason, "the root supervisor gave up: shutting down, then exiting non-zero so that the container is restarted");
        let _ = tx.send(Some(why.to_string()));
        // A shutdown that hangs (what died may be what it waits for) must not leave a process
        // that neither serves nor exits. A plain thread: the runtime may be what is stuck.
        let app = app.clone();
        std::thread::spawn(move || {
            std::thread::sleep(grace + GIVE_UP_BACKSTOP);
            if app.upgrade().is_some() {
                tracing::error!(
                    "the shutdown after the root supervisor gave up did not finish; exiting now"
                );
                eprintln!("error: the root supervisor gave up ({why}) and the shutdown hung");
                let _ = std::io::Write::flush(&mut std::io::stdout());
                let _ = std::io::Write::flush(&mut std::io::stderr());
                std::process::exit(1);
            }
        });
    });
    (hook, GiveUpWatch { reason, alive })
}

fn busy_turns(state: &AppState) -> usize {
    state.worker.as_ref().map_or(0, |w| w.registry.busy_leads())
}
