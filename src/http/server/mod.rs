//! The HTTP listener every server of the binary runs on — the service's port, the watch's,
//! and any other (an ops port) — instead of `axum::serve`, which runs hyper without a timer
//! and without caps: a half-sent request held a connection for ever, a body trickled for
//! minutes, connections ran the process out of file descriptors, and one half-open
//! connection kept a SIGTERMed process alive past Kubernetes' grace period.
//!
//! Owns: [`HttpLimits`] (the `HTTP_*` variables), the file-descriptor budget, the accept loop
//! and the shutdown. What each connection and request may cost is in [`connection`] and
//! [`request`]; together:
//! - a request head must be complete within `HTTP_HEADER_TIMEOUT_SECS` of its first byte (of
//!   the connection's opening, for its first request); a kept-alive connection with no next
//!   request is closed after `HTTP_IDLE_TIMEOUT_SECS`. hyper's own header timer (which runs
//!   from the end of the previous response, so it bounds idle and header time together) is
//!   set to their sum, as a backstop;
//! - a body must be complete within `HTTP_BODY_TIMEOUT_SECS` of its head (408); an answer
//!   must be ready within `HTTP_REQUEST_TIMEOUT_SECS` of it (else 503);
//! - at most `HTTP_MAX_CONNECTIONS` connections per listener: when they are all open, the
//!   one that has waited longest on its client for a request head (idle, or slow-loris) is
//!   closed to make room, so `/health` and webhooks still get in; when every one has a
//!   request in progress, the newcomer is answered 503 and closed at once;
//! - at most `HTTP_MAX_IN_FLIGHT` requests in progress, past which 503 at once — never for
//!   Twilio's webhook within its body limit, nor for `/health` and `/ready`;
//! - the soft `RLIMIT_NOFILE` is raised to the hard limit, and the connection caps of all
//!   listeners plus [`FD_RESERVE`] must fit below it: a cap that was set and does not fit
//!   stops the start with a message naming it; the default is clamped, with a warning;
//! - on shutdown: the listener closes, connections without a request in progress close at
//!   once, requests in progress get `HTTP_SHUTDOWN_SECS` to finish, then every connection
//!   left is dropped and [`serve`] returns — the caller's ordered stop always runs.
//!
//! Every refusal, eviction and timeout is counted (`lead_agent_http_*`, [`describe_metrics`]).
//! Must not: know routes beyond the few that are never shed (`request::never_shed`), or
//! serve HTTP/2: nothing that calls us needs it, and the header timeout is HTTP/1's.

mod connection;
mod request;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::bail;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Reader;
use connection::{Admission as ConnAdmission, Conn, Connections, Slot, Watched};
use request::{Admission, ConnService};

pub use request::{BodyTimeout, DETACHED_MAX, never_shed};

/// The listener's limits (`HTTP_*`). The defaults suit Twilio, whose read timeout is 15 s.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    /// `HTTP_MAX_CONNECTIONS` was set: a cap that does not fit the file-descriptor limit
    /// stops the start instead of being clamped.
    pub max_connections_set: bool,
    pub max_in_flight: usize,
    pub shutdown: Duration,
}

impl HttpLimits {
    /// Every variable read here, in `config::ENV_VARS` order.
    pub const VARS: &'static [&'static str] = &[
        "HTTP_HEADER_TIMEOUT_SECS",
        "HTTP_BODY_TIMEOUT_SECS",
        "HTTP_IDLE_TIMEOUT_SECS",
        "HTTP_REQUEST_TIMEOUT_SECS",
        "HTTP_MAX_CONNECTIONS",
        "HTTP_MAX_IN_FLIGHT",
        "HTTP_SHUTDOWN_SECS",
    ];

    /// Reads the limits, recording problems in `r` (the service's and the watch's reader).
    pub(crate) fn read(r: &mut Reader<'_>) -> Self {
        let count = |r: &mut Reader<'_>, name: &str| -> usize {
            let n: usize = r.parse(name);
            if n == 0 {
                r.problems.push(format!("{name} must be at least 1"));
                return 1;
            }
            n
        };
        let limits = Self {
            header_timeout: r.seconds("HTTP_HEADER_TIMEOUT_SECS"),
            body_timeout: r.seconds("HTTP_BODY_TIMEOUT_SECS"),
            idle_timeout: r.seconds("HTTP_IDLE_TIMEOUT_SECS"),
            request_timeout: r.seconds("HTTP_REQUEST_TIMEOUT_SECS"),
            max_connections: count(r, "HTTP_MAX_CONNECTIONS"),
            max_connections_set: r.raw("HTTP_MAX_CONNECTIONS").is_some(),
            max_in_flight: count(r, "HTTP_MAX_IN_FLIGHT"),
            shutdown: r.seconds("HTTP_SHUTDOWN_SECS"),
        };
        if limits.body_timeout > limits.request_timeout {
            r.problems.push(
                "HTTP_BODY_TIMEOUT_SECS must not exceed HTTP_REQUEST_TIMEOUT_SECS: the request's deadline covers its body"
                    .into(),
            );
        }
        if limits.request_timeout >= DETACHED_MAX {
            r.problems.push(format!(
                "HTTP_REQUEST_TIMEOUT_SECS must be under {} s (a handler runs at most that long in all)",
                DETACHED_MAX.as_secs()
            ));
        }
        limits
    }
}

/// File descriptors kept for everything but this process's HTTP connections: the store's
/// pools (PostgreSQL 20 + a replica's 20; SQLite 8 connections × 3 files), the broker's
/// connections, the outbound HTTPS pools (Twilio, the models, Discord, Follow Up Boss,
/// Asana), the journal, stdio, the runtime's own, the listeners, and up to
/// [`REFUSED_LINGERING`] refused connections being answered.
pub const FD_RESERVE: u64 = 256;

/// Refused connections answered at once (each holds its socket a moment so that the 503 is
/// read, not reset); more are closed without a word.
const REFUSED_LINGERING: usize = 64;

/// The fewest connections a listener runs with; a limit that leaves less stops the start.
const MIN_CONNECTIONS: u64 = 16;

/// Connection slots claimed by the listeners running in this process.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// The connection cap a listener gets out of the descriptors left: `soft` (the soft limit),
/// less [`FD_RESERVE`], less what other listeners of the process `claimed`.
pub fn fit_connection_cap(
    wanted: u64,
    explicit: bool,
    soft: u64,
    claimed: u64,
) -> Result<u64, String> {
    let left = soft.saturating_sub(FD_RESERVE + claimed);
    let others = if claimed > 0 {
        format!(", less {claimed} claimed by this process's other listeners,")
    } else {
        String::new()
    };
    if wanted <= left {
        Ok(wanted)
    } else if explicit || left < MIN_CONNECTIONS {
        Err(format!(
            "HTTP_MAX_CONNECTIONS={wanted} does not fit: the file-descriptor limit is {soft} (RLIMIT_NOFILE, \
             raised to its hard limit), and less {FD_RESERVE} kept for the store, the broker and outbound \
             calls{others} it leaves {left}. Lower HTTP_MAX_CONNECTIONS or raise the limit (`ulimit -n`, the \
             container runtime's LimitNOFILE)."
        ))
    } else {
        Ok(left)
    }
}

/// The soft `RLIMIT_NOFILE`, raised to the hard limit first.
pub fn descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        Err(e) => {
            let soft = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(s, _)| s)
                .unwrap_or(1024);
            tracing::warn!(error = %e, soft, "could not raise the file-descriptor limit");
            soft
        }
    }
}

/// A listener's claim on descriptors, given back when it stops.
struct Claim(u64);

impl Claim {
    fn take(limits: &HttpLimits) -> anyhow::Result<Self> {
        let soft = descriptor_limit();
        let wanted = limits.max_connections as u64;
        let cap = loop {
            let claimed = CLAIMED.load(Ordering::SeqCst);
            let cap = match fit_connection_cap(wanted, limits.max_connections_set, soft, claimed) {
                Ok(cap) => cap,
                Err(why) => bail!(why),
            };
            // Another listener starting at the same moment claims against the same count.
            if CLAIMED
                .compare_exchange(claimed, claimed + cap, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break cap;
            }
        };
        if cap < wanted {
            tracing::warn!(
                soft,
                wanted,
                cap,
                "the file-descriptor limit is too low for the default HTTP_MAX_CONNECTIONS: capped lower"
            );
        }
        Ok(Self(cap))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMED.fetch_sub(self.0, Ordering::SeqCst);
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then drains
/// (see the module's doc) and returns. Each request carries its peer's address as
/// `ConnectInfo<SocketAddr>`. Errs only at start, when the connection cap cannot fit.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let claim = Claim::take(limits)?;
    let connections = Connections::new(claim.0 as usize);
    let admission = Arc::new(Admission {
        router,
        limits: limits.clone(),
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
    });
    let refusing = Arc::new(Semaphore::new(REFUSED_LINGERING));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match connections.admit(Instant::now()) {
                    ConnAdmission::Admitted { conn, slot, evicted } => {
                        if evicted {
                            metrics::counter!("lead_agent_http_evicted_total").increment(1);
                        }
                        tasks.spawn(run_connection(
                            stream,
                            peer,
                            conn,
                            slot,
                            admission.clone(),
                            stopping.clone(),
                        ));
                    }
                    ConnAdmission::Full => {
                        metrics::counter!("lead_agent_http_shed_total", "reason" => "connections")
                            .increment(1);
                        if let Ok(permit) = refusing.clone().try_acquire_owned() {
                            tokio::spawn(async move {
                                refuse(stream).await;
                                drop(permit);
                            });
                        }
                    }
                },
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept: accepting
                    // again at once would spin.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            left = tasks.len(),
            "HTTP_SHUTDOWN_SECS passed with requests in progress: their connections are dropped"
        );
        tasks.shutdown().await;
    }
    tracing::info!(connections_at_stop = open, drained, "HTTP listener stopped");
    drop(claim);
    Ok(())
}

/// Serves one connection until it ends, times out, is evicted, or the shutdown closes it.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
    _slot: Slot,
    admission: Arc<Admission>,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let limits = admission.limits.clone();
    let io = TokioIo::new(Watched {
        io: stream,
        conn: conn.clone(),
    });
    let service = ConnService {
        admission,
        conn: conn.clone(),
        peer,
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout + limits.idle_timeout)
        .keep_alive(true);
    let mut http = std::pin::pin!(builder.serve_connection(io, service));
    let mut draining = *stopping.borrow();
    if draining {
        http.as_mut().graceful_shutdown();
    }
    loop {
        if draining && conn.is_awaiting_head() {
            return; // nothing in progress: close now
        }
        let deadline = conn.deadline(limits.header_timeout, limits.idle_timeout);
        let expiry = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = http.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.changed() => {
                if conn.is_evicted() {
                    return;
                }
            }
            () = expiry => {
                if let Some((at, why)) = conn.deadline(limits.header_timeout, limits.idle_timeout)
                    && at <= Instant::now()
                {
                    metrics::counter!("lead_agent_http_timeouts_total", "kind" => why.label())
                        .increment(1);
                    return;
                }
            }
            _ = stopping.changed(), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection past the cap with a 503 and closes it. The client's request is read
/// first (briefly, a little of it) so that the close is not a reset that could discard the
/// answer before the client reads it.
async fn refuse(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 32\r\nconnection: close\r\nretry-after: 1\r\n\r\ntoo many connections; retry soon";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(ANSWER).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
}

/// Describes the listener's metrics and starts its counters at 0 (called with the others,
/// `metrics::describe`).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "lead_agent_http_connections",
        "Open HTTP connections, every listener of this process."
    );
    describe_gauge!(
        "lead_agent_http_in_flight",
        "HTTP requests being handled (including those past their deadline, answered 503, whose handler finishes in the background)."
    );
    describe_counter!(
        "lead_agent_http_shed_total",
        "Answered 503 at once by a cap: `connections` (every connection under HTTP_MAX_CONNECTIONS has a request in progress), `in_flight` (HTTP_MAX_IN_FLIGHT; never Twilio's webhook within its limit, nor the probes)."
    );
    describe_counter!(
        "lead_agent_http_evicted_total",
        "Connections closed to make room at HTTP_MAX_CONNECTIONS: each the one that had waited longest for a request head (idle, or a slow client)."
    );
    describe_counter!(
        "lead_agent_http_timeouts_total",
        "Connections or requests cut by a timeout, by kind: header, idle, body (408), request (503)."
    );
    metrics::counter!("lead_agent_http_evicted_total").increment(0);
    for reason in ["connections", "in_flight"] {
        metrics::counter!("lead_agent_http_shed_total", "reason" => reason).increment(0);
    }
    for kind in ["header", "idle", "body", "request"] {
        metrics::counter!("lead_agent_http_timeouts_total", "kind" => kind).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Settings;

    #[test]
    fn a_cap_that_fits_is_kept_a_default_that_does_not_is_clamped_and_a_set_one_is_refused() {
        assert_eq!(fit_connection_cap(1024, true, 1_048_576, 0), Ok(1024));
        assert_eq!(
            fit_connection_cap(1024, false, 1024, 0),
            Ok(1024 - FD_RESERVE)
        );
        let err = fit_connection_cap(1024, true, 1024, 0).unwrap_err();
        assert!(
            err.contains("HTTP_MAX_CONNECTIONS=1024")
                && err.contains("1024")
                && err.contains("768"),
            "{err}"
        );
        // A second listener of the process counts the first one's claim.
        let err = fit_connection_cap(1024, true, 2048, 1024).unwrap_err();
        assert!(err.contains("other listeners"), "{err}");
        assert!(
            fit_connection_cap(1024, false, 260, 0).is_err(),
            "too few left even for the floor"
        );
    }

    #[test]
    fn the_defaults_answer_twilio_well_inside_its_15_s_read_timeout() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        let l = &s.http;
        assert!(l.request_timeout < Duration::from_secs(15));
        // The webhook's own fail-fast path must fit: the store's acquire timeout (3 s), then
        // a fallback's confirm (RabbitMQ's publish timeout, 5 s).
        assert!(l.request_timeout > Duration::from_secs(8));
        assert!(l.body_timeout <= l.request_timeout);
        assert!(
            l.shutdown >= l.request_timeout,
            "a request in progress at SIGTERM gets its whole budget"
        );
        assert!(!l.max_connections_set);
    }

    #[test]
    fn limits_are_checked_by_name() {
        let err = Settings::from_map(&HashMap::from([
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_IN_FLIGHT", "many"),
            ("HTTP_BODY_TIMEOUT_SECS", "30"),
            ("HTTP_HEADER_TIMEOUT_SECS", "-1"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "HTTP_MAX_CONNECTIONS",
            "HTTP_MAX_IN_FLIGHT",
            "HTTP_BODY_TIMEOUT_SECS",
            "HTTP_HEADER_TIMEOUT_SECS",
        ] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        let s = Settings::from_map(&HashMap::from([("HTTP_MAX_CONNECTIONS", "64")])).unwrap();
        assert!(s.http.max_connections_set && s.http.max_connections == 64);
    }
}
