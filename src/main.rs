//! The `lead-agent` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use lead_agent::cli::{Cli, Command, InspectCommand};
use lead_agent::config::Settings;
use lead_agent::startup::{Application, Overrides};
use lead_agent::{dev_sms, inspect, store, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_format);
            let app = Application::build_role(settings, args.role, Overrides::default()).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Sms(args) => dev_sms::run(args).await,
        Command::Inspect(InspectCommand::Scheduled(args)) => inspect::run_scheduled(args).await,
        Command::Simulate(args) => lead_agent::simulate::main(*args).await,
        Command::Migrate => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_format);
            store::SqlStore::connect(settings.database_url.expose()).await?;
            println!("database is up to date");
            Ok(())
        }
    }
}

/// SIGTERM (Kubernetes) or Ctrl-C (a terminal).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
