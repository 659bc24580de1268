//! hookgate: a single-binary SSO sign-in server whose LiteLLM-style login hooks are native
//! plugins.
//!
//! The domain — ids, budgets, accounts, the sign-in's and the administrators' rules — is the
//! `hookgate_core` crate (`server/core`), which knows no storage, HTTP or runtime; this crate
//! reads, calls it and writes. Modules, in reading order:
//! * [`cli`]: the command line (`hookgate`, `hookgate check`, `try`, `sync --dry-run`);
//! * [`config`]: `config.yaml` and the environment, parsed then validated into [`config::Config`];
//! * [`plugins`]: finding, loading, checking and calling hook libraries;
//! * `private_dir`: fresh 0700 temporary folders (the plugins' private copies);
//! * [`signin`]: the sign-in flow (identity → hooks → user, teams, session), no HTTP types;
//! * [`session`]: session keys, the `token` cookie's JWT, the master key;
//! * [`db`]: the storage crate (`hookgate-storage`), its port (`Db`) and rows;
//! * [`metrics`]: the Prometheus metrics `GET /metrics` serves;
//! * [`http`]: the axum router, the management API and the server loop;
//! * [`app`]: startup, tying the above together;
//! * [`sync_preview`]: `hookgate sync --dry-run`, every user's first authoritative sync;
//! * [`untrusted`]: client-chosen text made safe for a log line or a page.

pub mod access;
pub mod app;
pub mod cli;
pub mod config;
pub use hookgate_storage as db;
pub mod http;
pub mod litellm;
pub mod metrics;
pub mod oidc;
pub mod plugins;
mod private_dir;
pub mod reload;
pub mod session;
pub mod signin;
pub mod sync_preview;
pub mod untrusted;
