//! A `hookgate` process on a free loopback port, with its own database (SQLite file or a fresh
//! PostgreSQL database), its logs captured, and an HTTP client that follows no redirects.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{LITELLM_VARIABLES, Scratch, hookgate_bin};

/// Which database a test server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the server's scratch folder.
    Sqlite,
    /// A fresh database on the PostgreSQL server at this admin URL.
    Postgres(String),
}

impl Backend {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The backends the suite runs against: SQLite, and the PostgreSQL the test command started
/// (`HOOKGATE_TEST_POSTGRES_URL`). A missing PostgreSQL fails the test, unless the run opts out
/// with `HOOKGATE_TEST_SKIP_POSTGRES=1` (then the PostgreSQL half is skipped, saying so).
pub fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Sqlite];
    if let Some(url) = postgres_url() {
        backends.push(Backend::Postgres(url));
    }
    backends
}

/// The test PostgreSQL's admin URL; `None` only when the run opted out of PostgreSQL.
///
/// # Panics
/// When PostgreSQL is missing and the run did not opt out.
pub fn postgres_url() -> Option<String> {
    match std::env::var("HOOKGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("HOOKGATE_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("--- PostgreSQL skipped (HOOKGATE_TEST_SKIP_POSTGRES=1)");
            None
        }
        _ => panic!(
            "HOOKGATE_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which \
             starts PostgreSQL, or set HOOKGATE_TEST_SKIP_POSTGRES=1 to run without it"
        ),
    }
}

/// Runs `test` once per backend, naming the backend when it fails.
pub fn for_each_backend(test: impl Fn(&Backend)) {
    for backend in backends() {
        eprintln!("--- backend: {}", backend.name());
        test(&backend);
    }
}

/// A running server.
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The master key it runs with.
    pub master_key: String,
    /// Its database URL.
    pub database_url: String,
    /// Its scratch folder (config, SQLite file).
    pub scratch: Scratch,
    logs: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
    postgres_cleanup: Option<(String, String)>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }

    /// The value of the cookie `name` set by this response (empty values count as unset).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.headers
            .iter()
            .filter(|(key, _)| key == "set-cookie")
            .find_map(|(_, cookie)| {
                cookie.strip_prefix(&prefix)?.split(';').next().map(str::to_owned)
            })
            .filter(|value| !value.is_empty())
    }

    /// The full `Set-Cookie` line for `name`.
    pub fn set_cookie_line(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.headers
            .iter()
            .filter(|(key, _)| key == "set-cookie")
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&prefix))
    }

    /// The `token` cookie set by this response.
    pub fn token_cookie(&self) -> Option<String> {
        self.cookie("token")
    }
}

/// A random lower-case hex string.
pub fn random_suffix() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{:x}{:x}", std::process::id(), nanos, counter)
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// How a test server is started.
pub struct ServerOptions<'a> {
    /// Text of `config.yaml` (`{plugins}` is replaced by the built plugins' folder).
    pub config: &'a str,
    /// Extra environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// Whether to pass a master key through `LITELLM_MASTER_KEY` (the default).
    pub master_key: bool,
    /// Use this existing database (and master key) instead of a fresh one, as replicas do.
    pub shared: Option<(&'a str, &'a str)>,
}

impl Default for ServerOptions<'_> {
    fn default() -> Self {
        Self { config: crate::SEED_CONFIG, env: &[], master_key: true, shared: None }
    }
}

impl TestServer {
    /// Starts the built `hookgate` with the seed config and both example plugins.
    pub fn start(backend: &Backend) -> TestServer {
        Self::start_with(backend, ServerOptions::default())
    }

    /// Starts the built `hookgate`; panics with its log if it does not come up.
    pub fn start_with(backend: &Backend, options: ServerOptions<'_>) -> TestServer {
        let scratch = Scratch::new();
        let plugins = crate::build_dir().display().to_string();
        let config = options.config.replace("{plugins}", &plugins);
        let config_path = scratch.write("config.yaml", config);
        let (database_url, postgres_cleanup) = match (options.shared, backend) {
            (Some((url, _)), _) => (url.to_owned(), None),
            (None, Backend::Sqlite) => {
                (format!("sqlite://{}", scratch.path().join("hookgate.db").display()), None)
            }
            (None, Backend::Postgres(admin)) => {
                let name = format!("hookgate_test_{}", random_suffix());
                block_on(async {
                    use sea_orm::ConnectionTrait;
                    let conn = sea_orm::Database::connect(admin.as_str())
                        .await
                        .expect("connect to PostgreSQL");
                    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
                        .await
                        .expect("create database");
                    conn.close().await.ok();
                });
                let (base, _) = admin.rsplit_once('/').expect("a database URL");
                (format!("{base}/{name}"), Some((admin.clone(), name)))
            }
        };
        let master_key = match options.shared {
            Some((_, key)) => key.to_owned(),
            None => format!("sk-test-{}", random_suffix()),
        };
        let port = free_port();
        let mut command = Command::new(hookgate_bin());
        command
            .args([
                "--config",
                &config_path.display().to_string(),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .env("HOOKGATE_LOG", "info,sea_orm_migration=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in LITELLM_VARIABLES {
            command.env_remove(name);
        }
        command.env("DATABASE_URL", &database_url);
        if options.master_key {
            command.env("LITELLM_MASTER_KEY", &master_key);
        }
        for (name, value) in options.env {
            // `{base}` stands for the server's own URL, known only here.
            command.env(name, value.replace("{base}", &format!("http://127.0.0.1:{port}")));
        }
        let mut child = command.spawn().expect("start hookgate");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "hookgate exited with {status} before listening:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "hookgate did not listen within 60 s:\n{}",
                logs.lock().unwrap().join("\n")
            );
        }
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        TestServer {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            master_key,
            database_url,
            scratch,
            logs,
            agent,
            postgres_cleanup,
        }
    }

    /// The server's own `host:port`, for `Origin` checks.
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Whether the log has a line containing `text`, waiting up to 5 s for it: a line the
    /// server wrote before answering may reach the reader thread after the answer.
    pub fn logged(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.logs.lock().unwrap().iter().any(|line| line.contains(text)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The config file's folder.
    pub fn dir(&self) -> PathBuf {
        self.scratch.path().to_owned()
    }

    fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = result.expect("HTTP request");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Reply { status, headers, body }
    }

    /// `GET path` with headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.get_url(&format!("{}{path}", self.base), headers)
    }

    /// `GET url` (any host) with headers.
    pub fn get_url(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.call())
    }

    /// `POST path` with a JSON body and headers.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.send_json(body))
    }

    /// `POST path` with a form body.
    pub fn post_form(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        self.post_raw(path, "application/x-www-form-urlencoded", body, headers)
    }

    /// `POST path` with a raw body.
    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request =
            self.agent.post(format!("{}{path}", self.base)).header("content-type", content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::reply(request.send(body))
    }

    /// `method path` with an optional body (sent as `content_type`) and headers: PUT, PATCH and
    /// DELETE as a SCIM client sends them.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &str)>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let reply = match body {
            Some((content_type, body)) => {
                let request = builder
                    .header("content-type", content_type)
                    .body(body.to_owned())
                    .expect("a request");
                self.agent.run(request)
            }
            None => self.agent.run(builder.body(()).expect("a request")),
        };
        Self::reply(reply)
    }

    /// `Authorization: Bearer <master key>`.
    pub fn master_auth(&self) -> String {
        format!("Bearer {}", self.master_key)
    }

    /// A header sign-in through the trusted-proxy path, as the OAuth proxy would send it.
    pub fn sign_in(&self, user: &str, email: &str, groups: &[&str]) -> Reply {
        let mut headers = vec![("x-forwarded-user", user), ("x-forwarded-email", email)];
        for group in groups {
            headers.push(("x-forwarded-groups", group));
        }
        self.get("/sso/key/generate", &headers)
    }

    /// Runs `query` against the server's database.
    pub fn db<T>(&self, query: impl AsyncFnOnce(&sea_orm::DatabaseConnection) -> T) -> T {
        let url = self.database_url.clone();
        block_on(async move {
            let conn = sea_orm::Database::connect(url.as_str())
                .await
                .expect("connect to the test database");
            let result = query(&conn).await;
            conn.close().await.ok();
            result
        })
    }

    /// Sends `request` as is over a new connection and reads the whole answer (the request
    /// should say `Connection: close`).
    pub fn raw(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let address = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// The claims of a `token` cookie, verified with this server's master key (HS256).
    pub fn claims(&self, token: &str) -> serde_json::Value {
        let key = jsonwebtoken::DecodingKey::from_secret(self.master_key.as_bytes());
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .expect("a valid HS256 token")
            .claims
    }

    /// A header sign-in of `user` (email `user@example.test`) that must succeed; returns the
    /// session key from its cookie.
    pub fn session_key(&self, user: &str, groups: &[&str]) -> String {
        let reply = self.sign_in(user, &format!("{user}@example.test"), groups);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, self.logs());
        let token = reply.token_cookie().expect("a token cookie");
        self.claims(&token)["key"].as_str().expect("a session key").to_owned()
    }

    /// `POST /login` as `admin` with `password`, from this server's origin; returns the
    /// `token=…` cookie.
    pub fn password_cookie(&self, password: &str) -> String {
        let reply = self.post_form(
            "/login",
            &format!("username=admin&password={password}"),
            &[("origin", &self.origin())],
        );
        assert_eq!(reply.status, 303, "{}", reply.body);
        format!("token={}", reply.token_cookie().expect("a token cookie"))
    }

    /// Creates a team through the API with the master key.
    pub fn create_team(&self, team_id: &str) {
        let reply = self.post_json(
            "/team/new",
            &serde_json::json!({"team_id": team_id}),
            &[("authorization", &self.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// Every user row.
    pub fn users(&self) -> Vec<hookgate::db::entity::user::Model> {
        use sea_orm::EntityTrait;
        self.db(async |conn| hookgate::db::entity::user::Entity::find().all(conn).await.unwrap())
    }

    /// `user_id`'s memberships as stored, by team: (team, source).
    pub fn memberships(&self, user_id: &str) -> Vec<(String, String)> {
        use hookgate::db::entity::team_member;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let user_id = user_id.to_owned();
        self.db(async move |conn| {
            team_member::Entity::find()
                .filter(team_member::Column::UserId.eq(user_id))
                .order_by_asc(team_member::Column::TeamId)
                .all(conn)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.team_id, m.source))
                .collect()
        })
    }

    /// Every sign-in event row.
    pub fn events(&self) -> Vec<hookgate::db::entity::sign_in_event::Model> {
        use sea_orm::EntityTrait;
        self.db(async |conn| {
            hookgate::db::entity::sign_in_event::Entity::find().all(conn).await.unwrap()
        })
    }

    /// Sends SIGHUP (a reload of the config and hooks) with `kill -HUP`.
    pub fn hangup(&self) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill").args(["-HUP", &child.id().to_string()]).status();
        assert!(status.is_ok_and(|status| status.success()), "kill -HUP failed");
    }

    /// Sends SIGTERM and waits for the process; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("hookgate did not stop within 20 s of SIGTERM:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
        if let Some((admin, name)) = self.postgres_cleanup.take() {
            block_on(async {
                use sea_orm::ConnectionTrait;
                if let Ok(conn) = sea_orm::Database::connect(admin.as_str()).await {
                    let _ = conn
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    conn.close().await.ok();
                }
            });
        }
    }
}
