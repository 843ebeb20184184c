//! A fake Twilio REST API: `POST …/Messages.json` records each send (and can answer
//! scripted failures first); `GET …/Messages.json` lists what was sent, filtered by `To`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{OUR_NUMBER, serve};

#[derive(Clone, Debug)]
pub struct SentSms {
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub authorization: String,
}

#[derive(Default)]
pub struct FakeTwilioState {
    sent: Mutex<Vec<SentSms>>,
    /// Statuses to answer with before succeeding (e.g. [429, 503]).
    failures: Mutex<Vec<u16>>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    state: Arc<FakeTwilioState>,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let state = Arc::new(FakeTwilioState::default());
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages).get(twilio_list),
            )
            .with_state(state.clone());
        Self {
            url: serve(router).await,
            state,
        }
    }
    pub fn sent(&self) -> Vec<SentSms> {
        self.state.sent.lock().unwrap().clone()
    }
    pub fn sent_to(&self, to: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.to == to)
            .map(|s| s.body)
            .collect()
    }
    /// Pretends a message went out earlier (e.g. just before a crash).
    pub fn record_existing(&self, to: &str, body: &str) {
        self.state.sent.lock().unwrap().push(SentSms {
            to: to.into(),
            from: Some(OUR_NUMBER.into()),
            body: body.into(),
            authorization: String::new(),
        });
    }

    pub fn fail_next_with(&self, statuses: &[u16]) {
        *self.state.failures.lock().unwrap() = statuses.to_vec();
    }
}

async fn twilio_messages(
    State(state): State<Arc<FakeTwilioState>>,
    Path(_sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    {
        let mut failures = state.failures.lock().unwrap();
        if !failures.is_empty() {
            let status = failures.remove(0);
            return (
                StatusCode::from_u16(status).unwrap(),
                Json(
                    json!({"code": if status == 429 { 20429 } else { 21211 }, "message": "fake failure", "status": status}),
                ),
            );
        }
    }
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    let sms = SentSms {
        to: form.get("To").cloned().unwrap_or_default(),
        from: form.get("From").cloned(),
        body: form.get("Body").cloned().unwrap_or_default(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let mut sent = state.sent.lock().unwrap();
    sent.push(sms);
    (
        StatusCode::CREATED,
        Json(json!({"sid": format!("SM{:032}", sent.len()), "status": "queued"})),
    )
}

/// Twilio's Messages list, filtered by `To` (one page).
async fn twilio_list(
    State(state): State<Arc<FakeTwilioState>>,
    Path(_sid): Path<String>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let to = query.get("To").cloned().unwrap_or_default();
    let messages: Vec<Value> = state
        .sent
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.to == to)
        .map(|(i, m)| {
            json!({"sid": format!("SM{:032}", i + 1), "to": m.to, "body": m.body,
                   "direction": "outbound-api", "status": "delivered"})
        })
        .collect();
    Json(json!({"messages": messages, "next_page_uri": null}))
}

fn serde_urlencoded_pairs(body: &str) -> HashMap<String, String> {
    lead_agent::http::twilio::parse_form(body.as_bytes())
        .unwrap()
        .into_iter()
        .collect()
}
