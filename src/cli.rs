//! The command line: `serve` runs the service; `sms` is the dev helper that plays Twilio
//! against a running server; `migrate` prepares the database and exits; `inspect scheduled`
//! shows a running server's scheduled jobs; `parked` and `unpark` list and end parks, and
//! `takeovers`, `takeover` and `release` list, take and end human takeovers, through its
//! ops listener; `consent export` prints the consent ledger from the database; `config`
//! checks the manifests against the code
//! and prints the effective configuration; `verify` runs the post-deploy checklist; `watch`
//! is the watchdog that runs beside the service and alerts Discord by its own path.
//!
//! Must not: hold service logic — each command calls into `startup`, `store` or `dev_sms`.

use clap::{Parser, Subcommand};

use crate::role::Role;

#[derive(Parser, Debug)]
#[command(
    name = "lead-agent",
    version,
    about = "An SMS leasing office that runs itself"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service: by default every role in one process, on embedded defaults unless
    /// the environment says otherwise.
    Serve(ServeArgs),
    /// Dev helper: post a signed Twilio-style webhook to a running server and print the
    /// reply that went out.
    Sms(SmsArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// The batch-drop load bench: start the service with fake Twilio and model servers,
    /// fire N webhooks from N leads at once, and report throughput, latency, drain time,
    /// lost/duplicated replies and memory.
    #[cfg(feature = "simulate")]
    Simulate(Box<crate::simulate::SimulateArgs>),
    /// The batch-drop load bench: not in this build (the service binary as shipped).
    /// Build it with `cargo build --release --features simulate`.
    #[cfg(not(feature = "simulate"))]
    Simulate(NoSimulateArgs),
    /// Configuration: check the deploy manifests against the code, or print it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The post-deploy checklist: a PASS/FAIL/SKIP table, non-zero exit on any FAIL.
    Verify(VerifyArgs),
    /// Look into a running server.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// The leads parked now (reply cap, restarts): lead, reason, since, until. Asks a
    /// running server's /ops/parked; sends OPS_TOKEN as a bearer token if set.
    Parked(ParkedArgs),
    /// End a lead's park now (POST /ops/leads/{phone}/unpark): the messages that arrived
    /// while it was parked get one turn. Sends OPS_TOKEN as a bearer token if set.
    Unpark(UnparkArgs),
    /// The consent ledger (STOP, revocations, START, operator actions, first messages).
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// The leads taken over by an operator now (human takeover): lead, operator, via,
    /// since, last activity. Asks a running server's /ops/takeovers; sends OPS_TOKEN as a
    /// bearer token if set.
    Takeovers(TakeoversArgs),
    /// Take a lead over (POST /ops/leads/{phone}/takeover): the AI stops replying and
    /// following up; its messages go to the HITL channel. Sends OPS_TOKEN if set.
    Takeover(TakeoverArgs),
    /// Hand a taken-over lead back to the AI (POST /ops/leads/{phone}/release): it answers
    /// the lead's next message. Sends OPS_TOKEN as a bearer token if set.
    Release(ReleaseArgs),
    /// The watchdog: probe a running service over HTTP (readiness, heartbeats, scheduler
    /// lateness, the alert spool, a synthetic SMS) and alert Discord by its own path, once
    /// per incident and once on recovery. Runs as its own process.
    Watch(WatchArgs),
    /// Grade a brain against the scripted conversations of evals/ through the real turn
    /// path (an in-process serve on its own SQLite file, dry-run SMS): a scorecard per
    /// category, non-zero exit on a regression below evals/baseline.json.
    Eval(crate::eval::EvalArgs),
}

/// `simulate` in a build without the bench: whatever follows is taken, so the refusal
/// names the feature rather than an unknown flag.
#[cfg(not(feature = "simulate"))]
#[derive(clap::Args, Debug, Clone)]
pub struct NoSimulateArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// The service's public base URL (default: WATCH_URL), e.g. https://leads.example.com:
    /// /ready and the synthetic SMS.
    #[arg(long)]
    pub url: Option<String>,
    /// The service's ops listener (default: WATCH_OPS_URL, else --url's host on port
    /// 5013), e.g. http://lead-agent-ops:5013: /ops/heartbeats, /ops/scheduled,
    /// /ops/discord and the synthetic SMS's reply.
    #[arg(long)]
    pub ops_url: Option<String>,
    /// The URL Twilio calls, which the synthetic SMS is signed against (default:
    /// PUBLIC_BASE_URL, else --url).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Our number (Twilio's `To`) in the synthetic SMS.
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Every variable the code reads is a key of the ConfigMap or the Secret (and nothing
    /// else is), secrets in the Secret, every container takes both through envFrom,
    /// probes/resources/grace period are set; also the Dockerfile's and cloudbuild.yaml's
    /// essentials. Renders a kustomization with `kubectl kustomize`. Non-zero exit naming
    /// each mismatch.
    Check {
        #[arg(long, default_value = "deploy/k8s")]
        manifests: std::path::PathBuf,
    },
    /// The effective configuration from the environment, secrets redacted.
    Print,
    /// The ConfigMap and Secret keys for every variable, with their defaults, to paste.
    EnvYaml {
        #[arg(long, default_value_t = 2)]
        indent: usize,
        /// The watch's own ConfigMap and Secret instead (deploy/k8s/watch-config.example.yaml).
        #[arg(long)]
        watch: bool,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Public base URL of the deployed service (the Ingress's), e.g.
    /// https://leads.example.com: /health and the synthetic SMS.
    #[arg(long)]
    pub url: String,
    /// The service's ops listener, e.g. http://127.0.0.1:5013 through `kubectl port-forward
    /// svc/lead-agent-ops 5013`: /ops/scheduled, /ops/heartbeats, the reply, --record.
    /// Default: --url's scheme and host on port OPS_PORT (5013).
    #[arg(long)]
    pub ops_url: Option<String>,
    /// The URL Twilio calls, which webhook signatures cover (default: --url).
    #[arg(long)]
    pub public_url: Option<String>,
    /// kubectl context of the cluster. Without it the pod and Service steps are SKIPPED.
    #[arg(long)]
    pub kube_context: Option<String>,
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The kubectl binary.
    #[arg(long, default_value = "kubectl")]
    pub kubectl: String,
    /// Label selector of the service's pods.
    #[arg(long, default_value = "app=lead-agent")]
    pub selector: String,
    /// The Ingress in front of the webhook, whose external address is checked (`--service`
    /// is accepted for it too: before the Ingress it was the LoadBalancer Service).
    #[arg(long, alias = "service", default_value = "lead-agent")]
    pub ingress: String,
    /// The number the synthetic SMS comes from; its reply really goes out when Twilio is
    /// configured, so use a phone the team owns.
    #[arg(long, default_value = "+13125550199")]
    pub test_phone: String,
    /// Our number (Twilio's `To`).
    #[arg(long, default_value = "+13125550000")]
    pub to: String,
    /// How long the workers and end-to-end steps wait (for a fresh worker heartbeat, for the reply).
    #[arg(long, default_value_t = 60)]
    pub wait_secs: u64,
    /// Fail unless /health reports this commit (Cloud Build passes $COMMIT_SHA).
    #[arg(long)]
    pub expect_commit: Option<String>,
    /// Step 1 fails for a pod older than this: right after a deploy every pod is new (the
    /// seed's "age < 5m"); an older one was not replaced by the rollout.
    #[arg(long, default_value_t = crate::verify::DEFAULT_MAX_POD_AGE_SECS)]
    pub max_pod_age_secs: u64,
    /// Any pod age passes step 1: for a verify run by hand long after the last deploy.
    #[arg(long)]
    pub any_pod_age: bool,
    /// Append the dated result to this file (and report it to the service for /ops).
    #[arg(long, num_args = 0..=1, default_missing_value = "DEPLOYMENT_STATE.md")]
    pub record: Option<std::path::PathBuf>,
    /// Print the result as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum InspectCommand {
    /// Every scheduled job: schedule, next fire time, last run, lateness, outcome (the
    /// `celery inspect scheduled` of this system). Sends OPS_TOKEN as a bearer token if set.
    Scheduled(InspectScheduledArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct InspectScheduledArgs {
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
    /// Print a JSON list of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ParkedArgs {
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
    /// Print a JSON list of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct UnparkArgs {
    /// The lead's phone number, as /ops/parked shows it.
    pub phone: String,
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    /// Every consent event since a moment, oldest first, to stdout with a header row.
    /// Reads the database named by DATABASE_URL (and, like `migrate`, brings its schema up
    /// to date first).
    Export(ConsentExportArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConsentExportArgs {
    /// An RFC 3339 time (2026-03-02T09:00:00Z) or a day (2026-03-02, its UTC midnight).
    #[arg(long)]
    pub since: String,
    /// The output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
}

/// How `consent export` writes the rows.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// RFC 4180 CSV: id, lead, at, method, consent (granted|revoked), message_sid, words.
    Csv,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TakeoversArgs {
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
    /// Print a JSON list of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct TakeoverArgs {
    /// The lead's phone number (E.164, e.g. +13125550123).
    pub phone: String,
    /// Who takes it: the name the HITL channel and /ops show.
    #[arg(long)]
    pub operator: String,
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReleaseArgs {
    /// The lead's phone number, as /ops/takeovers shows it.
    pub phone: String,
    /// Who releases it (recorded as `released_by`).
    #[arg(long)]
    pub operator: Option<String>,
    /// The server's ops listener (any role). Default: http://127.0.0.1:$OPS_PORT.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Which part of the service this process runs. Roles other than `all` share the store
    /// and the queue with other processes: they need PostgreSQL and RabbitMQ.
    #[arg(long, value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// Start even on a non-loopback BIND_ADDRESS or OPS_BIND_ADDRESS without
    /// TWILIO_AUTH_TOKEN and OPS_TOKEN (as ALLOW_INSECURE=true): anyone who reaches the port
    /// may post webhooks and read /ops. For a throwaway test host only.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SmsArgs {
    /// The lead's phone number.
    #[arg(long, default_value = "+13125550100")]
    pub from: String,
    /// Our number (Twilio's `To`).
    #[arg(long, default_value = "+13125550000")]
    pub to: String,
    /// Where the server listens (its public listener).
    #[arg(long, default_value = "http://127.0.0.1:5012")]
    pub url: String,
    /// Its ops listener, where the reply is read. Default: --url's scheme and host on port
    /// OPS_PORT (5013).
    #[arg(long)]
    pub ops_url: Option<String>,
    /// The URL to sign (what Twilio would be configured with). Defaults to PUBLIC_BASE_URL,
    /// else --url.
    #[arg(long)]
    pub public_url: Option<String>,
    /// How long to wait for the reply.
    #[arg(long, default_value_t = 30)]
    pub wait_secs: u64,
    /// The message text.
    pub text: String,
}
