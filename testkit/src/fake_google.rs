//! A fake of the three Google endpoints the document intake calls, on one loopback server:
//!
//! - the OAuth 2.0 token endpoint (`POST /token`, the key file's `token_uri`): takes the
//!   `jwt-bearer` grant, verifies the assertion's RS256 signature with the public half of
//!   the key it issued ([`FakeGoogle::service_account_json`]) and its claims (`aud` is this
//!   endpoint, `exp` = `iat` + 3600, `iat` within five minutes of now), and answers
//!   `access_token` + `expires_in`; every exchange is recorded
//!   ([`FakeGoogle::token_exchanges`]: a test sees caching), [`FakeGoogle::fail_token`]
//!   makes it answer an error status;
//! - Gmail v1 (`/gmail/v1/users/me/messages`, `…/{id}?format=full`,
//!   `…/{id}/attachments/{aid}`): the mails a test added ([`FakeGoogle::add_mail`]), newest
//!   first, paged; a fresh `attachmentId` on every read, as Gmail does;
//! - Drive v3 (`GET /drive/v3/files?q=…`, `POST /drive/v3/files`, `POST
//!   /upload/drive/v3/files?uploadType=multipart`): files and folders kept in memory
//!   ([`FakeGoogle::drive_files`]); the search understands the clauses Drive documents for
//!   `name`, `mimeType`, `trashed`, `'id' in parents` and `appProperties has { key=… and
//!   value=… }`, and refuses any other (400), as Drive refuses a malformed query.
//!
//! Every API call must carry a token this fake issued for the API's scope (Gmail: a
//! `gmail.*` scope and a `sub`; Drive: a `drive*` scope), else 401; [`FakeGoogle::fail_drive`]
//! makes Drive answer an error status. [`TestKey`] is an RSA
//! key generated at test time (nothing secret is committed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::serve;

/// An RSA key for a fake service account, made fresh.
pub struct TestKey {
    pair: RsaKeyPair,
}

impl TestKey {
    pub fn generate() -> Self {
        Self {
            pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key"),
        }
    }

    /// The private half as the PKCS#8 PEM a Google key file holds.
    pub fn private_pem(&self) -> String {
        let der = self.pair.as_der().expect("PKCS#8 encoding");
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    /// A key file as Google's console downloads it.
    pub fn service_account_json(&self, client_email: &str, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "lead-agent-test",
            "private_key_id": "test-key-1",
            "private_key": self.private_pem(),
            "client_email": client_email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        })
        .to_string()
    }

    /// True when `jwt`'s signature is this key's (RS256).
    pub fn verifies(&self, jwt: &str) -> bool {
        let Some((input, sig)) = jwt.rsplit_once('.') else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        )
        .verify(input.as_bytes(), &sig)
        .is_ok()
    }
}

/// The claims of one accepted assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenExchange {
    pub iss: String,
    pub sub: Option<String>,
    pub scope: String,
    pub access_token: String,
}

/// A mail in the fake mailbox.
#[derive(Clone, Debug)]
pub struct FakeMail {
    pub from: String,
    pub subject: String,
    pub body: String,
    /// (file name, MIME type, content).
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

/// A file or folder in the fake Drive.
#[derive(Clone, Debug)]
pub struct DriveFile {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    pub parents: Vec<String>,
    pub app_properties: HashMap<String, String>,
    pub content: Vec<u8>,
}

#[derive(Default)]
struct Seen {
    exchanges: Vec<TokenExchange>,
    token_failing: Option<u16>,
    expires_in: u64,
    /// access token → (scope, sub).
    tokens: HashMap<String, (String, Option<String>)>,
    mails: Vec<(String, FakeMail)>,
    /// attachmentId → (message id, attachment index).
    attachment_ids: HashMap<String, (String, usize)>,
    issued: u64,
    files: Vec<DriveFile>,
    gmail_queries: Vec<String>,
    /// While set, Drive's endpoints answer this status.
    drive_failing: Option<u16>,
    /// Drive requests refused so.
    drive_refused: usize,
}

struct Shared {
    key: TestKey,
    token_url: Mutex<String>,
    seen: Mutex<Seen>,
}

#[derive(Clone)]
pub struct FakeGoogle {
    /// The base URL of all three APIs (`GMAIL_API_BASE`, `GDRIVE_API_BASE`).
    pub url: String,
    shared: Arc<Shared>,
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

fn refuse(status: StatusCode, message: &str) -> (StatusCode, String) {
    (
        status,
        json!({"error": {"code": status.as_u16(), "message": message}}).to_string(),
    )
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            key: TestKey::generate(),
            token_url: Mutex::new(String::new()),
            seen: Mutex::new(Seen {
                expires_in: 3599,
                ..Seen::default()
            }),
        });
        let router = Router::new()
            .route("/token", post(token))
            .route("/gmail/v1/users/me/messages", get(list_messages))
            .route("/gmail/v1/users/me/messages/{id}", get(get_message))
            .route(
                "/gmail/v1/users/me/messages/{id}/attachments/{aid}",
                get(get_attachment),
            )
            .route("/drive/v3/files", get(list_files).post(create_file))
            .route("/upload/drive/v3/files", post(upload_file))
            .with_state(shared.clone());
        let url = serve(router).await;
        *shared.token_url.lock().unwrap() = format!("{url}/token");
        Self { url, shared }
    }

    pub fn token_url(&self) -> String {
        self.shared.token_url.lock().unwrap().clone()
    }

    /// A key file for `client_email` whose key this fake's token endpoint accepts.
    pub fn service_account_json(&self, client_email: &str) -> String {
        self.shared
            .key
            .service_account_json(client_email, &self.token_url())
    }

    pub fn token_exchanges(&self) -> Vec<TokenExchange> {
        self.shared.seen.lock().unwrap().exchanges.clone()
    }

    /// While set, the token endpoint answers this status.
    pub fn fail_token(&self, status: Option<u16>) {
        self.shared.seen.lock().unwrap().token_failing = status;
    }

    /// The `expires_in` of the tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        self.shared.seen.lock().unwrap().expires_in = secs;
    }

    /// Adds a mail to the mailbox; returns its id.
    pub fn add_mail(&self, mail: FakeMail) -> String {
        let mut seen = self.shared.seen.lock().unwrap();
        let id = format!("18c{:013x}", seen.mails.len() + 1);
        seen.mails.push((id.clone(), mail));
        id
    }

    /// The `q` of every `messages.list`.
    pub fn gmail_queries(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().gmail_queries.clone()
    }

    /// While set, every Drive request answers this status.
    pub fn fail_drive(&self, status: Option<u16>) {
        self.shared.seen.lock().unwrap().drive_failing = status;
    }

    /// Drive requests refused by [`FakeGoogle::fail_drive`].
    pub fn drive_refused(&self) -> usize {
        self.shared.seen.lock().unwrap().drive_refused
    }

    pub fn drive_files(&self) -> Vec<DriveFile> {
        self.shared.seen.lock().unwrap().files.clone()
    }

    /// The files (not folders) in the folder named `folder` under `parent`.
    pub fn files_in(&self, parent: &str, folder: &str) -> Vec<DriveFile> {
        let files = self.drive_files();
        let Some(folder) = files
            .iter()
            .find(|f| f.name == folder && f.parents.iter().any(|p| p == parent))
        else {
            return Vec::new();
        };
        files
            .iter()
            .filter(|f| f.parents.contains(&folder.id) && f.mime_type != FOLDER)
            .cloned()
            .collect()
    }
}

const FOLDER: &str = "application/vnd.google-apps.folder";

fn claims_of(jwt: &str) -> Option<Value> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

async fn token(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let mut seen = shared.seen.lock().unwrap();
    if let Some(status) = seen.token_failing {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(json!({"error": "unavailable"}))).into_response();
    }
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("grant_type must be the jwt-bearer grant");
    }
    let Some(assertion) = form.get("assertion") else {
        return bad("no assertion");
    };
    if !shared.key.verifies(assertion) {
        return bad("Invalid JWT Signature.");
    }
    let Some(claims) = claims_of(assertion) else {
        return bad("unreadable claims");
    };
    let header: Option<Value> = assertion
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok());
    if header.as_ref().map(|h| h["alg"].clone()) != Some(json!("RS256")) {
        return bad("alg must be RS256");
    }
    let token_url = shared.token_url.lock().unwrap().clone();
    if claims["aud"] != json!(token_url) {
        return bad("aud must be the token endpoint");
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return bad("iat and exp are required");
    };
    if exp - iat != 3600 || (chrono::Utc::now().timestamp() - iat).abs() > 300 {
        return bad(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    let (Some(iss), Some(scope)) = (claims["iss"].as_str(), claims["scope"].as_str()) else {
        return bad("iss and scope are required");
    };
    seen.issued += 1;
    let access_token = format!("ya29.fake-{}", seen.issued);
    let sub = claims["sub"].as_str().map(str::to_string);
    seen.tokens
        .insert(access_token.clone(), (scope.to_string(), sub.clone()));
    seen.exchanges.push(TokenExchange {
        iss: iss.to_string(),
        sub,
        scope: scope.to_string(),
        access_token: access_token.clone(),
    });
    Json(json!({
        "access_token": access_token,
        "expires_in": seen.expires_in,
        "token_type": "Bearer",
    }))
    .into_response()
}

/// The caller's token is one this fake issued for `api` (`gmail` or `drive`).
fn authorized(seen: &mut Seen, headers: &HeaderMap, api: &str) -> Result<(), (StatusCode, String)> {
    if api == "drive"
        && let Some(status) = seen.drive_failing
    {
        seen.drive_refused += 1;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Err(refuse(status, "Drive is failing (fake)"));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match seen.tokens.get(token) {
        Some((scope, sub))
            if scope.starts_with(&format!("https://www.googleapis.com/auth/{api}"))
                && (api != "gmail" || sub.is_some()) =>
        {
            Ok(())
        }
        _ => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "Request had invalid authentication credentials.",
        )),
    }
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "gmail")?;
    seen.gmail_queries
        .push(q.get("q").cloned().unwrap_or_default());
    let page: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100);
    let start: usize = q.get("pageToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let newest_first: Vec<&String> = seen.mails.iter().rev().map(|(id, _)| id).collect();
    let ids: Vec<Value> = newest_first
        .iter()
        .skip(start)
        .take(page)
        .map(|id| json!({"id": id, "threadId": id}))
        .collect();
    let mut answer = json!({"resultSizeEstimate": newest_first.len()});
    if !ids.is_empty() {
        answer["messages"] = json!(ids);
    }
    if start + page < newest_first.len() {
        answer["nextPageToken"] = json!((start + page).to_string());
    }
    Ok(Json(answer))
}

async fn get_message(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "gmail")?;
    let Some((_, mail)) = seen.mails.iter().find(|(m, _)| *m == id).cloned() else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "Requested entity was not found.",
        ));
    };
    let mut parts = vec![json!({
        "partId": "0",
        "mimeType": "text/plain",
        "filename": "",
        "headers": [{"name": "Content-Type", "value": "text/plain; charset=\"UTF-8\""}],
        "body": {"size": mail.body.len(), "data": URL_SAFE_NO_PAD.encode(&mail.body)},
    })];
    for (i, (name, mime, content)) in mail.attachments.iter().enumerate() {
        seen.issued += 1;
        let aid = format!("ANGjdJ{}x{}", seen.issued, i);
        seen.attachment_ids.insert(aid.clone(), (id.clone(), i));
        parts.push(json!({
            "partId": (i + 1).to_string(),
            "mimeType": mime,
            "filename": name,
            "headers": [{"name": "Content-Disposition", "value": format!("attachment; filename=\"{name}\"")}],
            "body": {"size": content.len(), "attachmentId": aid},
        }));
    }
    Ok(Json(json!({
        "id": id,
        "threadId": id,
        "labelIds": ["INBOX"],
        "snippet": mail.body.chars().take(100).collect::<String>(),
        "internalDate": chrono::Utc::now().timestamp_millis().to_string(),
        "payload": {
            "partId": "",
            "mimeType": "multipart/mixed",
            "filename": "",
            "headers": [
                {"name": "From", "value": mail.from},
                {"name": "To", "value": "staff@bluelake.example"},
                {"name": "Subject", "value": mail.subject},
            ],
            "body": {"size": 0},
            "parts": parts,
        }
    })))
}

async fn get_attachment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((id, aid)): Path<(String, String)>,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "gmail")?;
    let Some((message, i)) = seen.attachment_ids.get(&aid).filter(|(m, _)| *m == id) else {
        return Err(refuse(StatusCode::NOT_FOUND, "Invalid attachment id."));
    };
    let content = &seen
        .mails
        .iter()
        .find(|(m, _)| m == message)
        .expect("an issued attachment id names a mail")
        .1
        .attachments[*i]
        .2;
    Ok(Json(
        json!({"size": content.len(), "data": URL_SAFE_NO_PAD.encode(content)}),
    ))
}

/// One clause of a Drive query, or `None` when the fake does not understand it.
fn clause_matches(clause: &str, f: &DriveFile) -> Option<bool> {
    fn literal(s: &str) -> Option<String> {
        let inner = s.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        Some(inner.replace("\\'", "'").replace("\\\\", "\\"))
    }
    let clause = clause.trim();
    if let Some(rest) = clause.strip_prefix("appProperties has {") {
        let inner = rest.strip_suffix('}')?;
        let (k, v) = inner.split_once(" and ")?;
        let key = literal(k.trim().strip_prefix("key=")?)?;
        let value = literal(v.trim().strip_prefix("value=")?)?;
        return Some(f.app_properties.get(&key) == Some(&value));
    }
    if let Some(parent) = clause.strip_suffix(" in parents") {
        return Some(f.parents.contains(&literal(parent)?));
    }
    let (field, value) = clause.split_once(" = ")?;
    match field.trim() {
        "name" => Some(f.name == literal(value)?),
        "mimeType" => Some(f.mime_type == literal(value)?),
        "trashed" if value.trim() == "false" => Some(true),
        _ => None,
    }
}

/// Splits a query at its top-level ` and `s (not those inside `{ }` or quotes).
fn clauses(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut current) = (0, false, String::new());
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
                continue;
            }
            '\'' => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth -= 1,
            _ => {}
        }
        current.push(c);
        if depth == 0 && !quoted && current.ends_with(" and ") {
            out.push(current.trim_end_matches(" and ").to_string());
            current.clear();
        }
    }
    out.push(current);
    out
}

fn view(f: &DriveFile) -> Value {
    json!({"id": f.id, "name": f.name, "mimeType": f.mime_type, "appProperties": f.app_properties})
}

async fn list_files(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "drive")?;
    let query = q.get("q").cloned().unwrap_or_default();
    let mut found = Vec::new();
    for f in &seen.files {
        let mut all = true;
        for c in clauses(&query) {
            match clause_matches(&c, f) {
                Some(m) => all &= m,
                None => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("Invalid Value: q ({c})"),
                    ));
                }
            }
        }
        if all {
            found.push(view(f));
        }
    }
    Ok(Json(json!({"kind": "drive#fileList", "files": found})))
}

fn add_file(
    seen: &mut Seen,
    meta: &Value,
    content: Vec<u8>,
) -> Result<Value, (StatusCode, String)> {
    let Some(name) = meta["name"].as_str() else {
        return Err(refuse(StatusCode::BAD_REQUEST, "name is required"));
    };
    seen.issued += 1;
    let file = DriveFile {
        id: format!("1Drive{}", seen.issued),
        name: name.to_string(),
        mime_type: meta["mimeType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string(),
        parents: meta["parents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        app_properties: meta["appProperties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect(),
        content,
    };
    let answer = json!({"id": file.id});
    seen.files.push(file);
    Ok(answer)
}

async fn create_file(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(meta): Json<Value>,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "drive")?;
    add_file(&mut seen, &meta, Vec::new()).map(Json)
}

/// `multipart/related`: the metadata part (JSON), then the content part.
async fn upload_file(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    let mut seen = shared.seen.lock().unwrap();
    authorized(&mut seen, &headers, "drive")?;
    if q.get("uploadType").map(String::as_str) != Some("multipart") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "uploadType must be multipart",
        ));
    }
    let boundary = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with("multipart/related"))
        .and_then(|v| v.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "multipart/related with a boundary"))?;
    let delimiter = format!("--{boundary}");
    let parts = split_bytes(&body, delimiter.as_bytes());
    // [preamble, metadata, content, "--\r\n"]
    let part = |i: usize| -> Option<&[u8]> {
        let p = parts.get(i)?;
        let start = find(p, b"\r\n\r\n")? + 4;
        let end = p.len().checked_sub(2).filter(|e| *e >= start)?;
        Some(&p[start..end])
    };
    let (Some(meta), Some(content)) = (part(1), part(2)) else {
        return Err(refuse(StatusCode::BAD_REQUEST, "two parts expected"));
    };
    let meta: Value = serde_json::from_slice(meta)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the first part is not JSON"))?;
    add_file(&mut seen, &meta, content.to_vec()).map(Json)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(hay: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = hay;
    while let Some(i) = find(rest, delimiter) {
        out.push(&rest[..i]);
        rest = &rest[i + delimiter.len()..];
    }
    out.push(rest);
    out
}
