//! SCIM 2.0 (RFC 7643, RFC 7644) at `/scim/v2`: identity providers (Okta, Entra ID, …)
//! provision and deprovision users and groups. Present only when `general_settings.scim_token`
//! is set; every request carries it as a bearer token (compared in constant time).
//!
//! Users are hookgate's users (`users.rs`), groups its teams (`groups.rs`); filters
//! (`filter.rs`) and PATCH (`patch.rs`) work on a resource's JSON representation, and the
//! discovery documents come from the attribute tables of `schemas.rs`. Answers are
//! `application/scim+json`; errors are SCIM's error body (`ScimError`), never `ApiError`'s.

mod filter;
mod groups;
mod patch;
mod schemas;
mod users;

use std::collections::HashMap;

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use self::schemas::{ERROR_SCHEMA, LIST_SCHEMA, MAX_BODY, MAX_PAGE};
use super::AppState;
use crate::{access::AccessError, config::Config};

/// SCIM's media type.
const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes, or none without `general_settings.scim_token`; every one of them (the
/// fallback too) behind the token.
pub(super) fn routes(state: &AppState) -> Option<Router<AppState>> {
    state.config().scim_token.as_ref()?;
    let routes = Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", post(users::search))
        .route(
            "/Users/{id}",
            get(users::get_one).put(users::replace).patch(users::patch).delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get_one).put(groups::replace).patch(groups::patch).delete(groups::delete),
        )
        .route("/.search", post(search_all))
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schema_list))
        .route("/Schemas/{id}", get(schema))
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    tracing::info!("SCIM 2.0 is served at /scim/v2 (general_settings.scim_token is set)");
    Some(Router::new().nest("/scim/v2", routes))
}

/// Refuses a request without the SCIM token (401, a SCIM error body) before any handler runs.
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.config().scim_token else {
        return ScimError::new(StatusCode::NOT_FOUND, None, "SCIM is not configured")
            .into_response();
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match given {
        Some(given) if crate::session::secrets_equal(given, token.expose()) => {
            next.run(request).await
        }
        _ => {
            let mut response = ScimError::new(
                StatusCode::UNAUTHORIZED,
                None,
                "a SCIM request needs Authorization: Bearer with general_settings.scim_token",
            )
            .into_response();
            let headers = response.headers_mut();
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            // The body is not read: the connection cannot carry another request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A SCIM error answer (RFC 7644 §3.12).
#[derive(Debug)]
pub(crate) struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    pub(crate) fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError { status, scim_type, detail: detail.into() }
    }

    /// 400 with a `scimType`.
    pub(crate) fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("no {what} {}", hookgate_core::ids::shown(id)),
        )
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        scim_json(self.status, &body)
    }
}

impl From<crate::db::Error> for ScimError {
    fn from(error: crate::db::Error) -> Self {
        tracing::error!("scim: database: {error}");
        ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "the database is unavailable")
    }
}

impl From<AccessError> for ScimError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::NotFound(message) => ScimError::new(StatusCode::NOT_FOUND, None, message),
            AccessError::FrontDoor(error) => {
                tracing::error!("scim: LiteLLM: {error}");
                ScimError::new(
                    StatusCode::BAD_GATEWAY,
                    None,
                    format!("LiteLLM: {error}; nothing was changed in hookgate"),
                )
            }
            AccessError::Database(error) => error.into(),
        }
    }
}

impl From<patch::PatchError> for ScimError {
    fn from(error: patch::PatchError) -> Self {
        ScimError::bad(error.scim_type, error.message)
    }
}

/// A SCIM JSON answer.
pub(crate) fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    response
}

/// How much of an oversize body is read (and dropped) before the 413, so that a client still
/// sending it gets the answer rather than a reset connection.
const MAX_DRAIN: usize = 8 * MAX_BODY;

/// A request body as a JSON object: at most [`MAX_BODY`] bytes (else 413).
pub(crate) async fn read_object(body: Body) -> Result<Value, ScimError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    };
    let mut body = body;
    let mut bytes = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(ScimError::bad("invalidSyntax", "the request body could not be read"));
        };
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > MAX_DRAIN {
            return Err(too_large());
        }
        if seen <= MAX_BODY {
            bytes.extend_from_slice(&data);
        }
    }
    if seen > MAX_BODY {
        return Err(too_large());
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
        ScimError::bad("invalidSyntax", format!("the request body is not JSON: {error}"))
    })?;
    if !value.is_object() {
        return Err(ScimError::bad("invalidSyntax", "the request body must be a JSON object"));
    }
    Ok(value)
}

/// Where the SCIM endpoint is, for `meta.location`.
pub(crate) fn base(config: &Config) -> String {
    format!("{}{}/scim/v2", super::sso::public_base(config), config.server_root_path)
}

/// A list request's parameters (`filter`, `startIndex`, `count`, `attributes`,
/// `excludedAttributes`).
pub(crate) struct ListQuery {
    filter: Option<String>,
    start_index: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

impl ListQuery {
    pub(crate) fn of(query: &HashMap<String, String>) -> Result<ListQuery, ScimError> {
        let get = |name: &str| {
            query.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        };
        let number = |name: &str, default: i64| -> Result<i64, ScimError> {
            match get(name) {
                None | Some("") => Ok(default),
                Some(text) => text.trim().parse().map_err(|_| {
                    ScimError::bad("invalidValue", format!("{name} must be an integer"))
                }),
            }
        };
        let names = |name: &str| -> Vec<String> {
            get(name)
                .map(|list| {
                    list.split(',')
                        .map(|n| n.trim().to_ascii_lowercase())
                        .filter(|n| !n.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ListQuery {
            filter: get("filter").map(str::to_owned).filter(|f| !f.trim().is_empty()),
            start_index: number("startIndex", 1)?.max(1) as usize,
            count: number("count", MAX_PAGE as i64)?.clamp(0, MAX_PAGE as i64) as usize,
            attributes: names("attributes"),
            excluded: names("excludedAttributes"),
        })
    }

    /// A `POST …/.search` body (RFC 7644 §3.4.3) as the same parameters.
    pub(crate) async fn of_search(body: Body) -> Result<ListQuery, ScimError> {
        let body = read_object(body).await?;
        let mut query = HashMap::new();
        for (key, value) in body.as_object().into_iter().flatten() {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Array(items) => {
                    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                }
                _ => continue,
            };
            query.insert(key.clone(), text);
        }
        ListQuery::of(&query)
    }

    /// The `attributes`/`excludedAttributes` of a single-resource request.
    pub(crate) fn projection(query: &HashMap<String, String>) -> Result<ListQuery, ScimError> {
        ListQuery::of(query)
    }

    /// Parses the filter against `attrs`.
    pub(crate) fn parsed(
        &self,
        attrs: &[schemas::Attr],
    ) -> Result<Option<filter::Filter>, ScimError> {
        let Some(text) = &self.filter else { return Ok(None) };
        filter::parse(text, &|name: &str| schemas::knows(attrs, name))
            .map(Some)
            .map_err(|error| ScimError::bad("invalidFilter", error.message))
    }

    /// A resource with only the attributes asked for (`id` and `schemas` always).
    pub(crate) fn project(&self, mut resource: Value) -> Value {
        let Some(object) = resource.as_object_mut() else { return resource };
        if !self.attributes.is_empty() {
            object.retain(|key, _| {
                let key = key.to_ascii_lowercase();
                key == "id"
                    || key == "schemas"
                    || self
                        .attributes
                        .iter()
                        .any(|a| a == &key || a.split('.').next() == Some(key.as_str()))
            });
        }
        object.retain(|key, _| {
            let key = key.to_ascii_lowercase();
            key == "id" || key == "schemas" || !self.excluded.contains(&key)
        });
        resource
    }

    /// The list answer: the resources matching the filter, one page of them.
    pub(crate) fn answer(
        &self,
        filter: Option<&filter::Filter>,
        resources: Vec<Value>,
    ) -> Response {
        let matching: Vec<Value> = resources
            .into_iter()
            .filter(|resource| filter.is_none_or(|f| filter::matches(f, resource)))
            .collect();
        let total = matching.len();
        let page: Vec<Value> = matching
            .into_iter()
            .skip(self.start_index - 1)
            .take(self.count)
            .map(|resource| self.project(resource))
            .collect();
        scim_json(
            StatusCode::OK,
            &json!({
                "schemas": [LIST_SCHEMA],
                "totalResults": total,
                "startIndex": self.start_index,
                "itemsPerPage": page.len(),
                "Resources": page,
            }),
        )
    }
}

/// `meta` of a resource.
pub(crate) fn meta(
    kind: &str,
    location: String,
    created: chrono::DateTime<chrono::Utc>,
    modified: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "resourceType": kind,
        "created": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lastModified": modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "location": location,
        "version": format!("W/\"{}\"", modified.timestamp_micros()),
    })
}

/// `POST /.search` over every resource type: not supported (501). The body is read, so that
/// the connection stays usable.
async fn search_all(body: Body) -> ScimError {
    let _ = read_object(body).await;
    ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "searching several resource types at once is not supported: use /Users/.search or \
         /Groups/.search",
    )
}

async fn service_provider_config(State(state): State<AppState>) -> Response {
    scim_json(StatusCode::OK, &schemas::service_provider_config(&base(state.config())))
}

fn list_of(items: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": items.len(),
            "startIndex": 1,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    )
}

async fn resource_types(State(state): State<AppState>) -> Response {
    list_of(schemas::resource_types(&base(state.config())))
}

async fn resource_type(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ScimError> {
    schemas::resource_types(&base(state.config()))
        .into_iter()
        .find(|item| item["id"].as_str() == Some(id.as_str()))
        .map(|item| scim_json(StatusCode::OK, &item))
        .ok_or_else(|| ScimError::not_found("resource type", &id))
}

async fn schema_list(State(state): State<AppState>) -> Response {
    list_of(schemas::schemas(&base(state.config())))
}

async fn schema(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Response, ScimError> {
    schemas::schemas(&base(state.config()))
        .into_iter()
        .find(|item| item["id"].as_str() == Some(id.as_str()))
        .map(|item| scim_json(StatusCode::OK, &item))
        .ok_or_else(|| ScimError::not_found("schema", &id))
}
