//! Parked leads: a lead that is not answered for a while, whatever parked it, and the
//! reply-loop guard that parks a lead we have answered too often.
//!
//! Owns: [`ParkStore`] (the port: parks live in the store, so every worker agrees on who is
//! parked and a park outlives the process that set it), [`Park`] and [`ParkReason`], the
//! [`ParkPolicy`] (`REPLY_CAP_PER_HOUR`, `REPLY_CAP_PER_DAY`, `PARK_SECS`) and
//! [`check_turn`], which a lead actor asks before a turn: parked (skip the turn), newly
//! parked by a reply cap (skip it and alert), or go. Why caps: another business's
//! auto-responder texting us got an answer to every message, forever, at model and SMS cost.
//! Why in the store: each worker once kept its own in-memory set of parked leads, lost at
//! restart, so a lead was parked on one worker and answered by the next.
//! Must not: drop or mark a parked lead's messages (they stay pending in the store, shown by
//! /ops, and get one turn when the lead is unparked), or count replies anywhere but the
//! store (an in-process count would let N workers send N times the cap).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alert_router::Alert;
use crate::ports::{LeadId, StoreError};

/// Why a lead is parked: the `reason` column, shown by /ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParkReason {
    /// More than `REPLY_CAP_PER_HOUR` replies in an hour.
    ReplyCapHour,
    /// More than `REPLY_CAP_PER_DAY` replies in 24 hours.
    ReplyCapDay,
    /// Its actor failed more than `LEAD_RESTART_MAX` times in `LEAD_RESTART_WINDOW_SECS`
    /// (the supervisor's intensity limit), or kept outgrowing its memory budget.
    Restarts,
}

impl ParkReason {
    pub fn label(self) -> &'static str {
        match self {
            ParkReason::ReplyCapHour => "reply_cap_hour",
            ParkReason::ReplyCapDay => "reply_cap_day",
            ParkReason::Restarts => "restarts",
        }
    }

    pub fn parse(label: &str) -> Option<Self> {
        [Self::ReplyCapHour, Self::ReplyCapDay, Self::Restarts]
            .into_iter()
            .find(|r| r.label() == label)
    }
}

/// One park as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Park {
    pub lead: LeadId,
    pub reason: ParkReason,
    pub parked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What the store knows of one lead's parks at a moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParkState {
    /// The park in force, if any (not unparked, not expired).
    pub active: Option<Park>,
    /// When the lead's last park ended (unparked, or expired): the reply caps count from
    /// then, so a lead just unparked is not parked again at once for the replies that
    /// parked it.
    pub released_at: Option<DateTime<Utc>>,
    /// A synthetic lead (`lead-agent watch`/`verify`'s number): the reply caps do not apply
    /// — the watch texts every few minutes, all day, and must keep getting its answer. A
    /// restart park still does.
    pub exempt: bool,
}

/// The port: parks and the reply counts the guard needs, in the store.
#[async_trait]
pub trait ParkStore: Send + Sync + 'static {
    /// Parks the lead, replacing any earlier park of it.
    async fn park(&self, park: &Park) -> Result<(), StoreError>;
    /// The lead's park state as of `now`.
    async fn park_state(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<ParkState, StoreError>;
    /// Ends the lead's park in force at `now`; returns it, or `None` if none was in force.
    async fn unpark(&self, lead: &LeadId, now: DateTime<Utc>) -> Result<Option<Park>, StoreError>;
    /// Every park in force at `now`, oldest first.
    async fn parked(&self, now: DateTime<Utc>) -> Result<Vec<Park>, StoreError>;
    /// Replies to the lead this service committed at or after `since` that went or may go
    /// out (queued, sending, sent, in doubt): what the caps count. Imported history is not
    /// counted.
    async fn replies_since(&self, lead: &LeadId, since: DateTime<Utc>) -> Result<u32, StoreError>;
}

/// `REPLY_CAP_PER_HOUR`, `REPLY_CAP_PER_DAY`, `PARK_SECS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParkPolicy {
    pub per_hour: u32,
    pub per_day: u32,
    pub park_for: Duration,
}

impl Default for ParkPolicy {
    fn default() -> Self {
        Self {
            per_hour: 20,
            per_day: 60,
            park_for: Duration::from_secs(86_400),
        }
    }
}

impl ParkPolicy {
    /// A park of `lead` for `reason` starting `now`, lasting `PARK_SECS`.
    pub fn park(&self, lead: &LeadId, reason: ParkReason, now: DateTime<Utc>) -> Park {
        Park {
            lead: lead.clone(),
            reason,
            parked_at: now,
            expires_at: now
                + chrono::Duration::from_std(self.park_for).unwrap_or(chrono::Duration::MAX),
        }
    }
}

/// What a lead actor does with pending messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnGate {
    /// Answer them.
    Go,
    /// Parked already: leave them pending, no turn.
    Parked(Park),
    /// Parked now by a reply cap (and alerted): leave them pending, no turn.
    NewlyParked(Park),
}

/// Asks the store whether `lead` may have a turn now; parks it (with an alert naming the
/// lead and the cap) when the next reply would go over a cap.
pub async fn check_turn(
    parks: &dyn ParkStore,
    policy: &ParkPolicy,
    alerts: &crate::alert_router::AlertHandle,
    lead: &LeadId,
    now: DateTime<Utc>,
) -> Result<TurnGate, StoreError> {
    let state = parks.park_state(lead, now).await?;
    if let Some(park) = state.active {
        return Ok(TurnGate::Parked(park));
    }
    if state.exempt {
        return Ok(TurnGate::Go);
    }
    let since = |window: chrono::Duration| {
        let start = now - window;
        state.released_at.map_or(start, |r| r.max(start))
    };
    let hour = parks
        .replies_since(lead, since(chrono::Duration::hours(1)))
        .await?;
    let over = if hour >= policy.per_hour {
        Some((ParkReason::ReplyCapHour, hour, policy.per_hour, "hour"))
    } else {
        let day = parks
            .replies_since(lead, since(chrono::Duration::hours(24)))
            .await?;
        (day >= policy.per_day).then_some((
            ParkReason::ReplyCapDay,
            day,
            policy.per_day,
            "24 hours",
        ))
    };
    let Some((reason, count, cap, window)) = over else {
        return Ok(TurnGate::Go);
    };
    let park = policy.park(lead, reason, now);
    parks.park(&park).await?;
    metrics::counter!("lead_agent_leads_parked_total", "reason" => reason.label()).increment(1);
    alerts.raise(
        Alert::error(
            "lead_parked",
            format!(
                "Lead {lead} parked ({}): {count} replies in the last {window} reached the cap \
                 of {cap} — a reply loop with another bot? Its messages are stored, not \
                 answered, until {} or an unpark (/ops, `lead-agent unpark {lead}`).",
                reason.label(),
                park.expires_at.format("%Y-%m-%d %H:%M UTC"),
            ),
        )
        .for_lead(lead),
    );
    Ok(TurnGate::NewlyParked(park))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Clock, ManualClock};
    use crate::testing::{MemStore, test_alerts, wait_for};

    fn policy() -> ParkPolicy {
        ParkPolicy {
            per_hour: 3,
            per_day: 5,
            park_for: Duration::from_secs(3600 * 6),
        }
    }

    fn lead() -> LeadId {
        LeadId::new("+13125550100")
    }

    #[test]
    fn reasons_round_trip_through_their_labels() {
        for r in [
            ParkReason::ReplyCapHour,
            ParkReason::ReplyCapDay,
            ParkReason::Restarts,
        ] {
            assert_eq!(ParkReason::parse(r.label()), Some(r));
        }
        assert_eq!(ParkReason::parse("nope"), None);
    }

    #[tokio::test]
    async fn the_hourly_cap_parks_the_lead_with_an_alert_naming_it_and_the_cap() {
        let (alerts, sink) = test_alerts().await;
        let store = MemStore::default();
        let clock = ManualClock::new(Utc::now());
        let now = clock.now();
        for m in 0..2 {
            store.add_reply_at(&lead(), now - chrono::Duration::minutes(50 - m));
        }
        let gate = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        assert_eq!(gate, TurnGate::Go, "2 replies, cap 3: the third may go");
        store.add_reply_at(&lead(), now);
        let gate = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        let TurnGate::NewlyParked(park) = gate else {
            panic!("{gate:?}")
        };
        assert_eq!(park.reason, ParkReason::ReplyCapHour);
        assert_eq!(park.expires_at, now + chrono::Duration::hours(6));
        wait_for(|| !sink.alerts().is_empty()).await;
        let alert = &sink.alerts()[0];
        assert_eq!(alert.event, "lead_parked");
        assert!(alert.text.contains("+13125550100"), "{}", alert.text);
        assert!(alert.text.contains("cap of 3"), "{}", alert.text);
        // Parked stays parked (no second alert), whoever asks.
        let again = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        assert!(matches!(again, TurnGate::Parked(_)), "{again:?}");
        assert_eq!(store.parked(now).await.unwrap(), vec![park]);
    }

    #[tokio::test]
    async fn replies_older_than_an_hour_count_only_for_the_daily_cap() {
        let (alerts, _sink) = test_alerts().await;
        let store = MemStore::default();
        let now = Utc::now();
        // 4 replies spread over the day, none in the last hour: under the hourly cap.
        for h in [20, 10, 5, 2] {
            store.add_reply_at(&lead(), now - chrono::Duration::hours(h));
        }
        let gate = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        assert_eq!(gate, TurnGate::Go);
        store.add_reply_at(&lead(), now - chrono::Duration::minutes(1));
        let gate = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        let TurnGate::NewlyParked(park) = gate else {
            panic!("{gate:?}")
        };
        assert_eq!(park.reason, ParkReason::ReplyCapDay);
        // A day later the old replies are out of the window as well.
        let other = LeadId::new("+13125550101");
        store.add_reply_at(&other, now - chrono::Duration::hours(25));
        store.add_reply_at(&other, now - chrono::Duration::hours(25));
        store.add_reply_at(&other, now - chrono::Duration::hours(25));
        store.add_reply_at(&other, now - chrono::Duration::hours(25));
        store.add_reply_at(&other, now - chrono::Duration::hours(25));
        let gate = check_turn(&store, &policy(), &alerts, &other, now)
            .await
            .unwrap();
        assert_eq!(gate, TurnGate::Go);
    }

    #[tokio::test]
    async fn our_own_probes_number_is_not_capped() {
        let (alerts, _sink) = test_alerts().await;
        let store = MemStore::default();
        let now = Utc::now();
        store.set_synthetic(&lead());
        for _ in 0..10 {
            store.add_reply_at(&lead(), now);
        }
        let gate = check_turn(&store, &policy(), &alerts, &lead(), now)
            .await
            .unwrap();
        assert_eq!(gate, TurnGate::Go);
    }

    #[tokio::test]
    async fn a_park_expires_by_itself_and_the_caps_count_from_its_end() {
        let (alerts, _sink) = test_alerts().await;
        let store = MemStore::default();
        let clock = ManualClock::new(Utc::now());
        let t0 = clock.now();
        for _ in 0..3 {
            store.add_reply_at(&lead(), t0);
        }
        let gate = check_turn(&store, &policy(), &alerts, &lead(), t0)
            .await
            .unwrap();
        assert!(matches!(gate, TurnGate::NewlyParked(_)), "{gate:?}");
        clock.advance(Duration::from_secs(3600 * 6 - 1));
        assert!(
            store
                .park_state(&lead(), clock.now())
                .await
                .unwrap()
                .active
                .is_some()
        );
        clock.advance(Duration::from_secs(2));
        let state = store.park_state(&lead(), clock.now()).await.unwrap();
        assert_eq!(state.active, None, "expired");
        assert_eq!(state.released_at, Some(t0 + chrono::Duration::hours(6)));
        assert!(store.parked(clock.now()).await.unwrap().is_empty());
        let gate = check_turn(&store, &policy(), &alerts, &lead(), clock.now())
            .await
            .unwrap();
        assert_eq!(gate, TurnGate::Go);
    }

    #[tokio::test]
    async fn an_unpark_restarts_the_counters_so_the_lead_is_not_parked_again_at_once() {
        let (alerts, _sink) = test_alerts().await;
        let store = MemStore::default();
        let clock = ManualClock::new(Utc::now());
        let t0 = clock.now();
        for _ in 0..3 {
            store.add_reply_at(&lead(), t0);
        }
        assert!(matches!(
            check_turn(&store, &policy(), &alerts, &lead(), t0)
                .await
                .unwrap(),
            TurnGate::NewlyParked(_)
        ));
        clock.advance(Duration::from_secs(60));
        let ended = store.unpark(&lead(), clock.now()).await.unwrap();
        assert_eq!(ended.map(|p| p.reason), Some(ParkReason::ReplyCapHour));
        assert_eq!(store.unpark(&lead(), clock.now()).await.unwrap(), None);
        // The three replies are within the hour, but before the unpark: not counted.
        assert_eq!(
            check_turn(&store, &policy(), &alerts, &lead(), clock.now())
                .await
                .unwrap(),
            TurnGate::Go
        );
        // New replies after the unpark count again.
        for _ in 0..3 {
            store.add_reply_at(&lead(), clock.now());
        }
        assert!(matches!(
            check_turn(&store, &policy(), &alerts, &lead(), clock.now())
                .await
                .unwrap(),
            TurnGate::NewlyParked(_)
        ));
    }
}
