//! `GET /metrics`: Prometheus' text format, served only with LiteLLM's
//! `litellm_settings.callbacks: ["prometheus"]`, behind the master key with
//! `general_settings.require_auth_for_metrics_endpoint: true`.

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::{ApiError, AppState, auth::Caller};
use crate::{config::Config, db::Db};

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

async fn authenticated(state: State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    match caller {
        Caller::Master => Ok(scrape(state).await),
        Caller::Session { .. } => Err(ApiError::forbidden("/metrics needs the master key")),
    }
}

async fn scrape(State(state): State<AppState>) -> Response {
    let live_sessions = state.live_sessions().count(state.db()).await;
    let text = state.signin().metrics().encode(live_sessions);
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response
}

/// The number of live sessions, counted in the database (sessions issued or revoked by other
/// replicas count too) at most once per interval, however often and however many at once
/// scrapers ask: a scrape within the interval gets the last count, and concurrent scrapes
/// after it wait for one new count.
pub(super) struct LiveSessions {
    ttl: Duration,
    /// When it was last counted, and the count (`None`: the database could not answer, which
    /// is remembered for the interval too, so a failing database is not asked more often).
    last: tokio::sync::Mutex<Option<(Instant, Option<i64>)>>,
}

impl LiveSessions {
    /// A count reused for `ttl`.
    pub(super) fn new(ttl: Duration) -> Self {
        Self { ttl, last: tokio::sync::Mutex::new(None) }
    }

    /// The live sessions, counted now or within the interval; `None` when the database cannot
    /// answer (the gauge is then left out of the scrape).
    async fn count(&self, db: &Db) -> Option<i64> {
        // Held across the query: a scrape arriving meanwhile waits for this count.
        let mut last = self.last.lock().await;
        if let Some((at, count)) = *last
            && at.elapsed() < self.ttl
        {
            return count;
        }
        let count = match db.count_live_sessions().await {
            Ok(count) => Some(i64::try_from(count).unwrap_or(i64::MAX)),
            Err(error) => {
                tracing::error!("metrics: cannot count the live sessions: {error}");
                None
            }
        };
        *last = Some((Instant::now(), count));
        count
    }
}
