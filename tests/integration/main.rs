//! hookgate's integration tests, in one binary. Every test drives a real interface: the built
//! `hookgate` binary over HTTP, its database, or plugin libraries loaded from disk.
//!
//! * `plugin_loading`: the example plugins and the broken fixtures, loaded and called in-process;
//! * `cli`: `hookgate check` as a user runs it;
//! * `sign_in`: header sign-in through the server, on SQLite and PostgreSQL;
//! * `management`: the user/team API, the master key, startup rules;
//! * `oidc`: OIDC sign-in against an in-process provider, and every attack on it;
//! * `oidc_groups`: groups from LiteLLM's claim settings, and Microsoft Entra groups (the ID
//!   token's, or a fake Graph's, page by page);
//! * `ui`: the Admin UI pages and the password fallback;
//! * `front_door`: hookgate in front of a (fake, in-process) LiteLLM proxy;
//! * `accounts`: one identity rule for hookgate's and LiteLLM's accounts, and access changes
//!   written through to LiteLLM;
//! * `groups`: groups decide teams (an authoritative sync removes its own memberships) and roles;
//! * `teams`: teams made by sign-ins (`create_teams_from_groups`, `default_team_params`);
//! * `hook_teams`: a hook's `create_team` and `remove_team_member` (plugin-api 0.1.1), and a
//!   hook built with plugin-api 0.1.0 that keeps loading;
//! * `rehearsal`: `hookgate try`, a sign-in rehearsed without writing;
//! * `sync_preview`: `hookgate sync --dry-run`, every user's first authoritative sign-in
//!   previewed, then made;
//! * `metrics`: `GET /metrics` (LiteLLM's `prometheus` callback);
//! * `reload`: `SIGHUP` reloads of the config and of hook libraries rebuilt in place;
//! * `remembered`: a returning user's remembered snapshot, and the changes (through the server,
//!   or by another process) that decide the next sign-in all the same;
//! * `scim`, `scim_access`: SCIM 2.0 provisioning (Okta's and Entra's requests, bad input), and
//!   deprovisioning and sign-in of provisioned users.

mod accounts;
mod cli;
mod connections;
mod front_door;
mod groups;
mod hook_teams;
mod management;
mod metrics;
mod oidc;
mod oidc_groups;
mod pipeline;
mod plugin_loading;
mod rehearsal;
mod reliability;
mod reload;
mod remembered;
mod scim;
mod scim_access;
mod security;
mod sign_in;
mod sync_preview;
mod teams;
mod ui;
