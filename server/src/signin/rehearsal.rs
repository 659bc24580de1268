//! `hookgate try`: a sign-in rehearsed. The configured hooks run exactly as at a sign-in, over
//! the real database (the `custom_sso` hook's host reads see it), and the plan the sign-in would
//! apply is reported instead of written: no user, membership, session or event is stored.

use plugin_api::OpenId;
use serde_json::{Value, json};

use hookgate_core::{
    signin::{self as rules, Plan, Staged, UserWrite},
    values::Values,
};

use super::{HookTimes, Proof, SignInError, SignInService};
use crate::{db, plugins::HookRequest};

/// Where the rehearsed identity comes from.
#[derive(Debug)]
pub enum Rehearsal {
    /// Request headers, for the `custom_ui_sso_sign_in_handler` hook (the trusted-peer rule,
    /// which is about the network, is not rehearsed).
    Headers(HookRequest),
    /// An identity as the OIDC callback maps it from the provider's claims.
    Identity(Box<OpenId>, Proof),
}

/// What a rehearsed sign-in did, up to where it stopped.
#[derive(Debug, Default)]
pub struct Rehearsed {
    /// The identity the pipeline went on with (the header hook's answer, or the claims').
    pub(crate) identity: Option<OpenId>,
    /// Each hook that ran: its setting, its reference, and how long it took.
    pub(crate) hooks: Vec<(&'static str, String, std::time::Duration)>,
    /// The values the sign-in applies (the `custom_sso` hook's, or LiteLLM's defaults).
    pub(crate) values: Option<Values>,
    /// The host-API writes the `custom_sso` hook staged.
    pub(crate) staged: Vec<Staged>,
    /// The writes the sign-in would make.
    pub(crate) plan: Option<Plan>,
    /// Why the sign-in would not complete.
    pub error: Option<SignInError>,
}

impl SignInService {
    /// Runs a sign-in up to its write, and reports instead of writing.
    pub async fn rehearse(&self, rehearsal: Rehearsal) -> Rehearsed {
        let mut report = Rehearsed::default();
        let mut times = HookTimes::default();
        let hooks = self.plugins.current();
        let result = self.rehearse_into(&hooks, rehearsal, &mut report, &mut times).await;
        let handler = hooks.sign_in_handler.as_ref().map(|hook| hook.info());
        let custom_sso = hooks.custom_sso.as_ref().map(|hook| hook.info());
        for (setting, info, took) in [
            ("custom_ui_sso_sign_in_handler", handler, times.sign_in_handler),
            ("custom_sso", custom_sso, times.custom_sso),
        ] {
            if let (Some(info), Some(took)) = (info, took) {
                report.hooks.push((setting, info.reference.clone(), took));
            }
        }
        report.error = result.err();
        report
    }

    async fn rehearse_into(
        &self,
        hooks: &crate::plugins::Plugins,
        rehearsal: Rehearsal,
        report: &mut Rehearsed,
        times: &mut HookTimes,
    ) -> Result<(), SignInError> {
        let (openid, proof) = match rehearsal {
            Rehearsal::Headers(request) => {
                let Some(handler) = hooks.sign_in_handler.clone() else {
                    return Err(SignInError::BadRequest(format!(
                        "{}: general_settings.custom_ui_sso_sign_in_handler is not set, so \
                         headers cannot be tried (try --claims for an OIDC identity)",
                        self.config.file.display()
                    )));
                };
                let openid = self.call_sign_in_handler(handler, request, times).await?;
                let proof = Proof::of_header_identity(&openid);
                (openid, proof)
            }
            Rehearsal::Identity(openid, proof) => (*openid, proof),
        };
        report.identity = Some(openid.clone());
        let mut prepared =
            self.prepare(hooks, openid, proof, times).await.map_err(|(_, error)| error)?;
        report.identity = Some(prepared.openid.clone());
        report.values = Some(prepared.values.clone());
        report.staged = prepared.staged.clone();
        let read_before = prepared.read_before.take();
        let input = prepared.input();
        let keys = rules::keys(&input, &self.config.policy());
        let snapshot = self.snapshot_for(&keys, read_before).await?.snapshot;
        report.plan = Some(rules::decide(&input, &snapshot, &self.config.policy(), db::now())?);
        Ok(())
    }
}

impl Rehearsed {
    /// The report for scripts (`hookgate try --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "identity": self.identity.as_ref().map(openid_json),
            "hooks": self.hooks.iter().map(|(setting, reference, took)| json!({
                "setting": setting,
                "hook": reference,
                "seconds": took.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "values": self.values.as_ref().map(values_json),
            "staged": self.staged.iter().map(staged_json).collect::<Vec<_>>(),
            "plan": self.plan.as_ref().map(plan_json),
            "error": self.error.as_ref().map(|error| json!({
                "outcome": error.outcome(),
                "message": error.reason(),
            })),
            "committed": false,
        })
    }

    /// The report for people (`hookgate try`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        for (setting, reference, took) in &self.hooks {
            line(format!("{setting}: {reference} ran in {:.3} ms", took.as_secs_f64() * 1e3));
            if *setting == "custom_ui_sso_sign_in_handler"
                && let Some(identity) = &self.identity
            {
                line(format!("  returned the identity {}", compact(&openid_json(identity))));
            }
            if *setting == "custom_sso"
                && let Some(values) = &self.values
            {
                line(format!("  returned {}", compact(&values_json(values))));
                for staged in &self.staged {
                    line(format!("  staged {}", describe_staged(staged)));
                }
            }
        }
        if self.hooks.iter().all(|(setting, ..)| *setting != "custom_ui_sso_sign_in_handler")
            && let Some(identity) = &self.identity
        {
            line(format!("identity: {}", compact(&openid_json(identity))));
        }
        if self.hooks.iter().all(|(setting, ..)| *setting != "custom_sso")
            && let Some(values) = &self.values
        {
            line(format!(
                "no custom_sso hook: LiteLLM's defaults apply: {}",
                compact(&values_json(values))
            ));
        }
        if let Some(plan) = &self.plan {
            line("the sign-in would:".into());
            for change in describe_plan(plan) {
                line(format!("  {change}"));
            }
        }
        match &self.error {
            Some(error) => {
                line(format!("the sign-in would be {}: {}", error.outcome(), error.reason()))
            }
            None => line("nothing was written (hookgate try commits nothing)".into()),
        }
        out
    }
}

fn compact(value: &Value) -> String {
    // Fields without a value are left out, so the line shows what the hook said.
    match value {
        Value::Object(fields) => {
            let shown: serde_json::Map<String, Value> = fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::Object(shown).to_string()
        }
        other => other.to_string(),
    }
}

fn openid_json(openid: &OpenId) -> Value {
    json!({
        "id": openid.id,
        "email": openid.email,
        "first_name": openid.first_name,
        "last_name": openid.last_name,
        "display_name": openid.display_name,
        "picture": openid.picture,
        "provider": openid.provider,
        "team_ids": openid.team_ids,
        "user_role": openid.user_role.map(|role| role.as_str()),
    })
}

fn values_json(values: &Values) -> Value {
    json!({
        "user_id": values.user_id,
        "user_email": values.user_email,
        "user_role": values.user_role.map(|role| role.as_str()),
        "models": values.models,
        "max_budget": values.max_budget,
        "budget_duration": values.budget_duration.map(|d| d.to_string()),
    })
}

fn staged_json(staged: &Staged) -> Value {
    match staged {
        Staged::NewUser(user) => json!({
            "new_user": {
                "user_id": user.user_id,
                "user_email": user.user_email,
                "user_alias": user.user_alias,
                "user_role": user.user_role.map(|role| role.as_str()),
                "models": user.models,
                "max_budget": user.max_budget,
                "budget_duration": user.budget_duration,
            }
        }),
        Staged::Member { team_id, user_id, role } => json!({
            "add_team_member": {"team_id": team_id, "user_id": user_id, "role": role.as_str()}
        }),
        Staged::Removal { team_id, user_id } => json!({
            "remove_team_member": {"team_id": team_id, "user_id": user_id}
        }),
        Staged::Team(team) => json!({"create_team": team_json(team)}),
    }
}

fn describe_staged(staged: &Staged) -> String {
    match staged {
        Staged::NewUser(user) => format!(
            "new_user {}",
            user.user_id.as_deref().or(user.user_email.as_deref()).unwrap_or("(id to be made up)")
        ),
        Staged::Member { team_id, user_id, role } => {
            format!("add_team_member {user_id} to {team_id} as {role}")
        }
        Staged::Removal { team_id, user_id } => {
            format!("remove_team_member {user_id} from {team_id}")
        }
        Staged::Team(team) => format!("create_team {}", team.team_id),
    }
}

fn account_json(account: &rules::Account) -> Value {
    json!({
        "user_id": account.user_id,
        "user_email": account.user_email,
        "user_alias": account.user_alias,
        "user_role": account.user_role.map(|role| role.as_str()),
        "models": account.models,
        "max_budget": account.max_budget,
        "budget_duration": account.budget_duration.map(|d| d.to_string()),
        "budget_reset_at": account.budget_reset_at.map(|at| at.to_rfc3339()),
    })
}

fn changes_json(changes: &rules::Changes) -> Value {
    let mut fields = serde_json::Map::new();
    let mut set = |name: &str, value: Value| {
        fields.insert(name.to_owned(), value);
    };
    if let Some(email) = &changes.user_email {
        set("user_email", json!(email));
    }
    if let Some(alias) = &changes.user_alias {
        set("user_alias", json!(alias));
    }
    if let Some(binding) = &changes.binding {
        set("sso_binding", json!({"issuer": binding.issuer, "subject": binding.subject}));
    }
    if let Some(role) = changes.user_role {
        set("user_role", json!(role.as_str()));
    }
    if let Some(budget) = changes.max_budget {
        set("max_budget", json!(budget));
    }
    if let Some(duration) = changes.budget_duration {
        set("budget_duration", json!(duration.map(|d| d.to_string())));
    }
    if let Some(reset_at) = changes.budget_reset_at {
        set("budget_reset_at", json!(reset_at.map(|at| at.to_rfc3339())));
    }
    if let Some(spend) = changes.spend {
        set("spend", json!(spend));
    }
    Value::Object(fields)
}

fn plan_json(plan: &Plan) -> Value {
    let user = match &plan.user {
        UserWrite::Insert(new) => json!({"create": account_json(&new.account)}),
        UserWrite::Update { changes, .. } => {
            json!({"update": {"user_id": plan.account.user_id, "set": changes_json(changes)}})
        }
        UserWrite::Unchanged => json!({"unchanged": plan.account.user_id}),
    };
    json!({
        "user": user,
        "hook_users": plan.hook_users.iter().map(|new| account_json(&new.account)).collect::<Vec<_>>(),
        "member_users": plan.member_users,
        "new_teams": plan.new_teams.iter().map(team_json).collect::<Vec<_>>(),
        "memberships": plan.memberships.iter().map(|m| json!({
            "team_id": m.team_id, "user_id": m.user_id, "role": m.role.as_str(),
            "source": m.source.as_str(),
        })).collect::<Vec<_>>(),
        "removed_memberships": plan.removed.iter().map(|team_id| json!({
            "team_id": team_id, "user_id": plan.account.user_id,
        })).chain(plan.hook_removed.iter().map(|(team_id, user_id)| json!({
            "team_id": team_id, "user_id": user_id, "by": "custom_sso",
        }))).collect::<Vec<_>>(),
        "revokes_earlier_sessions": !plan.removed.is_empty() || !plan.hook_removed.is_empty(),
        "session": {
            "user_id": plan.account.user_id,
            "user_role": plan.role.as_str(),
            "models": plan.models,
        },
    })
}

/// A team the sign-in would create, with `default_team_params` as LiteLLM names them.
fn team_json(team: &hookgate_core::signin::NewTeam) -> Value {
    let params = &team.params;
    json!({
        "team_id": team.team_id,
        "team_alias": team.team_alias,
        "source": team.source.as_str(),
        "models": params.models,
        "max_budget": params.max_budget,
        "budget_duration": params.budget_duration.map(|d| d.to_string()),
        "tpm_limit": params.tpm_limit,
        "rpm_limit": params.rpm_limit,
    })
}

fn describe_plan(plan: &Plan) -> Vec<String> {
    let mut changes = Vec::new();
    for new in &plan.hook_users {
        changes.push(format!(
            "create user {} for the hook {}",
            new.account.user_id,
            compact(&account_json(&new.account))
        ));
    }
    for user_id in &plan.member_users {
        changes.push(format!("create user {user_id} (internal_user) to add to a team"));
    }
    changes.push(match &plan.user {
        UserWrite::Insert(new) => {
            format!("create user {} {}", new.account.user_id, compact(&account_json(&new.account)))
        }
        UserWrite::Update { changes, .. } => {
            format!("update user {}: {}", plan.account.user_id, changes_json(changes))
        }
        UserWrite::Unchanged => format!("leave user {} as it is", plan.account.user_id),
    });
    for team in &plan.new_teams {
        let why = match team.source {
            hookgate_core::signin::Source::Hook => "the hook's create_team",
            _ => "a group in create_teams_from_groups",
        };
        changes.push(format!("create team {} ({why}) {}", team.team_id, compact(&team_json(team))));
    }
    for membership in &plan.memberships {
        changes.push(format!(
            "add {} to team {} as {}",
            membership.user_id, membership.team_id, membership.role
        ));
    }
    for team_id in &plan.removed {
        changes.push(format!(
            "remove {} from team {} (the identity provider no longer names it; \
             sync_user_role_and_teams)",
            plan.account.user_id, team_id
        ));
    }
    for (team_id, user_id) in &plan.hook_removed {
        changes
            .push(format!("remove {user_id} from team {team_id} (the hook's remove_team_member)"));
    }
    let mut losing: Vec<&str> = plan.hook_removed.iter().map(|(_, user)| user.as_str()).collect();
    if !plan.removed.is_empty() {
        losing.push(&plan.account.user_id);
    }
    losing.sort_unstable();
    losing.dedup();
    for user_id in losing {
        changes
            .push(format!("revoke {user_id}'s earlier sessions (issued with the teams removed)"));
    }
    changes.push(format!(
        "issue a session for {} as {} with models {}",
        plan.account.user_id,
        plan.role,
        json!(plan.models)
    ));
    changes
}
