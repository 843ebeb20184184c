//! `GET /metrics`: Prometheus text exposition of the process's metrics.
//!
//! Owns: the one global recorder (installed once per process by [`install`]; a test
//! process builds many apps and the second install is a no-op), the metric descriptions,
//! and the gauges that are read from live state at scrape time (queue depth, active lead
//! actors, model calls in flight) rather than kept up to date by every code path.
//! Counters and histograms are emitted where things happen, with the `metrics` macros,
//! under the names listed in the shared contract (all start `lead_agent_`).
//! Must not: be public: it answers like `/ops` (OPS_TOKEN bearer, loopback when unset).
//! No label carries a phone number or any lead data.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::{ApiError, AppState};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds; model calls run up to LLM_HARD_TIMEOUT_SECS (45 by default).
const LATENCY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0,
];
/// Seconds a scheduled job fired after its time; the seed's pain started at minutes.
const LATENESS_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 180.0, 600.0];

/// Installs the Prometheus recorder as the process's `metrics` recorder, once. Called at
/// start-up, before anything emits: events before it would go to the no-op recorder.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("lead_agent_llm_latency_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("lead_agent_scheduler_lateness_seconds".into()),
                    &LATENESS_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics will show only the gauges it sets itself");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "lead_agent_queue_depth",
        "Wake-ups waiting in the work queue (as this process sees it)."
    );
    describe_gauge!(
        "lead_agent_active_leads",
        "Lead actors alive in this process."
    );
    describe_gauge!(
        "lead_agent_parked_leads",
        "Leads parked now (reply cap, restarts), from the store: every worker's parks."
    );
    describe_counter!(
        "lead_agent_leads_parked_total",
        "Parks set by this process, by reason (reply_cap_hour, reply_cap_day, restarts)."
    );
    describe_gauge!(
        "lead_agent_llm_in_flight",
        "Model calls running now in this process."
    );
    describe_histogram!(
        "lead_agent_llm_latency_seconds",
        Unit::Seconds,
        "Model call latency by provider."
    );
    describe_counter!(
        "lead_agent_llm_calls_total",
        "Model calls by provider and outcome."
    );
    describe_counter!(
        "lead_agent_llm_fallbacks_total",
        "Turns answered by a later provider of the chain."
    );
    describe_counter!(
        "lead_agent_llm_tokens_total",
        "Model tokens by provider and kind."
    );
    describe_counter!(
        "lead_agent_replies_sent_total",
        "Replies the SMS provider accepted."
    );
    describe_counter!("lead_agent_sla_breaches_total", "SLA breaches by SLA.");
    describe_counter!("lead_agent_alerts_total", "Alerts raised by kind.");
    describe_gauge!(
        "lead_agent_alerts_spooled",
        "Alerts waiting for their channel to come back."
    );
    describe_gauge!(
        "lead_agent_alerts_direct_queued",
        "Alerts this process holds in memory to post directly (the spool is unwritable)."
    );
    describe_counter!(
        "lead_agent_alerts_shed_total",
        "Alerts given up by the direct queue (full, or refused for good by Discord), by kind."
    );
    describe_counter!(
        "lead_agent_actor_restarts_total",
        "Lead actors restarted by the supervisor."
    );
    describe_counter!(
        "lead_agent_root_restarts_total",
        "Restart attempts of the root supervisor's children (alert router, lead supervisor, scheduler), by child."
    );
    describe_histogram!(
        "lead_agent_scheduler_lateness_seconds",
        Unit::Seconds,
        "How late each scheduled job fired."
    );
    describe_histogram!(
        "lead_agent_inbound_batch_size",
        "Webhook messages committed together by the store's group-commit writer."
    );
    describe_counter!(
        "lead_agent_scheduler_runs_total",
        "Scheduled job runs by job and outcome."
    );
    describe_counter!(
        "lead_agent_webhooks_rejected_total",
        "Webhooks refused, by reason: signature, loopback-only, form, size, type."
    );
    describe_counter!(
        "lead_agent_webhooks_unavailable_total",
        "Verified webhooks answered 503: neither the store nor a fallback could keep them."
    );
    describe_counter!(
        "lead_agent_inbound_fallback_total",
        "Verified webhooks kept by a fallback (rabbitmq, journal) because the store could not take them."
    );
    describe_counter!(
        "lead_agent_inbound_drained_total",
        "Fallback entries written into the store once it answered, by fallback."
    );
    describe_counter!(
        "lead_agent_wake_deferred_total",
        "Wake-ups the work queue could not take, retried in the background."
    );
    super::server::describe_metrics();
    // Unlabelled counters exist from the start, so a dashboard shows 0 rather than nothing.
    for name in [
        "lead_agent_replies_sent_total",
        "lead_agent_actor_restarts_total",
        "lead_agent_llm_fallbacks_total",
        "lead_agent_webhooks_unavailable_total",
        "lead_agent_wake_deferred_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    // So is each refusal reason: an alert rule on a rate needs the series to exist.
    for reason in [
        "signature",
        "loopback-only",
        "form",
        "phone",
        "size",
        "type",
    ] {
        metrics::counter!("lead_agent_webhooks_rejected_total", "reason" => reason).increment(0);
    }
}

/// Sets the gauges that are read from live state.
async fn refresh_gauges(state: &AppState) {
    // From the store (every worker's parks); left as it was when the store does not answer.
    if let Ok(parked) = super::parks::parked_now(state).await {
        metrics::gauge!("lead_agent_parked_leads").set(parked.len() as f64);
    }
    metrics::gauge!("lead_agent_queue_depth").set(state.queue.depth() as f64);
    let (active, in_flight) = match &state.worker {
        Some(w) => (
            w.registry.active_leads() as f64,
            w.pool.stats().in_flight.load(Ordering::SeqCst) as f64,
        ),
        None => (0.0, 0.0),
    };
    metrics::gauge!("lead_agent_active_leads").set(active);
    metrics::gauge!("lead_agent_llm_in_flight").set(in_flight);
}

pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    super::ops::authorize(&state, &peer, &headers)?;
    let handle = install();
    refresh_gauges(&state).await;
    handle.run_upkeep();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    ))
}
