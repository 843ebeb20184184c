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

pub mod consent;
pub mod console;
pub mod discord;
pub mod documents;
pub mod health;
pub mod holds;
pub mod metrics;
pub mod ops;
pub mod ops_guard;
pub mod ops_page;
pub mod parks;
pub mod rejections;
pub mod server;
pub mod sla;
pub mod takeovers;
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
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::config::Settings;
use crate::queue::WorkQueue;
use crate::role::Role;
use crate::sla::SlaEngine;
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

/// Which listener serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Listener {
    /// `PORT`: what the internet reaches.
    Public,
    /// `OPS_PORT`: operators, probes and Prometheus.
    Ops,
}

impl Listener {
    /// The name `openapi.yaml` uses (`x-listeners`).
    pub fn name(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Ops => "ops",
        }
    }
}

/// One route of [`ROUTES`]: where, which method, which path, and whether only web roles
/// serve it.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub listener: Listener,
    pub method: &'static str,
    pub path: &'static str,
    /// Served only by roles that take the webhooks (`Role::serves_webhook`).
    pub webhook: bool,
}

const fn at(listener: Listener, method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        listener,
        method,
        path,
        webhook: false,
    }
}

const fn webhook(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        listener: Listener::Public,
        method,
        path,
        webhook: true,
    }
}

/// Every route of both listeners: the one list [`public_router`] and [`ops_router`] are
/// built from (a route missing here has no handler; a handler missing for a route here
/// panics at start, in every test) and `openapi.yaml` is checked against
/// (`tests/api/openapi.rs`). axum cannot list a router's routes, hence the table.
pub const ROUTES: &[RouteSpec] = &[
    webhook("POST", "/twilio/sms"),
    webhook("POST", "/discord/interactions"),
    at(Listener::Public, "GET", "/health"),
    at(Listener::Public, "GET", "/ready"),
    at(Listener::Ops, "GET", "/health"),
    at(Listener::Ops, "GET", "/ready"),
    at(Listener::Ops, "GET", "/metrics"),
    at(Listener::Ops, "GET", "/ops"),
    at(Listener::Ops, "GET", "/ops/console.js"),
    at(Listener::Ops, "GET", "/ops/changes"),
    at(Listener::Ops, "GET", "/ops/charts"),
    at(Listener::Ops, "GET", "/ops/conversations/{phone}"),
    at(Listener::Ops, "POST", "/ops/holds/{id}/decide"),
    at(Listener::Ops, "POST", "/ops/verifications"),
    at(Listener::Ops, "GET", "/ops/status"),
    at(Listener::Ops, "GET", "/ops/alerts"),
    at(Listener::Ops, "GET", "/ops/discord"),
    at(Listener::Ops, "GET", "/ops/scheduled"),
    at(Listener::Ops, "GET", "/ops/heartbeats"),
    at(Listener::Ops, "GET", "/ops/report"),
    at(Listener::Ops, "GET", "/ops/leads/{phone}/messages"),
    at(Listener::Ops, "GET", "/ops/leads/{phone}/turns"),
    at(Listener::Ops, "GET", "/ops/parked"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/unpark"),
    at(Listener::Ops, "GET", "/ops/leads/{phone}/consent"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/consent"),
    at(Listener::Ops, "GET", "/ops/takeovers"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/takeover"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/release"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/reply"),
    at(Listener::Ops, "GET", "/ops/sla"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/sla"),
    at(
        Listener::Ops,
        "POST",
        "/ops/leads/{phone}/sla/{kind}/resolve",
    ),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/documents"),
    at(Listener::Ops, "POST", "/ops/leads/{phone}/documents/review"),
];

/// The handler of one [`ROUTES`] entry, mounted under the entry's method. A `(method,
/// path)` here that the table lacks is never mounted; one the table has and this lacks
/// panics when the router is built (and fails `route_tests`).
fn handler(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    let webhook_limit = || DefaultBodyLimit::max(MAX_WEBHOOK_BYTES);
    // The method comes from the table, never from the arm: an arm cannot mount its
    // handler under another method than the one the table (and openapi.yaml) says.
    let m = axum::http::Method::from_bytes(method.as_bytes())
        .ok()
        .and_then(|m| MethodFilter::try_from(m).ok())?;
    Some(match (method, path) {
        ("POST", "/twilio/sms") => on(m, twilio::receive_sms).layer(webhook_limit()),
        ("POST", "/discord/interactions") => on(m, discord::interactions).layer(webhook_limit()),
        ("GET", "/health") => on(m, health::health),
        ("GET", "/ready") => on(m, health::ready),
        ("GET", "/metrics") => on(m, metrics::metrics),
        ("GET", "/ops") => on(m, ops_page::page),
        ("GET", "/ops/console.js") => on(m, console::script),
        ("GET", "/ops/changes") => on(m, console::changes),
        ("GET", "/ops/charts") => on(m, console::charts_page),
        ("GET", "/ops/conversations/{phone}") => on(m, console::conversation_page),
        ("POST", "/ops/holds/{id}/decide") => on(m, holds::decide_hold),
        ("POST", "/ops/verifications") => on(m, ops_page::record_verification),
        ("GET", "/ops/status") => on(m, ops::status),
        ("GET", "/ops/alerts") => on(m, ops::alerts),
        ("GET", "/ops/discord") => on(m, discord::status),
        ("GET", "/ops/scheduled") => on(m, ops::scheduled),
        ("GET", "/ops/heartbeats") => on(m, ops::heartbeats),
        ("GET", "/ops/report") => on(m, ops::report),
        ("GET", "/ops/leads/{phone}/messages") => on(m, ops::messages),
        ("GET", "/ops/leads/{phone}/turns") => on(m, ops::turns),
        ("GET", "/ops/parked") => on(m, parks::list),
        ("POST", "/ops/leads/{phone}/unpark") => on(m, parks::unpark),
        ("GET", "/ops/leads/{phone}/consent") => on(m, consent::show),
        ("POST", "/ops/leads/{phone}/consent") => on(m, consent::act),
        ("GET", "/ops/takeovers") => on(m, takeovers::list),
        ("POST", "/ops/leads/{phone}/takeover") => on(m, takeovers::take),
        ("POST", "/ops/leads/{phone}/release") => on(m, takeovers::release),
        ("POST", "/ops/leads/{phone}/reply") => on(m, takeovers::reply),
        ("GET", "/ops/sla") => on(m, sla::list),
        ("POST", "/ops/leads/{phone}/sla") => on(m, sla::open),
        ("POST", "/ops/leads/{phone}/sla/{kind}/resolve") => on(m, sla::resolve),
        ("POST", "/ops/leads/{phone}/documents") => on(m, documents::arrived),
        ("POST", "/ops/leads/{phone}/documents/review") => on(m, documents::reviewed),
        _ => return None,
    })
}

/// The routes of `listener` that `role` serves, from [`ROUTES`].
pub fn served_routes(listener: Listener, role: Role) -> impl Iterator<Item = &'static RouteSpec> {
    ROUTES
        .iter()
        .filter(move |r| r.listener == listener && (!r.webhook || role.serves_webhook()))
}

fn build(listener: Listener, role: Role) -> Router<AppState> {
    served_routes(listener, role).fold(Router::new(), |router, r| {
        let handler = handler(r.method, r.path).unwrap_or_else(|| {
            panic!(
                "http::ROUTES has {} {} but http::handler does not",
                r.method, r.path
            )
        });
        router.route(r.path, handler)
    })
}

/// The public listener (`PORT`): what the internet must reach and nothing else — Twilio's
/// and Discord's webhooks (web roles only) and health and readiness. `/ops` and `/metrics`
/// are not here (they answer 404): they are on [`ops_router`].
pub fn public_router(state: AppState) -> Router {
    build(Listener::Public, state.role)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The ops listener (`OPS_PORT`), served by every role (Kubernetes probes and Prometheus
/// scrape every container): `/ops`, `/ops/*`, `/metrics`, and health and readiness for the
/// probes. Every POST under `/ops` passes [`ops_guard`] (JSON, same origin) first.
pub fn ops_router(state: AppState) -> Router {
    build(Listener::Ops, state.role)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops_guard::guard_posts,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn every_route_in_the_table_has_a_handler_for_its_method() {
        for r in ROUTES {
            assert!(
                handler(r.method, r.path).is_some(),
                "{} {} has no handler",
                r.method,
                r.path
            );
        }
    }
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
