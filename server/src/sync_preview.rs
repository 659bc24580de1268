//! `hookgate sync --dry-run --from events`: before an operator turns authoritative team sync on
//! (`litellm_jwtauth.sync_user_role_and_teams`), what every user's first authoritative sign-in
//! would do — the memberships a sync made that their latest sign-in's groups no longer name,
//! which it would remove, and the role the role mappings would give them when it differs —
//! computed by the core's rules ([`hookgate_core::signin::preview_first_sync`]) over the
//! database opened read-only. A user whose groups no sign-in recorded is reported as unknown,
//! never guessed.

use anyhow::Context;
use hookgate_core::signin::{self as rules, Preview, Standing};
use serde_json::{Value, json};

use crate::{
    app::{database_url, redact_url},
    config::Config,
    db::{self, DatabaseKind, Db},
    untrusted::printable,
};

/// Why a user's preview is unknown.
pub const UNKNOWN: &str = "no sign-in since groups were recorded";

/// Where a sync preview takes each user's groups from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncSource {
    /// The groups each user's latest allowed sign-in recorded in the sign-in events.
    Events,
}

/// One user's line of the preview.
#[derive(Debug, Clone, PartialEq)]
pub struct UserPreview {
    /// The user's id.
    pub user_id: String,
    /// Their stored role.
    pub user_role: Option<plugin_api::UserRole>,
    /// The teams of the memberships a sync made (source `idp`): what a sync may remove.
    pub synced: Vec<String>,
    /// When their recorded groups were recorded.
    pub groups_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What their first authoritative sign-in would do.
    pub preview: Preview,
}

/// The whole preview.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPreview {
    /// The config file.
    pub file: std::path::PathBuf,
    /// Whether the config already has `sync_user_role_and_teams` on.
    pub sync_on: bool,
    /// Whether role mappings are configured.
    pub role_mappings: bool,
    /// Whether a `custom_sso` hook is configured (it may choose another role; not run here).
    pub custom_sso: bool,
    /// How long sign-in events, and with them the recorded groups, are kept.
    pub retention: std::time::Duration,
    /// Every user, by id.
    pub users: Vec<UserPreview>,
}

/// Reads every user's standing from the configured database, opened read-only (a schema that
/// is not this build's is refused; nothing is migrated, created or written), and previews
/// their first authoritative sign-in.
///
/// # Errors
/// The database cannot be opened or read, its schema is not this build's, or a SQLite file
/// does not exist.
pub async fn preview(config: &Config, source: SyncSource) -> anyhow::Result<SyncPreview> {
    let SyncSource::Events = source;
    let url = database_url(config);
    if let DatabaseKind::Sqlite(path) = db::database_kind(&url)?
        && !path.exists()
    {
        anyhow::bail!(
            "the database {} does not exist: no user has signed in yet (hookgate sync creates \
             nothing)",
            path.display()
        );
    }
    let db = Db::open_read_only(&url, "hookgate sync")
        .await
        .with_context(|| format!("cannot preview on the database {}", redact_url(&url)))?;
    let standings = db.user_standings().await;
    if let Err(error) = db.close().await {
        tracing::debug!("closing the database: {error}");
    }
    let standings = standings.context("cannot read the users, memberships and sign-in events")?;
    let policy = config.policy();
    let users = standings
        .into_iter()
        .map(|standing| {
            let recorded = standing.recorded.as_ref();
            let preview = rules::preview_first_sync(
                &Standing {
                    user_id: &standing.user_id,
                    user_role: standing.user_role,
                    synced: &standing.synced,
                    groups: recorded.map(|recorded| recorded.groups.as_slice()),
                    role_groups: recorded.and_then(|recorded| recorded.role_groups.as_deref()),
                },
                &policy,
            );
            UserPreview {
                synced: standing.synced.iter().map(|(team, _)| team.clone()).collect(),
                groups_at: standing.recorded.as_ref().map(|recorded| recorded.at),
                user_role: standing.user_role,
                user_id: standing.user_id,
                preview,
            }
        })
        .collect();
    Ok(SyncPreview {
        file: config.file.clone(),
        sync_on: config.sync_user_role_and_teams,
        role_mappings: config.role_map.is_some(),
        custom_sso: config.custom_sso.is_some(),
        retention: config.sign_in_event_retention,
        users,
    })
}

/// The counts the summary line gives.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    users: usize,
    losing: usize,
    removed: usize,
    roles: usize,
    unknown: usize,
}

impl SyncPreview {
    fn counts(&self) -> Counts {
        let mut counts = Counts { users: self.users.len(), ..Counts::default() };
        for user in &self.users {
            match &user.preview {
                Preview::Unknown => counts.unknown += 1,
                Preview::Known { removed, role } => {
                    counts.losing += usize::from(!removed.is_empty());
                    counts.removed += removed.len();
                    counts.roles += usize::from(role.is_some());
                }
            }
        }
        counts
    }

    /// The preview for scripts (`--json`).
    pub fn to_json(&self) -> Value {
        let counts = self.counts();
        let users: Vec<Value> = self
            .users
            .iter()
            .map(|user| {
                let mut line = json!({
                    "user_id": user.user_id,
                    "user_role": user.user_role.map(|role| role.as_str()),
                    "synced_memberships": user.synced,
                    "groups_recorded_at": user.groups_at.map(|at| at.to_rfc3339()),
                });
                let fields = match &user.preview {
                    Preview::Unknown => json!({
                        "status": "unknown",
                        "reason": UNKNOWN,
                        "removed_memberships": null,
                        "revokes_earlier_sessions": null,
                        "new_user_role": null,
                    }),
                    Preview::Known { removed, role } => json!({
                        "status": if removed.is_empty() && role.is_none() {
                            "unchanged"
                        } else {
                            "changes"
                        },
                        "removed_memberships": removed.iter().map(|team_id| json!({
                            "team_id": team_id, "user_id": user.user_id,
                        })).collect::<Vec<_>>(),
                        "revokes_earlier_sessions": !removed.is_empty(),
                        "new_user_role": role.map(|role| role.as_str()),
                    }),
                };
                if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
                    line.extend(fields);
                }
                line
            })
            .collect();
        json!({
            "source": "events",
            "sync_user_role_and_teams": self.sync_on,
            "role_mappings": self.role_mappings,
            "users": users,
            "summary": {
                "users": counts.users,
                "losing_memberships": counts.losing,
                "removed_memberships": counts.removed,
                "role_changes": counts.roles,
                "unknown": counts.unknown,
            },
            "committed": false,
        })
    }

    /// The preview for people: what it assumes, a table, and a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let file = self.file.display();
        out.push_str(&if self.sync_on {
            format!(
                "{file}: sync_user_role_and_teams is on: what each user's next sign-in would \
                 change, if their groups are as at their latest sign-in\n"
            )
        } else {
            format!(
                "{file}: sync_user_role_and_teams is off: what each user's first sign-in would \
                 change once it is on, if their groups are as at their latest sign-in\n"
            )
        });
        if self.custom_sso && self.role_mappings {
            out.push_str(
                "the custom_sso hook runs after the role mappings and may choose another role \
                 (it is not run here)\n",
            );
        }
        let shown = |text: &str| printable(text, 64);
        let list = |items: &[String]| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.iter().map(|item| shown(item)).collect::<Vec<_>>().join(", ")
            }
        };
        // The widest column last, so that it pads nothing.
        let mut rows: Vec<[String; 4]> =
            vec![["USER".into(), "GROUPS RECORDED".into(), "ROLE".into(), "WOULD REMOVE".into()]];
        for user in &self.users {
            let recorded = user
                .groups_at
                .map_or("-".to_owned(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string());
            let stored = user.user_role.map_or("(none)", |role| role.as_str());
            let (remove, role) = match &user.preview {
                Preview::Unknown => {
                    let at_stake = if user.synced.is_empty() {
                        String::new()
                    } else {
                        format!(" (synced memberships: {})", list(&user.synced))
                    };
                    (format!("unknown: {UNKNOWN}{at_stake}"), "unknown".to_owned())
                }
                Preview::Known { removed, role } => (
                    list(removed),
                    role.map_or_else(|| "-".to_owned(), |role| format!("{stored} -> {role}")),
                ),
            };
            rows.push([shown(&user.user_id), recorded, role, remove]);
        }
        let width = |column: usize| rows.iter().map(|row| row[column].chars().count()).max();
        let widths: Vec<usize> = (0..3).map(|column| width(column).unwrap_or(0)).collect();
        for row in &rows {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let counts = self.counts();
        out.push_str(&format!(
            "{} users: {} would lose memberships ({} in all, and their earlier sessions), {} \
             would change role, {} unknown; nothing was written\n",
            counts.users, counts.losing, counts.removed, counts.roles, counts.unknown
        ));
        if counts.unknown > 0 {
            out.push_str(&format!(
                "unknown: no allowed sign-in recorded their groups (none since this version, or \
                 older than sign_in_event_retention, {} days)\n",
                self.retention.as_secs() / 86_400
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use plugin_api::UserRole;

    use super::*;

    fn user(id: &str, synced: &[&str], preview: Preview) -> UserPreview {
        UserPreview {
            user_id: id.into(),
            user_role: Some(UserRole::InternalUser),
            synced: synced.iter().map(|team| (*team).to_owned()).collect(),
            groups_at: (preview != Preview::Unknown)
                .then(|| chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()),
            preview,
        }
    }

    fn sample() -> SyncPreview {
        SyncPreview {
            file: "/etc/hookgate/config.yaml".into(),
            sync_on: false,
            role_mappings: true,
            custom_sso: false,
            retention: std::time::Duration::from_secs(90 * 86_400),
            users: vec![
                user(
                    "ann",
                    &["eng", "ops"],
                    Preview::Known {
                        removed: vec!["ops".into()],
                        role: Some(UserRole::ProxyAdmin),
                    },
                ),
                user("bob", &[], Preview::Known { removed: Vec::new(), role: None }),
                user("cy\u{1b}[2J", &["lab"], Preview::Unknown),
            ],
        }
    }

    #[test]
    fn the_table_says_what_changes_and_what_is_unknown() {
        let text = sample().to_text();
        let expected = "/etc/hookgate/config.yaml: sync_user_role_and_teams is off: what each \
                        user's first sign-in would change once it is on, if their groups are as \
                        at their latest sign-in\n\
USER         GROUPS RECORDED       ROLE                          WOULD REMOVE
ann          2026-05-28 20:26 UTC  internal_user -> proxy_admin  ops
bob          2026-05-28 20:26 UTC  -                             -
cy\\u{1b}[2J  -                     unknown                       unknown: no sign-in since groups were recorded (synced memberships: lab)
3 users: 1 would lose memberships (1 in all, and their earlier sessions), 1 would change role, 1 unknown; nothing was written
unknown: no allowed sign-in recorded their groups (none since this version, or older than sign_in_event_retention, 90 days)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_json_has_a_line_per_user_and_the_counts() {
        let report = sample().to_json();
        assert_eq!(report["committed"], false);
        assert_eq!(
            report["summary"],
            json!({"users": 3, "losing_memberships": 1, "removed_memberships": 1,
                   "role_changes": 1, "unknown": 1})
        );
        let users = report["users"].as_array().unwrap();
        assert_eq!(users[0]["status"], "changes");
        assert_eq!(users[0]["removed_memberships"], json!([{"team_id": "ops", "user_id": "ann"}]));
        assert_eq!(users[0]["revokes_earlier_sessions"], true);
        assert_eq!(users[0]["new_user_role"], "proxy_admin");
        assert_eq!(users[1]["status"], "unchanged");
        assert_eq!(users[1]["removed_memberships"], json!([]));
        assert_eq!(users[2]["status"], "unknown");
        assert_eq!(users[2]["reason"], UNKNOWN);
        assert_eq!(users[2]["removed_memberships"], Value::Null);
        assert_eq!(users[2]["synced_memberships"], json!(["lab"]));
    }
}
