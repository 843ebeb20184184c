//! One request under the listener's limits: the in-flight cap (with the requests it never
//! sheds), the whole-body deadline, the whole-request deadline, and the hand-over to the
//! router.
//!
//! Owns: what a request costs before and after the router sees it — a permit of
//! `HTTP_MAX_IN_FLIGHT` (none needed for Twilio's webhook within its body limit, `/health`
//! and `/ready`: shedding the webhook would lose a lead's message, and shedding a probe would
//! get a healthy pod restarted or drained), a body that errors once `HTTP_BODY_TIMEOUT_SECS`
//! have passed since the head however it trickles (the answer is then 408), and the answer
//! within `HTTP_REQUEST_TIMEOUT_SECS` of the head (else 503 at once). A handler past its
//! deadline is not cancelled: it runs on, holding its permit, for at most
//! [`DETACHED_MAX`] in all — a webhook whose store write was slow is then still stored and
//! answered (the design answers 503 only when no durable path took a message; cancelling the
//! write could drop one the store was about to commit, and Twilio does not retry a 5xx).
//! Must not: read or judge a body (the handlers do), or route.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;

use super::HttpLimits;
use super::connection::Conn;

/// The longest a handler runs in all, its deadline passed or not: past it, it is dropped.
pub const DETACHED_MAX: Duration = Duration::from_secs(60);

/// What every request of one listener shares.
pub struct Admission {
    pub router: Router,
    pub limits: HttpLimits,
    pub in_flight: Arc<Semaphore>,
}

/// The per-connection hyper service: marks its connection busy for each request, until the
/// response has been written.
pub struct ConnService {
    pub admission: Arc<Admission>,
    pub conn: Arc<Conn>,
    pub peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.busy();
        let done = AwaitingOnDrop(self.conn.clone());
        let (admission, peer) = (self.admission.clone(), self.peer);
        Box::pin(async move {
            let response = handle(&admission, peer, req).await;
            Ok(response.map(|inner| Body::new(ResponseBody { inner, _done: done })))
        })
    }
}

/// Requests the in-flight cap never sheds (see the module's doc).
pub fn never_shed<B>(req: &Request<B>) -> bool {
    let path = req.uri().path();
    match *req.method() {
        Method::GET | Method::HEAD => path == "/health" || path == "/ready",
        Method::POST => {
            path == "/twilio/sms"
                && req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .is_some_and(|n| n <= crate::http::MAX_WEBHOOK_BYTES)
        }
        _ => false,
    }
}

async fn handle(admission: &Admission, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let permit = if never_shed(&req) {
        None
    } else {
        match admission.in_flight.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                metrics::counter!("lead_agent_http_shed_total", "reason" => "in_flight")
                    .increment(1);
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many requests in progress; retry shortly",
                );
            }
        }
    };
    let limits = &admission.limits;
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let expired = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = Body::new(RequestBody::new(body, limits.body_timeout, expired.clone()));
    let req = Request::from_parts(parts, body);
    let router = admission.router.clone();
    let work = tokio::spawn(async move {
        let _permit = permit;
        let _counted = InFlight::start();
        tokio::time::timeout(DETACHED_MAX, router.oneshot(req))
            .await
            .map(|answered| answered.unwrap_or_else(|never| match never {}))
    });
    match tokio::time::timeout(limits.request_timeout, work).await {
        Ok(Ok(Ok(_))) if expired.load(Ordering::SeqCst) => {
            metrics::counter!("lead_agent_http_timeouts_total", "kind" => "body").increment(1);
            tracing::info!(%method, path, "request body not complete within HTTP_BODY_TIMEOUT_SECS: 408, connection closed");
            refusal(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            )
        }
        Ok(Ok(Ok(response))) => response,
        // Only when DETACHED_MAX is shorter than the request timeout: not with our bounds.
        Ok(Ok(Err(_))) => refusal(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable"),
        Ok(Err(join)) => {
            tracing::error!(%method, path, error = %join, "request handler panicked");
            refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
        Err(_) => {
            metrics::counter!("lead_agent_http_timeouts_total", "kind" => "request").increment(1);
            tracing::warn!(%method, path, "not answered within HTTP_REQUEST_TIMEOUT_SECS: 503 now; the handler finishes in the background");
            refusal(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

/// A short plain-text answer that closes the connection: what follows on it is not trusted
/// to be in step (a body may be half read).
pub fn refusal(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Counts a request in `lead_agent_http_in_flight` while its handler runs.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!("lead_agent_http_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("lead_agent_http_in_flight").decrement(1.0);
    }
}

/// Marks the connection waiting again once the response is written (hyper drops the body).
struct AwaitingOnDrop(Arc<Conn>);

impl Drop for AwaitingOnDrop {
    fn drop(&mut self) {
        self.0.awaiting();
    }
}

/// A response body, carrying its connection's "done" marker.
struct ResponseBody {
    inner: Body,
    _done: AwaitingOnDrop,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body was not complete by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within HTTP_BODY_TIMEOUT_SECS")]
pub struct BodyTimeout;

/// A request body with one deadline for all of it, counted from the head.
struct RequestBody {
    inner: Incoming,
    /// `None` for a body that is already complete (none at all).
    deadline: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl RequestBody {
    fn new(inner: Incoming, timeout: Duration, expired: Arc<AtomicBool>) -> Self {
        use http_body::Body as _;
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Self {
            inner,
            deadline,
            expired,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        if this.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if let Some(deadline) = this.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.expired.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, length: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(l) = length {
            b = b.header(header::CONTENT_LENGTH, l);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn twilios_webhook_within_its_limit_and_the_probes_are_never_shed() {
        assert!(never_shed(&request(
            Method::POST,
            "/twilio/sms",
            Some("420")
        )));
        assert!(never_shed(&request(Method::GET, "/health", None)));
        assert!(never_shed(&request(Method::GET, "/ready", None)));
        let over = (crate::http::MAX_WEBHOOK_BYTES + 1).to_string();
        assert!(!never_shed(&request(
            Method::POST,
            "/twilio/sms",
            Some(&over)
        )));
        assert!(
            !never_shed(&request(Method::POST, "/twilio/sms", None)),
            "a body of unknown length may not fit"
        );
        assert!(!never_shed(&request(Method::GET, "/ops/status", None)));
        assert!(!never_shed(&request(
            Method::POST,
            "/discord/interactions",
            Some("10")
        )));
    }
}
