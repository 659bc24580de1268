//! The [`HostApi`] a `custom_sso` hook calls during a sign-in. Reads are answered from the
//! sign-in's snapshot where it covers them (the signing-in user, their memberships, the teams
//! their groups name), else from the database; writes (users, teams, memberships added and
//! removed) are staged into the sign-in's plan and applied with it, so a hook that fails, or
//! returns invalid values, leaves nothing behind.

use std::sync::Mutex;

use plugin_api::{
    HostError, LogLevel, NewTeam, NewUser, TeamRecord, TeamRole, UserRecord, UserRole, abi::HostApi,
};
use tokio::runtime::Handle;

use crate::db::{self, Db, entity::user};
use hookgate_core::{
    budget::{BudgetDuration, is_valid_budget},
    ids::id_problem,
    policy::TeamParams,
    signin::{Account, Keys, RESERVED_TEAM_IDS, Snapshot, Source, Staged},
};

/// The host for one sign-in.
pub(crate) struct SignInHost {
    db: Db,
    runtime: Handle,
    /// The hook runs on a runtime worker (declared non-blocking), where a read the snapshot
    /// does not answer must leave the worker to block ([`SignInHost::wait`]).
    on_worker: bool,
    hook: String,
    staged: Mutex<Vec<Staged>>,
    /// Teams already looked up during this sign-in (hooks ask `team_info`, then
    /// `add_team_member` checks the same team again).
    teams: Mutex<std::collections::HashMap<String, Option<TeamRecord>>>,
    /// Whether a host call failed on the database: the hook's failure is then the database's,
    /// and the user gets 503, not the hook's 403.
    database_failed: std::sync::atomic::AtomicBool,
    /// What the sign-in read before the hook ran, and the keys it read by: `user_info` and
    /// `team_info` for those keys are answered from it, without a round trip.
    read: std::sync::Arc<(Keys, Snapshot)>,
}

impl SignInHost {
    pub(crate) fn new(
        db: Db,
        runtime: Handle,
        on_worker: bool,
        hook: String,
        read: std::sync::Arc<(Keys, Snapshot)>,
    ) -> Self {
        Self {
            db,
            runtime,
            on_worker,
            hook,
            staged: Mutex::new(Vec::new()),
            teams: Mutex::default(),
            database_failed: std::sync::atomic::AtomicBool::new(false),
            read,
        }
    }

    /// Waits for a database read: on a blocking thread directly, on a runtime worker after
    /// handing the worker's other tasks to another thread (`block_in_place`).
    fn wait<F: std::future::Future>(&self, read: F) -> F::Output {
        if self.on_worker {
            tokio::task::block_in_place(|| self.runtime.block_on(read))
        } else {
            self.runtime.block_on(read)
        }
    }

    /// The writes the hook asked for, in order, and whether any host call hit a database error.
    pub(crate) fn into_staged(self) -> (Vec<Staged>, bool) {
        let failed = self.database_failed.load(std::sync::atomic::Ordering::Relaxed);
        (self.staged.into_inner().unwrap_or_else(|poison| poison.into_inner()), failed)
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, Vec<Staged>> {
        self.staged.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    fn staged_user(&self, user_id: &str) -> Option<UserRecord> {
        self.staged().iter().find_map(|write| match write {
            Staged::NewUser(new) if new.user_id.as_deref() == Some(user_id) => {
                Some(record_of_new_user(new))
            }
            _ => None,
        })
    }

    fn database<T>(&self, what: &str, result: Result<T, crate::db::Error>) -> Result<T, HostError> {
        result.map_err(|error| {
            self.database_failed.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(hook = %self.hook, "host call {what} failed: {error}");
            HostError::new(format!("the server's database failed during {what}"))
        })
    }
}

fn record_of_new_user(new: &NewUser) -> UserRecord {
    UserRecord {
        user_id: new.user_id.clone().unwrap_or_default(),
        user_email: new.user_email.clone(),
        user_alias: new.user_alias.clone(),
        user_role: Some(new.user_role.unwrap_or(UserRole::InternalUserViewer)),
        sso_user_id: None,
        models: new.models.clone(),
        max_budget: new.max_budget,
        spend: 0.0,
        budget_duration: new.budget_duration.clone(),
        teams: Vec::new(),
    }
}

/// A snapshot's account as the plugin API shows it.
fn record_of_account(account: &Account, teams: Vec<String>) -> UserRecord {
    UserRecord {
        user_id: account.user_id.clone(),
        user_email: account.user_email.clone(),
        user_alias: account.user_alias.clone(),
        user_role: account.user_role,
        sso_user_id: account.binding.as_ref().map(|binding| binding.subject.clone()),
        models: account.models.clone(),
        max_budget: account.max_budget,
        spend: account.spend,
        budget_duration: account.budget_duration.map(|d| d.to_string()),
        teams,
    }
}

/// A stored user as the plugin API shows it.
pub(crate) fn user_record(row: &user::Model, teams: Vec<String>) -> UserRecord {
    UserRecord {
        user_id: row.user_id.clone(),
        user_email: row.user_email.clone(),
        user_alias: row.user_alias.clone(),
        user_role: row.user_role.as_deref().and_then(|role| role.parse().ok()),
        sso_user_id: row.sso_user_id.clone(),
        models: db::list_of(&row.models),
        max_budget: row.max_budget,
        spend: row.spend,
        budget_duration: row.budget_duration.clone(),
        teams,
    }
}

impl HostApi for SignInHost {
    fn user_info(&self, user_id: &str) -> Result<Option<UserRecord>, HostError> {
        if let Some(staged) = self.staged_user(user_id) {
            return Ok(Some(staged));
        }
        let (keys, snapshot) = &*self.read;
        if keys.user_ids.iter().any(|id| id == user_id) {
            return Ok(snapshot.accounts.iter().find(|a| a.user_id == user_id).map(|account| {
                let teams = snapshot
                    .memberships
                    .iter()
                    .filter(|(_, member)| member == user_id)
                    .map(|(team, _)| team.clone())
                    .collect();
                record_of_account(account, teams)
            }));
        }
        let db = &self.db;
        let found = self.wait(async {
            match db.user_by_id(user_id).await? {
                Some(row) => {
                    let teams = db.team_ids_of_user(user_id).await?;
                    Ok(Some(user_record(&row, teams)))
                }
                None => Ok(None),
            }
        });
        self.database("user_info", found)
    }

    fn new_user(&self, user: NewUser) -> Result<UserRecord, HostError> {
        let mut user = user;
        let user_id = match user.user_id.as_deref().map(str::trim) {
            Some("") => return Err(HostError::new("new_user: user_id must not be empty")),
            Some(id) => id.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if let Some(budget) = user.max_budget
            && !hookgate_core::budget::is_valid_budget(budget)
        {
            return Err(HostError::new(format!("new_user: max_budget {budget} must be 0 or more")));
        }
        if let Some(duration) = &user.budget_duration
            && let Err(error) = duration.parse::<hookgate_core::budget::BudgetDuration>()
        {
            return Err(HostError::new(format!("new_user: {error}")));
        }
        if self.user_info(&user_id)?.is_some() {
            return Err(HostError::new(format!(
                "new_user: a user with id {user_id:?} already exists"
            )));
        }
        user.user_id = Some(user_id);
        user.user_email = user.user_email.map(|email| email.trim().to_lowercase());
        let record = record_of_new_user(&user);
        self.staged().push(Staged::NewUser(user));
        Ok(record)
    }

    fn team_info(&self, team_id: &str) -> Result<Option<TeamRecord>, HostError> {
        let teams = || self.teams.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(known) = teams().get(team_id) {
            return Ok(known.clone());
        }
        let (keys, snapshot) = &*self.read;
        if keys.teams.iter().any(|team| team == team_id) {
            return Ok(snapshot.teams.iter().find(|team| team.team_id == team_id).map(|team| {
                TeamRecord {
                    team_id: team.team_id.clone(),
                    team_alias: team.team_alias.clone(),
                    models: team.models.clone(),
                }
            }));
        }
        let found = self.wait(self.db.team_by_id(team_id));
        let team = self.database("team_info", found)?.map(|team| TeamRecord {
            team_id: team.team_id,
            team_alias: team.team_alias,
            models: db::list_of(&team.models),
        });
        teams().insert(team_id.to_owned(), team.clone());
        Ok(team)
    }

    fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<(), HostError> {
        if user_id.trim().is_empty() {
            return Err(HostError::new("add_team_member: user_id must not be empty"));
        }
        if self.team_info(team_id)?.is_none() {
            return Err(HostError::new(format!("add_team_member: there is no team {team_id:?}")));
        }
        self.staged().push(Staged::Member {
            team_id: team_id.to_owned(),
            user_id: user_id.to_owned(),
            role,
        });
        Ok(())
    }

    fn remove_team_member(&self, team_id: &str, user_id: &str) -> Result<(), HostError> {
        for (field, id) in [("team_id", team_id), ("user_id", user_id)] {
            if let Some(problem) = id_problem(field, id) {
                return Err(HostError::new(format!("remove_team_member: {problem}")));
            }
        }
        self.staged()
            .push(Staged::Removal { team_id: team_id.to_owned(), user_id: user_id.to_owned() });
        Ok(())
    }

    fn create_team(&self, team: NewTeam) -> Result<(), HostError> {
        let fail = |message: String| Err(HostError::new(format!("create_team: {message}")));
        if let Some(problem) = id_problem("team_id", &team.team_id) {
            return fail(problem);
        }
        if RESERVED_TEAM_IDS.contains(&team.team_id.as_str()) {
            return fail(format!("the team id {:?} is LiteLLM's own", team.team_id));
        }
        if let Some(budget) = team.max_budget
            && !is_valid_budget(budget)
        {
            return fail(format!("max_budget {budget} must be 0 or more"));
        }
        let budget_duration = match team.budget_duration.as_deref().map(str::parse) {
            None => None,
            Some(Ok(duration)) => Some(duration),
            Some(Err(error)) => return fail(format!("{error}")),
        };
        if self.team_info(&team.team_id)?.is_some() {
            // It exists (or this hook created it already): nothing changes.
            return Ok(());
        }
        let record = TeamRecord {
            team_id: team.team_id.clone(),
            team_alias: team.team_alias.clone(),
            models: team.models.clone(),
        };
        self.teams
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(team.team_id.clone(), Some(record));
        let budget_duration: Option<BudgetDuration> = budget_duration;
        self.staged().push(Staged::Team(hookgate_core::signin::NewTeam {
            team_id: team.team_id,
            team_alias: team.team_alias,
            params: TeamParams {
                models: team.models,
                max_budget: team.max_budget,
                budget_duration,
                tpm_limit: team.tpm_limit,
                rpm_limit: team.rpm_limit,
            },
            source: Source::Hook,
        }));
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        let hook = self.hook.as_str();
        match level {
            LogLevel::Trace => tracing::trace!(target: "hookgate::plugin", hook, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "hookgate::plugin", hook, "{message}"),
            LogLevel::Info => tracing::info!(target: "hookgate::plugin", hook, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "hookgate::plugin", hook, "{message}"),
            LogLevel::Error => tracing::error!(target: "hookgate::plugin", hook, "{message}"),
        }
    }
}
