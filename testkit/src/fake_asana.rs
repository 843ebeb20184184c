//! A fake Asana under `/api/1.0`: `POST /tasks/{gid}/stories` records (task, authorization
//! header, body) and answers the scripted statuses first, then 201 with a story;
//! `POST /tasks` records the new task (its gid, authorization header, body) and answers the
//! scripted statuses first, then 201 with `{"data":{"gid",…}}` (gids `1300000000001`, …).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use super::serve;

#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(String, String, Value)>>,
    answers: Mutex<Vec<(u16, String)>>,
    tasks: Mutex<Vec<FakeTask>>,
}

/// One task created at the fake.
#[derive(Clone, Debug)]
pub struct FakeTask {
    pub gid: String,
    pub auth: String,
    pub body: Value,
}

impl FakeTask {
    pub fn name(&self) -> &str {
        self.body["data"]["name"].as_str().unwrap_or("")
    }
}

#[derive(Clone)]
pub struct FakeAsana {
    /// The API root, as `ASANA_API_BASE` takes it: `http://127.0.0.1:…/api/1.0`.
    pub url: String,
    seen: Arc<Seen>,
}

impl FakeAsana {
    pub async fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/api/1.0/tasks/{task}/stories", post(story))
            .route("/api/1.0/tasks", post(create_task))
            .with_state(seen.clone());
        Self {
            url: format!("{}/api/1.0", serve(app).await),
            seen,
        }
    }

    /// (task gid, authorization header, comment text) of each story posted.
    pub fn stories(&self) -> Vec<(String, String, String)> {
        self.requests()
            .into_iter()
            .map(|(task, auth, body)| {
                let text = body["data"]["text"].as_str().unwrap_or("").to_string();
                (task, auth, text)
            })
            .collect()
    }

    /// (task gid, authorization header, JSON body) of each request.
    pub fn requests(&self) -> Vec<(String, String, Value)> {
        self.seen.calls.lock().unwrap().clone()
    }

    /// Tasks created (`POST /tasks`), in order.
    pub fn tasks(&self) -> Vec<FakeTask> {
        self.seen.tasks.lock().unwrap().clone()
    }

    /// The next requests are answered with these (status, body), in order.
    pub fn answer_next(&self, answers: Vec<(u16, String)>) {
        self.seen.answers.lock().unwrap().extend(answers);
    }
}

fn scripted(seen: &Seen) -> Option<(u16, String)> {
    let mut a = seen.answers.lock().unwrap();
    (!a.is_empty()).then(|| a.remove(0))
}

async fn create_task(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    if let Some((status, body)) = scripted(&seen) {
        return (StatusCode::from_u16(status).unwrap(), body);
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut tasks = seen.tasks.lock().unwrap();
    let gid = format!("{}", 1_300_000_000_001u64 + tasks.len() as u64);
    let name = json["data"]["name"].clone();
    tasks.push(FakeTask {
        gid: gid.clone(),
        auth,
        body: json,
    });
    (
        StatusCode::CREATED,
        json!({"data": {"gid": gid, "resource_type": "task", "name": name}}).to_string(),
    )
}

async fn story(
    State(seen): State<Arc<Seen>>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.calls.lock().unwrap().push((task, auth, json));
    let scripted = {
        let mut a = seen.answers.lock().unwrap();
        (!a.is_empty()).then(|| a.remove(0))
    };
    match scripted {
        Some((status, body)) => (StatusCode::from_u16(status).unwrap(), body),
        None => (
            StatusCode::CREATED,
            json!({"data": {"gid": "99", "resource_type": "story"}}).to_string(),
        ),
    }
}
