//! What the fake Twilio's log says about a run: leads answered, lost and duplicated,
//! first-response times, and the report built from them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use testkit::fake_anthropic::FakeAnthropic;
use testkit::fake_twilio::FakeTwilio;

use super::args::{Backend, SimulateArgs};
use super::burst::*;
use super::report::{Burst, Latency, ProcessMemory, SimConfig, SimReport};
use super::service::*;

pub(super) fn count_answered(sends: &[(String, Instant)], leads: &[String]) -> usize {
    let seen: std::collections::HashSet<&str> = sends.iter().map(|(to, _)| to.as_str()).collect();
    leads.iter().filter(|l| seen.contains(l.as_str())).count()
}

/// What the fake Twilio's log says about the leads of a run.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Leads with at least one reply.
    pub(super) answered: usize,
    /// Replies beyond each lead's first.
    pub(super) duplicated: usize,
    /// Per answered lead: its webhook sent → its first reply.
    pub(super) first_response: Vec<Duration>,
    /// Per answered lead: seconds from `t0` to its first reply.
    pub(super) reply_times: Vec<f64>,
}

/// `sent_at[i]` is when lead `i`'s webhook went out; sends to numbers that are not leads
/// of this run are ignored.
pub(super) fn tally(sends: &[(String, Instant)], sent_at: &[Instant], t0: Instant) -> Tally {
    let mut per_lead: HashMap<&str, (usize, Instant)> = HashMap::new();
    for (to, at) in sends {
        per_lead
            .entry(to.as_str())
            .and_modify(|(n, first)| {
                *n += 1;
                *first = (*first).min(*at);
            })
            .or_insert((1, *at));
    }
    let mut t = Tally::default();
    for (i, sent) in sent_at.iter().enumerate() {
        if let Some((n, first)) = per_lead.get(lead_number(i).as_str()) {
            t.answered += 1;
            t.duplicated += n - 1;
            t.first_response
                .push(first.saturating_duration_since(*sent));
            t.reply_times
                .push(first.saturating_duration_since(t0).as_secs_f64());
        }
    }
    t
}

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    args: &SimulateArgs,
    target: &Target,
    twilio: &FakeTwilio,
    model: &FakeAnthropic,
    generator_ceiling: Option<Burst>,
    webhooks: Burst,
    sent_at: &[Instant],
    t0: Instant,
) -> SimReport {
    let Tally {
        answered,
        duplicated,
        mut first_response,
        reply_times,
    } = tally(&twilio.sends_at(), sent_at, t0);
    let lost = if args.ack_only {
        0
    } else {
        args.leads - answered
    };
    let drain_secs =
        (!args.ack_only && answered > 0).then(|| reply_times.iter().copied().fold(0.0, f64::max));
    let ideal = args.ideal_drain_secs();
    let memory: Vec<ProcessMemory> = target
        .processes
        .iter()
        .map(|p| p.memory.clone())
        .chain(target.foreign.iter().cloned())
        .collect();
    let sum = |f: fn(&ProcessMemory) -> Option<u64>| -> Option<u64> {
        memory
            .iter()
            .map(f)
            .sum::<Option<u64>>()
            .filter(|_| !memory.is_empty())
    };
    let before = sum(|m| m.before_burst_rss_kib);
    let after = sum(|m| m.after_rss_kib);
    let peak = sum(|m| m.peak_rss_kib);
    let rss_growth_per_lead_kib = match (before, after) {
        // With --ack-only the leads were not waited for: no per-lead figure.
        (Some(b), Some(a)) if answered > 0 && !args.ack_only => {
            Some((a as f64 - b as f64) / answered as f64)
        }
        _ => None,
    };
    SimReport {
        config: SimConfig {
            backend: match (&args.url, args.backend) {
                (Some(_), _) => "external".into(),
                (None, Backend::Embedded) => "embedded".into(),
                (None, Backend::PostgresRabbitmq) => "postgres-rabbitmq".into(),
            },
            target: target.web_url.clone(),
            leads: args.leads,
            history_per_lead: args.history,
            model_latency_ms: args.model_latency_ms,
            jitter_ms: args.jitter_ms,
            concurrency: args.concurrency,
            workers: match (&args.url, args.backend) {
                (None, Backend::PostgresRabbitmq) => args.workers,
                _ => 1,
            },
            client_concurrency: args.client_concurrency,
            rate: args.rate,
            ack_only: args.ack_only,
        },
        generator_ceiling,
        webhooks,
        answered,
        lost,
        duplicated,
        drain_secs,
        ideal_drain_secs: ideal,
        // With L = 0 there is no bound to compare with.
        drain_ratio: drain_secs.filter(|_| ideal > 0.0).map(|d| d / ideal),
        observed_model_latency_ms: model.mean_call_ms(),
        drain_ratio_observed: match (drain_secs, model.mean_call_ms()) {
            (Some(d), Some(l)) if l > 0.0 => {
                Some(d / (args.leads as f64 * l / 1000.0 / args.concurrency as f64))
            }
            _ => None,
        },
        first_response: Latency::of(&mut first_response),
        model_calls: model.calls(),
        max_model_concurrency: model.max_in_flight(),
        memory,
        peak_rss_kib: peak,
        rss_growth_per_lead_kib,
        peak_growth_kib: match (before, peak) {
            (Some(b), Some(p)) => Some(p.saturating_sub(b)),
            _ => None,
        },
        reply_times,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_and_duplicated_replies_are_counted_per_lead() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let sent_at = vec![at(0), at(5), at(10)];
        let sends = vec![
            (lead_number(0), at(1000)),
            (lead_number(2), at(1500)),
            (lead_number(0), at(900)), // a duplicate, earlier in the log order's terms
            (lead_number(0), at(2000)),
            ("+19999999999".to_string(), at(10)), // not a lead of this run
        ];
        let t = tally(&sends, &sent_at, t0);
        assert_eq!(t.answered, 2, "lead 1 got nothing");
        assert_eq!(t.duplicated, 2, "lead 0 got three replies");
        let mut first: Vec<u128> = t.first_response.iter().map(|d| d.as_millis()).collect();
        first.sort();
        assert_eq!(first, vec![900, 1490]);
        assert!(t.reply_times.contains(&0.9) && t.reply_times.contains(&1.5));
    }
}
