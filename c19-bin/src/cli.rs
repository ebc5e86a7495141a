//! The command line.

use std::{path::PathBuf, process::ExitCode};

use c19_core::{Config, registry};
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;

/// c19: keeps a shared key/value state beside your service and gossips it to its peers.
#[derive(Debug, Parser)]
#[command(name = "c19", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file (YAML). Fields can be overridden by C19_SPEC__* variables,
    /// e.g. C19_SPEC__AGENT__PORT=4000.
    #[arg(short, long, value_name = "FILE", default_value = "config.yml", env = "C19_CONFIG")]
    pub config: PathBuf,

    /// Load and validate the configuration, print it with defaults filled in, and exit.
    #[arg(long)]
    pub check: bool,

    /// Print the layer kinds this binary has, and exit.
    #[arg(long)]
    pub kinds: bool,

    /// The log format. The level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "C19_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the command line: parses the arguments, then runs, checks or lists.
///
/// Exit codes: 0 on success or after a graceful shutdown, 1 when the agent fails while
/// running, 2 for a configuration or usage error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.kinds {
        print!("{}", registry::kinds());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("{}", config.to_pretty_json());
        eprintln!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %cli.config.display(), "starting c19 {}", env!("CARGO_PKG_VERSION"));
    match runtime.block_on(c19_core::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
