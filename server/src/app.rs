//! Startup: the database URL and master key the config implies, then the server.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use anyhow::Context;

use crate::{
    config::{Config, Secret},
    db::{self, DatabaseKind, Db},
    http::{self, AppState},
    plugins::{PluginLoader, Plugins},
    session::{self, TokenSigner},
    signin::SignInService,
};

/// The SQLite file used when no database is configured: beside the config file.
pub fn default_sqlite_path(config: &Config) -> PathBuf {
    config.dir.join("hookgate.db")
}

/// The database URL: `DATABASE_URL`, `general_settings.database_url`, or SQLite beside the config.
pub fn database_url(config: &Config) -> String {
    match &config.database_url {
        Some(url) => url.expose().to_owned(),
        None => format!("sqlite://{}", default_sqlite_path(config).display()),
    }
}

/// The master key: configured (and checked), or generated and kept beside the SQLite file.
pub fn master_key(config: &Config, database_url: &str) -> anyhow::Result<Secret> {
    if let Some((key, source)) = &config.master_key {
        session::check_master_key(key, *source)?;
        return Ok(key.clone());
    }
    match db::database_kind(database_url)? {
        DatabaseKind::Sqlite(path) => {
            let dir = path.parent().map(PathBuf::from).filter(|dir| !dir.as_os_str().is_empty());
            let key_path = dir.unwrap_or_else(|| PathBuf::from(".")).join("hookgate.master_key");
            let (key, made) = session::generated_master_key(&key_path)?;
            if made {
                tracing::warn!(
                    file = %key_path.display(),
                    "no master key configured: generated one and stored it (mode 0600) in this file; \
                     set general_settings.master_key or LITELLM_MASTER_KEY to choose your own"
                );
            } else {
                tracing::info!(file = %key_path.display(), "using the generated master key in this file");
            }
            Ok(key)
        }
        DatabaseKind::Postgres => anyhow::bail!(
            "a master key is required with PostgreSQL (replicas sharing a database must share it): \
             set general_settings.master_key or LITELLM_MASTER_KEY"
        ),
    }
}

/// `hookgate try`: a sign-in rehearsed over the configured database, opened read-only and never
/// migrated ([`Db::open_read_only`]: a schema that is not this build's is refused), with no
/// database writer and a throw-away session signer (it mints no session). A SQLite database
/// that does not exist yet is not created: the rehearsal runs over an empty one in memory.
pub async fn rehearse(
    config: Config,
    plugins: Plugins,
    rehearsal: crate::signin::Rehearsal,
) -> anyhow::Result<crate::signin::Rehearsed> {
    let url = database_url(&config);
    let missing = match db::database_kind(&url)? {
        DatabaseKind::Sqlite(path) if !path.exists() => Some(path),
        _ => None,
    };
    let db = match missing {
        Some(path) => {
            tracing::warn!(
                "the database {} does not exist yet: rehearsing over an empty one (hookgate try \
                 creates nothing)",
                path.display()
            );
            Db::scratch().await.context("cannot make an empty database in memory")?
        }
        None => Db::open_read_only(&url, "hookgate try")
            .await
            .with_context(|| format!("cannot rehearse on the database {}", redact_url(&url)))?,
    };
    let signin = SignInService::for_rehearsal(Arc::new(config), db.clone(), plugins);
    let report = signin.rehearse(rehearsal).await;
    drop(signin);
    if let Err(error) = db.close().await {
        tracing::debug!("closing the database: {error}");
    }
    Ok(report)
}

/// Connects, migrates, and serves on `host:port` until SIGINT or SIGTERM; then closes the
/// database. `SIGHUP` reloads the hooks (`crate::reload`) through `loader`, which loaded
/// `plugins`.
pub async fn run(
    config: Config,
    plugins: Plugins,
    loader: PluginLoader,
    host: IpAddr,
    port: u16,
) -> anyhow::Result<()> {
    let url = database_url(&config);
    let master_key = master_key(&config, &url)?;
    if let Some(password) = &config.ui_password {
        session::check_ui_password(password)?;
    }
    let db = Db::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redact_url(&url)))?;
    tracing::info!(database = %redact_url(&url), "database ready");
    // Retention: checked a few times per retention period, at most hourly, at least every second.
    let retention = config.sign_in_event_retention;
    let every = (retention / 4)
        .clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(3600));
    let pruner = tokio::spawn(db::prune_forever(db.clone(), retention, every));
    let reload_config = config.clone();
    let config = Arc::new(config);
    let signin =
        SignInService::new(config.clone(), db.clone(), plugins, TokenSigner::new(&master_key));
    // Installed before the server listens: a SIGHUP from then on reloads, never terminates.
    #[cfg(unix)]
    let reloads = crate::reload::Reloader::new(reload_config, loader, signin.clone())
        .on_sighup()
        .context("cannot handle SIGHUP")?;
    #[cfg(not(unix))]
    let _ = (reload_config, loader);
    // Refused attempts over the event bound are counted; their summaries are written each minute.
    let summaries = tokio::spawn(signin.clone().write_refusal_summaries_forever());
    let oidc = config.oidc.clone().map(crate::oidc::OidcProvider::new);
    if let Some(provider) = &oidc {
        tracing::info!(
            provider = provider.settings().kind.as_str(),
            "OpenID Connect sign-in enabled"
        );
    }
    let state = AppState::new(config, db.clone(), signin.clone(), master_key, oidc);
    let listener =
        http::bind(host, port).await.with_context(|| format!("cannot listen on {host}:{port}"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    http::serve(listener, state).await?;
    pruner.abort();
    #[cfg(unix)]
    reloads.abort();
    summaries.abort();
    // The counts of the last minute, so that no refused attempt goes unrecorded.
    signin.write_refusal_summaries().await;
    // The sign-in service holds the writer, whose thread holds the database.
    drop(signin);
    db.close().await?;
    tracing::info!("database closed; bye");
    Ok(())
}

/// A URL with its password replaced by `***`, for logs: the password in the user part (up to
/// the *last* `@`, so an unescaped `@` in a password does not leak its tail) and the values of
/// `password`-like query parameters.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (main, query) = match rest.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match main.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            if credentials.contains(':') {
                out.push_str(&format!("{user}:***@{host}"));
            } else {
                out.push_str(&format!("{user}@{host}"));
            }
        }
        None => out.push_str(main),
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("pass") => {
                    format!("{name}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgresql://hg:s3cret@127.0.0.1:5432/db"),
            "postgresql://hg:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        // An unescaped @ in the password.
        assert_eq!(
            redact_url("postgresql://hg:p@ss@word@db.internal:5432/hg"),
            "postgresql://hg:***@db.internal:5432/hg"
        );
        // The password as a query parameter.
        assert_eq!(
            redact_url("postgresql://hg@db/hg?sslmode=require&password=s3cret&sslpassword=x"),
            "postgresql://hg@db/hg?sslmode=require&password=***&sslpassword=***"
        );
    }
}
