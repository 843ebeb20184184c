//! `simulate`'s command line: the arguments, their defaults, and the combinations it
//! refuses before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;

/// Where the service under test comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// One `serve` process on the embedded defaults: SQLite and the in-process queue.
    Embedded,
    /// `serve --role web` plus `--workers` × `serve --role worker` on a fresh PostgreSQL
    /// database and a fresh RabbitMQ queue (both removed afterwards).
    PostgresRabbitmq,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// How many leads text at once (one webhook each, each from its own number).
    #[arg(long, default_value_t = 600)]
    pub leads: usize,
    /// The fake model's latency L, per call.
    #[arg(long, default_value_t = 1000)]
    pub model_latency_ms: u64,
    /// Uniform jitter added to each call's latency, ± this much (the mean stays L).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// C: the model calls the service may run at once, in total (split evenly over
    /// `--workers` with the PostgreSQL + RabbitMQ backend).
    #[arg(long, default_value_t = 12)]
    pub concurrency: usize,
    /// Webhook requests in flight at once from the load generator (keep-alive connections).
    #[arg(long, default_value_t = 64)]
    pub client_concurrency: usize,
    /// Which service to start; ignored with `--url`.
    #[arg(long, value_enum, default_value_t = Backend::Embedded)]
    pub backend: Backend,
    /// Worker processes for `--backend postgres-rabbitmq`.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// `--backend postgres-rabbitmq`: a PostgreSQL URL allowed to CREATE DATABASE; the run
    /// uses a fresh database made through it and drops it at the end.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub admin_database_url: String,
    /// `--backend postgres-rabbitmq`: the broker; the run declares its own queue and deletes
    /// it at the end.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Target a service that is already running instead of starting one. Start it with
    /// TWILIO_API_BASE and ANTHROPIC_BASE_URL pointing at `--fake-twilio-addr` and
    /// `--fake-model-addr`; webhooks are signed with its TWILIO_AUTH_TOKEN (read from this
    /// environment) against PUBLIC_BASE_URL (or `--public-url`).
    #[arg(long)]
    pub url: Option<String>,
    /// With `--url`: the URL Twilio would sign (default PUBLIC_BASE_URL, else `--url`).
    #[arg(long)]
    pub public_url: Option<String>,
    /// With `--url`: process ids of the service whose memory to report (repeatable).
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Where the fake Twilio listens (fix it for `--url`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub fake_twilio_addr: SocketAddr,
    /// Where the fake Anthropic listens (fix it for `--url`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub fake_model_addr: SocketAddr,
    /// Stored history per lead before the run (answered/sent lines of ~200 bytes, so 40
    /// fill the default window): the memory scenarios. Not with `--url`.
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// Open-loop pacing: send webhook i at i/RATE seconds (at most `--client-concurrency`
    /// in flight). Without it the clients send back to back (closed loop), which measures
    /// throughput, and by Little's law their ack latency is then concurrency / throughput.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measure acceptance only: fire the webhooks and do not wait for replies.
    #[arg(long)]
    pub ack_only: bool,
    /// Skip the load generator's ceiling (the same burst against an endpoint that does
    /// nothing).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Give up waiting for replies after this long (default: 60 s + 3 × N·L/C).
    #[arg(long)]
    pub timeout_secs: Option<u64>,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write replies over time against the ideal line as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The lead-agent binary to start (default: this one).
    #[arg(long, hide = true)]
    pub binary: Option<PathBuf>,
    /// Run the slow-loris test instead of the batch drop: hold this many connections that
    /// trickle a request head (reopened when the service cuts them) while `/health` and
    /// signed webhooks are measured, before the attack and during it (`slowloris.rs`).
    #[arg(long)]
    pub slow_loris: Option<usize>,
    /// `--slow-loris`: seconds each phase (before, during) measures.
    #[arg(long, default_value_t = 20)]
    pub phase_secs: u64,
    /// `--slow-loris`: requests per second of each kind (`/health`, a signed webhook), each
    /// on a new connection, as the kubelet's probes and Twilio make them.
    #[arg(long, default_value_t = 10.0)]
    pub probe_rate: f64,
    /// `--slow-loris`: each slow connection sends one more byte of its head this often.
    #[arg(long, default_value_t = 1000)]
    pub trickle_ms: u64,
    /// More environment for the service this run starts, `NAME=VALUE` (repeatable), e.g.
    /// `--service-env HTTP_MAX_CONNECTIONS=512`.
    #[arg(long = "service-env", value_name = "NAME=VALUE")]
    pub service_env: Vec<String>,
}

impl SimulateArgs {
    pub(super) fn check(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.leads == 0 {
            problems.push("--leads must be at least 1".to_string());
        }
        if self.concurrency == 0 || self.client_concurrency == 0 {
            problems.push("--concurrency and --client-concurrency must be at least 1".into());
        }
        if self.backend == Backend::PostgresRabbitmq && self.url.is_none() {
            if self.workers == 0 {
                problems.push("--workers must be at least 1".into());
            } else if !self.concurrency.is_multiple_of(self.workers) {
                problems.push(format!(
                    "--concurrency {} does not split evenly over --workers {}",
                    self.concurrency, self.workers
                ));
            }
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            problems.push("--rate must be a positive number of webhooks per second".into());
        }
        if self.slow_loris == Some(0) {
            problems.push("--slow-loris must be at least 1".into());
        }
        if !(self.probe_rate.is_finite() && self.probe_rate > 0.0) || self.phase_secs == 0 {
            problems.push("--probe-rate and --phase-secs must be positive".into());
        }
        if self.service_env.iter().any(|e| !e.contains('=')) {
            problems.push("--service-env takes NAME=VALUE".into());
        }
        if self.url.is_some() && self.history > 0 {
            problems
                .push("--history seeds the store before the service starts: not with --url".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(problems.join("\n"))
        }
    }

    pub(super) fn ideal_drain_secs(&self) -> f64 {
        self.leads as f64 * self.model_latency_ms as f64 / 1000.0 / self.concurrency as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_combinations_of_arguments_are_refused_together() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "lead-agent",
            "simulate",
            "--leads",
            "0",
            "--backend",
            "postgres-rabbitmq",
            "--concurrency",
            "5",
            "--workers",
            "2",
        ])
        .unwrap();
        let crate::cli::Command::Simulate(args) = cli.command else {
            panic!("simulate parses as simulate");
        };
        let err = args.check().unwrap_err().to_string();
        assert!(
            err.contains("--leads") && err.contains("split evenly"),
            "{err}"
        );
    }
}
