//! The command line: `hookgate --config config.yaml` serves; `hookgate check` validates.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    config::Config,
    plugins::{PluginLoader, Plugins},
};

/// Single-binary SSO sign-in server whose LiteLLM login hooks are native plugins.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version, about)]
pub struct Cli {
    /// The LiteLLM config file.
    #[arg(long, global = true, env = "HOOKGATE_CONFIG", default_value = "config.yaml")]
    pub config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = 4000)]
    pub port: u16,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and load every hook it names; print one line per hook.
    Check,
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    if !config.ignored_keys.is_empty() {
        tracing::warn!(
            "{}: ignoring settings hookgate does not implement: {}",
            config.file.display(),
            config.ignored_keys.join(", ")
        );
    }
    let loader = PluginLoader::new();
    let plugins = Plugins::load(&config, &loader)?;
    match cli.command {
        Some(Command::Check) => {
            check(&config, &plugins);
            Ok(())
        }
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(crate::app::run(config, plugins, loader, cli.host, cli.port))
        }
    }
}

fn check(config: &Config, plugins: &Plugins) {
    let infos = plugins.infos();
    if infos.is_empty() {
        eprintln!("{}: valid; it names no hooks", config.file.display());
    }
    for info in infos {
        println!(
            "{}: {} -> {} (kind {}, plugin-api {})",
            info.setting,
            info.reference,
            info.location(),
            info.kind,
            info.api_version
        );
    }
}
