//! hookgate's domain, apart from storage, HTTP and the runtime: what a valid id, email, budget
//! and hook's values are; accounts, teams and memberships as the rules see them; the sign-in's
//! decision ([`signin::decide`]) and the administrators' edits ([`admin`]).
//!
//! Everything here is a pure function of its arguments — the clock included, which callers pass
//! in — so the rules are tested as tables, without a database or a server. The crate depends on
//! no storage, HTTP or runtime crate; the server's pipeline reads, calls these, and writes.
//!
//! Modules, in reading order:
//! * [`ids`]: ids and emails, and how a value is quoted in a message;
//! * [`budget`]: LiteLLM's budget durations and reset times;
//! * [`identity`]: who signs in ([`identity::Binding`], [`identity::Proof`]) and their alias;
//! * [`values`]: the values a sign-in applies, checked ([`values::check_values`]);
//! * [`policy`]: the settings the rules read ([`policy::Policy`]);
//! * [`signin`]: accounts, the snapshot, the plan, [`signin::decide`] and its refusals;
//! * [`admin`]: an administrator's edit of a user, and the password login's account;
//! * [`records`]: the session and the event a sign-in leaves, bounded.

pub mod admin;
pub mod budget;
pub mod identity;
pub mod ids;
pub mod policy;
pub mod records;
pub mod signin;
pub mod values;
