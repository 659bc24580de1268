//! `GET /metrics` through the built server, on SQLite and PostgreSQL: off unless LiteLLM's
//! `callbacks` names `prometheus`; then sign-ins by method and outcome, both hooks' durations,
//! sign-in and writer-transaction durations and the live sessions, in Prometheus' text format;
//! behind the master key with `require_auth_for_metrics_endpoint`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use hookgate::db::entity::session;

use hookgate_tests::{
    SEED_CONFIG,
    server::{Backend, Reply, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{ActiveValue::Set, EntityTrait};
use serde_json::json;

/// The seed config with metrics on, and `general` added to its general settings.
fn config_with_metrics(general: &str) -> String {
    SEED_CONFIG
        .replace(
            "litellm_settings:\n",
            "litellm_settings:\n  callbacks: [\"langfuse\", \"prometheus\"]\n",
        )
        .replace("general_settings:\n", &format!("general_settings:\n{general}"))
}

/// The live sessions counted at every scrape (instead of at most every 15 s), for tests that
/// check the gauge right after signing in or out.
const NO_CACHE: &[(&str, &str)] = &[("HOOKGATE_TEST_METRICS_LIVE_SESSIONS_TTL_MS", "0")];

/// One sample of the exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped; label values here hold no
/// commas or escaped quotes).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().unwrap_or_else(|_| panic!("a value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line:?}"));
                    let labels = labels
                        .split(',')
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("key=value");
                            let value = value.trim_matches('"');
                            (key.to_owned(), value.to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample { name: name.to_owned(), labels, value }
        })
        .collect()
}

/// The value of the one sample named `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let found: Vec<&Sample> =
        samples.iter().filter(|s| s.name == name && s.labels == wanted).collect();
    match found.as_slice() {
        [sample] => sample.value,
        _ => panic!("{} samples {name}{labels:?} in {samples:#?}", found.len()),
    }
}

fn scrape(server: &TestServer, headers: &[(&str, &str)]) -> Vec<Sample> {
    let reply = server.get("/metrics", headers);
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.logs());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse(&reply.body)
}

fn logout(server: &TestServer, key: &str) -> Reply {
    server.post_json("/session/logout", &json!({}), &[("authorization", &format!("Bearer {key}"))])
}

#[test]
fn metrics_are_off_unless_prometheus_is_a_callback() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let reply = server.get("/metrics", &[("authorization", &server.master_auth())]);
        assert_eq!(reply.status, 404, "{}", reply.body);

        // Other callbacks start the server as before, with no /metrics.
        let config = SEED_CONFIG
            .replace("litellm_settings:\n", "litellm_settings:\n  callbacks: [\"langfuse\"]\n");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..Default::default() },
        );
        server.session_key("alice", &[]);
        assert_eq!(server.get("/metrics", &[]).status, 404);
        assert!(server.logged("litellm_settings.callbacks[0] (langfuse)"), "{}", server.logs());
    });
}

#[test]
fn metrics_count_sign_ins_hooks_transactions_and_live_sessions() {
    for_each_backend(|backend| {
        let config = config_with_metrics("");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, env: NO_CACHE, ..Default::default() },
        );

        // Before any sign-in: every sign-in series at zero, no sessions.
        let samples = scrape(&server, &[]);
        for method in ["header", "oidc", "password"] {
            for outcome in ["allowed", "refused", "failed"] {
                let labels = [("method", method), ("outcome", outcome)];
                assert_eq!(value(&samples, "hookgate_sign_ins_total", &labels), 0.0);
            }
        }
        assert_eq!(value(&samples, "hookgate_live_sessions", &[]), 0.0);

        const N: usize = 3;
        let keys: Vec<String> =
            (0..N).map(|i| server.session_key(&format!("user{i}"), &["staff"])).collect();
        // The header hook refuses a request with no identity: it ran, custom_sso did not.
        let refused = server.get("/sso/key/generate", &[("x-forwarded-preferred-username", "x")]);
        assert_eq!(refused.status, 403, "{}", refused.body);
        // A password sign-in.
        server.password_cookie(&server.master_key);

        let samples = scrape(&server, &[]);
        let sign_ins = |method, outcome| {
            value(&samples, "hookgate_sign_ins_total", &[("method", method), ("outcome", outcome)])
        };
        assert_eq!(sign_ins("header", "allowed"), N as f64);
        assert_eq!(sign_ins("header", "refused"), 1.0);
        assert_eq!(sign_ins("header", "failed"), 0.0);
        assert_eq!(sign_ins("password", "allowed"), 1.0);
        assert_eq!(sign_ins("oidc", "allowed"), 0.0);

        let hook = |name, hook| value(&samples, name, &[("hook", hook)]);
        let handler = "custom_ui_sso_sign_in_handler";
        assert_eq!(hook("hookgate_hook_duration_seconds_count", handler), (N + 1) as f64);
        assert_eq!(hook("hookgate_hook_duration_seconds_count", "custom_sso"), N as f64);
        assert!(hook("hookgate_hook_duration_seconds_sum", "custom_sso") > 0.0);
        let inf = value(
            &samples,
            "hookgate_hook_duration_seconds_bucket",
            &[("hook", "custom_sso"), ("le", "+Inf")],
        );
        assert_eq!(inf, N as f64);

        // Every attempt, allowed or refused, whatever its method.
        assert_eq!(value(&samples, "hookgate_sign_in_duration_seconds_count", &[]), (N + 2) as f64);
        assert!(value(&samples, "hookgate_sign_in_duration_seconds_sum", &[]) > 0.0);
        // The header sign-ins went through the writer: at least one transaction, at most one
        // each.
        let transactions = value(&samples, "hookgate_db_transaction_duration_seconds_count", &[]);
        assert!((1.0..=N as f64).contains(&transactions), "{transactions}");
        assert!(value(&samples, "hookgate_db_transaction_duration_seconds_sum", &[]) > 0.0);

        assert_eq!(value(&samples, "hookgate_live_sessions", &[]), (N + 1) as f64);
        let out = logout(&server, &keys[0]);
        assert_eq!(out.status, 200, "{}", out.body);
        let samples = scrape(&server, &[]);
        assert_eq!(value(&samples, "hookgate_live_sessions", &[]), N as f64);
    });
}

#[test]
fn require_auth_for_metrics_endpoint_needs_the_master_key() {
    for_each_backend(|backend| {
        let config = config_with_metrics("  require_auth_for_metrics_endpoint: true\n");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, env: NO_CACHE, ..Default::default() },
        );
        let key = server.session_key("alice", &[]);

        let reply = server.get("/metrics", &[]);
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.json()["error"]["type"], "auth_error", "{}", reply.body);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(!reply.body.contains("hookgate_sign_ins_total"));
        let reply = server.get("/metrics", &[("authorization", "Bearer sk-wrong")]);
        assert_eq!(reply.status, 401, "{}", reply.body);
        // A session key is not the master key.
        let reply = server.get("/metrics", &[("authorization", &format!("Bearer {key}"))]);
        assert_eq!(reply.status, 403, "{}", reply.body);

        let samples = scrape(&server, &[("authorization", &server.master_auth())]);
        let labels = [("method", "header"), ("outcome", "allowed")];
        assert_eq!(value(&samples, "hookgate_sign_ins_total", &labels), 1.0);
        assert_eq!(value(&samples, "hookgate_live_sessions", &[]), 1.0);
    });
}

#[test]
fn the_live_sessions_are_counted_at_most_once_per_interval() {
    const TTL: Duration = Duration::from_millis(2000);
    let config = config_with_metrics("");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            config: &config,
            env: &[("HOOKGATE_TEST_METRICS_LIVE_SESSIONS_TTL_MS", "2000")],
            ..Default::default()
        },
    );
    server.session_key("alice", &[]);
    let live = |server: &TestServer| value(&scrape(server, &[]), "hookgate_live_sessions", &[]);
    let counted_at = Instant::now();
    assert_eq!(live(&server), 1.0);

    // Three more sessions, written behind the server's back.
    server.db(async |conn| {
        let now = chrono::Utc::now();
        for idx in 0..3 {
            let row = session::ActiveModel {
                token_hash: Set(format!("{idx:064x}")),
                user_id: Set("alice".into()),
                user_role: Set("internal_user".into()),
                login_method: Set("sso".into()),
                models: Set(json!([])),
                max_budget: Set(None),
                created_at: Set(now),
                expires_at: Set(now + chrono::Duration::hours(1)),
                revoked_at: Set(None),
            };
            session::Entity::insert(row).exec(conn).await.unwrap();
        }
    });
    // Scrapes within the interval reuse the count; the first one after it counts again.
    let mut scrapes = Vec::new();
    loop {
        let started = Instant::now();
        let gauge = live(&server);
        scrapes.push((started, Instant::now(), gauge));
        if gauge == 4.0 || started.duration_since(counted_at) > 5 * TTL {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let within: Vec<f64> = scrapes
        .iter()
        .filter(|(_, done, _)| done.duration_since(counted_at) < TTL)
        .map(|(_, _, gauge)| *gauge)
        .collect();
    assert!(!within.is_empty(), "no scrape within the interval: {scrapes:?}");
    assert!(within.iter().all(|gauge| *gauge == 1.0), "re-counted within the interval: {within:?}");
    let (_, _, gauge) = scrapes.last().unwrap();
    assert_eq!(*gauge, 4.0, "counted again after the interval: {scrapes:?}");
}
