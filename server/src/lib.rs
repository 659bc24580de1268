//! hookgate: a single-binary SSO sign-in server whose LiteLLM-style login hooks are native
//! plugins.
//!
//! Modules, in reading order:
//! * [`cli`]: the command line (`hookgate`, `hookgate check`);
//! * [`config`]: `config.yaml` and the environment, parsed then validated into [`config::Config`];
//! * [`plugins`]: finding, loading, checking and calling hook libraries;
//! * [`budget`]: LiteLLM's budget durations and reset times;
//! * [`http`]: the axum router and the server loop.

pub mod budget;
pub mod cli;
pub mod config;
pub mod http;
pub mod plugins;
