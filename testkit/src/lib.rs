//! The outside world's fakes, on loopback, in one place: Twilio's REST API
//! ([`fake_twilio`]), Anthropic ([`fake_anthropic`], the load-shaped one; and
//! [`fake_providers`], Anthropic, Gemini and OpenAI with scripted answers), Discord
//! ([`fake_discord`]), Asana ([`fake_asana`]), Follow Up Boss ([`fake_fub`]), Google's token endpoint, Gmail and Drive
//! ([`fake_google`]), the building
//! service ([`fake_buildings`]), the operator's dialer ([`fake_dialer`]), an OTLP/HTTP trace
//! receiver that stands for a collector and for LangSmith ([`fake_otlp`]), and a TCP
//! proxy that stages network partitions ([`proxy`]).
//!
//! Used by `tests/api`, the fault suite (`tests/faults`), the binary's unit tests and the
//! load bench (`lead-agent simulate`, the binary's `simulate` feature): the only copy of
//! each fake. Must not: depend on the service (`lead-agent`; what a fake needs of the wire
//! format it writes by hand, so a bug in the service cannot hide in its fake), configure
//! the application, or talk to anything off loopback.

pub mod fake_anthropic;
pub mod fake_asana;
pub mod fake_buildings;
pub mod fake_dialer;
pub mod fake_discord;
pub mod fake_fub;
pub mod fake_google;
pub mod fake_otlp;
pub mod fake_providers;
pub mod fake_twilio;
pub mod proxy;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

/// Twilio's auth token in the fakes' world: webhooks are signed with it.
pub const AUTH_TOKEN: &str = "test-auth-token";
/// The URL Twilio signs webhooks against.
pub const PUBLIC_URL: &str = "https://leads.example.com";
/// Our number (Twilio's `From` for a reply, `To` for an inbound SMS).
pub const OUR_NUMBER: &str = "+13125550000";

/// Serves `router` on 127.0.0.1 on a port of its own; returns its base URL.
pub async fn serve(router: Router) -> String {
    let addr = serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), router)
        .await
        .expect("a loopback port is free");
    format!("http://{addr}")
}

/// Serves `router` on `addr` (a fixed one, for a bench a running service was pointed at)
/// until the process ends; returns the bound address.
pub async fn serve_on(addr: SocketAddr, router: Router) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(bound)
}
