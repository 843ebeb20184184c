//! Telemetry: one tracing subscriber for the process — pretty in a terminal, JSON lines in
//! production — filtered by `RUST_LOG`.
//!
//! Must not: be initialised twice (tests build many apps in one process; `try_init` makes
//! the second call a no-op).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, read_var};

pub fn init(format: LogFormat) {
    let filter = read_var("RUST_LOG")
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tokio_cron_scheduler=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
