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

// ----------------------------------------------------------------- in-doubt sends ------ //
// Sends Twilio accepted but has not answered, for the fault suite (`tests/faults`).
// Additive (the outbox branch owns this file and builds its own modes for item 6; at merge
// one set should stay): a router in front of the same state, so `sent`/`sent_to` count
// these sends like any other.

/// A send the fake accepted (recorded, listed) and is answering late or never.
#[derive(Clone, Debug)]
pub struct StalledSend {
    pub sid: String,
    pub to: String,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct StallState {
    /// One entry per send still to stall: how long its answer waits (`None`: forever).
    armed: std::collections::VecDeque<Option<std::time::Duration>>,
    stalled: Vec<StalledSend>,
    /// When each send was created, by sid (Twilio's `date_created`).
    created: HashMap<String, chrono::DateTime<chrono::Utc>>,
}

/// Control of a [`FakeTwilio::start_with_stalls`].
#[derive(Clone, Default)]
pub struct Stalls(Arc<Mutex<StallState>>);

impl Stalls {
    /// The next send is accepted — recorded, listed as `queued` with no `date_sent`, as
    /// Twilio shows a message it has not sent yet — and answered after `answer_after`
    /// (`None`: never; the client gives up or dies first).
    pub fn stall_next(&self, answer_after: Option<std::time::Duration>) {
        self.0.lock().unwrap().armed.push_back(answer_after);
    }

    pub fn stalled(&self) -> Vec<StalledSend> {
        self.0.lock().unwrap().stalled.clone()
    }
}

impl FakeTwilio {
    /// A fake whose sends can be stalled ([`Stalls::stall_next`]) and whose list has
    /// Twilio's dates: `date_created` on every message, `date_sent` on every one but the
    /// stalled (`status: queued`), and the `DateSent`, `DateSent<`, `DateSent>` filters
    /// (a message with no `date_sent` matches none of them, as on Twilio).
    pub async fn start_with_stalls() -> (Self, Stalls) {
        let state = Arc::new(FakeTwilioState::default());
        let stalls = Stalls::default();
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(stalling_messages).get(dated_list),
            )
            .with_state((state.clone(), stalls.clone()));
        let url = serve(router).await;
        (Self { url, state }, stalls)
    }
}

async fn stalling_messages(
    State((state, stalls)): State<(Arc<FakeTwilioState>, Stalls)>,
    path: Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let form = serde_urlencoded_pairs(&body);
    let (status, answer) = twilio_messages(State(state), path, headers, body)
        .await
        .into_response()
        .into_parts();
    let bytes = axum::body::to_bytes(answer, usize::MAX).await.unwrap();
    let Some(sid) = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["sid"].as_str().map(str::to_string))
    else {
        return axum::response::Response::from_parts(status, bytes.into());
    };
    let delay = {
        let mut s = stalls.0.lock().unwrap();
        s.created.insert(sid.clone(), chrono::Utc::now());
        let delay = s.armed.pop_front();
        if delay.is_some() {
            s.stalled.push(StalledSend {
                sid: sid.clone(),
                to: form.get("To").cloned().unwrap_or_default(),
                at: std::time::Instant::now(),
            });
        }
        delay
    };
    match delay {
        Some(Some(after)) => tokio::time::sleep(after).await,
        Some(None) => std::future::pending::<()>().await,
        None => {}
    }
    axum::response::Response::from_parts(status, bytes.into())
}

async fn dated_list(
    State((state, stalls)): State<(Arc<FakeTwilioState>, Stalls)>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let to = query.get("To").cloned().unwrap_or_default();
    let day = |k: &str| {
        query
            .get(k)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (on, after, before) = (day("DateSent"), day("DateSent>"), day("DateSent<"));
    let filtered = on.is_some() || after.is_some() || before.is_some();
    let s = stalls.0.lock().unwrap();
    let messages: Vec<Value> = state
        .sent
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, m)| m.to == to)
        .filter_map(|(i, m)| {
            let sid = format!("SM{:032}", i + 1);
            let created = s
                .created
                .get(&sid)
                .copied()
                .unwrap_or_else(chrono::Utc::now);
            let queued = s.stalled.iter().any(|st| st.sid == sid);
            let sent_day = (!queued).then(|| created.date_naive());
            if filtered {
                let d = sent_day?;
                if on.is_some_and(|x| d != x)
                    || after.is_some_and(|x| d < x)
                    || before.is_some_and(|x| d > x)
                {
                    return None;
                }
            }
            Some(json!({
                "sid": sid, "to": m.to, "from": m.from, "body": m.body,
                "direction": "outbound-api",
                "status": if queued { "queued" } else { "delivered" },
                "date_created": created.to_rfc2822(),
                "date_sent": if queued { Value::Null } else { json!(created.to_rfc2822()) },
            }))
        })
        .collect();
    Json(json!({"messages": messages, "next_page_uri": null}))
}
