//! The simulator's results: latency summaries, the JSON report, the human summary and the
//! SVG plot of replies over time against the ideal line N·L/C.
//!
//! Must not: measure anything — it only summarises what `simulate` recorded.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// p50 / p99 / max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Self {
            count: samples.len(),
            p50_ms: ms(percentile(samples, 50.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples[samples.len() - 1]),
        }
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A burst of webhooks against one endpoint.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Burst {
    pub requests: usize,
    /// Answered 200.
    pub accepted: usize,
    /// Any other status or a transport error.
    pub rejected: usize,
    pub elapsed_secs: f64,
    pub webhooks_per_sec: f64,
    pub ack: Latency,
}

/// Resident memory of one service process, from /proc/PID/status.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ProcessMemory {
    pub name: String,
    pub pid: u32,
    /// VmRSS once ready, before any webhook.
    pub idle_rss_kib: Option<u64>,
    /// VmRSS just before the burst (after any history seeding).
    pub before_burst_rss_kib: Option<u64>,
    /// VmRSS after every lead was answered.
    pub after_rss_kib: Option<u64>,
    /// VmHWM: the peak over the process's life.
    pub peak_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    pub backend: String,
    pub target: String,
    pub leads: usize,
    pub history_per_lead: usize,
    pub model_latency_ms: u64,
    pub jitter_ms: u64,
    pub concurrency: usize,
    pub workers: usize,
    pub client_concurrency: usize,
    /// Webhooks per second when paced (open loop); `None`: back to back.
    pub rate: Option<f64>,
    pub ack_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    pub config: SimConfig,
    /// The load generator against an endpoint that does nothing, same requests and client
    /// concurrency: its ceiling. Absent with `--no-ceiling`.
    pub generator_ceiling: Option<Burst>,
    /// The burst against the service.
    pub webhooks: Burst,
    /// Leads with at least one reply at the fake Twilio.
    pub answered: usize,
    /// Leads with no reply when the run ended (0 with `--ack-only`: not waited for).
    pub lost: usize,
    /// Replies beyond the first, summed over leads.
    pub duplicated: usize,
    /// First webhook sent → last first-reply received.
    pub drain_secs: Option<f64>,
    /// N·L/C.
    pub ideal_drain_secs: f64,
    pub drain_ratio: Option<f64>,
    /// The mean latency the fake model actually delivered (request in → answer out, in the
    /// simulator's process): above L when the machine is loaded.
    pub observed_model_latency_ms: Option<f64>,
    /// Drain time against N·L'/C with L' the observed latency: the pipeline's own share.
    pub drain_ratio_observed: Option<f64>,
    /// Webhook sent → the lead's first reply at Twilio.
    pub first_response: Latency,
    pub model_calls: u64,
    pub max_model_concurrency: usize,
    pub memory: Vec<ProcessMemory>,
    /// Sum of the processes' peaks (an upper bound of the service's footprint).
    pub peak_rss_kib: Option<u64>,
    /// (after − before burst) / leads: what each answered lead left resident (its actor and
    /// window, plus its share of caches and allocator slack).
    pub rss_growth_per_lead_kib: Option<f64>,
    /// Peak − before burst: the most the burst added at any moment.
    pub peak_growth_kib: Option<u64>,
    /// Seconds since the first webhook at which each reply arrived (first reply per lead),
    /// for the plot.
    #[serde(skip)]
    pub reply_times: Vec<f64>,
}

fn fmt_kib(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

impl SimReport {
    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "lead-agent simulate: {} leads, L = {} ms ± {} ms, C = {}, {} backend ({}), {} clients",
            c.leads,
            c.model_latency_ms,
            c.jitter_ms,
            c.concurrency,
            c.backend,
            c.target,
            c.client_concurrency
        );
        if let Some(g) = &self.generator_ceiling {
            let _ = writeln!(
                s,
                "  generator ceiling (trivial endpoint): {:.0} req/s, ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                g.webhooks_per_sec, g.ack.p50_ms, g.ack.p99_ms, g.ack.max_ms
            );
        }
        let w = &self.webhooks;
        let _ = writeln!(
            s,
            "  webhooks: {} accepted, {} rejected, {:.0} webhooks/s; ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            w.accepted, w.rejected, w.webhooks_per_sec, w.ack.p50_ms, w.ack.p99_ms, w.ack.max_ms
        );
        if !c.ack_only {
            let _ = writeln!(
                s,
                "  drain: {} s (ideal N·L/C = {:.2} s, ratio {}); first response p50 {:.0} ms, p99 {:.0} ms",
                self.drain_secs.map_or("n/a".into(), |d| format!("{d:.2}")),
                self.ideal_drain_secs,
                self.drain_ratio.map_or("n/a".into(), |r| format!("{r:.4}")),
                self.first_response.p50_ms,
                self.first_response.p99_ms
            );
            if let (Some(l), Some(r)) = (self.observed_model_latency_ms, self.drain_ratio_observed)
            {
                let _ = writeln!(
                    s,
                    "  the fake model's observed latency {l:.1} ms: drain / (N·L'/C) = {r:.4}"
                );
            }
            let _ = writeln!(
                s,
                "  answered {} / {}, lost {}, duplicated {}; model calls {}, max model concurrency {}",
                self.answered,
                c.leads,
                self.lost,
                self.duplicated,
                self.model_calls,
                self.max_model_concurrency
            );
        }
        for m in &self.memory {
            let _ = writeln!(
                s,
                "  memory {} (pid {}): idle {}, before burst {}, after {}, peak {}",
                m.name,
                m.pid,
                fmt_kib(m.idle_rss_kib),
                fmt_kib(m.before_burst_rss_kib),
                fmt_kib(m.after_rss_kib),
                fmt_kib(m.peak_rss_kib)
            );
        }
        if let Some(per) = self.rss_growth_per_lead_kib {
            let _ = writeln!(
                s,
                "  RSS growth per answered lead {per:.2} KiB; peak growth {}",
                fmt_kib(self.peak_growth_kib)
            );
        }
        s
    }

    /// Replies over time against the ideal line, as a self-contained SVG.
    pub fn svg(&self) -> String {
        plot_svg(
            &self.reply_times,
            self.config.leads,
            self.config.concurrency,
            self.config.model_latency_ms as f64 / 1000.0,
            &format!(
                "{} leads, L = {} ms, C = {}, {}: drain {} (ratio {})",
                self.config.leads,
                self.config.model_latency_ms,
                self.config.concurrency,
                self.config.backend,
                self.drain_secs
                    .map_or("n/a".into(), |d| format!("{d:.2} s")),
                self.drain_ratio.map_or("n/a".into(), |r| format!("{r:.3}"))
            ),
        )
    }
}

/// Cumulative replies (one step per reply time, seconds) against the ideal: C replies
/// every L seconds, N in total.
pub fn plot_svg(
    reply_times: &[f64],
    leads: usize,
    concurrency: usize,
    latency_secs: f64,
    title: &str,
) -> String {
    const W: f64 = 800.0;
    const H: f64 = 500.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 50.0;
    let mut times: Vec<f64> = reply_times.to_vec();
    times.sort_by(f64::total_cmp);
    let ideal_end = leads as f64 * latency_secs / concurrency.max(1) as f64;
    let x_max = times
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(ideal_end)
        .max(0.001)
        * 1.05;
    let y_max = (leads.max(times.len()).max(1)) as f64;
    let px = |t: f64| LEFT + t / x_max * (W - LEFT - RIGHT);
    let py = |n: f64| H - BOTTOM - n / y_max * (H - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        xml_escape(title)
    );
    // Axes and ticks.
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        H - BOTTOM,
        W - RIGHT
    );
    for i in 0..=5 {
        let t = x_max / 5.0 * i as f64;
        let n = y_max / 5.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{t:.1}</text><text x="{}" y="{:.1}" text-anchor="end">{n:.0}</text><path d="M{LEFT},{:.1} H{}" stroke="#eee"/>"##,
            px(t),
            H - BOTTOM + 18.0,
            LEFT - 6.0,
            py(n) + 4.0,
            py(n),
            W - RIGHT
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since the first webhook</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">leads answered</text>"#,
        H / 2.0,
        H / 2.0
    );
    // Ideal: C·t/L, capped at N.
    let _ = writeln!(
        svg,
        r##"<path d="M{:.1},{:.1} L{:.1},{:.1} H{:.1}" fill="none" stroke="#999" stroke-dasharray="6 4" stroke-width="2"/>"##,
        px(0.0),
        py(0.0),
        px(ideal_end),
        py(leads as f64),
        px(x_max)
    );
    // Actual: a step up at each reply.
    let mut d = format!("M{:.1},{:.1}", px(0.0), py(0.0));
    for (i, t) in times.iter().enumerate() {
        let _ = write!(d, " H{:.1} V{:.1}", px(*t), py((i + 1) as f64));
    }
    let _ = writeln!(
        svg,
        r##"<path d="{d}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" fill="#1f77b4">replies at Twilio</text><text x="{}" y="{}" fill="#777">ideal N·L/C = {ideal_end:.2} s</text>"##,
        LEFT + 12.0,
        TOP + 16.0,
        LEFT + 12.0,
        TOP + 32.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(&mut samples);
        assert_eq!(
            (l.count, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(Latency::of(&mut one).p99_ms, 7.0);
        assert_eq!(Latency::of(&mut []), Latency::default());
    }

    #[test]
    fn the_plot_has_one_step_per_reply_and_the_ideal_line() {
        let svg = plot_svg(&[0.5, 1.0, 1.0, 2.0], 4, 2, 1.0, "a <title>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(" V").count(), 4 + 1, "{svg}"); // 4 steps + the y axis
        assert!(svg.contains("ideal N·L/C = 2.00 s"));
        assert!(svg.contains("a &lt;title&gt;"));
    }
}
