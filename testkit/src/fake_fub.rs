//! A fake Follow Up Boss: `GET /v1/people?phone=…` finds the one person it knows (id 42,
//! named [`PERSON_NAME`]) by phone, `POST /v1/notes` answers 201, `POST /v1/textMessages` (the text log) answers 201;
//! the first two record (kind, authorization header, query or body) with kind `people` or
//! `note`, the text log records each text with its registered-system headers
//! ([`FakeFub::text_messages`]). [`FakeFub::fail_texts`] makes the text log (and the people
//! search) answer an error status until told otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::serve;

/// The name of the one person the fake knows.
pub const PERSON_NAME: &str = "Dana Reyes";

/// One `POST /v1/textMessages` the fake accepted.
#[derive(Clone, Debug)]
pub struct LoggedText {
    pub authorization: String,
    /// `X-System`.
    pub system: String,
    /// `X-System-Key`.
    pub system_key: String,
    pub body: Value,
}

struct Seen {
    known_phone: String,
    calls: Mutex<Vec<(String, String, Value)>>,
    texts: Mutex<Vec<LoggedText>>,
    /// Answered instead of success while set.
    failing: Mutex<Option<u16>>,
    /// Refused requests, counted.
    refused: Mutex<usize>,
}

#[derive(Clone)]
pub struct FakeFub {
    /// The API root, as `FUB_API` takes it.
    pub url: String,
    seen: Arc<Seen>,
}

impl FakeFub {
    /// A Follow Up Boss that knows one person, with phone `known_phone`.
    pub async fn start(known_phone: &str) -> Self {
        let seen = Arc::new(Seen {
            known_phone: known_phone.to_string(),
            calls: Mutex::new(Vec::new()),
            texts: Mutex::new(Vec::new()),
            failing: Mutex::new(None),
            refused: Mutex::new(0),
        });
        let app = Router::new()
            .route("/v1/people", get(people))
            .route("/v1/notes", post(note))
            .route("/v1/textMessages", post(text_message))
            .with_state(seen.clone());
        Self {
            url: serve(app).await,
            seen,
        }
    }

    /// (kind, authorization header, query or body) of each people search and note, in order.
    pub fn requests(&self) -> Vec<(String, String, Value)> {
        self.seen.calls.lock().unwrap().clone()
    }

    /// Every text the text log accepted, in order.
    pub fn text_messages(&self) -> Vec<LoggedText> {
        self.seen.texts.lock().unwrap().clone()
    }

    /// `Some(status)`: the people search and the text log answer `status` (and record
    /// nothing) until `fail_texts(None)`.
    pub fn fail_texts(&self, status: Option<u16>) {
        *self.seen.failing.lock().unwrap() = status;
    }

    /// Requests refused while failing.
    pub fn refused(&self) -> usize {
        *self.seen.refused.lock().unwrap()
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

fn failing(seen: &Seen) -> Option<StatusCode> {
    let status = (*seen.failing.lock().unwrap())?;
    *seen.refused.lock().unwrap() += 1;
    Some(StatusCode::from_u16(status).unwrap())
}

async fn people(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    if let Some(status) = failing(&seen) {
        return (status, Json(json!({"errorMessage": "unavailable"})));
    }
    let found = q.get("phone") == Some(&seen.known_phone);
    seen.calls
        .lock()
        .unwrap()
        .push(("people".into(), header(&headers, "authorization"), json!(q)));
    let people = if found {
        json!([{"id": 42, "name": PERSON_NAME}])
    } else {
        json!([])
    };
    (StatusCode::OK, Json(json!({"people": people})))
}

async fn note(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    seen.calls
        .lock()
        .unwrap()
        .push(("note".into(), header(&headers, "authorization"), body));
    (StatusCode::CREATED, Json(json!({"id": 7})))
}

async fn text_message(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if let Some(status) = failing(&seen) {
        return (status, Json(json!({"errorMessage": "unavailable"})));
    }
    let mut texts = seen.texts.lock().unwrap();
    texts.push(LoggedText {
        authorization: header(&headers, "authorization"),
        system: header(&headers, "x-system"),
        system_key: header(&headers, "x-system-key"),
        body: body.clone(),
    });
    let id = texts.len();
    (
        StatusCode::CREATED,
        Json(json!({
            "id": id, "personId": body["personId"], "message": body["message"],
            "isIncoming": body["isIncoming"], "toNumber": body["toNumber"],
            "fromNumber": body["fromNumber"]
        })),
    )
}
