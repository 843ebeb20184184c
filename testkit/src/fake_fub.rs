//! A fake Follow Up Boss: `GET /v1/people?phone=…` finds the one person it knows (id 42) by
//! phone, `POST /v1/notes` answers 201; both record (kind, authorization header, query or
//! body) with kind `people` or `note`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::serve;

struct Seen {
    known_phone: String,
    calls: Mutex<Vec<(String, String, Value)>>,
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
        });
        let app = Router::new()
            .route("/v1/people", get(people))
            .route("/v1/notes", post(note))
            .with_state(seen.clone());
        Self {
            url: serve(app).await,
            seen,
        }
    }

    /// (kind, authorization header, query or body) of each request, in order.
    pub fn requests(&self) -> Vec<(String, String, Value)> {
        self.seen.calls.lock().unwrap().clone()
    }
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn people(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    let found = q.get("phone") == Some(&seen.known_phone);
    seen.calls
        .lock()
        .unwrap()
        .push(("people".into(), authorization(&headers), json!(q)));
    let people = if found {
        json!([{"id": 42}])
    } else {
        json!([])
    };
    Json(json!({"people": people}))
}

async fn note(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    seen.calls
        .lock()
        .unwrap()
        .push(("note".into(), authorization(&headers), body));
    (StatusCode::CREATED, Json(json!({"id": 7})))
}
