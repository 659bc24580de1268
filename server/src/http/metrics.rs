//! `GET /metrics`: Prometheus' text format, served only with LiteLLM's
//! `litellm_settings.callbacks: ["prometheus"]`, behind the master key with
//! `general_settings.require_auth_for_metrics_endpoint: true`.

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{ApiError, AppState, Ctx, auth::Caller};
use crate::{config::Config, db::store};

/// The route, or none (a 404 like any unknown path) when metrics are off.
pub(super) fn routes(config: &Config) -> Router<AppState> {
    let router = Router::new();
    if !config.prometheus {
        return router;
    }
    if config.require_auth_for_metrics_endpoint {
        router.route("/metrics", get(authenticated))
    } else {
        router.route("/metrics", get(scrape))
    }
}

async fn authenticated(
    state: State<AppState>,
    ctx: Ctx,
    caller: Caller,
) -> Result<Response, ApiError> {
    match caller {
        Caller::Master => Ok(scrape(state).await),
        Caller::Session { .. } => {
            Err(ctx.json_error(ApiError::forbidden("/metrics needs the master key")))
        }
    }
}

async fn scrape(State(state): State<AppState>) -> Response {
    // Counted now, in the database: sessions issued or revoked by other replicas count too.
    let live_sessions = match store::count_live_sessions(state.db().conn()).await {
        Ok(count) => Some(i64::try_from(count).unwrap_or(i64::MAX)),
        Err(error) => {
            tracing::error!("metrics: cannot count the live sessions: {error}");
            None
        }
    };
    let text = state.signin().metrics().encode(live_sessions);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response
}
