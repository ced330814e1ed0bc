//! The `myelin` binary: arguments, tracing, runtime, signals. Everything else is in the library.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use myelin::Server;
use myelin_config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "myelin", version, about = "Myelin, a federated Matrix homeserver")]
struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults and MYELIN_* variables apply.
    #[arg(long, short, env = "MYELIN_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Run,
    /// Print an example configuration file, with every option, its default and its meaning.
    GenerateConfig,
    /// Load and validate the configuration, print the result, and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::GenerateConfig) = cli.command {
        print!("{}", Config::example_toml());
        return ExitCode::SUCCESS;
    }
    let loaded = match Config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("myelin: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&loaded.config);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(Command::CheckConfig) = cli.command {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("myelin: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("myelin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> myelin::Result<()> {
    let server = Server::start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        // Without signal handlers we can still be stopped by Ctrl-C through tokio's own hook.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// ruma's auth rules log every check of every event at info level, which drowns our own logs
/// (and costs real time when a join checks 20,000 events): keep them at warn unless the
/// configured filter names them.
fn quiet_dependencies(level: &str) -> String {
    if level.contains("ruma_state_res") { level.to_owned() } else { format!("{level},ruma_state_res=warn") }
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(quiet_dependencies(&config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
