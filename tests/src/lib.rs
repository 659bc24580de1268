//! Support for hookgate's integration tests: where the built binary, plugins and fixtures are,
//! and scratch folders with config files.

pub mod fake_graph;
pub mod fake_idp;
pub mod fake_litellm;
pub mod server;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// The seed's `config.yaml` with both example plugins, loaded from the built workspace
/// (`{plugins}` is replaced by [`build_dir`]) and trusting the loopback proxy.
pub const SEED_CONFIG: &str = r#"model_list:
  - model_name: "openai-model"
    litellm_params:
      model: "gpt-3.5-turbo"

general_settings:
  custom_sso: custom_sso.custom_sso_handler
  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler
  plugin_dirs: ["{plugins}"]
  trusted_proxy_ranges: ["127.0.0.1/32"]

litellm_settings:
  drop_params: True
  set_verbose: True
"#;

/// A one-worker runtime and a listener on a free loopback port, for an in-process fake server
/// (`what` names it in a failure).
pub fn loopback_server(
    what: &str,
) -> (tokio::runtime::Runtime, tokio::net::TcpListener, std::net::SocketAddr) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap_or_else(|error| panic!("bind the {what}: {error}"));
    let address = listener.local_addr().expect("address");
    (runtime, listener, address)
}

/// The folder cargo built into (`target/debug`), found from the test binary's own path
/// (`target/debug/deps/integration-…`), so that `CARGO_TARGET_DIR` is honoured.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    dir.to_owned()
}

/// The platform's file name for library `name`.
pub fn library_file(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// A built workspace artifact, with a clear failure when it has not been built.
pub fn artifact(relative: &str) -> PathBuf {
    let path = build_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run the README's test command (it builds the whole workspace and the \
         panic=abort fixture before testing), or `cargo build --workspace`",
        path.display()
    );
    path
}

/// A built plugin library from the workspace (example plugin or fixture).
pub fn plugin(name: &str) -> PathBuf {
    artifact(&library_file(name))
}

/// A fixture that the test command builds on its own, into `target/<folder>/<profile>/`.
fn separately_built(folder: &str, library: &str, command: &str) -> PathBuf {
    let profile = build_dir().file_name().expect("profile folder").to_owned();
    let path = build_dir()
        .parent()
        .expect("target folder")
        .join(folder)
        .join(profile)
        .join(library_file(library));
    assert!(
        path.exists(),
        "{} is missing: the README's test command builds it with `{command}`",
        path.display()
    );
    path
}

/// The fixture plugin built with `panic = "abort"`.
pub fn panic_abort_plugin() -> PathBuf {
    separately_built(
        "panic-abort",
        "fixture_panic_abort",
        "cargo build -p fixture_panic_abort --config 'profile.dev.panic=\"abort\"' --target-dir target/panic-abort",
    )
}

/// The fixture plugin built against an older plugin-api layout.
pub fn older_layout_plugin() -> PathBuf {
    separately_built(
        "older-layout",
        "fixture_incompatible",
        "cargo build -p fixture_incompatible --features older-layout --target-dir target/older-layout",
    )
}

/// The `hookgate` binary.
pub fn hookgate_bin() -> PathBuf {
    artifact(&format!("hookgate{}", std::env::consts::EXE_SUFFIX))
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repo").to_owned()
}

/// A scratch folder for one test, removed when dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new empty folder.
    pub fn new() -> Self {
        Self { dir: tempfile::Builder::new().prefix("hookgate-test-").tempdir().expect("temp dir") }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `relative` (creating folders) and returns the full path.
    pub fn write(&self, relative: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a file in a folder")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Copies `file` to `relative` and returns the full path.
    pub fn copy(&self, file: &Path, relative: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a file in a folder")).expect("mkdir");
        std::fs::copy(file, &path).expect("copy");
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs the built `hookgate` with `args` and `env`, with no inherited LiteLLM variables.
pub fn run_hookgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(hookgate_bin());
    command.args(args).env("HOOKGATE_LOG", "warn");
    for name in LITELLM_VARIABLES {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run hookgate")
}

/// Variables the server reads, cleared for every spawned server so the developer's own
/// environment cannot change a test's outcome.
pub const LITELLM_VARIABLES: &[&str] = &[
    "HOOKGATE_CONFIG",
    "HOOKGATE_PLUGIN_PATH",
    "LITELLM_MASTER_KEY",
    "DATABASE_URL",
    "PROXY_BASE_URL",
    "SERVER_ROOT_PATH",
    "ALLOWED_EMAIL_DOMAINS",
    "PROXY_ADMIN_ID",
    "LITELLM_UI_SESSION_DURATION",
    "LITELLM_PROXY_URL",
];

/// Text of an output's stdout and stderr.
pub fn output_text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Owned pairs, to compare with what [`server::TestServer::memberships`] returns.
pub fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}
