//! Microsoft Entra groups: from the ID token's `groups` claim, or from Microsoft Graph
//! (`/me/transitiveMemberOf/microsoft.graph.group`, every page) when the token carries the
//! overage marker (more groups than a token holds, 200 in a JWT), no groups claim at all, or
//! when the groups are wanted by display name (tokens carry ids only).

use hookgate_core::values::MAX_GROUPS;
use serde_json::Value;

use super::OidcError;
use crate::{
    config::GraphSettings,
    untrusted::{MAX_SHOWN, printable},
};

/// At most this many pages are read (Graph's pages hold 100 groups, so [`MAX_GROUPS`] take
/// 100 pages; this bounds a Graph that sends near-empty pages).
const MAX_PAGES: usize = 1_000;
/// At most this many bytes are read of one page (a page of 100 groups is about 10 KB).
const MAX_PAGE_BYTES: usize = 4 << 20;

/// Where a Microsoft sign-in's groups come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupSource {
    /// The token's own claims (`groups`).
    Token,
    /// Microsoft Graph.
    Graph,
}

/// Whether the claims carry Entra's groups overage marker: `_claim_names.groups` (pointing
/// into `_claim_sources`), or `hasgroups: true` (the implicit flow's form).
pub(super) fn has_overage(claims: &Value) -> bool {
    let distributed = claims.get("_claim_names").and_then(|names| names.get("groups")).is_some();
    let hasgroups = matches!(claims.get("hasgroups"), Some(Value::Bool(true)))
        || matches!(claims.get("hasgroups"), Some(Value::String(text)) if text == "true");
    distributed || hasgroups
}

/// Where the groups of `claims` come from: Graph when names are wanted, when the token
/// overflowed, or when none of the configured group claims (`paths`, dot paths) is there.
pub(super) fn group_source(
    claims: &Value,
    paths: &[String],
    settings: &GraphSettings,
) -> GroupSource {
    let present = paths.iter().any(|path| super::claims::at_path(claims, path).is_some());
    if settings.groups_as_names || has_overage(claims) || !present {
        GroupSource::Graph
    } else {
        GroupSource::Token
    }
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

/// One page of Graph's answer: the groups it names (ids, or display names) and the next page.
pub(super) fn read_page(
    page: &Value,
    as_names: bool,
) -> Result<(Vec<String>, Option<String>), String> {
    let items = page
        .get("value")
        .and_then(Value::as_array)
        .ok_or("the answer has no `value` list of groups")?;
    let field = if as_names { "displayName" } else { "id" };
    let groups = items
        .iter()
        .filter_map(|item| item.get(field).and_then(Value::as_str))
        .map(str::trim)
        .filter(|group| !group.is_empty())
        .map(str::to_owned)
        .collect();
    let next = match page.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(link.clone()),
        Some(_) => return Err("`@odata.nextLink` is not a URL".into()),
    };
    Ok((groups, next))
}

/// Graph's error, for the message: `error.code: error.message`, escaped and cut.
fn graph_error(body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = match parsed.as_ref().and_then(|value| value.get("error")) {
        Some(error) => format!(
            "{}: {}",
            error.get("code").and_then(Value::as_str).unwrap_or("?"),
            error.get("message").and_then(Value::as_str).unwrap_or("")
        ),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    printable(text.trim(), MAX_SHOWN)
}

fn failed(detail: String) -> OidcError {
    tracing::warn!("Microsoft Graph group lookup failed: {detail}");
    OidcError::Upstream(format!(
        "the identity provider's group service (Microsoft Graph) failed: {detail}"
    ))
}

/// The signed-in user's groups from Graph, every page of
/// `GET {api}/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName`, with the
/// user's access token; each group once, in Graph's order. The token is sent to Graph's own
/// origin only: a next-page link elsewhere is an error.
pub(super) async fn graph_groups(
    http: &reqwest::Client,
    settings: &GraphSettings,
    access_token: &str,
) -> Result<Vec<String>, OidcError> {
    let home = origin(&settings.api).to_owned();
    let mut url = format!(
        "{}/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName",
        settings.api
    );
    let mut groups: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for page_number in 1..=MAX_PAGES {
        let mut response = http
            .get(&url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| {
                failed(format!("page {page_number}: {}", super::provider::error_chain(&error)))
            })?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| {
            failed(format!("page {page_number}: {}", super::provider::error_chain(&error)))
        })? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(failed(format!(
                    "page {page_number} is larger than {MAX_PAGE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(failed(format!(
                "page {page_number} answered HTTP {} ({})",
                status.as_u16(),
                graph_error(&body)
            )));
        }
        let page: Value = serde_json::from_slice(&body)
            .map_err(|error| failed(format!("page {page_number} is not JSON: {error}")))?;
        let (names, next) = read_page(&page, settings.groups_as_names)
            .map_err(|error| failed(format!("page {page_number}: {error}")))?;
        for group in names {
            if seen.insert(group.clone()) {
                groups.push(group);
            }
        }
        if groups.len() > MAX_GROUPS {
            return Err(OidcError::Refused(format!(
                "Microsoft Graph lists more than {MAX_GROUPS} groups for this user; hookgate \
                 accepts at most {MAX_GROUPS} (ask the identity provider's administrator to \
                 assign only the groups that matter here)"
            )));
        }
        match next {
            None => return Ok(groups),
            Some(link) if link.starts_with(&format!("{home}/")) => url = link,
            Some(link) => {
                return Err(failed(format!(
                    "page {page_number} links to {}, outside {home}: not followed (the access \
                     token goes to Graph only)",
                    printable(&link, MAX_SHOWN)
                )));
            }
        }
    }
    Err(failed(format!("more than {MAX_PAGES} pages of groups")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(as_names: bool) -> GraphSettings {
        GraphSettings { api: "https://graph.microsoft.com/v1.0".into(), groups_as_names: as_names }
    }

    #[test]
    fn the_overage_marker_and_a_missing_claim_send_the_lookup_to_graph() {
        let groups = ["groups".to_owned()];
        let overage = json!({
            "sub": "s",
            "_claim_names": {"groups": "src1"},
            "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/u/getMemberObjects"}}
        });
        assert!(has_overage(&overage));
        assert_eq!(group_source(&overage, &groups, &settings(false)), GroupSource::Graph);
        assert!(has_overage(&json!({"hasgroups": true})));
        assert!(!has_overage(&json!({"hasgroups": false, "groups": []})));
        assert!(!has_overage(&json!({"_claim_names": {"roles": "src1"}})));

        let listed = json!({"sub": "s", "groups": ["g1", "g2"]});
        assert_eq!(group_source(&listed, &groups, &settings(false)), GroupSource::Token);
        assert_eq!(
            group_source(&listed, &groups, &settings(true)),
            GroupSource::Graph,
            "tokens carry ids, names come from Graph"
        );
        // An empty list is an answer (no groups); no claim at all is not.
        assert_eq!(
            group_source(&json!({"groups": []}), &groups, &settings(false)),
            GroupSource::Token
        );
        assert_eq!(
            group_source(&json!({"sub": "s"}), &groups, &settings(false)),
            GroupSource::Graph
        );
        let nested = ["resource_access.app.groups".to_owned()];
        let claims = json!({"resource_access": {"app": {"groups": ["x"]}}});
        assert_eq!(group_source(&claims, &nested, &settings(false)), GroupSource::Token);
    }

    #[test]
    fn pages_give_ids_or_names_and_the_next_link() {
        let page = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/me/transitiveMemberOf/microsoft.graph.group?$skiptoken=X",
            "value": [
                {"@odata.type": "#microsoft.graph.group", "id": "0a1", "displayName": "Staff"},
                {"@odata.type": "#microsoft.graph.group", "id": "0a2", "displayName": null},
            ]
        });
        let (ids, next) = read_page(&page, false).unwrap();
        assert_eq!(ids, ["0a1", "0a2"]);
        assert!(next.unwrap().ends_with("$skiptoken=X"));
        let (names, _) = read_page(&page, true).unwrap();
        assert_eq!(names, ["Staff"], "a group without a name names no team");
        let (_, last) = read_page(&json!({"value": []}), false).unwrap();
        assert_eq!(last, None);
        assert!(read_page(&json!({"error": {"code": "x"}}), false).is_err());
        assert!(read_page(&json!({"value": [], "@odata.nextLink": 3}), false).is_err());
    }

    #[test]
    fn graph_errors_are_named_escaped_and_cut() {
        let body = br#"{"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges\nto complete the operation."}}"#;
        assert_eq!(
            graph_error(body),
            "Authorization_RequestDenied: Insufficient privileges\\nto complete the operation."
        );
        assert_eq!(graph_error(b"Service Unavailable"), "Service Unavailable");
        assert!(graph_error(&[b'x'; 5000]).ends_with("(5000 characters)"));
        assert_eq!(origin("https://graph.microsoft.us/v1.0"), "https://graph.microsoft.us");
        assert_eq!(origin("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
    }
}
