//! A fake Twilio REST API on loopback: `POST …/Messages.json` records each send, and
//! `GET …/Messages.json` lists what it holds the way Twilio does — newest first, paged,
//! filtered by `To`/`From`/`DateSent`, each entry with `status`, `direction`,
//! `date_created` and `date_sent` (RFC 2822, `null` until the message is sent).
//!
//! Default behaviour: a send is answered 201 at once and listed as `delivered`; a send
//! without `To` is refused 400 (Twilio's 21604).
//!
//! The load bench (`lead-agent simulate`) reads the same fake cheaply:
//! [`FakeTwilio::total`] (a counter) and [`FakeTwilio::sends_at`] (lead and arrival instant
//! of each send); [`FakeTwilio::start_on`] binds it to a fixed address.
//!
//! Scripted modes, for the in-doubt tests (`tests/api/outbox.rs`) and the fault suite:
//!
//! - [`FakeTwilio::fail_next_with`]`(&[429, 503])`: the next sends are answered with these
//!   statuses, in order, and **not** recorded (Twilio never processed them).
//! - [`FakeTwilio::hang_next_sends`]`(n)` / [`FakeTwilio::hang_sends_to`]`(to)`: the send is
//!   **accepted** — recorded, listed as `queued` with `date_sent: null`, as Twilio lists a
//!   message waiting behind others — but its HTTP answer is withheld until
//!   [`FakeTwilio::release_held_sends`] (forever if never called). The service's client
//!   times out (`TWILIO_TIMEOUT_SECS`) and the reply ends `in_doubt`; or, if its process is
//!   killed meanwhile, `sending`, flagged in doubt by the sweep. While a send is withheld
//!   [`FakeTwilio::sends_in_flight`] counts it: wait for it to reach 1 and then `kill -9`
//!   the worker to kill it "while its send is in flight".
//! - [`FakeTwilio::lose_next_sends`]`(n)`: the request is swallowed — not recorded, never
//!   answered (counted in `sends_in_flight` while the client waits). The send ends in doubt
//!   though Twilio never got it: the reply must be sent again, exactly once.
//! - [`FakeTwilio::answer_next_sends_after`]`(n, delay)`: accepted the same way, answered
//!   201 after `delay` (set it past the client's timeout: the service has given up by then
//!   and the late answer goes nowhere).
//! - [`FakeTwilio::set_status`]`(to, status)`: moves every message to `to` to `status`
//!   (`sent`/`delivered`/`undelivered`/`read` get a `date_sent`, the others lose it).
//! - [`FakeTwilio::rewrite_listed_quotes`]`(true)`: the list shows bodies as smart encoding
//!   stores them (curly quotes straight, en/em dashes `-`, `…` `...`); [`FakeTwilio::sent`]
//!   still returns what was posted.
//! - [`FakeTwilio::fail_list_page`]`(Some(page))`: requests for that page of the list
//!   (0 = the first, so every list request) answer 500; `None` heals it. With
//!   [`FakeTwilio::cap_page_size`] a short history spans several pages.
//! - [`FakeTwilio::record_existing`] / [`FakeTwilio::record_existing_with`]: messages
//!   Twilio has that the service under test did not send (before a crash, or someone
//!   else's text to the same number).
//! - [`FakeTwilio::list_requests`]: how many list requests arrived (the checks made).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{OUR_NUMBER, serve_on};

/// One message the fake holds, as posted.
#[derive(Clone, Debug)]
pub struct SentSms {
    pub sid: String,
    pub to: String,
    pub from: Option<String>,
    pub body: String,
    pub authorization: String,
    /// `delivered` when answered at once, `queued` when accepted with its answer withheld.
    pub status: String,
    pub date_created: DateTime<Utc>,
    pub date_sent: Option<DateTime<Utc>>,
    /// When the fake took it (the bench's reply times).
    pub at: Instant,
}

/// How a send is answered when it is not answered at once.
#[derive(Clone, Copy, Debug)]
enum Withheld {
    /// Accepted (recorded `queued`); answered by `release_held_sends`.
    UntilReleased,
    /// Accepted; answered after the delay (or on release, if sooner).
    After(Duration),
    /// Swallowed: never recorded, never answered.
    Lost,
}

#[derive(Default)]
struct Inner {
    sent: Vec<SentSms>,
    /// Statuses to answer with before succeeding (e.g. [429, 503]).
    failures: Vec<u16>,
    next_withheld: VecDeque<Withheld>,
    withheld_to: HashMap<String, Withheld>,
    rewrite_quotes: bool,
    failing_page: Option<usize>,
    page_size_cap: Option<usize>,
}

struct FakeTwilioState {
    inner: Mutex<Inner>,
    in_flight: AtomicUsize,
    list_requests: AtomicUsize,
    /// Sends accepted so far: read without the lock (the bench's progress bar).
    total: AtomicUsize,
    /// Bumped by `release_held_sends`: every withheld answer waiting on it goes out.
    release: tokio::sync::watch::Sender<u64>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    state: Arc<FakeTwilioState>,
}

impl FakeTwilio {
    /// On a loopback port of its own.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("a loopback port is free")
    }

    /// On `addr` (fixed, for a service started elsewhere and pointed at it).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(FakeTwilioState {
            inner: Mutex::new(Inner::default()),
            in_flight: AtomicUsize::new(0),
            list_requests: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            release: tokio::sync::watch::channel(0).0,
        });
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages).get(twilio_list),
            )
            .with_state(state.clone());
        let bound = serve_on(addr, router).await?;
        Ok(Self {
            url: format!("http://{bound}"),
            state,
        })
    }

    /// Sends accepted so far (recorded ones not counted); cheap, no lock.
    pub fn total(&self) -> usize {
        self.state.total.load(Ordering::Relaxed)
    }

    /// (to, when it arrived) of every message the fake holds, oldest first.
    pub fn sends_at(&self) -> Vec<(String, Instant)> {
        self.inner()
            .sent
            .iter()
            .map(|s| (s.to.clone(), s.at))
            .collect()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.inner.lock().unwrap()
    }

    /// Every message the fake holds (accepted sends and recorded ones), oldest first.
    pub fn sent(&self) -> Vec<SentSms> {
        self.inner().sent.clone()
    }

    /// The bodies Twilio holds for `to`, as posted, oldest first: what the lead got.
    pub fn sent_to(&self, to: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|s| s.to == to)
            .map(|s| s.body)
            .collect()
    }

    /// Pretends a message went out earlier (e.g. just before a crash): `delivered`, now.
    pub fn record_existing(&self, to: &str, body: &str) -> String {
        self.record_existing_with(to, body, "delivered")
    }

    /// Like [`FakeTwilio::record_existing`], in `status`; returns its sid.
    pub fn record_existing_with(&self, to: &str, body: &str, status: &str) -> String {
        let now = Utc::now();
        let mut inner = self.inner();
        let sid = sid_for(inner.sent.len());
        inner.sent.push(SentSms {
            sid: sid.clone(),
            to: to.into(),
            from: Some(OUR_NUMBER.into()),
            body: body.into(),
            authorization: String::new(),
            status: status.into(),
            date_created: now,
            date_sent: has_date_sent(status).then_some(now),
            at: Instant::now(),
        });
        sid
    }

    pub fn fail_next_with(&self, statuses: &[u16]) {
        self.inner().failures = statuses.to_vec();
    }

    /// The next `n` sends (to any number) are accepted, listed `queued` with no
    /// `date_sent`, and never answered until [`FakeTwilio::release_held_sends`].
    pub fn hang_next_sends(&self, n: usize) {
        let mut inner = self.inner();
        inner
            .next_withheld
            .extend(std::iter::repeat_n(Withheld::UntilReleased, n));
    }

    /// Every send to `to` from now on is accepted and never answered (as
    /// [`FakeTwilio::hang_next_sends`]); [`FakeTwilio::answer_sends_to`] ends it.
    pub fn hang_sends_to(&self, to: &str) {
        self.inner()
            .withheld_to
            .insert(to.to_string(), Withheld::UntilReleased);
    }

    /// Sends to `to` are answered at once again (withheld ones stay withheld).
    pub fn answer_sends_to(&self, to: &str) {
        self.inner().withheld_to.remove(to);
    }

    /// The next `n` sends reach the fake and are swallowed: not recorded, never answered
    /// (a proxy that lost the request). The service's send ends in doubt though Twilio
    /// never got it — the case that must be sent again, once.
    pub fn lose_next_sends(&self, n: usize) {
        let mut inner = self.inner();
        inner
            .next_withheld
            .extend(std::iter::repeat_n(Withheld::Lost, n));
    }

    /// The next `n` sends are accepted (listed `queued`, no `date_sent`) and answered 201
    /// only after `delay`.
    pub fn answer_next_sends_after(&self, n: usize, delay: Duration) {
        let mut inner = self.inner();
        inner
            .next_withheld
            .extend(std::iter::repeat_n(Withheld::After(delay), n));
    }

    /// Sends accepted whose answer is still withheld and whose client is still waiting.
    pub fn sends_in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Answers every withheld send now (201) — to clients still waiting, if any.
    pub fn release_held_sends(&self) {
        self.state.release.send_modify(|g| *g += 1);
    }

    /// Moves every message to `to` to `status`; `date_sent` follows (set when the status
    /// means it was sent, `null` otherwise).
    pub fn set_status(&self, to: &str, status: &str) {
        let now = Utc::now();
        for m in self.inner().sent.iter_mut().filter(|m| m.to == to) {
            m.status = status.to_string();
            m.date_sent = if has_date_sent(status) {
                Some(m.date_sent.unwrap_or(now))
            } else {
                None
            };
        }
    }

    /// Lists bodies as smart encoding stores them (quotes, dashes, ellipsis replaced).
    pub fn rewrite_listed_quotes(&self, on: bool) {
        self.inner().rewrite_quotes = on;
    }

    /// Requests for list page `page` (0-based) answer 500 until called with `None`.
    pub fn fail_list_page(&self, page: Option<usize>) {
        self.inner().failing_page = page;
    }

    /// At most `n` messages per list page, whatever `PageSize` asks for.
    pub fn cap_page_size(&self, n: usize) {
        self.inner().page_size_cap = Some(n.max(1));
    }

    /// List requests received so far (each page is one).
    pub fn list_requests(&self) -> usize {
        self.state.list_requests.load(Ordering::SeqCst)
    }
}

fn sid_for(index: usize) -> String {
    format!("SM{:032}", index + 1)
}

fn has_date_sent(status: &str) -> bool {
    matches!(
        status,
        "sent" | "delivered" | "undelivered" | "read" | "partially_delivered"
    )
}

/// Counts a withheld send while its handler waits; the count drops when the answer goes or
/// the client hangs up (hyper drops the handler's future).
struct InFlight(Arc<FakeTwilioState>);

impl InFlight {
    fn new(state: &Arc<FakeTwilioState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn twilio_messages(
    State(state): State<Arc<FakeTwilioState>>,
    Path(_sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let at = Instant::now();
    let form: HashMap<String, String> = serde_urlencoded_pairs(&body);
    let to = form.get("To").cloned().unwrap_or_default();
    if to.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 21604, "message": "A 'To' phone number is required.", "status": 400}),
            ),
        );
    }
    let (sid, withheld) = {
        let mut inner = state.inner.lock().unwrap();
        if !inner.failures.is_empty() {
            let status = inner.failures.remove(0);
            return (
                StatusCode::from_u16(status).unwrap(),
                Json(
                    json!({"code": if status == 429 { 20429 } else { 21211 }, "message": "fake failure", "status": status}),
                ),
            );
        }
        let withheld = inner
            .next_withheld
            .pop_front()
            .or_else(|| inner.withheld_to.get(&to).copied());
        if matches!(withheld, Some(Withheld::Lost)) {
            (String::new(), withheld)
        } else {
            let now = Utc::now();
            let sid = sid_for(inner.sent.len());
            inner.sent.push(SentSms {
                sid: sid.clone(),
                to,
                from: form.get("From").cloned(),
                body: form.get("Body").cloned().unwrap_or_default(),
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
                status: if withheld.is_some() {
                    "queued"
                } else {
                    "delivered"
                }
                .to_string(),
                date_created: now,
                date_sent: withheld.is_none().then_some(now),
                at,
            });
            state.total.fetch_add(1, Ordering::Relaxed);
            (sid, withheld)
        }
    };
    if let Some(withheld) = withheld {
        let _counted = InFlight::new(&state);
        let mut released = state.release.subscribe();
        match withheld {
            Withheld::UntilReleased => {
                let _ = released.changed().await;
            }
            Withheld::After(delay) => {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = released.changed() => {}
                }
            }
            Withheld::Lost => std::future::pending::<()>().await,
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({"sid": sid, "status": "queued"})),
    )
}

/// Twilio's Messages list: filters, newest first, pages with `next_page_uri`.
async fn twilio_list(
    State(state): State<Arc<FakeTwilioState>>,
    Path(account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    state.list_requests.fetch_add(1, Ordering::SeqCst);
    let inner = state.inner.lock().unwrap();
    let page: usize = query.get("Page").and_then(|p| p.parse().ok()).unwrap_or(0);
    if inner.failing_page == Some(page) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": 20500, "message": "fake list failure", "status": 500})),
        );
    }
    let date = |key: &str| {
        query
            .get(key)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (on, before, after) = (date("DateSent"), date("DateSent<"), date("DateSent>"));
    let mut matching: Vec<&SentSms> = inner
        .sent
        .iter()
        .filter(|m| query.get("To").is_none_or(|to| &m.to == to))
        .filter(|m| {
            query
                .get("From")
                .is_none_or(|from| m.from.as_ref() == Some(from))
        })
        .filter(|m| {
            // Twilio filters on the sending date: a message without one never passes.
            if on.is_none() && before.is_none() && after.is_none() {
                return true;
            }
            let Some(sent) = m.date_sent.map(|d| d.date_naive()) else {
                return false;
            };
            on.is_none_or(|d| sent == d)
                && before.is_none_or(|d| sent <= d)
                && after.is_none_or(|d| sent >= d)
        })
        .collect();
    matching.reverse(); // newest first
    let size = query
        .get("PageSize")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50usize)
        .min(inner.page_size_cap.unwrap_or(usize::MAX))
        .max(1);
    let messages: Vec<Value> = matching
        .iter()
        .skip(page * size)
        .take(size)
        .map(|m| {
            let body = if inner.rewrite_quotes {
                smart_encode(&m.body)
            } else {
                m.body.clone()
            };
            json!({"sid": m.sid, "account_sid": account, "to": m.to, "from": m.from,
                   "body": body, "direction": "outbound-api", "status": m.status,
                   "num_segments": "1", "error_code": null,
                   "date_created": rfc2822(m.date_created),
                   "date_updated": rfc2822(m.date_sent.unwrap_or(m.date_created)),
                   "date_sent": m.date_sent.map(rfc2822)})
        })
        .collect();
    let next_page_uri = ((page + 1) * size < matching.len()).then(|| {
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            if k != "Page" {
                next.append_pair(k, v);
            }
        }
        next.append_pair("Page", &(page + 1).to_string());
        format!(
            "/2010-04-01/Accounts/{account}/Messages.json?{}",
            next.finish()
        )
    });
    (
        StatusCode::OK,
        Json(
            json!({"messages": messages, "next_page_uri": next_page_uri, "page": page,
                    "page_size": size}),
        ),
    )
}

/// Twilio's date format: `Tue, 03 Nov 2026 12:00:00 +0000`.
fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// What Twilio's smart encoding does to the characters our replies are likely to carry:
/// written here by hand, independent of the service's own folding.
fn smart_encode(body: &str) -> String {
    body.replace(['\u{201C}', '\u{201D}'], "\"")
        .replace(['\u{2018}', '\u{2019}'], "'")
        .replace(['\u{2013}', '\u{2014}'], "-")
        .replace('\u{2026}', "...")
}

fn serde_urlencoded_pairs(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
