//! Where the watchdog posts: a Discord channel webhook on loopback with Discord's shapes —
//! `POST /api/webhooks/{id}/{token}` (204, or the message with `?wait=true`) and its `GET`
//! (the webhook, which the watchdog reads to know it can alert) — recording each post and
//! when it arrived.
//!
//! Stands in for the webhook route the shared fake Discord is getting on branch `watch`;
//! once that is merged this file should go and the cluster point `DISCORD_WEBHOOK` there.
//! Must not: judge the posts (the verdict does).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct HookPost {
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone)]
pub struct WatchHook {
    /// The webhook URL to give the watchdog (`DISCORD_WEBHOOK`).
    pub url: String,
    posts: Arc<Mutex<Vec<HookPost>>>,
}

impl WatchHook {
    pub async fn start() -> Self {
        let posts: Arc<Mutex<Vec<HookPost>>> = Arc::default();
        let router = Router::new()
            .route("/api/webhooks/{id}/{token}", post(execute).get(describe))
            .with_state(posts.clone());
        let base = crate::support::serve(router).await;
        Self {
            url: format!("{base}/api/webhooks/7001/faults-token"),
            posts,
        }
    }

    pub fn posts(&self) -> Vec<HookPost> {
        self.posts.lock().unwrap().clone()
    }
}

async fn execute(
    State(posts): State<Arc<Mutex<Vec<HookPost>>>>,
    Path((_id, _token)): Path<(String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    posts.lock().unwrap().push(HookPost {
        body: body.clone(),
        at: Instant::now(),
    });
    if query.get("wait").is_some_and(|w| w == "true") {
        Json(json!({"id": "1", "content": body["content"], "embeds": body["embeds"]}))
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn describe(Path((id, token)): Path<(String, String)>) -> Json<Value> {
    Json(json!({"id": id, "type": 1, "token": token, "name": "faults-watch"}))
}
