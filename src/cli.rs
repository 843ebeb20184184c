//! The command line: `serve` runs the service; `sms` is the dev helper that plays Twilio
//! against a running server; `migrate` prepares the database and exits; `inspect scheduled`
//! shows a running server's scheduled jobs.
//!
//! Must not: hold service logic — each command calls into `startup`, `store` or `dev_sms`.

use clap::{Parser, Subcommand};

use crate::startup::Role;

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
    Simulate(Box<crate::simulate::SimulateArgs>),
    /// Look into a running server.
    #[command(subcommand)]
    Inspect(InspectCommand),
}

#[derive(Subcommand, Debug)]
pub enum InspectCommand {
    /// Every scheduled job: schedule, next fire time, last run, lateness, outcome (the
    /// `celery inspect scheduled` of this system). Sends OPS_TOKEN as a bearer token if set.
    Scheduled(InspectScheduledArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct InspectScheduledArgs {
    /// The server to ask (any role). Default: http://127.0.0.1:$PORT.
    #[arg(long)]
    pub url: Option<String>,
    /// Print a JSON list of objects instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Which part of the service this process runs. Roles other than `all` share the store
    /// and the queue with other processes: they need PostgreSQL and RabbitMQ.
    #[arg(long, value_enum, default_value_t = Role::All)]
    pub role: Role,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SmsArgs {
    /// The lead's phone number.
    #[arg(long, default_value = "+13125550100")]
    pub from: String,
    /// Our number (Twilio's `To`).
    #[arg(long, default_value = "+13125550000")]
    pub to: String,
    /// Where the server listens.
    #[arg(long, default_value = "http://127.0.0.1:5012")]
    pub url: String,
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
