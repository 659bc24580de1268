//! The command line: `hookgate --config config.yaml` serves; `hookgate check` validates;
//! `hookgate try` rehearses a sign-in; `hookgate sync --dry-run` previews an authoritative team
//! sync for every user.

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
    /// Rehearse a sign-in: run the configured hooks as a sign-in would, against the configured
    /// database, and print what they returned and what the sign-in would write, without
    /// writing anything. Exits non-zero when the sign-in would not complete.
    Try {
        /// A request header for the `custom_ui_sso_sign_in_handler` hook, as `name: value`
        /// (repeat for several).
        #[arg(long = "header", value_name = "NAME: VALUE", conflicts_with = "claims")]
        headers: Vec<String>,
        /// A JSON file with an OIDC provider's claims (ID token or userinfo), mapped as the
        /// configured provider's callback maps them.
        #[arg(long, value_name = "FILE")]
        claims: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Preview turning on authoritative team sync (`litellm_jwtauth.sync_user_role_and_teams`):
    /// for every user, the memberships their first authoritative sign-in would remove and the
    /// role the role mappings would give them, from the groups their latest sign-in recorded.
    /// Reads the database read-only and writes nothing; exits 0.
    Sync {
        /// Only report (required: the sync itself runs at each sign-in once the setting is on).
        #[arg(long)]
        dry_run: bool,
        /// Where each user's groups come from: `events`, the groups their latest allowed
        /// sign-in recorded.
        #[arg(long, value_enum, default_value = "events")]
        from: crate::sync_preview::SyncSource,
        /// Print the preview as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Blocking threads beyond `hook_concurrency`: for hand-offs in flight while a hook's slot is
/// being released, and the runtime's own blocking work.
const BLOCKING_SPARE: usize = 8;

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `try` and `sync` print a report: their log shows warnings and what the hooks log, not
    // the startup.
    let quiet = matches!(cli.command, Some(Command::Try { .. } | Command::Sync { .. }));
    let logging = if quiet {
        init_logging("warn,hookgate::plugin=info", Writing::Here)
    } else {
        init_logging("info", Writing::OffThread)
    };
    let result = run(cli);
    // Every line logged so far is written before the error, and before the process exits.
    drop(logging);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the log's lines are written from.
enum Writing {
    /// The thread that logs: `try` and `sync`, whose log and report keep their order.
    Here,
    /// A thread of the log's own, for the server: a line is formatted on the thread that logs
    /// and handed over a channel, so no request takes standard error's lock or waits for its
    /// write (a sign-in logs two lines at `info`: one on a worker, one on a hook's thread), and
    /// lines that arrive together are written together. Nothing is dropped: with [`LOG_QUEUE`]
    /// lines waiting, the thread that logs waits.
    OffThread,
}

/// How many lines may wait for the log's thread before a thread that logs waits for it: a
/// quarter of a second of sign-ins at 30k/s. The queue is allocated whole (~40 bytes a line).
const LOG_QUEUE: usize = 16_384;

/// A writer of lines that a thread of its own writes to `out`, in batches (lines that arrive
/// while it writes go out together), dropping none: with `queue` lines waiting, the thread that
/// logs waits. Dropping the guard writes what is queued (waiting at most a second).
fn off_thread(
    out: impl std::io::Write + Send + 'static,
    queue: usize,
) -> (tracing_appender::non_blocking::NonBlocking, tracing_appender::non_blocking::WorkerGuard) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(queue)
        .lossy(false)
        .thread_name("hookgate-log")
        .finish(std::io::BufWriter::new(out))
}

/// Logs to standard error at `HOOKGATE_LOG` (or `RUST_LOG`, or `default`). The guard, when
/// there is one, writes what is still queued when it drops.
fn init_logging(
    default: &str,
    writing: Writing,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (writer, guard) = match writing {
        Writing::Here => (BoxMakeWriter::new(std::io::stderr), None),
        Writing::OffThread => {
            let (writer, guard) = off_thread(std::io::stderr(), LOG_QUEUE);
            (BoxMakeWriter::new(writer), Some(guard))
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    guard
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
    if !config.not_implemented.is_empty() {
        tracing::warn!(
            "{}: read but not implemented: {}",
            config.file.display(),
            config.not_implemented.join(", ")
        );
    }
    for conflict in &config.setting_conflicts {
        tracing::warn!("{}: {conflict}", config.file.display());
    }
    // A preview reads the database only: it loads no hooks.
    if let Some(Command::Sync { dry_run, from, json }) = cli.command {
        return sync(&config, dry_run, from, json);
    }
    let loader = PluginLoader::new();
    let plugins = Plugins::load(&config, &loader)?;
    match cli.command {
        Some(Command::Check) => {
            check(&config, &plugins);
            Ok(())
        }
        Some(Command::Try { headers, claims, json }) => {
            let rehearsal = rehearsal(&config, &headers, claims.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(crate::app::rehearse(config, plugins, rehearsal))?;
            if json {
                println!("{:#}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            match report.error {
                None => Ok(()),
                Some(error) => Err(anyhow::anyhow!("the sign-in would not complete: {error}")),
            }
        }
        Some(Command::Sync { .. }) => unreachable!("handled before the hooks are loaded"),
        None => {
            // Hooks are the blocking pool's work, at most `hook_concurrency` at once; tokio would
            // otherwise start a new thread whenever none is idle at that instant (116 threads at
            // c=128), and every thread that runs a hook keeps a SQLite read connection.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(config.hook_concurrency + BLOCKING_SPARE)
                .build()?;
            runtime.block_on(crate::app::run(config, plugins, loader, cli.host, cli.port))
        }
    }
}

/// The identity `hookgate try` rehearses: headers for the header hook, or an OIDC provider's
/// claims.
fn rehearsal(
    config: &Config,
    headers: &[String],
    claims: Option<&std::path::Path>,
) -> anyhow::Result<crate::signin::Rehearsal> {
    use anyhow::Context;
    if let Some(path) = claims {
        let Some(settings) = &config.oidc else {
            anyhow::bail!(
                "--claims: {} configures no OIDC provider (GOOGLE_CLIENT_ID, MICROSOFT_CLIENT_ID \
                 or GENERIC_CLIENT_ID), so no sign-in maps claims",
                config.file.display()
            );
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--claims: cannot read {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--claims: {} is not JSON", path.display()))?;
        let (openid, proof) = crate::oidc::identity_of_claims(settings, &value)
            .map_err(|reason| anyhow::anyhow!("--claims: {}: {reason}", path.display()))?;
        return Ok(crate::signin::Rehearsal::Identity(Box::new(openid), proof));
    }
    if headers.is_empty() {
        anyhow::bail!("hookgate try needs --header 'name: value' (one or more) or --claims FILE");
    }
    let mut map = http::HeaderMap::new();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?}: expected `name: value`"))?;
        let name = http::HeaderName::from_bytes(name.trim().as_bytes()).with_context(|| {
            format!("--header {header:?}: {:?} is not a header name", name.trim())
        })?;
        let value = http::HeaderValue::from_str(value.trim()).with_context(|| {
            format!("--header {header:?}: the value is not a valid header value")
        })?;
        map.append(name, value);
    }
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let line = crate::plugins::RequestLine::new(
        &http::Method::GET,
        &http::Uri::from_static("/sso/key/generate"),
        peer,
    );
    crate::plugins::HookRequest::new(line, map)
        .map(crate::signin::Rehearsal::Headers)
        .map_err(|unfit| anyhow::anyhow!("--header: {unfit}"))
}

/// `hookgate sync --dry-run`: the preview, printed.
fn sync(
    config: &Config,
    dry_run: bool,
    from: crate::sync_preview::SyncSource,
    json: bool,
) -> anyhow::Result<()> {
    if !dry_run {
        anyhow::bail!(
            "hookgate sync only previews (--dry-run): the sync itself runs at each sign-in once \
             general_settings.litellm_jwtauth.sync_user_role_and_teams is true"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let preview = runtime.block_on(crate::sync_preview::preview(config, from))?;
    if json {
        println!("{:#}", preview.to_json());
    } else {
        print!("{}", preview.to_text());
    }
    Ok(())
}

fn check(config: &Config, plugins: &Plugins) {
    let infos = plugins.infos();
    if infos.is_empty() {
        eprintln!("{}: valid; it names no hooks", config.file.display());
    }
    for info in infos {
        println!(
            "{}: {} -> {} (kind {}, plugin-api {}{})",
            info.setting,
            info.reference,
            info.location(),
            info.kind,
            info.api_version,
            if info.non_blocking { ", non-blocking" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tracing_subscriber::fmt::MakeWriter;

    /// A writer that takes 2 ms a call, into a buffer the test reads.
    struct Slow(Arc<Mutex<Vec<u8>>>);

    impl Write for Slow {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines logged much faster than they can be written, past the queue's bound, are all
    /// written, in order, by the time the guard is dropped.
    #[test]
    fn the_log_thread_drops_no_line_and_writes_them_all_before_its_guard_returns() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (writer, guard) = super::off_thread(Slow(written.clone()), 100);
        for line in 0..5_000 {
            writeln!(writer.make_writer(), "line {line}").unwrap();
        }
        drop(guard);
        let written = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..5_000).map(|line| format!("line {line}\n")).collect();
        assert!(written == expected, "{} of 5000 lines written", written.lines().count());
    }
}
