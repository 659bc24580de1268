//! The tables, as sea-orm entities. Column names follow LiteLLM's where LiteLLM has them.

pub mod completed_oidc_flow;
pub mod session;
pub mod sign_in_event;
pub mod team;
pub mod team_member;
pub mod user;
