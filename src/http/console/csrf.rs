//! The console's CSRF token: what a browser's POST to `/ops` must carry in `X-CSRF-Token`
//! besides passing the origin and JSON rules of [`crate::http::ops_guard`].
//!
//! Owns: the token and its check. With `OPS_TOKEN` set the token is an HMAC, keyed by the
//! token, of the page session cookie (`ops_page::session_cookie`): it changes with every
//! session, every replica derives the same one, and a page elsewhere can neither read it
//! (the cookie is HttpOnly, the page is same-origin only) nor compute it. Without
//! `OPS_TOKEN` (loopback only) it is an HMAC of a fixed label keyed by a random key of this
//! process. The console pages carry it in `<meta name="csrf-token">`; `/ops/console.js`
//! sends it with every action.
//! Must not: replace authorization (each handler still runs `ops::authorize` or the page
//! session check), or be asked of a client that sends a bearer token (no browser sends one
//! by itself, so it cannot be forged across sites).

use std::sync::OnceLock;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::http::AppState;

/// The request header that carries the token.
pub const HEADER: &str = "x-csrf-token";

fn hmac_hex(key: &[u8], label: &[u8], value: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label);
    mac.update(value);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// This process's key for the loopback-only mode (no `OPS_TOKEN`, no cookie to bind to).
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The token for a request carrying `headers`; `None` when no session exists to bind it to
/// (`OPS_TOKEN` set and no page cookie: a bearer client, which needs none).
pub fn token_for(state: &AppState, headers: &HeaderMap) -> Option<String> {
    const LABEL: &[u8] = b"lead-agent /ops csrf v1 ";
    match state.settings.ops_token.as_ref().map(|t| t.expose()) {
        Some(token) => super::super::ops_page::cookie_value(headers)
            .map(|cookie| hmac_hex(token.as_bytes(), LABEL, cookie.as_bytes())),
        None => Some(hmac_hex(process_key(), LABEL, b"loopback")),
    }
}

/// True when `headers` are a browser's (it sends `Sec-Fetch-Site` on every request, or the
/// request carries the page cookie) and no bearer token: such a POST must carry the token.
pub fn required(headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    !bearer
        && (headers.contains_key("sec-fetch-site")
            || super::super::ops_page::cookie_value(headers).is_some())
}

/// The check: the header present and equal (in constant time) to [`token_for`].
pub fn valid(state: &AppState, headers: &HeaderMap) -> bool {
    let given = headers.get(HEADER).and_then(|v| v.to_str().ok());
    match (given, token_for(state, headers)) {
        (Some(given), Some(expected)) => bool::from(given.as_bytes().ct_eq(expected.as_bytes())),
        _ => false,
    }
}
