//! A fake Discord REST API and interaction signer on loopback: `POST
//! /channels/{id}/messages` with the documented shapes — bot-token auth (401 otherwise),
//! the message limits (400 "Invalid Form Body" past them), nonce deduplication with
//! `enforce_nonce`, `X-RateLimit-*` headers on every answer, and scripted failures (429
//! with `retry_after`, 5xx, an outage, a post that is created but whose answer is lost).
//! Also a channel webhook, `POST /api/webhooks/{id}/{token}` (`?wait=true` answers the
//! message, else 204; a wrong token is 404 Unknown Webhook) and its `GET`, with the same
//! limits and scripted failures: its posts are recorded in the channel `webhook:{id}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use super::serve;

pub const BOT_TOKEN: &str = "test-discord-token";
pub const WEBHOOK_ID: &str = "4242";
pub const WEBHOOK_TOKEN: &str = "test-webhook-token";
/// The channel a webhook's posts are recorded in.
pub const WEBHOOK_CHANNEL: &str = "webhook:4242";

/// A scripted answer for the next request.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// 429 with this `retry_after` (seconds) and `global` flag.
    RateLimited { retry_after: f64, global: bool },
    /// This status, nothing created.
    Status(u16),
    /// The message is created but the answer is a 500 (as if the response was lost).
    CreatedButLost,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub channel: String,
    pub body: Value,
    pub status: u16,
    pub at: Instant,
}

#[derive(Clone, Debug)]
pub struct Created {
    pub channel: String,
    pub body: Value,
    /// A snowflake, as Discord's: milliseconds since 2015-01-01 shifted left by 22, plus a
    /// counter, so `after` and the creation time agree as they do at Discord.
    pub id: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<Request>>,
    created: Mutex<Vec<Created>>,
    nonces: Mutex<HashMap<(String, String), u64>>,
    script: Mutex<VecDeque<Scripted>>,
    /// While set, every request gets this status.
    down: Mutex<Option<u16>>,
}

#[derive(Clone)]
pub struct FakeDiscord {
    pub url: String,
    state: Arc<FakeState>,
}

impl FakeDiscord {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route(
                "/api/v10/channels/{channel}/messages",
                post(create_message).get(list_messages),
            )
            .route(
                "/api/webhooks/{id}/{token}",
                post(execute_webhook).get(get_webhook),
            )
            .with_state(state.clone());
        Self {
            url: format!("{}/api/v10", serve(router).await),
            state,
        }
    }

    /// The variables that point the app's bot at this fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DISCORD_BOT_TOKEN", BOT_TOKEN.to_string()),
            ("DISCORD_API_BASE", self.url.clone()),
            ("DISCORD_RETRY_MAX_SECS", "0.5".to_string()),
        ]
    }

    /// The channel webhook's URL (what `DISCORD_WEBHOOK` holds).
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}",
            self.url.trim_end_matches("/v10")
        )
    }

    /// Messages the channel webhook created, in order.
    pub fn webhook_posts(&self) -> Vec<Value> {
        self.created_in(WEBHOOK_CHANNEL)
    }

    pub fn script(&self, answers: &[Scripted]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(answers.iter().cloned());
    }

    pub fn set_down(&self, status: Option<u16>) {
        *self.state.down.lock().unwrap() = status;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Messages that exist in Discord (after nonce deduplication), in creation order.
    pub fn created(&self) -> Vec<Created> {
        self.state.created.lock().unwrap().clone()
    }

    pub fn created_in(&self, channel: &str) -> Vec<Value> {
        self.created()
            .into_iter()
            .filter(|c| c.channel == channel)
            .map(|c| c.body)
            .collect()
    }

    /// The embed description of each message created in `channel`.
    pub fn texts_in(&self, channel: &str) -> Vec<String> {
        self.created_in(channel)
            .iter()
            .map(|b| {
                b["embeds"][0]["description"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

fn limits_problem(body: &Value) -> Option<String> {
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    if chars(&body["content"]) > 2000 {
        return Some("content".into());
    }
    if body["nonce"]
        .as_str()
        .is_some_and(|n| n.chars().count() > 25)
    {
        return Some("nonce".into());
    }
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        return Some("embeds".into());
    }
    let mut total = 0;
    for e in &embeds {
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        if chars(&e["title"]) > 256
            || chars(&e["description"]) > 4096
            || chars(&e["footer"]["text"]) > 2048
            || fields.len() > 25
        {
            return Some("embed".into());
        }
        total += chars(&e["title"]) + chars(&e["description"]) + chars(&e["footer"]["text"]);
        for f in &fields {
            if chars(&f["name"]) > 256 || chars(&f["value"]) > 1024 {
                return Some("field".into());
            }
            total += chars(&f["name"]) + chars(&f["value"]);
        }
    }
    (total > 6000).then(|| "embeds total".into())
}

fn rate_headers(remaining: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-ratelimit-limit", HeaderValue::from_static("5"));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert("x-ratelimit-reset-after", HeaderValue::from_static("0.05"));
    h.insert("x-ratelimit-bucket", HeaderValue::from_static("fakebucket"));
    h
}

async fn create_message(
    State(state): State<Arc<FakeState>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let answer = answer(&state, &channel, &headers, &body);
    state.requests.lock().unwrap().push(Request {
        channel,
        body,
        status: answer.status().as_u16(),
        at: Instant::now(),
    });
    answer
}

fn answer(state: &FakeState, channel: &str, headers: &HeaderMap, body: &Value) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bot {BOT_TOKEN}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    deliver(state, channel, body)
}

fn unknown_webhook() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"message": "Unknown Webhook", "code": 10015})),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct WebhookQuery {
    #[serde(default)]
    wait: bool,
}

/// Execute Webhook: no auth header, the token in the path is the credential.
async fn execute_webhook(
    State(state): State<Arc<FakeState>>,
    Path((id, token)): Path<(String, String)>,
    Query(query): Query<WebhookQuery>,
    Json(body): Json<Value>,
) -> Response {
    let channel = format!("webhook:{id}");
    let answer = if id != WEBHOOK_ID || token != WEBHOOK_TOKEN {
        unknown_webhook()
    } else {
        let answer = deliver(&state, &channel, &body);
        if answer.status().is_success() && !query.wait {
            StatusCode::NO_CONTENT.into_response()
        } else {
            answer
        }
    };
    state.requests.lock().unwrap().push(Request {
        channel,
        body,
        status: answer.status().as_u16(),
        at: Instant::now(),
    });
    answer
}

/// Get Webhook with Token: whether it exists, without posting.
async fn get_webhook(
    State(state): State<Arc<FakeState>>,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    if id != WEBHOOK_ID || token != WEBHOOK_TOKEN {
        return unknown_webhook();
    }
    if let Some(status) = *state.down.lock().unwrap() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    Json(json!({"id": id, "type": 1, "channel_id": "4243", "name": "alerts"})).into_response()
}

/// The answer to an authenticated post: an outage, the limits, the script, or created.
fn deliver(state: &FakeState, channel: &str, body: &Value) -> Response {
    if let Some(status) = *state.down.lock().unwrap() {
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": "Service Unavailable"})),
        )
            .into_response();
    }
    if let Some(problem) = limits_problem(body) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 50035, "message": format!("Invalid Form Body ({problem})")})),
        )
            .into_response();
    }
    let scripted = state.script.lock().unwrap().pop_front();
    match scripted {
        Some(Scripted::RateLimited {
            retry_after,
            global,
        }) => {
            let mut h = rate_headers(0);
            h.insert("retry-after", HeaderValue::from(retry_after.ceil() as u64));
            h.insert(
                "x-ratelimit-scope",
                HeaderValue::from_static(if global { "global" } else { "user" }),
            );
            if global {
                h.insert("x-ratelimit-global", HeaderValue::from_static("true"));
            }
            return (
                StatusCode::TOO_MANY_REQUESTS,
                h,
                Json(json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": global})),
            )
                .into_response();
        }
        Some(Scripted::Status(status)) => {
            return (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"message": "scripted failure"})),
            )
                .into_response();
        }
        Some(Scripted::CreatedButLost) => {
            create(state, channel, body);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "response lost"})),
            )
                .into_response();
        }
        None => {}
    }
    let id = create(state, channel, body);
    (
        StatusCode::OK,
        rate_headers(4),
        Json(json!({"id": id.to_string(), "channel_id": channel, "embeds": body["embeds"], "nonce": body["nonce"]})),
    )
        .into_response()
}

/// Creates the message unless `enforce_nonce` names a nonce already used in this channel;
/// returns its snowflake.
fn create(state: &FakeState, channel: &str, body: &Value) -> u64 {
    let nonce = body["nonce"].as_str().map(str::to_string);
    let enforce = body["enforce_nonce"].as_bool().unwrap_or(false);
    let mut nonces = state.nonces.lock().unwrap();
    if let (Some(n), true) = (&nonce, enforce)
        && let Some(existing) = nonces.get(&(channel.to_string(), n.clone()))
    {
        return *existing;
    }
    let mut created = state.created.lock().unwrap();
    let created_at = chrono::Utc::now();
    let id = (((created_at.timestamp_millis() - DISCORD_EPOCH_MS) as u64) << 22)
        + (created.len() as u64 & 0x3F_FFFF);
    created.push(Created {
        channel: channel.to_string(),
        body: body.clone(),
        id,
        created_at,
    });
    if let Some(n) = nonce {
        nonces.insert((channel.to_string(), n), id);
    }
    id
}

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

#[derive(serde::Deserialize)]
struct ListQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// Get Channel Messages: bot-token auth, `after` (the messages created after that
/// snowflake, the oldest of them first taken) and `limit` (1–100, default 50); the page is
/// newest first, as Discord answers it. A message as Discord returns it: id, channel,
/// content, embeds, components, timestamp.
async fn list_messages(
    State(state): State<Arc<FakeState>>,
    Path(channel): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bot {BOT_TOKEN}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401: Unauthorized", "code": 0})),
        )
            .into_response();
    }
    if let Some(status) = *state.down.lock().unwrap() {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 50035, "message": "Invalid Form Body (limit)"})),
        )
            .into_response();
    }
    let created = state.created.lock().unwrap();
    let mut page: Vec<&Created> = created
        .iter()
        .filter(|c| c.channel == channel && query.after.is_none_or(|a| c.id > a))
        .collect();
    page.sort_by_key(|c| c.id);
    if query.after.is_some() {
        page.truncate(limit);
    } else {
        let skip = page.len().saturating_sub(limit);
        page.drain(..skip);
    }
    page.reverse();
    let page: Vec<Value> = page
        .into_iter()
        .map(|c| {
            json!({"id": c.id.to_string(), "channel_id": c.channel,
                   "content": c.body["content"].as_str().unwrap_or(""),
                   "embeds": c.body["embeds"].clone(),
                   "components": c.body["components"].clone(),
                   "timestamp": c.created_at.to_rfc3339()})
        })
        .collect();
    Json(Value::Array(page)).into_response()
}

/// Signs interactions as Discord does: Ed25519 over timestamp + body.
pub struct InteractionSigner {
    key: SigningKey,
}

impl InteractionSigner {
    pub fn generate() -> Self {
        Self {
            key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()),
        }
    }

    pub fn public_key_hex(&self) -> String {
        hex(&self.key.verifying_key().to_bytes())
    }

    /// (signature hex, timestamp) for `body` signed now.
    pub fn sign(&self, body: &str) -> (String, String) {
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let sig = self.key.sign(format!("{timestamp}{body}").as_bytes());
        (hex(&sig.to_bytes()), timestamp)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
