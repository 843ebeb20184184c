//! One connection's life under the listener's limits: where it stands (waiting on its
//! client for a request head, or busy with a request), the deadline that follows from that,
//! the table of open connections that the connection cap is kept with, and the eviction
//! that makes room when the cap is reached.
//!
//! Owns: [`Connections`] (the cap: admit, evict, refuse), [`Conn`] (a connection's phase, its
//! deadline, its wake-ups) and [`Watched`], the socket wrapper that notices the first bytes
//! of a request head. The phase is set by the request side (`request.rs`): busy from a
//! complete head until its response has been written, then waiting again.
//! Must not: cut a connection that has a request in progress to make room (its head is
//! complete: it may be Twilio's webhook, and the body and request deadlines bound it), or
//! block: every lock here is held for a few field reads.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting on the client for a request head: since `since` (the connection's opening or
    /// the previous response), with its first bytes arrived at `first_byte`. A new
    /// connection's first byte counts from its opening: a client that connects owes its
    /// request at once.
    AwaitingHead {
        since: Instant,
        first_byte: Option<Instant>,
    },
    /// A request's head is complete: its body is arriving, or the server is answering it.
    Busy,
}

/// Which timeout closed a connection (the `kind` label of `lead_agent_http_timeouts_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A request head begun and not finished within `HTTP_HEADER_TIMEOUT_SECS`.
    Header,
    /// No next request within `HTTP_IDLE_TIMEOUT_SECS` of the previous response.
    Idle,
}

impl Expiry {
    pub fn label(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::Idle => "idle",
        }
    }
}

/// One open connection.
pub struct Conn {
    id: u64,
    phase: Mutex<Phase>,
    /// The phase changed, or the connection was evicted: its task recomputes.
    wake: Notify,
    evicted: AtomicBool,
}

impl Conn {
    fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            phase: Mutex::new(Phase::AwaitingHead {
                since: now,
                first_byte: Some(now),
            }),
            wake: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        // `notify_one` keeps the wake-up if the task is not waiting yet: none is lost.
        self.wake.notify_one();
    }

    /// A request head is complete.
    pub fn busy(&self) {
        self.set(Phase::Busy);
    }

    /// The response has been written: the connection waits for its next request.
    pub fn awaiting(&self) {
        self.set(Phase::AwaitingHead {
            since: Instant::now(),
            first_byte: None,
        });
    }

    /// Bytes arrived from the client.
    fn bytes_read(&self) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if let Phase::AwaitingHead {
            since,
            first_byte: None,
        } = *phase
        {
            *phase = Phase::AwaitingHead {
                since,
                first_byte: Some(Instant::now()),
            };
            drop(phase);
            self.wake.notify_one();
        }
    }

    /// True while no request is in progress (nothing is lost by closing it).
    pub fn is_awaiting_head(&self) -> bool {
        matches!(self.phase(), Phase::AwaitingHead { .. })
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::SeqCst)
    }

    /// When this connection must be closed if nothing changes, and why.
    pub fn deadline(&self, header: Duration, idle: Duration) -> Option<(Instant, Expiry)> {
        match self.phase() {
            Phase::Busy => None,
            Phase::AwaitingHead {
                first_byte: Some(t),
                ..
            } => Some((t + header, Expiry::Header)),
            Phase::AwaitingHead {
                since,
                first_byte: None,
            } => Some((since + idle, Expiry::Idle)),
        }
    }

    /// Resolves at the next phase change or eviction.
    pub async fn changed(&self) {
        self.wake.notified().await
    }
}

/// What the cap decided for a new connection.
pub enum Admission {
    /// A slot; `evicted` is true when another connection was closed to free it.
    Admitted {
        conn: Arc<Conn>,
        slot: Slot,
        evicted: bool,
    },
    /// Every slot holds a request in progress.
    Full,
}

/// The open connections of one listener, at most `cap`.
pub struct Connections {
    cap: usize,
    open: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            open: Mutex::new(Table::default()),
        })
    }

    /// A slot for a new connection: a free one, else the one of the connection that has
    /// waited longest on its client for a request head (closed to make room), else none.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Admission {
        let mut table = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        if table.conns.len() >= self.cap {
            let oldest = table
                .conns
                .values()
                .filter_map(|c| match c.phase() {
                    Phase::AwaitingHead { since, .. } => Some((since, c.id)),
                    Phase::Busy => None,
                })
                .min();
            let Some((_, id)) = oldest else {
                return Admission::Full;
            };
            if let Some(victim) = table.conns.remove(&id) {
                victim.evicted.store(true, Ordering::SeqCst);
                victim.wake.notify_one();
                evicted = true;
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let conn = Arc::new(Conn::new(id, now));
        table.conns.insert(id, conn.clone());
        metrics::gauge!("lead_agent_http_connections").increment(1.0);
        Admission::Admitted {
            conn,
            slot: Slot {
                table: Arc::downgrade(self),
                id,
            },
            evicted,
        }
    }

    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .len()
    }

    fn release(&self, id: u64) {
        let mut table = self.open.lock().unwrap_or_else(|p| p.into_inner());
        table.conns.remove(&id);
    }
}

/// A connection's place in the table, given back when its task ends (an evicted one's was
/// taken back at its eviction).
pub struct Slot {
    table: Weak<Connections>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        metrics::gauge!("lead_agent_http_connections").decrement(1.0);
        if let Some(table) = self.table.upgrade() {
            table.release(self.id);
        }
    }
}

/// The socket, telling its connection when the bytes of a next request begin to arrive (the
/// idle timeout then gives way to the header timeout).
pub struct Watched<T> {
    pub io: T,
    pub conn: Arc<Conn>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn admitted(c: &Arc<Connections>, now: Instant) -> (Arc<Conn>, Slot, bool) {
        match c.admit(now) {
            Admission::Admitted {
                conn,
                slot,
                evicted,
            } => (conn, slot, evicted),
            Admission::Full => panic!("expected a slot"),
        }
    }

    #[test]
    fn a_new_connection_owes_its_head_at_once_and_a_kept_alive_one_gets_the_idle_time() {
        let t0 = Instant::now();
        let conn = Conn::new(0, t0);
        assert_eq!(
            conn.deadline(HEADER, IDLE),
            Some((t0 + HEADER, Expiry::Header))
        );
        conn.busy();
        assert_eq!(conn.deadline(HEADER, IDLE), None, "a request in progress");
        conn.awaiting();
        let (at, why) = conn.deadline(HEADER, IDLE).unwrap();
        assert_eq!(why, Expiry::Idle);
        assert!(at >= t0 + IDLE);
        conn.bytes_read();
        let (_, why) = conn.deadline(HEADER, IDLE).unwrap();
        assert_eq!(why, Expiry::Header, "the next head has begun");
    }

    #[test]
    fn a_full_table_evicts_the_longest_waiting_connection_and_never_a_busy_one() {
        let table = Connections::new(2);
        let t0 = Instant::now();
        let (old, _s1, _) = admitted(&table, t0);
        let (young, _s2, _) = admitted(&table, t0 + Duration::from_secs(1));
        let (newcomer, _s3, evicted) = admitted(&table, t0 + Duration::from_secs(2));
        assert!(evicted && old.is_evicted() && !young.is_evicted());
        assert_eq!(table.len(), 2);
        young.busy();
        newcomer.busy();
        assert!(matches!(table.admit(t0), Admission::Full));
    }

    #[test]
    fn a_slot_is_given_back_when_its_connection_ends() {
        let table = Connections::new(1);
        let (_conn, slot, _) = admitted(&table, Instant::now());
        drop(slot);
        assert_eq!(table.len(), 0);
    }
}
