//! Sign-in events and completed OIDC flows (a callback's one use), and the retention pruning
//! that deletes old events, flows and dead sessions.

use chrono::{DateTime, Utc};
use hookgate_core::records::SignInRecord;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::{json_list, now};
use crate::entity::{completed_oidc_flow, session, sign_in_event};

/// Records a sign-in attempt.
pub(crate) async fn insert_event<C: ConnectionTrait>(
    conn: &C,
    record: &SignInRecord,
) -> Result<(), DbErr> {
    sign_in_event::Entity::insert(event_row(record)).exec_without_returning(conn).await.map(|_| ())
}

/// An event's row.
pub(crate) fn event_row(record: &SignInRecord) -> sign_in_event::ActiveModel {
    sign_in_event::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        at: Set(record.at),
        user_id: Set(record.user_id.clone()),
        method: Set(record.method.to_owned()),
        outcome: Set(record.outcome.clone()),
        reason: Set(record.reason.clone()),
        peer_addr: Set(record.client.clone()),
        request_id: Set(record.request_id.clone()),
        groups: Set(record.groups.as_deref().map(json_list)),
        role_groups: Set(record.role_groups.as_deref().map(json_list)),
    }
}

/// An event as the sign-in log lists it: every column but the groups, which can be long (up to
/// [`hookgate_core::values::MAX_GROUPS`] ids) and which the log does not show.
#[derive(Debug, sea_orm::DerivePartialModel)]
#[sea_orm(entity = "sign_in_event::Entity", from_query_result)]
struct Listed {
    id: i64,
    at: DateTime<Utc>,
    user_id: Option<String>,
    method: String,
    outcome: String,
    reason: Option<String>,
    peer_addr: String,
    request_id: String,
}

impl From<Listed> for sign_in_event::Model {
    fn from(listed: Listed) -> Self {
        let Listed { id, at, user_id, method, outcome, reason, peer_addr, request_id } = listed;
        sign_in_event::Model {
            id,
            at,
            user_id,
            method,
            outcome,
            reason,
            peer_addr,
            request_id,
            groups: None,
            role_groups: None,
        }
    }
}

/// The latest sign-in events, newest first, optionally of one user (without their groups).
pub(crate) async fn recent_events<C: ConnectionTrait>(
    conn: &C,
    user_id: Option<&str>,
    limit: u64,
) -> Result<Vec<sign_in_event::Model>, DbErr> {
    let mut query = sign_in_event::Entity::find();
    if let Some(user_id) = user_id {
        query = query.filter(sign_in_event::Column::UserId.eq(user_id));
    }
    let listed = query
        .order_by_desc(sign_in_event::Column::Id)
        .limit(limit)
        .into_partial_model::<Listed>()
        .all(conn)
        .await?;
    Ok(listed.into_iter().map(Into::into).collect())
}

/// Sign-in events, newest first, a page at a time (1-based, without their groups), and the
/// total.
pub(crate) async fn events_page<C: ConnectionTrait>(
    conn: &C,
    page: u64,
    page_size: u64,
) -> Result<(Vec<sign_in_event::Model>, u64), DbErr> {
    let total = sign_in_event::Entity::find().count(conn).await?;
    let events = sign_in_event::Entity::find()
        .order_by_desc(sign_in_event::Column::Id)
        .offset(page.saturating_sub(1) * page_size)
        .limit(page_size)
        .into_partial_model::<Listed>()
        .all(conn)
        .await?;
    Ok((events.into_iter().map(Into::into).collect(), total))
}

/// Marks an OIDC flow used (its callback came: a code, or the provider's error); returns false
/// when it already was (a replayed callback).
/// Entries past their expiry are pruned on the way.
pub(crate) async fn complete_flow<C: ConnectionTrait>(
    conn: &C,
    flow_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    completed_oidc_flow::Entity::delete_many()
        .filter(completed_oidc_flow::Column::ExpiresAt.lt(now()))
        .exec(conn)
        .await?;
    let row = completed_oidc_flow::ActiveModel {
        flow_id: Set(flow_id.to_owned()),
        expires_at: Set(expires_at),
    };
    let result = completed_oidc_flow::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// Deletes sessions that expired or were revoked before `before`, and sign-in events and
/// completed OIDC flows older than `events_before`; returns (sessions, events) deleted.
pub(crate) async fn prune<C: ConnectionTrait>(
    conn: &C,
    before: DateTime<Utc>,
    events_before: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    use sea_orm::Condition;
    let sessions = session::Entity::delete_many()
        .filter(
            Condition::any()
                .add(session::Column::ExpiresAt.lt(before))
                .add(session::Column::RevokedAt.lt(before)),
        )
        .exec(conn)
        .await?
        .rows_affected;
    let events = sign_in_event::Entity::delete_many()
        .filter(sign_in_event::Column::At.lt(events_before))
        .exec(conn)
        .await?
        .rows_affected;
    completed_oidc_flow::Entity::delete_many()
        .filter(completed_oidc_flow::Column::ExpiresAt.lt(now()))
        .exec(conn)
        .await?;
    Ok((sessions, events))
}
