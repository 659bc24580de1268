//! Changes to what a user may do — an administrator's edit of role, models or budget, a
//! deletion, a team membership added or removed, a sign-out everywhere — made in one place for
//! the management API and the Admin UI.
//!
//! In front of LiteLLM (`litellm_proxy_url`), a session *is* a LiteLLM key that LiteLLM
//! authorises with its own copy of the user. So every change is made in LiteLLM first, through
//! [`FrontDoor`], and only then in hookgate's database: when LiteLLM refuses or cannot be reached
//! nothing changes anywhere and the caller is told why; when hookgate's own write then fails, the
//! LiteLLM change is undone (best effort, logged) so that the two do not drift apart.

use crate::db::Error as DbErr;
use plugin_api::{TeamRole, UserRole};

use crate::{
    db::{self, Db, entity::user},
    litellm::{AccessUpdate, FrontDoor, FrontDoorError, LinkedAccount},
    signin::Binding,
};

/// Why an access change was not made; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The user, team or membership does not exist.
    #[error("{0}")]
    NotFound(String),
    /// LiteLLM refused or could not be reached.
    #[error(transparent)]
    FrontDoor(#[from] FrontDoorError),
    /// hookgate's database failed.
    #[error("the database is unavailable")]
    Database(#[from] DbErr),
}

/// The access changes of one server: its database and, in front of LiteLLM, the proxy.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    db: &'a Db,
    front_door: Option<&'a FrontDoor>,
}

impl<'a> Access<'a> {
    /// Access changes over `db`, written through to `front_door` when there is one.
    pub fn new(db: &'a Db, front_door: Option<&'a FrontDoor>) -> Self {
        Access { db, front_door }
    }

    /// Applies an administrator's edit; returns the user as saved. Role, models, budget and
    /// period reach LiteLLM's user first; a change of models also signs the user out of LiteLLM
    /// (its session keys carry the models they were minted with) and here.
    ///
    /// # Errors
    /// No such user; LiteLLM refusing; the database failing. Nothing is changed then.
    pub async fn edit_user(
        &self,
        user_id: &str,
        edit: db::UserEdit,
    ) -> Result<user::Model, AccessError> {
        let db = self.db;
        let row = db
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AccessError::NotFound(format!("no user {user_id:?}")))?;
        let update = access_update(&row, &edit);
        let linked = match self.front_door {
            Some(front_door) if !update.is_empty() => front_door
                .linked_user(&linked_account(&row))
                .await?
                .map(|litellm_user| (front_door, litellm_user)),
            _ => None,
        };
        if let Some((front_door, litellm_user)) = &linked {
            front_door.update_access(litellm_user, &update).await?;
            if update.models.is_some() {
                let hashes = db.live_session_hashes(user_id).await?;
                front_door.close_sessions(&hashes).await?;
            }
        }
        let revoke = update.models.is_some() && linked.is_some();
        let id = user_id.to_owned();
        let saved = self
            .db
            .write(move |tx| {
                let saved = tx.edit_user(&id, edit, db::now())?;
                if saved.is_some() && revoke {
                    tx.revoke_user_sessions(&id)?;
                }
                Ok::<_, DbErr>(saved)
            })
            .await;
        match saved {
            Ok(Some(saved)) => Ok(saved),
            outcome => {
                if let Some((front_door, litellm_user)) = &linked {
                    let undo = undo_of(&row, &update);
                    if let Err(error) = front_door.update_access(litellm_user, &undo).await {
                        tracing::error!(
                            %user_id, %litellm_user,
                            "could not undo the change in LiteLLM after hookgate's write failed; \
                             LiteLLM's user keeps the new values: {error}"
                        );
                    }
                }
                match outcome {
                    Ok(_) => Err(AccessError::NotFound(format!("no user {user_id:?}"))),
                    Err(error) => Err(AccessError::Database(error)),
                }
            }
        }
    }

    /// Deletes users; in front of LiteLLM their live session keys are deleted there first.
    /// Returns the ids that existed.
    ///
    /// # Errors
    /// LiteLLM refusing; the database failing. Nothing is deleted then.
    pub async fn delete_users(&self, user_ids: &[String]) -> Result<Vec<String>, AccessError> {
        if let Some(front_door) = self.front_door {
            let mut hashes = Vec::new();
            for user_id in user_ids {
                hashes.extend(self.db.live_session_hashes(user_id).await?);
            }
            front_door.close_sessions(&hashes).await?;
        }
        let user_ids = user_ids.to_vec();
        Ok(self.db.write(move |tx| tx.delete_users(&user_ids)).await?)
    }

    /// Deprovisions a user (SCIM `active: false` or delete) before hookgate marks or deletes
    /// it: in front of LiteLLM, every key the user owns there is deleted and it leaves every
    /// LiteLLM team, then the session keys recorded here are deleted there too. The caller then
    /// writes hookgate's side ([`crate::db::Db::write`]) and revokes the sessions in the same
    /// transaction.
    ///
    /// # Errors
    /// LiteLLM refusing or unreachable; the database failing. hookgate's rows are unchanged
    /// then (what LiteLLM already did stays done; deprovisioning again finishes it).
    pub async fn deprovision(&self, row: &user::Model) -> Result<(), AccessError> {
        if let Some(front_door) = self.front_door {
            front_door.deprovision(&linked_account(row)).await?;
            let hashes = self.db.live_session_hashes(&row.user_id).await?;
            front_door.close_sessions(&hashes).await?;
        }
        Ok(())
    }

    /// Adds a SCIM member to a team in LiteLLM (when LiteLLM has the user and the team);
    /// nothing without the front door.
    ///
    /// # Errors
    /// LiteLLM refusing or unreachable; the database failing.
    pub async fn add_member_in_litellm(
        &self,
        team_id: &str,
        row: &user::Model,
    ) -> Result<(), AccessError> {
        if let Some(front_door) = self.front_door
            && let Some(litellm_user) = front_door.linked_user(&linked_account(row)).await?
        {
            front_door.add_member(team_id, &litellm_user).await?;
        }
        Ok(())
    }

    /// Removes a SCIM member from a team in LiteLLM; nothing without the front door.
    ///
    /// # Errors
    /// LiteLLM refusing or unreachable; the database failing.
    pub async fn remove_member_in_litellm(
        &self,
        team_id: &str,
        row: &user::Model,
    ) -> Result<(), AccessError> {
        if let Some(front_door) = self.front_door
            && let Some(litellm_user) = front_door.linked_user(&linked_account(row)).await?
        {
            front_door.remove_member(team_id, &litellm_user).await?;
        }
        Ok(())
    }

    /// Signs a user out everywhere, in LiteLLM first; works for an id that has no user row
    /// (any sessions still recorded for it are revoked). Returns how many sessions there were.
    ///
    /// # Errors
    /// LiteLLM refusing; the database failing. Nothing is revoked then.
    pub async fn revoke_sessions(&self, user_id: &str) -> Result<u64, AccessError> {
        if let Some(front_door) = self.front_door {
            let hashes = self.db.live_session_hashes(user_id).await?;
            front_door.close_sessions(&hashes).await?;
        }
        Ok(self.db.revoke_user_sessions(user_id).await?)
    }

    /// Adds members to a team (creating users who do not exist yet when `create_users`, as
    /// LiteLLM's `/team/member_add` does); each member LiteLLM knows joins the team there first,
    /// if LiteLLM has the team.
    ///
    /// # Errors
    /// No such team (or user, without `create_users`); LiteLLM refusing; the database failing.
    /// Nothing is changed then.
    pub async fn add_members(
        &self,
        team_id: &str,
        members: &[(String, TeamRole)],
        create_users: bool,
    ) -> Result<(), AccessError> {
        let db = self.db;
        if db.team_by_id(team_id).await?.is_none() {
            return Err(AccessError::NotFound(format!("no team {team_id:?}")));
        }
        let mut added_in_litellm = Vec::new();
        let outcome = async {
            for (user_id, _) in members {
                let row = db.user_by_id(user_id).await?;
                if row.is_none() && !create_users {
                    return Err(AccessError::NotFound(format!("there is no user {user_id:?}")));
                }
                if let (Some(front_door), Some(row)) = (self.front_door, row)
                    && let Some(litellm_user) =
                        front_door.linked_user(&linked_account(&row)).await?
                {
                    front_door.add_member(team_id, &litellm_user).await?;
                    added_in_litellm.push(litellm_user);
                }
            }
            let (team, members) = (team_id.to_owned(), members.to_vec());
            self.db
                .write(move |tx| {
                    for (user_id, role) in &members {
                        if create_users {
                            tx.ensure_member_user(user_id, "team_member_add")?;
                        }
                        tx.upsert_member(&team, user_id, role.as_str())?;
                    }
                    Ok::<_, DbErr>(())
                })
                .await?;
            Ok(())
        }
        .await;
        if outcome.is_err()
            && let Some(front_door) = self.front_door
        {
            for litellm_user in &added_in_litellm {
                if let Err(error) = front_door.remove_member(team_id, litellm_user).await {
                    tracing::error!(%team_id, %litellm_user, "could not undo a membership in LiteLLM: {error}");
                }
            }
        }
        outcome
    }

    /// Removes a member from a team, in LiteLLM first.
    ///
    /// # Errors
    /// No such team or membership; LiteLLM refusing; the database failing. Nothing is changed
    /// then.
    pub async fn remove_member(&self, team_id: &str, user_id: &str) -> Result<(), AccessError> {
        let db = self.db;
        if db.team_by_id(team_id).await?.is_none() {
            return Err(AccessError::NotFound(format!("no team {team_id:?}")));
        }
        let members = db.members_of_team(team_id).await?;
        if !members.iter().any(|m| m.user_id == user_id) {
            return Err(AccessError::NotFound(format!(
                "{user_id:?} is not a member of team {team_id:?}"
            )));
        }
        let mut removed_in_litellm = None;
        if let Some(front_door) = self.front_door
            && let Some(row) = db.user_by_id(user_id).await?
            && let Some(litellm_user) = front_door.linked_user(&linked_account(&row)).await?
        {
            front_door.remove_member(team_id, &litellm_user).await?;
            removed_in_litellm = Some((front_door, litellm_user));
        }
        let (team, user) = (team_id.to_owned(), user_id.to_owned());
        let deleted = self.db.write(move |tx| tx.delete_member(&team, &user).map(|_| ())).await;
        if let (Err(_), Some((front_door, litellm_user))) = (&deleted, &removed_in_litellm)
            && let Err(error) = front_door.add_member(team_id, litellm_user).await
        {
            tracing::error!(%team_id, %litellm_user, "could not undo a member removal in LiteLLM: {error}");
        }
        Ok(deleted?)
    }
}

/// The LiteLLM side of a stored user.
fn linked_account(row: &user::Model) -> LinkedAccount<'_> {
    LinkedAccount {
        user_id: &row.user_id,
        user_email: row.user_email.as_deref(),
        binding: binding_of(row),
    }
}

/// A stored user's binding.
pub(crate) fn binding_of(row: &user::Model) -> Option<Binding> {
    match (&row.sso_issuer, &row.sso_user_id) {
        (Some(issuer), Some(subject)) => {
            Some(Binding { issuer: issuer.clone(), subject: subject.clone() })
        }
        _ => None,
    }
}

/// What of `edit` changes access, compared with the stored row: only values that differ.
fn access_update(row: &user::Model, edit: &db::UserEdit) -> AccessUpdate {
    let stored_role: Option<UserRole> = row.user_role.as_deref().and_then(|r| r.parse().ok());
    let stored_models = db::list_of(&row.models);
    AccessUpdate {
        user_role: edit.user_role.filter(|role| Some(*role) != stored_role),
        models: edit.models.clone().filter(|models| *models != stored_models),
        max_budget: edit.max_budget.filter(|budget| *budget != row.max_budget),
        budget_duration: edit
            .budget_duration
            .map(|duration| duration.map(|d| d.to_string()))
            .filter(|duration| *duration != row.budget_duration),
    }
}

/// The change that puts back the stored values `update` changed.
fn undo_of(row: &user::Model, update: &AccessUpdate) -> AccessUpdate {
    AccessUpdate {
        user_role: update.user_role.and(row.user_role.as_deref().and_then(|r| r.parse().ok())),
        models: update.models.as_ref().map(|_| db::list_of(&row.models)),
        max_budget: update.max_budget.map(|_| row.max_budget),
        budget_duration: update.budget_duration.as_ref().map(|_| row.budget_duration.clone()),
    }
}
