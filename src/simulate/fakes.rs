//! The simulator's stand-ins for the outside world, served on loopback: a fake Twilio REST
//! API that counts sends per lead (lost and duplicated replies are read from it), a fake
//! Anthropic Messages endpoint with configurable latency and jitter that records the most
//! calls it saw at once, and a trivial webhook endpoint that measures the load generator's
//! own ceiling.
//!
//! Must not: keep per-request data beyond what the report needs (one timestamp per send),
//! so the simulator's own memory does not grow with the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::http::twilio::EMPTY_TWIML;

/// Serves `router` on `addr` until the process ends; returns the bound address.
async fn serve(addr: SocketAddr, router: Router) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(bound)
}

/// What the fake Twilio saw: each send's lead and arrival time, in order.
#[derive(Default)]
pub struct TwilioLog {
    sends: Mutex<Vec<(String, Instant, String)>>,
    total: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    log: Arc<TwilioLog>,
}

impl FakeTwilio {
    pub async fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let log = Arc::new(TwilioLog::default());
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(send).get(list),
            )
            .with_state(log.clone());
        let bound = serve(addr, router).await?;
        Ok(Self {
            url: format!("http://{bound}"),
            log,
        })
    }

    /// Sends so far (cheap: read by the progress bar).
    pub fn total(&self) -> usize {
        self.log.total.load(Ordering::Relaxed)
    }

    /// Every send so far: (lead, when).
    pub fn sends(&self) -> Vec<(String, Instant)> {
        self.log
            .sends
            .lock()
            .expect("fake Twilio log")
            .iter()
            .map(|(to, at, _)| (to.clone(), *at))
            .collect()
    }
}

async fn send(
    State(log): State<Arc<TwilioLog>>,
    Path(_sid): Path<String>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let at = Instant::now();
    let mut to = String::new();
    let mut text = String::new();
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "To" => to = v.into_owned(),
            "Body" => text = v.into_owned(),
            _ => {}
        }
    }
    if to.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 21604, "message": "A 'To' phone number is required."})),
        );
    }
    let n = {
        let mut sends = log.sends.lock().expect("fake Twilio log");
        sends.push((to.clone(), at, text));
        sends.len()
    };
    log.total.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(json!({"sid": format!("SM{n:032}"), "to": to, "status": "queued"})),
    )
}

/// Twilio's Messages list filtered by `To`, one page: what the outbox sweep asks when a
/// send was interrupted.
async fn list(
    State(log): State<Arc<TwilioLog>>,
    Path(_sid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let to = query.get("To").cloned().unwrap_or_default();
    let messages: Vec<Value> = log
        .sends
        .lock()
        .expect("fake Twilio log")
        .iter()
        .enumerate()
        .filter(|(_, (t, _, _))| *t == to)
        .map(|(i, (t, _, body))| {
            json!({"sid": format!("SM{:032}", i + 1), "to": t, "body": body,
                   "direction": "outbound-api", "status": "delivered"})
        })
        .collect();
    Json(json!({"messages": messages, "next_page_uri": null}))
}

#[derive(Default)]
struct ModelState {
    latency_ms: u64,
    jitter_ms: u64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    calls: AtomicU64,
    /// Sum over calls of request received → answer built, in microseconds.
    busy_micros: AtomicU64,
}

/// A fake Anthropic Messages API: answers every call after `latency ± jitter` (uniform).
#[derive(Clone)]
pub struct FakeModel {
    pub url: String,
    state: Arc<ModelState>,
}

struct InFlight(Arc<ModelState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeModel {
    pub async fn start(
        addr: SocketAddr,
        latency: Duration,
        jitter: Duration,
    ) -> anyhow::Result<Self> {
        let state = Arc::new(ModelState {
            latency_ms: latency.as_millis() as u64,
            jitter_ms: jitter.as_millis() as u64,
            ..ModelState::default()
        });
        let router = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(state.clone());
        let bound = serve(addr, router).await?;
        Ok(Self {
            url: format!("http://{bound}"),
            state,
        })
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The mean time a call actually took here: on a loaded machine the sleep overshoots L,
    /// and the drain time can only be judged against the latency the model really had.
    pub fn mean_call_ms(&self) -> Option<f64> {
        let calls = self.calls();
        (calls > 0)
            .then(|| self.state.busy_micros.load(Ordering::SeqCst) as f64 / calls as f64 / 1000.0)
    }
}

async fn messages(
    State(state): State<Arc<ModelState>>,
    Json(request): Json<Value>,
) -> impl IntoResponse {
    let started = Instant::now();
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    state.calls.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(state.clone());
    let delay = jittered(state.latency_ms, state.jitter_ms);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    // A short, fixed-size answer: the reply's size must not depend on the history.
    let gist: String = last.chars().take(40).collect();
    state
        .busy_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
    Json(json!({
        "id": "msg_simulated",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": [{"type": "text", "text": format!("Thanks! About \"{gist}\": yes, it is available.")}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 100, "output_tokens": 12}
    }))
}

/// `latency` plus a uniform offset in `[-jitter, +jitter]`, never below zero: the mean
/// stays `latency`, so the ideal drain time N·L/C still holds on average.
fn jittered(latency_ms: u64, jitter_ms: u64) -> Duration {
    if jitter_ms == 0 {
        return Duration::from_millis(latency_ms);
    }
    let offset = rand::rng().random_range(-(jitter_ms as i64)..=(jitter_ms as i64));
    Duration::from_millis((latency_ms as i64 + offset).max(0) as u64)
}

/// A webhook endpoint that does nothing: the same requests against it show what the load
/// generator (and loopback HTTP) can do by itself.
pub async fn start_trivial_endpoint() -> anyhow::Result<String> {
    let router = Router::new().route(
        "/twilio/sms",
        post(|| async { ([(header::CONTENT_TYPE, "text/xml")], EMPTY_TWIML) }),
    );
    let bound = serve(SocketAddr::from(([127, 0, 0, 1], 0)), router).await?;
    Ok(format!("http://{bound}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds_and_never_goes_negative() {
        for _ in 0..1000 {
            let d = jittered(100, 30).as_millis();
            assert!((70..=130).contains(&d), "{d}");
            let d = jittered(5, 50).as_millis();
            assert!(d <= 55, "{d}");
        }
        assert_eq!(jittered(100, 0), Duration::from_millis(100));
    }
}
