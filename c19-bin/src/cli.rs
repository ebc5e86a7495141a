//! The command line.

use std::{path::PathBuf, process::ExitCode};

use c19_core::{Config, Shutdown, registry};
use serde_json::Value;

use crate::{certs, kv, status, telemetry};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum, error::ErrorKind};
use tracing_subscriber::EnvFilter;

/// c19: keeps a shared key/value state beside your service and gossips it to its peers.
#[derive(Debug, Parser)]
#[command(name = "c19", version, about, long_about = None)]
pub struct Cli {
    /// The configuration file (YAML). Fields can be overridden by C19_SPEC__* variables,
    /// e.g. C19_SPEC__AGENT__PORT=4000.
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "config.yml",
        env = "C19_CONFIG"
    )]
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

    /// A command other than running the agent (which is what no command does).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands besides running the agent.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a CA and agent certificates for mutual TLS between agents.
    #[command(subcommand)]
    Certs(certs::Certs),
    /// Show this agent and its peers (from the telemetry port). Exit code 0: healthy,
    /// 1: degraded (not ready, a peer failing), 2: unreachable.
    Status(status::Status),
    /// Read, write, list and watch the data of an agent.
    Kv(kv::Kv),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the command line: parses the arguments, then runs, checks or lists, or runs a
/// command (`c19 certs ...`).
///
/// Exit codes: 0 on success or after a graceful shutdown, 1 when the agent fails while
/// running, 2 for a configuration or usage error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(command) = &cli.command {
        if cli.check || cli.kinds {
            let flag = if cli.check { "--check" } else { "--kinds" };
            let _ = Cli::command()
                .error(
                    ErrorKind::ArgumentConflict,
                    format!("{flag} cannot be used with a command"),
                )
                .print();
            return ExitCode::from(2);
        }
        return match command {
            Command::Certs(certs) => certs::main(certs),
            Command::Status(args) => status::main(args),
            Command::Kv(args) => kv::main(args),
        };
    }
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
        // The files the layers name (certificates, tokens) are checked too.
        let checked = [
            ("agent", config.spec.agent.check()),
            ("connection", config.spec.connection.check()),
        ];
        let mut failed = false;
        for (layer, result) in checked {
            if let Err(error) = result {
                eprintln!("error: {}: spec.{layer}: {error}", cli.config.display());
                failed = true;
            }
        }
        if failed {
            return ExitCode::from(2);
        }
        println!("{}", config.to_pretty_json());
        eprintln!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_format);
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("cannot start the allocator's background thread: {error}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts telemetry, logs the start-up line, and runs the agent until it stops.
async fn run(cli: &Cli, config: Config) -> Result<(), c19_core::Error> {
    let effective = redacted(serde_json::to_value(&config).unwrap_or_default());
    let listening = listening_addresses(&effective);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config_file = %cli.config.display(),
        listening = %listening.join(", "),
        config = %effective,
        "starting c19"
    );
    let telemetry_stop = Shutdown::new();
    if config.spec.telemetry.enabled
        && let Some(listener) = telemetry::bind_or_skip(&config.spec.telemetry)
            .await
            .map_err(c19_core::Error::Telemetry)?
    {
        let metrics = telemetry::install_recorder();
        if let Some(metrics) = &metrics {
            tokio::spawn(telemetry::keep_up(metrics.clone(), telemetry_stop.clone()));
        }
        tokio::spawn(telemetry::serve(listener, metrics, telemetry_stop.clone()));
    }
    let result = c19_core::run(config).await;
    telemetry_stop.cancel();
    result
}

/// `layer=address:port` for each layer section that has a port, and telemetry.
fn listening_addresses(config: &Value) -> Vec<String> {
    let spec = &config["spec"];
    let mut out = Vec::new();
    for layer in ["agent", "connection", "telemetry"] {
        let section = &spec[layer];
        if layer == "telemetry" && section["enabled"] == Value::Bool(false) {
            continue;
        }
        if let Some(port) = section["port"].as_u64() {
            let address = section["address"].as_str().unwrap_or("0.0.0.0");
            out.push(format!("{layer}={address}:{port}"));
        }
    }
    out
}

/// The configuration with secret-looking values replaced, for logs.
fn redacted(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    let key = key.to_ascii_lowercase();
                    let secret = [
                        "password",
                        "secret",
                        "token",
                        "credential",
                        "apikey",
                        "api_key",
                    ]
                    .iter()
                    .any(|word| key.contains(word));
                    if secret && !value.is_null() {
                        *value = Value::String("<redacted>".into());
                    } else {
                        walk(value);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
