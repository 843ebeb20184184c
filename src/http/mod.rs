//! The HTTP side of every role: two listeners, two routers. The public one
//! ([`public_router`], `PORT`) takes the Twilio and Discord webhooks and answers health and
//! readiness; the ops one ([`ops_router`], `OPS_PORT`, loopback by default and never routed
//! by the public Service or Ingress) serves `/ops`, `/ops/*` and `/metrics`.
//!
//! Owns: the routers, the shared [`AppState`], and the one error type every handler returns:
//! client errors become 4xx with a short reason; unexpected errors are logged with their
//! cause chain and answered 500 (or 503 when the right move for Twilio is to retry) without
//! details. Must not: do a lead's work inline — the webhook stores, publishes and answers
//! in milliseconds; slow inline work is what made Twilio retry in the seed.

pub mod discord;
pub mod health;
pub mod metrics;
pub mod ops;
pub mod ops_guard;
pub mod ops_page;
pub mod parks;
pub mod rejections;
pub mod server;
pub mod sla;
pub mod twilio;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actors::alert_router::AlertHandle;
use actors::llm_pool::LlmPool;
use actors::supervisor::LeadRegistry;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Settings;
use crate::queue::WorkQueue;
use crate::sla::SlaEngine;
use crate::startup::Role;
use crate::store::SqlStore;

/// Twilio's webhooks are a few KB; anything near this is not Twilio.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: SqlStore,
    pub queue: Arc<dyn WorkQueue>,
    pub alerts: AlertHandle,
    /// The SLA engine: its sweep is the scheduler's job; /ops opens and resolves SLAs.
    pub sla: Arc<SlaEngine>,
    pub role: Role,
    /// The lead actors and model pool, in a process that runs them (roles `all`, `worker`).
    pub worker: Option<WorkerState>,
    /// False once shutdown begins: /ready answers 503 so the load balancer drains us.
    pub accepting: Arc<AtomicBool>,
    /// The Discord alert sender, in a process that runs it (roles `all`, `scheduler`).
    pub discord: Option<crate::channels::discord::sender::DiscordSender>,
    /// Where verified webhooks go: the store, else a fallback (`crate::inbound`). The
    /// drains of the fallbacks write through it too.
    pub intake: Arc<crate::inbound::InboundIntake>,
    /// Counts and alerts refused webhooks (`rejections.rs`).
    pub webhooks: Arc<rejections::WebhookWatch>,
    /// The root supervisor of this process's long-lived actors: /ready reports its children.
    pub roots: actors::root::RootHandle,
}

#[derive(Clone)]
pub struct WorkerState {
    pub registry: LeadRegistry,
    pub pool: LlmPool,
}

/// The public listener (`PORT`): what the internet must reach and nothing else — Twilio's
/// and Discord's webhooks (web roles only) and health and readiness. `/ops` and `/metrics`
/// are not here (they answer 404): they are on [`ops_router`].
pub fn public_router(state: AppState) -> Router {
    let mut router = Router::new();
    if state.role.serves_webhook() {
        router = router.route(
            "/twilio/sms",
            post(twilio::receive_sms).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        );
        router = router.route(
            "/discord/interactions",
            post(discord::interactions).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        );
    }
    router
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The ops listener (`OPS_PORT`), served by every role (Kubernetes probes and Prometheus
/// scrape every container): `/ops`, `/ops/*`, `/metrics`, and health and readiness for the
/// probes. Every POST under `/ops` passes [`ops_guard`] (JSON, same origin) first.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/ops", get(ops_page::page))
        .route("/ops/verifications", post(ops_page::record_verification))
        .route("/ops/status", get(ops::status))
        .route("/ops/alerts", get(ops::alerts))
        .route("/ops/discord", get(discord::status))
        .route("/ops/scheduled", get(ops::scheduled))
        .route("/ops/heartbeats", get(ops::heartbeats))
        .route("/ops/report", get(ops::report))
        .route("/ops/leads/{phone}/messages", get(ops::messages))
        .route("/ops/leads/{phone}/turns", get(ops::turns))
        .route("/ops/parked", get(parks::list))
        .route("/ops/leads/{phone}/unpark", post(parks::unpark))
        .route("/ops/sla", get(sla::list))
        .route("/ops/leads/{phone}/sla", post(sla::open))
        .route("/ops/leads/{phone}/sla/{kind}/resolve", post(sla::resolve))
        .layer(axum::middleware::from_fn(ops_guard::guard_posts))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Every handler's error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A dependency is down; the caller should retry (Twilio does, on a 5xx).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &self {
            ApiError::Unexpected(e) => {
                tracing::error!(error.cause_chain = ?e, "unexpected error");
                (status, "internal error").into_response()
            }
            ApiError::Unavailable(reason) => {
                tracing::warn!(reason, "answering 503");
                (status, "temporarily unavailable").into_response()
            }
            other => (status, other.to_string()).into_response(),
        }
    }
}

/// True for a peer on this machine: the only callers trusted when no secret is configured.
pub fn is_local(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}
