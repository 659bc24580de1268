//! An in-process LiteLLM proxy for the integration tests: the part of LiteLLM's management API
//! hookgate calls as LiteLLM's front door (`/user/info`, `/user/list`, `/user/new`,
//! `/user/update`, `/team/new`, `/team/member_add`, `/team/member_delete`, `/key/generate`,
//! `/key/info`, `/key/list`, `/key/delete`), with users, teams and
//! keys kept in memory, the master key checked on every call, every request recorded, failures
//! on demand, and `/chat/completions` answering 200 only for a live key (generated, not deleted).
//!
//! Answers follow what LiteLLM 1.108.7 answered (tests/litellm/NOTES.md): errors are
//! `{"error": {"message", "type", "param", "code"}}` (FastAPI's `{"detail": …}` for a missing
//! team and unknown routes); `/user/info` answers 404 for an unknown user; `/user/list?user_email=`
//! is a case-insensitive substring match and `?sso_user_ids=` exact; `/user/new` answers 409 for
//! a taken id or email (any case) and 500 for a taken `sso_user_id`; `/user/update` upserts,
//! ignores `sso_user_id` and an empty `models`; `/key/info` answers a deleted key with
//! `"status": "deleted"` (from LiteLLM's archive) and an unknown one with 404;
//! `/team/member_delete` answers 400 for an unknown team or a non-member; `/team/new` answers
//! 400 "Team id = … already exists" for a taken id;
//! `/team/member_add` answers 404 for an unknown team and 400 `team_member_already_in_team` for
//! a member; `/key/generate` mints `sk-` + 22 characters whose token is its SHA-256 hex;
//! `/key/delete` takes keys raw or as tokens, and answers 404 when it finds none.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`…
    pub method: String,
    /// The path (without the query).
    pub path: String,
    /// The path and query as sent (`/user/info?user_id=alice`).
    pub path_and_query: String,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Value,
    /// Whether it carried the master key as a Bearer token.
    pub authorized: bool,
}

/// A generated key.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The `sk-…` key.
    pub key: String,
    /// Its SHA-256 hex (LiteLLM's token).
    pub token: String,
    /// The owner.
    pub user_id: String,
    /// The `/key/generate` body.
    pub request: Value,
    /// Whether `/key/delete` removed it.
    pub deleted: bool,
}

#[derive(Default)]
struct Data {
    master_key: Option<String>,
    /// User rows as LiteLLM lists them (`user_id`, `user_email`, `sso_user_id`, `teams`, …).
    users: BTreeMap<String, Value>,
    /// Team id → member user ids.
    teams: BTreeMap<String, Vec<String>>,
    keys: Vec<KeyRecord>,
    requests: Vec<Recorded>,
    /// Path → (status, LiteLLM error message) answered instead of the real thing.
    failures: HashMap<String, (u16, String)>,
    /// Where every request is redirected (307, the same path and query), when set.
    redirect_to: Option<String>,
    counter: u64,
}

/// A running fake LiteLLM.
pub struct FakeLitellm {
    data: Arc<Mutex<Data>>,
    url: String,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl FakeLitellm {
    /// Starts on a free loopback port. It answers 401 to everything until
    /// [`Self::set_master_key`] names the master key.
    pub fn start() -> FakeLitellm {
        let (runtime, listener, address) = crate::loopback_server("fake LiteLLM");
        let data = Arc::new(Mutex::new(Data::default()));
        let app = Router::new().fallback(handle).with_state(data.clone());
        runtime.spawn(async move {
            axum::serve(listener, app).await.expect("fake LiteLLM serves");
        });
        FakeLitellm { data, url: format!("http://{address}"), runtime: Mutex::new(Some(runtime)) }
    }

    /// A URL on a loopback port nothing listens on.
    pub fn unreachable_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    /// Its base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The master key it accepts.
    pub fn set_master_key(&self, key: &str) {
        self.data.lock().unwrap().master_key = Some(key.to_owned());
    }

    /// Stops it: every later connection is refused, and open ones are closed.
    pub fn stop(&self) {
        if let Some(runtime) = self.runtime.lock().unwrap().take() {
            runtime.shutdown_background();
        }
    }

    /// Answers `status` with a LiteLLM-shaped error carrying `message` to every request for
    /// `path` (no query), until [`Self::succeed`].
    pub fn fail(&self, path: &str, status: u16, message: &str) {
        self.data.lock().unwrap().failures.insert(path.to_owned(), (status, message.to_owned()));
    }

    /// Answers every request with a 307 to the same path and query under `base` (another
    /// server), as a compromised or misconfigured proxy in front of LiteLLM might.
    pub fn redirect_to(&self, base: &str) {
        self.data.lock().unwrap().redirect_to = Some(base.to_owned());
    }

    /// Stops failing on `path`.
    pub fn succeed(&self, path: &str) {
        self.data.lock().unwrap().failures.remove(path);
    }

    /// Adds a user row as LiteLLM would hold it (needs `user_id`; `teams` defaults to none).
    pub fn add_user(&self, mut row: Value) {
        let id = row["user_id"].as_str().expect("a user_id").to_owned();
        if row.get("teams").is_none() {
            row["teams"] = json!([]);
        }
        let mut data = self.data.lock().unwrap();
        for team in row["teams"].as_array().cloned().unwrap_or_default() {
            let team = team.as_str().unwrap_or_default().to_owned();
            data.teams.entry(team).or_default().push(id.clone());
        }
        data.users.insert(id, row);
    }

    /// Mints a key for `user_id` as LiteLLM's own UI or API would (not a hookgate session);
    /// returns the `sk-…` key.
    pub fn add_key(&self, user_id: &str) -> String {
        let mut data = self.data.lock().unwrap();
        data.counter += 1;
        let key = new_key(data.counter);
        let token = sha256_hex(&key);
        data.keys.push(KeyRecord {
            key: key.clone(),
            token,
            user_id: user_id.to_owned(),
            request: json!({"user_id": user_id}),
            deleted: false,
        });
        key
    }

    /// Creates a team with no members.
    pub fn add_team(&self, team_id: &str) {
        self.data.lock().unwrap().teams.entry(team_id.to_owned()).or_default();
    }

    /// A user row, if LiteLLM has it.
    pub fn user(&self, user_id: &str) -> Option<Value> {
        self.data.lock().unwrap().users.get(user_id).cloned()
    }

    /// Every user row.
    pub fn users(&self) -> Vec<Value> {
        self.data.lock().unwrap().users.values().cloned().collect()
    }

    /// A team's members.
    pub fn members(&self, team_id: &str) -> Vec<String> {
        self.data.lock().unwrap().teams.get(team_id).cloned().unwrap_or_default()
    }

    /// Every key generated so far, deleted or not.
    pub fn keys(&self) -> Vec<KeyRecord> {
        self.data.lock().unwrap().keys.clone()
    }

    /// Whether `key` (`sk-…`) works: generated and not deleted.
    pub fn is_live(&self, key: &str) -> bool {
        self.data.lock().unwrap().keys.iter().any(|record| record.key == key && !record.deleted)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.data.lock().unwrap().requests.clone()
    }

    /// The requests for `path` (no query), in order.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|request| request.path == path).collect()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.data.lock().unwrap().requests.clear();
    }
}

impl Drop for FakeLitellm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SHA-256 hex, LiteLLM's token for a key.
pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn error(status: u16, message: &str, kind: &str) -> Response {
    let status = StatusCode::from_u16(status).expect("a status");
    let body = json!({"error": {
        "message": message,
        "type": kind,
        "param": Value::Null,
        "code": status.as_u16().to_string(),
    }});
    (status, Json(body)).into_response()
}

/// The query of a URI as pairs, `%XX`-decoded.
fn query(uri: &Uri) -> HashMap<String, String> {
    crate::fake_idp::query_pairs(&uri.to_string())
}

/// `sk-` and 22 URL-safe characters, as LiteLLM mints them.
fn new_key(counter: u64) -> String {
    let seed = format!("{counter}-{}", crate::server::random_suffix());
    let digest = Sha256::digest(seed.as_bytes());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let tail: String =
        digest.iter().take(22).map(|byte| alphabet[usize::from(*byte) % 64] as char).collect();
    format!("sk-{tail}")
}

fn str_of<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

async fn handle(
    State(data): State<Arc<Mutex<Data>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let mut data = data.lock().unwrap();
    let authorized = bearer.is_some() && bearer == data.master_key;
    data.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        path_and_query: uri.path_and_query().map_or_else(|| path.clone(), ToString::to_string),
        body: body.clone(),
        authorized,
    });

    if let Some(base) = &data.redirect_to {
        let target = format!("{base}{}", uri.path_and_query().map_or("/", |pq| pq.as_str()));
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response();
    }
    let Some(bearer) = bearer else {
        return error(401, "Authentication Error, No api key passed in.", "auth_error");
    };
    // The client API: any live key works, the master key too.
    if path == "/chat/completions" || path == "/v1/chat/completions" {
        let live =
            authorized || data.keys.iter().any(|record| record.key == bearer && !record.deleted);
        return if live {
            Json(json!({"object": "chat.completion", "choices": []})).into_response()
        } else {
            error(401, "Authentication Error, Invalid API key provided.", "token_not_found_in_db")
        };
    }
    if !authorized {
        return error(
            401,
            "Authentication Error, Invalid API key provided.",
            "token_not_found_in_db",
        );
    }
    if let Some((status, message)) = data.failures.get(&path).cloned() {
        return error(status, &message, "internal_server_error");
    }
    let query = query(&uri);
    match (method.as_str(), path.as_str()) {
        ("GET", "/user/info") => {
            let id = query.get("user_id").cloned().unwrap_or_default();
            match data.users.get(&id) {
                Some(row) => {
                    Json(json!({"user_id": id, "user_info": row, "keys": [], "teams": []}))
                        .into_response()
                }
                None => error(404, &format!("User {id} not found"), "internal_server_error"),
            }
        }
        ("GET", "/user/list") => {
            let users: Vec<Value> = data
                .users
                .values()
                .filter(|row| match query.get("sso_user_ids") {
                    Some(ids) => ids.split(',').any(|id| str_of(row, "sso_user_id") == Some(id)),
                    None => true,
                })
                .filter(|row| match query.get("user_email") {
                    Some(email) => str_of(row, "user_email").is_some_and(|stored| {
                        stored.to_lowercase().contains(&email.to_lowercase())
                    }),
                    None => true,
                })
                .cloned()
                .collect();
            let total = users.len();
            Json(json!({"users": users, "total": total, "page": 1, "page_size": 25, "total_pages": total.div_ceil(25)}))
                .into_response()
        }
        ("POST", "/user/new") => {
            let id = str_of(&body, "user_id").unwrap_or_default().to_owned();
            if id.is_empty() {
                return error(400, "the fake needs a user_id", "bad_request_error");
            }
            if data.users.contains_key(&id) {
                let message = format!("{{'error': 'User with id {id} already exists'}}");
                return error(409, &message, "internal_server_error");
            }
            if let Some(email) = str_of(&body, "user_email")
                && let Some(taken) = data.users.values().find_map(|row| {
                    str_of(row, "user_email").filter(|stored| stored.eq_ignore_ascii_case(email))
                })
            {
                let message = format!("{{'error': 'User with email {taken} already exists'}}");
                return error(409, &message, "internal_server_error");
            }
            if let Some(sso) = str_of(&body, "sso_user_id")
                && data.users.values().any(|row| str_of(row, "sso_user_id") == Some(sso))
            {
                return error(500, "{'error': 'Internal Server Error.'}", "internal_server_error");
            }
            let mut row = body.clone();
            row["teams"] = json!([]);
            row["spend"] = json!(0.0);
            row.as_object_mut().map(|row| row.remove("auto_create_key"));
            data.users.insert(id.clone(), row);
            Json(json!({"user_id": id, "key": "", "user_email": body["user_email"]}))
                .into_response()
        }
        ("POST", "/user/update") => {
            let id = str_of(&body, "user_id").unwrap_or_default().to_owned();
            // LiteLLM upserts: an unknown id is created.
            let row = data
                .users
                .entry(id.clone())
                .or_insert_with(|| json!({"user_id": id, "teams": [], "user_role": null}));
            // LiteLLM's update request has no `sso_user_id` (it is dropped: the binding can
            // only be set at creation), and an empty `models` list leaves the models as they are.
            for (field, value) in body.as_object().into_iter().flatten() {
                if field == "sso_user_id" || (field == "models" && value == &json!([])) {
                    continue;
                }
                row[field.as_str()] = value.clone();
            }
            Json(json!({"user_id": id, "data": row.clone()})).into_response()
        }
        ("POST", "/team/member_add") => {
            let team = str_of(&body, "team_id").unwrap_or_default().to_owned();
            let Some(members) = data.teams.get(&team).cloned() else {
                let message = format!(
                    "Team doesn't exist in db. Team={team}. Create team via `/team/new` call."
                );
                return (StatusCode::NOT_FOUND, Json(json!({"detail": {"error": message}})))
                    .into_response();
            };
            let listed: Vec<Value> = match &body["member"] {
                Value::Array(list) => list.clone(),
                one @ Value::Object(_) => vec![one.clone()],
                _ => Vec::new(),
            };
            let new: Vec<String> = listed
                .iter()
                .filter_map(|member| str_of(member, "user_id").map(str::to_owned))
                .filter(|id| !members.contains(id))
                .collect();
            if new.is_empty() {
                return error(
                    400,
                    &format!("All users are already in team. Existing members={members:?}"),
                    "team_member_already_in_team",
                );
            }
            for id in &new {
                data.teams.get_mut(&team).expect("the team").push(id.clone());
                let row = data.users.entry(id.clone()).or_insert_with(|| {
                    json!({"user_id": id, "user_role": "internal_user", "user_email": null, "teams": []})
                });
                if let Some(teams) = row["teams"].as_array_mut() {
                    teams.push(json!(team));
                }
            }
            Json(json!({"team_id": team, "updated_users": new})).into_response()
        }
        ("GET", "/key/list") => {
            // LiteLLM's default answer: the tokens (SHA-256 hex) of the user's live keys, paged.
            let user = query.get("user_id").cloned().unwrap_or_default();
            let size: usize = query.get("size").and_then(|s| s.parse().ok()).unwrap_or(10).max(1);
            let page: usize = query.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
            let tokens: Vec<String> = data
                .keys
                .iter()
                .filter(|record| record.user_id == user && !record.deleted)
                .map(|record| record.token.clone())
                .collect();
            let total_pages = tokens.len().div_ceil(size).max(1);
            let keys: Vec<String> =
                tokens.iter().skip((page - 1) * size).take(size).cloned().collect();
            Json(json!({"keys": keys, "total_count": tokens.len(), "current_page": page, "total_pages": total_pages}))
                .into_response()
        }
        ("GET", "/key/info") => {
            let given = query.get("key").cloned().unwrap_or_default();
            // LiteLLM serves a deleted key from its archive, with status "deleted".
            match data.keys.iter().find(|record| record.key == given || record.token == given) {
                Some(record) => {
                    let status = if record.deleted { "deleted" } else { "active" };
                    let info = json!({"user_id": record.user_id, "team_id": record.request["team_id"], "status": status});
                    Json(json!({"key": given, "info": info})).into_response()
                }
                None => error(404, "Key not found in database", "not_found_error"),
            }
        }
        ("POST", "/team/new") => {
            let team = str_of(&body, "team_id").unwrap_or_default().to_owned();
            if team.is_empty() || team == "litellm-dashboard" {
                return error(400, "a team_id is required", "bad_request_error");
            }
            if data.teams.contains_key(&team) {
                return error(
                    400,
                    &format!("Team id = {team} already exists. Please use a different team id."),
                    "bad_request_error",
                );
            }
            data.teams.insert(team.clone(), Vec::new());
            Json(json!({"team_id": team, "team_alias": body["team_alias"]})).into_response()
        }
        ("POST", "/team/member_delete") => {
            let team = str_of(&body, "team_id").unwrap_or_default().to_owned();
            let user = str_of(&body, "user_id").unwrap_or_default().to_owned();
            let Some(members) = data.teams.get_mut(&team) else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"detail": {"error": format!("Team id={team} does not exist in db")}})),
                )
                    .into_response();
            };
            let Some(at) = members.iter().position(|member| *member == user) else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"detail": {"error": "User not found in team"}})),
                )
                    .into_response();
            };
            members.remove(at);
            if let Some(teams) =
                data.users.get_mut(&user).and_then(|row| row["teams"].as_array_mut())
            {
                teams.retain(|t| t.as_str() != Some(team.as_str()));
            }
            Json(json!({"team_id": team})).into_response()
        }
        ("POST", "/key/generate") => {
            let user_id = str_of(&body, "user_id").unwrap_or_default().to_owned();
            if let Some(duration) = str_of(&body, "duration")
                && !duration
                    .trim_end_matches(['s', 'm', 'h', 'd'])
                    .chars()
                    .all(|c| c.is_ascii_digit())
            {
                return error(500, "Invalid duration format", "internal_server_error");
            }
            data.counter += 1;
            let key = new_key(data.counter);
            let token = sha256_hex(&key);
            data.keys.push(KeyRecord {
                key: key.clone(),
                token: token.clone(),
                user_id: user_id.clone(),
                request: body.clone(),
                deleted: false,
            });
            Json(json!({
                "key": key,
                "token": token,
                "token_id": token,
                "user_id": user_id,
                "team_id": body["team_id"],
                "key_name": format!("sk-...{}", &key[key.len() - 4..]),
            }))
            .into_response()
        }
        ("POST", "/key/delete") => {
            let wanted: Vec<String> = body["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|key| key.as_str().map(str::to_owned))
                .collect();
            let mut deleted = Vec::new();
            for record in data.keys.iter_mut().filter(|record| !record.deleted) {
                if let Some(given) =
                    wanted.iter().find(|key| **key == record.key || **key == record.token)
                {
                    record.deleted = true;
                    deleted.push(given.clone());
                }
            }
            if deleted.is_empty() {
                return error(404, "{'error': 'No keys found'}", "internal_server_error");
            }
            Json(json!({"deleted_keys": deleted})).into_response()
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response(),
    }
}
