//! hookgate's sessions: recording one, the live session behind a key with its user, and
//! revoking one or all of a user's.

use hookgate_core::records::NewSession;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::now;
use crate::entity::{session, user};

/// A session's row.
pub(crate) fn session_row(new: &NewSession) -> session::ActiveModel {
    session::ActiveModel {
        token_hash: Set(new.token_hash.clone()),
        user_id: Set(new.user_id.clone()),
        user_role: Set(new.user_role.as_str().to_owned()),
        login_method: Set(new.login_method.to_owned()),
        models: Set(super::json_list(&new.models)),
        max_budget: Set(new.max_budget),
        created_at: Set(new.created_at),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
    }
}

/// The live session with this key hash and its user as stored now (an active user): authorisation
/// reads the user's current role, never the one the session was issued with.
pub(crate) async fn live_session_user<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> Result<Option<(session::Model, user::Model)>, DbErr> {
    // By primary key: one row at most. No `.one()`: its `LIMIT ?` makes SQLite plan the
    // statement again every time it is bound (most of this read's cost).
    let found = live_session_user_query(token_hash).all(conn).await?.into_iter().next();
    Ok(found.and_then(|(session, user)| user.map(|user| (session, user))))
}

/// [`live_session_user`]'s statement (its columns are the session's prefixed `A_` and the
/// user's `B_`).
pub(crate) fn live_session_user_query(
    token_hash: &str,
) -> sea_orm::SelectTwo<session::Entity, user::Entity> {
    session::Entity::find_by_id(token_hash.to_owned())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .find_also_related(user::Entity)
        // A deactivated user's sessions are revoked when it is deactivated; this keeps one a
        // racing sign-in recorded from working either.
        .filter(user::Column::Active.eq(true))
}

/// The hashes of a user's live sessions.
pub(crate) async fn live_session_hashes<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<String>, DbErr> {
    use sea_orm::QuerySelect;
    session::Entity::find()
        .select_only()
        .column(session::Column::TokenHash)
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .into_tuple()
        .all(conn)
        .await
}

/// How many sessions are live (neither expired nor revoked), over all users.
pub(crate) async fn count_live_sessions<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    session::Entity::find()
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .count(conn)
        .await
}

/// Revokes every live session of a user; returns how many there were.
pub(crate) async fn revoke_user_sessions<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<u64, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, sea_orm::sea_query::Expr::value(now()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Revokes a session; returns whether it was live. The server revokes through
/// [`crate::Db::revoke_session`], which also forgets the remembered check at once.
pub(crate) async fn revoke_session<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> Result<bool, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, sea_orm::sea_query::Expr::value(now()))
        .filter(session::Column::TokenHash.eq(token_hash))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}
