//! The HTTP server: the axum router and the serve loop. Only this module knows axum.

use std::net::{IpAddr, SocketAddr};

use axum::{Json, Router, routing::get};

use crate::{config::Config, plugins::Plugins};

/// The application's routes.
pub fn router() -> Router {
    Router::new().route("/health/liveliness", get(|| async { Json("I'm alive!") }))
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(
    config: Config,
    plugins: Plugins,
    host: IpAddr,
    port: u16,
) -> anyhow::Result<()> {
    let _ = (&config, &plugins);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port)).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, router().into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
