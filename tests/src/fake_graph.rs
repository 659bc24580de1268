//! The fake IdP's Microsoft Graph: `GET /graph/v1.0/me/transitiveMemberOf/microsoft.graph.group`
//! with a bearer token the fake issued, answering the groups of [`Behavior::graph_groups`]
//! `graph_page_size` at a time, each page linking the next with `@odata.nextLink` as Graph does
//! (`$skiptoken`), or failing with `graph_status` and a Graph error body.
//!
//! [`Behavior::graph_groups`]: crate::fake_idp::Behavior::graph_groups

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{OriginalUri, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::fake_idp::Shared;

/// Where the fake serves the user's groups.
pub(crate) const GROUPS_PATH: &str = "/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group";

pub(crate) async fn groups(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.graph_requests.lock().unwrap().push(uri.to_string());
    let behavior = shared.behavior.lock().unwrap().clone();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|token| shared.tokens.lock().unwrap().contains_key(token)) {
        return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.");
    }
    if let Some(status) = behavior.graph_status {
        return graph_error(
            status,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    if query.get("$select").map(String::as_str) != Some("id,displayName") {
        return graph_error(400, "BadRequest", "expected $select=id,displayName");
    }
    let start: usize = query.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
    let size = behavior.graph_page_size.max(1);
    let page: Vec<Value> = behavior
        .graph_groups
        .iter()
        .skip(start)
        .take(size)
        .map(|(id, name)| json!({"@odata.type": "#microsoft.graph.group", "id": id, "displayName": name}))
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/graph/v1.0/$metadata#directoryObjects", shared.issuer),
        "value": page,
    });
    if start + size < behavior.graph_groups.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}{GROUPS_PATH}?$select=id,displayName&$skiptoken={}",
            shared.issuer,
            start + size
        ));
    }
    Json(body).into_response()
}

fn graph_error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}
