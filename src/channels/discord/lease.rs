//! The channel lease: one poster per Discord channel at a time across every process that
//! holds the bot token, so a channel's spool is posted in order and no row is posted twice
//! on purpose.
//!
//! Owns: the lease's name (`discord:<channel>` in the scheduler's `leases` table, through
//! `try_lease_at` / `release_lease`), taking and renewing it, giving it up when the channel
//! is empty, and the timing rule that makes it safe: the poster renews right before every
//! post and a post times out within half the lease ([`request_timeout`]), so a post always
//! ends while its poster still holds the lease. A holder that dies stops renewing; once the
//! lease expires another process takes the channel over and starts from its oldest row —
//! possibly the one the dead holder was sending, which Discord deduplicates by its nonce.
//! Must not: post, or decide what to post (the spool worker does); hold a lease it could
//! not renew (an error from the store is "not held").

use std::sync::Arc;
use std::time::Duration;

use actors::ports::{Clock, StoreError};
use chrono::{DateTime, Utc};

use crate::store::SqlStore;

use super::rest::REQUEST_TIMEOUT;

/// The longest a post may take under a lease of `lease`: half of it, at most
/// [`REQUEST_TIMEOUT`]. Renewed right before the post, the lease outlives the post by at
/// least the other half.
pub fn request_timeout(lease: Duration) -> Duration {
    (lease / 2).min(REQUEST_TIMEOUT)
}

pub fn lease_name(channel: &str) -> String {
    format!("discord:{channel}")
}

/// One process's claim on one channel.
pub struct ChannelLease {
    store: SqlStore,
    name: String,
    holder: String,
    length: Duration,
    clock: Arc<dyn Clock>,
    held_until: Option<DateTime<Utc>>,
}

impl ChannelLease {
    pub fn new(
        store: SqlStore,
        channel: &str,
        holder: &str,
        length: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            name: lease_name(channel),
            holder: holder.to_string(),
            length,
            clock,
            held_until: None,
        }
    }

    /// Takes the lease or renews it for another full length. `Ok(false)`: another live
    /// process posts this channel (or took it over after ours expired) — stop posting.
    pub async fn hold(&mut self) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let until = now + chrono::Duration::from_std(self.length).unwrap_or(chrono::Duration::MAX);
        let held = self
            .store
            .try_lease_at(&self.name, &self.holder, now, until)
            .await;
        self.held_until = match &held {
            Ok(true) => Some(until),
            _ => None,
        };
        held
    }

    /// Whether the last [`Self::hold`] succeeded (as this process last knew it).
    pub fn is_held(&self) -> bool {
        self.held_until.is_some_and(|t| t > self.clock.now())
    }

    /// Sleeps `pause`, renewing every third of the lease so that a channel waiting out an
    /// outage keeps its poster (and its backoff) rather than hopping between processes.
    /// False if the lease was lost meanwhile.
    pub async fn sleep_holding(&mut self, pause: Duration) -> bool {
        let step = (self.length / 3).max(Duration::from_millis(50));
        let deadline = tokio::time::Instant::now() + pause;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return true;
            }
            tokio::time::sleep((deadline - now).min(step)).await;
            if !matches!(self.hold().await, Ok(true)) {
                return false;
            }
        }
    }

    /// Gives the channel up (it is empty, or this process stops posting it) so that the
    /// next process with something to post need not wait for the lease to expire.
    pub async fn release(&mut self) {
        if self.held_until.take().is_some()
            && let Err(e) = self.store.release_lease(&self.name, &self.holder).await
        {
            tracing::debug!(lease = %self.name, error = %e, "lease not released; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use actors::ports::ManualClock;
    use chrono::TimeZone;

    use super::*;

    const LENGTH: Duration = Duration::from_secs(20);

    async fn store() -> (SqlStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::store::fresh_test_database_url(dir.path()).await;
        (SqlStore::connect(&url).await.unwrap(), dir)
    }

    fn lease(store: &SqlStore, holder: &str, clock: &ManualClock) -> ChannelLease {
        ChannelLease::new(
            store.clone(),
            "900",
            holder,
            LENGTH,
            Arc::new(clock.clone()),
        )
    }

    fn clock() -> ManualClock {
        ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap())
    }

    #[tokio::test]
    async fn a_live_holder_keeps_its_channel_and_a_second_process_is_refused() {
        let (s, _d) = store().await;
        let clock = clock();
        let (mut a, mut b) = (lease(&s, "web:a", &clock), lease(&s, "worker:b", &clock));
        assert!(a.hold().await.unwrap());
        assert!(!b.hold().await.unwrap(), "one poster per channel");
        // A renews before each post: as long as it does, B never gets the channel.
        for _ in 0..5 {
            clock.advance(LENGTH / 2);
            assert!(a.hold().await.unwrap());
            assert!(!b.hold().await.unwrap());
        }
        assert!(a.is_held() && !b.is_held());
    }

    #[tokio::test]
    async fn a_dead_holders_channel_is_taken_over_once_its_lease_expires_and_it_cannot_come_back() {
        let (s, _d) = store().await;
        let clock = clock();
        let (mut a, mut b) = (lease(&s, "scheduler:a", &clock), lease(&s, "web:b", &clock));
        assert!(a.hold().await.unwrap());
        // A stops renewing (killed). Until its lease runs out, B waits.
        clock.advance(LENGTH - Duration::from_secs(1));
        assert!(!b.hold().await.unwrap());
        clock.advance(Duration::from_secs(2));
        assert!(b.hold().await.unwrap(), "taken over after expiry");
        // A paused rather than dead: its next renewal fails, so it never posts beside B.
        assert!(!a.hold().await.unwrap());
        assert!(!a.is_held());
        assert_eq!(
            s.lease_holder(&lease_name("900")).await.unwrap().unwrap().0,
            "web:b"
        );
    }

    #[tokio::test]
    async fn a_released_channel_is_free_at_once_and_other_channels_are_independent() {
        let (s, _d) = store().await;
        let clock = clock();
        let (mut a, mut b) = (lease(&s, "web:a", &clock), lease(&s, "worker:b", &clock));
        let mut b_other = ChannelLease::new(
            s.clone(),
            "777",
            "worker:b",
            LENGTH,
            Arc::new(clock.clone()),
        );
        assert!(a.hold().await.unwrap());
        assert!(
            b_other.hold().await.unwrap(),
            "another channel, another lease"
        );
        a.release().await;
        assert!(!a.is_held());
        assert!(
            b.hold().await.unwrap(),
            "no wait for expiry after a release"
        );
        // Releasing again, or releasing someone else's lease, changes nothing.
        a.release().await;
        assert!(b.hold().await.unwrap());
    }

    #[test]
    fn a_post_always_ends_while_its_lease_is_held() {
        for secs in [1, 2, 5, 20, 30, 120] {
            let lease = Duration::from_secs(secs);
            let timeout = request_timeout(lease);
            assert!(timeout * 2 <= lease, "{secs} s");
            assert!(timeout <= REQUEST_TIMEOUT);
        }
        assert_eq!(request_timeout(Duration::from_secs(60)), REQUEST_TIMEOUT);
    }
}
