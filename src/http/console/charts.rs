//! The console's charts of the last 24 hours, server-rendered SVG (no library, no script):
//! SMS sent per hour, and first-response time p50 / p95 per hour (inbound message to its
//! reply's send), from what the store keeps (`crate::store::activity`).
//!
//! Their own page (`/ops/charts`): a day's messages are read on each load (BENCHMARKS.md
//! "Console inbox" has the cost), which the inbox must not pay.
//! Owns: bucketing by hour and the bars' geometry, as numbers the template writes into
//! `<rect>` attributes (escaped like any value; no markup is built here).
//! Must not: read anything but the store, or sample: series the service does not store
//! (queue depth, model latency per provider) are not charted, and the page says so.

use chrono::{DateTime, Duration, Utc};

use crate::http::AppState;

pub const WIDTH: u32 = 480;
pub const HEIGHT: u32 = 120;
const HOURS: usize = 24;

pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    /// The top of the scale, worded (`12 SMS`, `4500 ms`).
    pub max: String,
    pub bars: Vec<Bar>,
    /// Nothing in the window.
    pub empty: bool,
}

pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// `p50`, `p95` or `n`: the CSS class (colour).
    pub class: &'static str,
    /// The tooltip: hour and value.
    pub label: String,
}

/// `GET /ops/charts`: the page.
#[derive(askama::Template)]
#[template(path = "ops/charts.html")]
pub struct ChartsPage {
    pub csrf: String,
    pub now: String,
    pub charts: Charts,
}

pub struct Charts {
    /// SMS sent per hour, then first-response time.
    pub list: Vec<Chart>,
    pub error: Option<String>,
}

/// The hour bucket (0 = the oldest) of `t` in the 24 hours ending at `now`.
fn bucket(now: DateTime<Utc>, t: DateTime<Utc>) -> Option<usize> {
    let age = (now - t).num_seconds();
    if !(0..(HOURS as i64) * 3600).contains(&age) {
        return None;
    }
    Some(HOURS - 1 - (age / 3600) as usize)
}

/// The `q` quantile (nearest rank) of sorted `v`.
fn quantile(v: &[i64], q: f64) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn hour_label(now: DateTime<Utc>, i: usize) -> String {
    let start = now - Duration::hours((HOURS - i) as i64);
    start.format("%H:%M").to_string()
}

/// Bars of `series` (per bucket, one or more values with their class), scaled to the
/// largest value.
fn chart(
    id: &'static str,
    title: &'static str,
    now: DateTime<Utc>,
    series: &[Vec<(&'static str, i64)>],
    unit: &str,
) -> Chart {
    let max = series
        .iter()
        .flat_map(|b| b.iter().map(|(_, v)| *v))
        .max()
        .unwrap_or(0);
    let slot = WIDTH / HOURS as u32;
    let mut bars = Vec::new();
    for (i, values) in series.iter().enumerate() {
        let n = values.len().max(1) as u32;
        let w = (slot - 2) / n;
        for (k, (class, v)) in values.iter().enumerate() {
            let h = if max == 0 {
                0
            } else {
                ((*v as f64 / max as f64) * HEIGHT as f64).round() as u32
            };
            bars.push(Bar {
                x: i as u32 * slot + 1 + k as u32 * w,
                y: HEIGHT - h,
                w,
                h,
                class,
                label: format!("{} {class} {v} {unit}", hour_label(now, i)),
            });
        }
    }
    Chart {
        id,
        title,
        max: format!("{max} {unit}"),
        bars,
        empty: max == 0,
    }
}

/// Both charts from the raw rows, as of `now`.
pub fn build(
    now: DateTime<Utc>,
    responses: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    sent: &[DateTime<Utc>],
) -> (Chart, Chart) {
    let mut counts = [0i64; HOURS];
    for t in sent {
        if let Some(b) = bucket(now, *t) {
            counts[b] += 1;
        }
    }
    let mut waits: Vec<Vec<i64>> = vec![Vec::new(); HOURS];
    for (inbound, reply) in responses {
        if let (Some(b), Some(r)) = (bucket(now, *inbound), reply) {
            waits[b].push((*r - *inbound).num_milliseconds().max(0));
        }
    }
    let sent_series: Vec<Vec<(&'static str, i64)>> =
        counts.iter().map(|c| vec![("n", *c)]).collect();
    let response_series: Vec<Vec<(&'static str, i64)>> = waits
        .iter_mut()
        .map(|w| {
            w.sort_unstable();
            vec![("p50", quantile(w, 0.5)), ("p95", quantile(w, 0.95))]
        })
        .collect();
    (
        chart("chart-sent", "SMS sent per hour", now, &sent_series, "SMS"),
        chart(
            "chart-first-response",
            "First response p50 / p95 per hour (inbound to its reply's send)",
            now,
            &response_series,
            "ms",
        ),
    )
}

/// The charts of the 24 hours ending now.
pub async fn gather(state: &AppState) -> Charts {
    let now = Utc::now();
    let since = now - Duration::hours(HOURS as i64);
    let rows = async {
        Ok::<_, actors::ports::StoreError>((
            state.store.responses_since(since).await?,
            state.store.sent_since(since).await?,
        ))
    }
    .await;
    match rows {
        Ok((responses, sent)) => {
            let (sent, first_response) = build(now, &responses, &sent);
            Charts {
                list: vec![sent, first_response],
                error: None,
            }
        }
        Err(e) => {
            let (sent, first_response) = build(now, &[], &[]);
            Charts {
                list: vec![sent, first_response],
                error: Some(e.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn replies_fall_in_their_hour_and_the_quantiles_are_nearest_rank() {
        let now = Utc.with_ymd_and_hms(2026, 1, 2, 12, 30, 0).unwrap();
        let at = |mins_ago: i64| now - Duration::minutes(mins_ago);
        let sent = [at(5), at(10), at(70), at(60 * 30)];
        // The last hour: replies after 2, 4 and 60 s; the hour before: one after 10 s; one
        // never answered.
        let responses = [
            (at(20), Some(at(20) + Duration::seconds(2))),
            (at(21), Some(at(21) + Duration::seconds(4))),
            (at(22), Some(at(22) + Duration::seconds(60))),
            (at(80), Some(at(80) + Duration::seconds(10))),
            (at(30), None),
        ];
        let (sent, first) = build(now, &responses, &sent);
        let last = |c: &Chart, class: &str| {
            c.bars
                .iter()
                .rev()
                .find(|b| b.class == class)
                .unwrap()
                .label
                .clone()
        };
        assert_eq!(
            sent.max, "2 SMS",
            "two in the last hour, the 30 h old one left out"
        );
        assert_eq!(last(&sent, "n"), "11:30 n 2 SMS");
        assert_eq!(last(&first, "p50"), "11:30 p50 4000 ms");
        assert_eq!(last(&first, "p95"), "11:30 p95 60000 ms");
        assert_eq!(first.max, "60000 ms");
        let full = first
            .bars
            .iter()
            .find(|b| b.label == "11:30 p95 60000 ms")
            .unwrap();
        assert_eq!(
            (full.h, full.y),
            (HEIGHT, 0),
            "the largest value fills the chart"
        );
        assert!(first.bars.iter().all(|b| b.x + b.w <= WIDTH));
        let (empty, _) = build(now, &[], &[]);
        assert!(empty.empty && empty.bars.iter().all(|b| b.h == 0));
    }
}
