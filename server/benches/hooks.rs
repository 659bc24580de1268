//! Per-call cost of each hook kind, compiled into this binary ("direct") and through the loaded
//! cdylib ("plugin"), including building the request view from an HTTP header map.
//!
//! Needs the release plugins: `cargo build --release -p custom_sso -p custom_sso_handler`, then
//! `cargo bench -p hookgate --bench hooks` (see BENCHMARKS.md).

use std::{hint::black_box, path::PathBuf};

use divan::Bencher;
use hookgate::{
    config::Config,
    plugins::{PluginLoader, Plugins, RequestLine, header_pairs},
};
use http::{HeaderMap, HeaderValue};
use plugin_api::{
    HostError, LogLevel, NewUser, OpenId, TeamRecord, TeamRole, UserRecord, abi::HostApi,
};

fn main() {
    // Enough samples that the medians settle on a noisy 2-core VM; `--sample-count` overrides.
    divan::Divan::default().sample_count(2000).config_with_args().main();
}

/// Eight headers, as oauth2-proxy sends them behind a typical reverse proxy.
fn header_map() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "sso.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"),
        ("accept", "text/html,application/xhtml+xml"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-user", "alice"),
        ("x-forwarded-email", "alice@example.com"),
        ("x-forwarded-preferred-username", "alice"),
        ("x-forwarded-groups", "admins,staff"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers
}

fn request_line() -> RequestLine {
    RequestLine::new(
        &http::Method::GET,
        &"/sso/key/generate".parse().unwrap(),
        "127.0.0.1:50000".parse().unwrap(),
    )
}

fn plugins() -> Plugins {
    let exe = std::env::current_exe().unwrap();
    let build_dir: PathBuf = exe.parent().and_then(|deps| deps.parent()).unwrap().to_owned();
    let text = format!(
        "general_settings:\n  plugin_dirs: [{:?}]\n  trusted_proxy_ranges: [127.0.0.1/32]\n  custom_sso: custom_sso.custom_sso_handler\n  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n",
        build_dir.display().to_string()
    );
    let config = Config::from_text(&build_dir.join("bench.yaml"), &text, &|_| None).unwrap();
    Plugins::load(&config, &PluginLoader::new()).unwrap_or_else(|error| {
        panic!("{error}\nbuild the plugins first: cargo build --release -p custom_sso -p custom_sso_handler")
    })
}

mod sign_in {
    use super::*;

    /// Only the conversion from the header map to the hook's view.
    #[divan::bench]
    fn request_view(bencher: Bencher) {
        let headers = header_map();
        let line = request_line();
        bencher.bench_local(|| {
            let pairs = header_pairs(black_box(&headers)).unwrap();
            black_box(line.view(&pairs));
        });
    }

    /// The example hook compiled into this binary.
    #[divan::bench]
    fn direct(bencher: Bencher) {
        let headers = header_map();
        let line = request_line();
        bencher.bench_local(|| {
            let pairs = header_pairs(black_box(&headers)).unwrap();
            black_box(
                custom_sso_handler::custom_ui_sso_sign_in_handler(&line.view(&pairs)).unwrap(),
            )
        });
    }

    /// The same hook through the loaded cdylib.
    #[divan::bench]
    fn plugin(bencher: Bencher) {
        let plugins = plugins();
        let handler = plugins.sign_in_handler.unwrap();
        let headers = header_map();
        let line = request_line();
        bencher.bench_local(|| {
            let pairs = header_pairs(black_box(&headers)).unwrap();
            black_box(handler.call(&line.view(&pairs)).unwrap())
        });
    }
}

/// A host that answers from memory, so the benchmark measures the hook and the boundary.
struct StaticHost {
    user: UserRecord,
}

impl HostApi for StaticHost {
    fn user_info(&self, _user_id: &str) -> Result<Option<UserRecord>, HostError> {
        Ok(Some(self.user.clone()))
    }
    fn new_user(&self, _user: NewUser) -> Result<UserRecord, HostError> {
        Ok(self.user.clone())
    }
    fn team_info(&self, team_id: &str) -> Result<Option<TeamRecord>, HostError> {
        Ok((team_id == "staff")
            .then(|| TeamRecord { team_id: team_id.to_owned(), ..TeamRecord::default() }))
    }
    fn add_team_member(&self, _team: &str, _user: &str, _role: TeamRole) -> Result<(), HostError> {
        Ok(())
    }
    fn log(&self, _level: LogLevel, message: &str) {
        black_box(message);
    }
}

fn openid() -> OpenId {
    OpenId {
        id: Some("alice".into()),
        email: Some("alice@example.com".into()),
        display_name: Some("alice".into()),
        provider: Some("oauth-proxy".into()),
        team_ids: vec!["admins".into(), "staff".into()],
        ..OpenId::default()
    }
}

fn host() -> StaticHost {
    StaticHost {
        user: UserRecord {
            user_id: "alice".into(),
            user_email: Some("alice@example.com".into()),
            ..UserRecord::default()
        },
    }
}

mod custom_sso {
    use super::*;

    /// The example hook compiled into this binary, called with the host's own `OpenId`.
    #[divan::bench]
    fn direct(bencher: Bencher) {
        let host = host();
        let openid = openid();
        bencher.bench_local(|| {
            let handle = plugin_api::Host::from(plugin_api::abi::HostRef2::new(&host));
            black_box(::custom_sso::custom_sso_handler(&handle, black_box(&openid)).unwrap())
        });
    }

    /// The same hook through the loaded cdylib (four host calls per sign-in).
    #[divan::bench]
    fn plugin(bencher: Bencher) {
        let plugins = plugins();
        let hook = plugins.custom_sso.unwrap();
        let host = host();
        let openid = openid();
        bencher.bench_local(|| black_box(hook.call(&host, black_box(&openid)).unwrap()));
    }
}
