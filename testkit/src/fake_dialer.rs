//! A fake of the operator's dialer (the hand-off contract in README, "Dialer hand-off"):
//! `POST /handoff` records (authorization header, JSON body) and answers the scripted
//! statuses first, then 202 `{"accepted": true}`.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use super::serve;

#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(String, Value)>>,
    answers: Mutex<Vec<u16>>,
}

#[derive(Clone)]
pub struct FakeDialer {
    /// The hand-off URL, as `HOMEEASY_DIALER_URL` takes it.
    pub url: String,
    seen: Arc<Seen>,
}

impl FakeDialer {
    pub async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/handoff", post(handoff))
            .with_state(seen.clone());
        Self {
            url: format!("{}/handoff", serve(app).await),
            seen,
        }
    }

    /// (authorization header, JSON body) of each hand-off, in order, failed ones included.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.seen.calls.lock().unwrap().clone()
    }

    /// The next hand-offs are answered with these statuses, in order.
    pub fn answer_next(&self, statuses: Vec<u16>) {
        self.seen.answers.lock().unwrap().extend(statuses);
    }
}

async fn handoff(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.calls.lock().unwrap().push((auth, json));
    let scripted = {
        let mut a = seen.answers.lock().unwrap();
        (!a.is_empty()).then(|| a.remove(0))
    };
    match scripted {
        Some(status) => (StatusCode::from_u16(status).unwrap(), String::new()),
        None => (StatusCode::ACCEPTED, r#"{"accepted": true}"#.to_string()),
    }
}
