//! The `lead-agent` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use lead_agent::cli::{Cli, Command, ConfigCommand, ConsentCommand, InspectCommand, VerifyArgs};
use lead_agent::config::Settings;
use lead_agent::startup::{Application, Overrides};
use lead_agent::{config_check, dev_sms, inspect, store, telemetry, verify};

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
            let mut settings = Settings::from_env()?;
            settings.allow_insecure |= args.insecure;
            let instance = format!("{}:{}", args.role.name(), Settings::worker_id());
            telemetry::init(settings.log_format, Some(&settings.tracing), &instance);
            actors::log_phone::set_mode(settings.log_phone.clone());
            let app = Application::build_role(settings, args.role, Overrides::default()).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Sms(args) => dev_sms::run(args).await,
        Command::Inspect(InspectCommand::Scheduled(args)) => inspect::run_scheduled(args).await,
        Command::Parked(args) => lead_agent::park_cli::run_parked(args).await,
        Command::Unpark(args) => lead_agent::park_cli::run_unpark(args).await,
        Command::Consent(ConsentCommand::Export(args)) => {
            lead_agent::consent_cli::run_export(args).await
        }
        Command::Takeovers(args) => lead_agent::takeover_cli::run_takeovers(args).await,
        Command::Takeover(args) => lead_agent::takeover_cli::run_takeover(args).await,
        Command::Release(args) => lead_agent::takeover_cli::run_release(args).await,
        #[cfg(feature = "simulate")]
        Command::Simulate(args) => lead_agent::simulate::main(*args).await,
        #[cfg(not(feature = "simulate"))]
        Command::Simulate(_) => anyhow::bail!(
            "this lead-agent is built without the load bench; build it with \
             `cargo build --release --features simulate` (README, \"Load test\")"
        ),
        Command::Migrate => {
            let settings = Settings::from_env()?;
            // A one-shot command: its log, no span export.
            telemetry::init(settings.log_format, None, "migrate");
            store::SqlStore::connect(settings.database_url.expose()).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Config(ConfigCommand::Check { manifests }) => config_check::run_check(&manifests),
        Command::Config(ConfigCommand::Print) => config_check::run_print(),
        Command::Config(ConfigCommand::EnvYaml { indent, watch }) => {
            let vars = lead_agent::config::ENV_VARS;
            if watch {
                print!("{}", config_check::env_yaml_watch(vars, indent));
            } else {
                print!("{}", config_check::env_yaml(vars, indent));
            }
            Ok(())
        }
        Command::Verify(args) => run_verify(args).await,
        // No log subscriber: the scorecard is the output (a turn that fails says why).
        Command::Eval(args) => lead_agent::eval::run(args).await,
        Command::Watch(args) => {
            let flags = lead_agent::watch::settings::WatchFlags {
                url: args.url,
                ops_url: args.ops_url,
                public_url: args.public_url,
                to: args.to,
            };
            lead_agent::watch::run(flags, shutdown_signal()).await
        }
    }
}

async fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let mut options = verify::VerifyOptions::for_url(&args.url);
    options.public_url = args.public_url;
    if let Some(ops_url) = &args.ops_url {
        options.ops_url = ops_url.trim_end_matches('/').to_string();
    }
    options.kube_context = args.kube_context;
    options.namespace = args.namespace;
    options.kubectl = args.kubectl;
    options.selector = args.selector;
    options.ingress = args.ingress;
    options.test_phone = args.test_phone;
    options.to = args.to;
    options.wait = std::time::Duration::from_secs(args.wait_secs);
    options.expect_commit = args.expect_commit.clone();
    options.max_pod_age = (!args.any_pod_age)
        .then(|| chrono::Duration::seconds(args.max_pod_age_secs.min(i64::MAX as u64) as i64));
    let report = verify::run(&options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    if let Some(file) = &args.record {
        verify::append_record(file, &report, args.expect_commit.as_deref())?;
        eprintln!("recorded in {}", file.display());
        if let Err(e) = verify::post_record(&options, &report).await {
            eprintln!("note: the service did not take the record ({e}); the file has it");
        }
    }
    if report.passed {
        Ok(())
    } else {
        anyhow::bail!("verification failed")
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
