//! The direct path: alerts the spool could not take (the store is down) go to Discord from
//! the process that raised them, out of a bounded in-memory queue, and into the spool as
//! soon as the store answers again.
//!
//! Owns: [`DirectQueue`] — per-channel order, a cap (`DISCORD_DIRECT_QUEUE_MAX`), and the
//! shedding rule when it is full: the least important alert goes first (EVENT-stream info,
//! then other info, then warnings, then critical), the newest of equals (the first alerts
//! of an outage usually carry its cause), never the one being posted; every shed alert is
//! counted (`lead_agent_alerts_shed_total{kind}`) and logged — and every direct alert was
//! already logged in full when it was queued. And the worker that drains one channel's
//! queue: while the store is down it posts through the shared [`DiscordRest`] (same rate
//! limits, backoff and halts as the spool); once the store answers it hands each remaining
//! alert to the spool instead, with its nonce and raise time, so the channel's lease holder
//! posts it and Discord's `enforce_nonce` makes the two paths one.
//! Must not: hold anything the store could hold (the queue is for outages only), post an
//! alert the spool already took, or grow without bound.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;

use actors::alert_router::{AlertKind, Severity};
use chrono::{DateTime, Utc};

use super::rest::PostOutcome;
use super::sender::Shared;
use crate::store::NewSpooledAlert;

/// One alert waiting to be posted directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectItem {
    pub channel: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub event: String,
    /// The JSON body to post.
    pub payload: String,
    pub nonce: String,
    pub raised_at: DateTime<Utc>,
}

impl DirectItem {
    /// What shedding gives up first: lower is less important.
    fn importance(&self) -> u8 {
        let severity = match self.severity {
            Severity::Info => 0,
            Severity::Warning => 2,
            Severity::Critical => 4,
        };
        severity + u8::from(self.kind != AlertKind::Event)
    }

    fn spooled(&self) -> NewSpooledAlert<'_> {
        NewSpooledAlert {
            channel_id: &self.channel,
            kind: self.kind.key(),
            payload: &self.payload,
            nonce: &self.nonce,
            created_at: self.raised_at,
        }
    }
}

struct Slot {
    seq: u64,
    item: DirectItem,
    in_flight: bool,
}

#[derive(Default)]
struct Inner {
    slots: VecDeque<Slot>,
    next_seq: u64,
    shed: u64,
}

/// The bounded queue of direct alerts, in raise order.
pub struct DirectQueue {
    cap: usize,
    inner: Mutex<Inner>,
}

/// An alert taken for posting or hand-over; give it back with [`DirectQueue::put_back`] or
/// finish it with [`DirectQueue::done`].
#[derive(Debug)]
pub struct Taken {
    pub seq: u64,
    pub item: DirectItem,
}

impl DirectQueue {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            inner: Mutex::default(),
        }
    }

    /// Queues `item`. When the queue is full, the least important alert not being posted —
    /// possibly `item` itself — is shed (counted and logged) and returned.
    pub fn push(&self, item: DirectItem) -> Option<DirectItem> {
        let mut inner = self.inner.lock().unwrap();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let mut shed = None;
        if inner.slots.len() >= self.cap {
            let victim = inner
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.in_flight)
                .min_by_key(|(_, s)| (s.item.importance(), std::cmp::Reverse(s.seq)))
                .map(|(i, s)| (i, s.item.importance()));
            shed = Some(match victim {
                // Ties go to the newcomer: it is the newest.
                Some((i, importance)) if importance < item.importance() => {
                    let old = inner.slots.remove(i).expect("index from the scan").item;
                    inner.slots.push_back(Slot {
                        seq,
                        item,
                        in_flight: false,
                    });
                    old
                }
                _ => item,
            });
            inner.shed += 1;
        } else {
            inner.slots.push_back(Slot {
                seq,
                item,
                in_flight: false,
            });
        }
        drop(inner);
        if let Some(lost) = &shed {
            metrics::counter!("lead_agent_alerts_shed_total", "kind" => lost.kind.key())
                .increment(1);
            tracing::error!(
                kind = lost.kind.key(),
                event = %lost.event,
                nonce = %lost.nonce,
                cap = self.cap,
                "direct alert queue full (DISCORD_DIRECT_QUEUE_MAX): the least important alert is shed; its text is in the log where it was queued"
            );
        }
        shed
    }

    /// Alerts waiting (posted or not).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Alerts shed since start.
    pub fn shed(&self) -> u64 {
        self.inner.lock().unwrap().shed
    }

    /// Whether anything for `channel` waits: a new alert for it must queue behind it, or
    /// the channel's order breaks.
    pub fn holds(&self, channel: &str) -> bool {
        self.inner
            .lock()
            .unwrap()
            .slots
            .iter()
            .any(|s| s.item.channel == channel)
    }

    /// Channels with something waiting, each once.
    pub fn channels(&self) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let mut seen = HashSet::new();
        inner
            .slots
            .iter()
            .filter(|s| seen.insert(s.item.channel.as_str()))
            .map(|s| s.item.channel.clone())
            .collect()
    }

    /// The oldest alert of `channel` not already taken, marked as taken (it cannot be shed
    /// while it is on its way).
    pub fn take(&self, channel: &str) -> Option<Taken> {
        let mut inner = self.inner.lock().unwrap();
        let slot = inner
            .slots
            .iter_mut()
            .find(|s| s.item.channel == channel && !s.in_flight)?;
        slot.in_flight = true;
        Some(Taken {
            seq: slot.seq,
            item: slot.item.clone(),
        })
    }

    /// Not delivered: it waits again, at its place.
    pub fn put_back(&self, seq: u64) {
        if let Some(s) = self
            .inner
            .lock()
            .unwrap()
            .slots
            .iter_mut()
            .find(|s| s.seq == seq)
        {
            s.in_flight = false;
        }
    }

    /// Delivered, or in the spool now.
    pub fn done(&self, seq: u64) {
        self.inner.lock().unwrap().slots.retain(|s| s.seq != seq);
    }

    /// Given up (Discord refused it for good): removed, and counted with the shed ones.
    pub fn give_up(&self, seq: u64) {
        let mut inner = self.inner.lock().unwrap();
        inner.slots.retain(|s| s.seq != seq);
        inner.shed += 1;
    }
}

/// Drains `channel`'s direct alerts: into the spool while the store answers, else to
/// Discord. The only worker of its channel in this process, so order holds.
pub(super) async fn direct_worker(shared: Arc<Shared>, channel: String) {
    let direct = &shared.inbox.direct;
    let mut failures: u32 = 0;
    while let Some(Taken { seq, item }) = direct.take(&channel) {
        if !shared.inbox.store_down() {
            match shared.store.spool_alert(item.spooled()).await {
                Ok(_) => {
                    direct.done(seq);
                    shared.inbox.spooled.notify_one();
                    continue;
                }
                Err(e) => shared.inbox.mark_store_down(&e.to_string()),
            }
        }
        if shared.rest.stopped(&channel) {
            // Kept (bounded) for the spool: the store's return hands it over.
            direct.put_back(seq);
            break;
        }
        shared.rest.wait_for_capacity(&channel).await;
        match shared.rest.post(&channel, &item.payload, &item.nonce).await {
            PostOutcome::Delivered => {
                failures = 0;
                direct.done(seq);
                shared.note_direct_delivered();
            }
            PostOutcome::RateLimited { .. } => direct.put_back(seq),
            PostOutcome::Unauthorized(_) | PostOutcome::ChannelBlocked(_) => {
                direct.put_back(seq);
                break;
            }
            PostOutcome::Refused(reason) => {
                // Our bug, and no table to keep it in: the log keeps the whole body.
                direct.give_up(seq);
                metrics::counter!("lead_agent_alerts_shed_total", "kind" => item.kind.key())
                    .increment(1);
                tracing::error!(
                    channel,
                    nonce = %item.nonce,
                    reason,
                    payload = %item.payload,
                    "Discord refused a direct alert for good; dropped from the direct queue"
                );
            }
            PostOutcome::Transient(reason) => {
                failures += 1;
                direct.put_back(seq);
                let delay = shared.rest.backoff(failures);
                tracing::warn!(
                    channel,
                    attempt = failures,
                    ?delay,
                    reason,
                    "direct Discord post failed; the alert stays queued and is retried"
                );
                // Woken early when the store returns: the alert then goes to the spool.
                let _ = tokio::time::timeout(delay, shared.inbox.store_back.notified()).await;
            }
        }
    }
    shared.direct_worker_done(&channel);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(channel: &str, kind: AlertKind, severity: Severity, n: u32) -> DirectItem {
        DirectItem {
            channel: channel.into(),
            kind,
            severity,
            event: format!("e{n}"),
            payload: "{}".into(),
            nonce: format!("n{n}"),
            raised_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn events(q: &DirectQueue, channel: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(t) = q.take(channel) {
            out.push(t.item.event.clone());
            q.done(t.seq);
        }
        out
    }

    #[test]
    fn the_queue_never_holds_more_than_its_cap_and_counts_what_it_sheds() {
        let q = DirectQueue::new(3);
        for n in 0..10 {
            q.push(item("1", AlertKind::General, Severity::Info, n));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.shed(), 7);
        // Among equals the newest go: the first alerts of an outage are kept.
        assert_eq!(events(&q, "1"), vec!["e0", "e1", "e2"]);
    }

    #[test]
    fn the_least_important_alert_is_shed_first() {
        let q = DirectQueue::new(4);
        q.push(item("1", AlertKind::Error, Severity::Critical, 0));
        q.push(item("1", AlertKind::General, Severity::Info, 1));
        q.push(item("2", AlertKind::Event, Severity::Info, 2));
        q.push(item("1", AlertKind::General, Severity::Warning, 3));
        // Full. A critical alert pushes out the EVENT-stream info first…
        let shed = q.push(item("1", AlertKind::Error, Severity::Critical, 4));
        assert_eq!(shed.unwrap().event, "e2");
        // …then the other info…
        let shed = q.push(item("1", AlertKind::Error, Severity::Critical, 5));
        assert_eq!(shed.unwrap().event, "e1");
        // …and an info alert arriving at a queue of warnings and criticals is itself shed.
        let shed = q.push(item("2", AlertKind::General, Severity::Info, 6));
        assert_eq!(shed.unwrap().event, "e6");
        assert_eq!(q.shed(), 3);
        assert_eq!(events(&q, "1"), vec!["e0", "e3", "e4", "e5"]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_alert_on_its_way_to_discord_is_never_shed() {
        let q = DirectQueue::new(2);
        q.push(item("1", AlertKind::Event, Severity::Info, 0));
        q.push(item("2", AlertKind::Event, Severity::Info, 1));
        let posting = q.take("1").unwrap();
        assert_eq!(posting.item.event, "e0");
        let shed = q.push(item("2", AlertKind::Error, Severity::Critical, 2));
        assert_eq!(shed.unwrap().event, "e1", "not the one being posted");
        // With only taken alerts left to shed, the newcomer goes.
        let other = q.take("2").unwrap();
        let shed = q.push(item("3", AlertKind::Error, Severity::Critical, 3));
        assert_eq!(shed.unwrap().event, "e3");
        q.done(posting.seq);
        q.done(other.seq);
        assert!(q.is_empty());
    }

    #[test]
    fn each_channel_keeps_its_order_and_a_failed_attempt_keeps_its_place() {
        let q = DirectQueue::new(10);
        for n in 0..3 {
            q.push(item("a", AlertKind::General, Severity::Info, n));
            q.push(item("b", AlertKind::General, Severity::Info, 10 + n));
        }
        assert_eq!(q.channels(), vec!["a", "b"]);
        assert!(q.holds("a") && !q.holds("c"));
        let first = q.take("a").unwrap();
        assert_eq!(first.item.event, "e0");
        assert!(q.take("a").is_some_and(|t| t.item.event == "e1"));
        q.put_back(first.seq);
        let again = q.take("a").unwrap();
        assert_eq!(
            (again.seq, again.item.event.as_str()),
            (first.seq, "e0"),
            "retried first"
        );
        assert_eq!(events(&q, "b"), vec!["e10", "e11", "e12"]);
    }
}
