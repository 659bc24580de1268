//! The writer's transaction: the statements of a batch of sign-in plans (see `crate::writer`
//! for how batches are made, committed and answered).

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Expr, OnConflict},
};

use super::{
    event_row, member_user_row, row_of, session_row, sign_in_team_row, update_if_unchanged,
};
use crate::entity::{session, sign_in_event, team, team_member, user};
use crate::writer::{Applied, Job};
use hookgate_core::signin::{Source, UserWrite};

/// The row counts of multi-row statements: a batch's rows go out in chunks of these sizes, so
/// each connection prepares (and caches) a handful of statements, not one per batch size.
pub(crate) const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// Runs `statement` on the query path; how many rows it returned (a statement given a
/// `RETURNING` clause returns the rows it changed). Not `execute`: sea-orm-sync's prepares the
/// statement again on every call (5.9% of a sign-in's CPU in the profile), its query path keeps
/// it prepared in the connection's cache, as sqlx does on PostgreSQL.
async fn run<C: ConnectionTrait>(
    conn: &C,
    statement: impl sea_orm::StatementBuilder,
) -> Result<usize, DbErr> {
    Ok(conn.query_all(&statement).await?.len())
}

/// Applies `jobs` in the open transaction on `conn`; returns each one's outcome.
pub(crate) async fn apply_batch<C: ConnectionTrait>(
    conn: &C,
    jobs: &[&Job],
) -> Result<Vec<Applied>, DbErr> {
    // A row left as it is must still be active: deprovisioned (SCIM) since the read, the plan
    // is stale and the sign-in is decided again, and refused. One statement for every such
    // plan of the batch; it finds no row in the usual case.
    let kept: Vec<&str> = jobs
        .iter()
        .filter(|job| matches!(job.plan.user, UserWrite::Unchanged))
        .map(|job| job.plan.account.user_id.as_str())
        .collect();
    let deactivated = deactivated_of(conn, &kept).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let plan = &job.plan;
        let user_id = plan.account.user_id.as_str();
        let fresh = match &plan.user {
            UserWrite::Insert(new) => {
                let mut insert = user::Entity::insert(row_of(new))
                    .on_conflict(OnConflict::new().do_nothing().to_owned())
                    .into_query();
                insert.returning_col(user::Column::UserId);
                run(conn, insert).await? > 0
            }
            UserWrite::Update { read_at, changes } => {
                let mut update =
                    update_if_unchanged(user_id, *read_at, changes, job.now).into_query();
                update.returning_col(user::Column::UserId);
                run(conn, update).await? > 0
            }
            UserWrite::Unchanged => !deactivated.iter().any(|id| id == user_id),
        };
        outcomes.push(if fresh { Applied::Done } else { Applied::Stale });
    }
    let done: Vec<&Job> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == Applied::Done)
        .map(|(job, _)| *job)
        .collect();

    let mut new_users: Vec<user::ActiveModel> = Vec::new();
    for job in &done {
        new_users.extend(job.plan.hook_users.iter().map(row_of));
        new_users.extend(
            job.plan
                .member_users
                .iter()
                .map(|user_id| member_user_row(user_id, "custom_sso", job.now)),
        );
    }
    insert_many::<user::Entity, C>(conn, new_users, true).await?;
    // Teams the sign-ins create, before their memberships; one another sign-in created first
    // is left as it is (and joined all the same).
    let teams = done
        .iter()
        .flat_map(|job| job.plan.new_teams.iter().map(|new| sign_in_team_row(new, job.now)));
    insert_many::<team::Entity, C>(conn, teams.collect(), true).await?;
    let memberships = done.iter().flat_map(|job| {
        job.plan.memberships.iter().map(|m| team_member::ActiveModel {
            team_id: Set(m.team_id.clone()),
            user_id: Set(m.user_id.clone()),
            role: Set(m.role.as_str().to_owned()),
            created_at: Set(job.now),
            source: Set(m.source.as_str().to_owned()),
        })
    });
    insert_many::<team_member::Entity, C>(conn, memberships.collect(), true).await?;
    // Removals, each with its source condition in the statement too (an administrator's re-add
    // since the read is kept): an authoritative sync's (only memberships a sync made), then a
    // hook's (only memberships a sign-in made). Every user who lost one loses their earlier
    // sessions, which were issued with those teams — once, however many they lost.
    for job in &done {
        let mut losers: Vec<&str> = Vec::new();
        if !job.plan.removed.is_empty() {
            let user_id = job.plan.account.user_id.as_str();
            let removed = team_member::Entity::delete_many()
                .filter(team_member::Column::UserId.eq(user_id))
                .filter(team_member::Column::TeamId.is_in(job.plan.removed.iter().cloned()))
                .filter(team_member::Column::Source.eq(Source::Idp.as_str()));
            run(conn, removed.into_query()).await?;
            losers.push(user_id);
        }
        for (team_id, user_id) in &job.plan.hook_removed {
            let removed = team_member::Entity::delete_many()
                .filter(team_member::Column::UserId.eq(user_id.as_str()))
                .filter(team_member::Column::TeamId.eq(team_id.as_str()))
                .filter(
                    team_member::Column::Source.is_in(Source::HOOK_REMOVABLE.map(Source::as_str)),
                );
            run(conn, removed.into_query()).await?;
            if !losers.contains(&user_id.as_str()) {
                losers.push(user_id);
            }
        }
        if !losers.is_empty() {
            let revoked = session::Entity::update_many()
                .col_expr(session::Column::RevokedAt, Expr::value(job.now))
                .filter(session::Column::UserId.is_in(losers))
                .filter(session::Column::RevokedAt.is_null());
            run(conn, revoked.into_query()).await?;
        }
    }
    let sessions = done.iter().map(|job| session_row(&job.session)).collect();
    insert_many::<session::Entity, C>(conn, sessions, false).await?;
    let events = done.iter().map(|job| event_row(&job.event)).collect();
    insert_many::<sign_in_event::Entity, C>(conn, events, false).await?;
    Ok(outcomes)
}

/// Multi-row `INSERT`s of `rows` (none for no rows), `ON CONFLICT DO NOTHING` if
/// `ignoring_conflicts`.
async fn insert_many<E: EntityTrait, C: ConnectionTrait>(
    conn: &C,
    rows: Vec<E::ActiveModel>,
    ignoring_conflicts: bool,
) -> Result<(), DbErr> {
    for chunk in chunks(rows, conn.get_database_backend()) {
        let mut insert = E::insert_many(chunk);
        if ignoring_conflicts {
            insert = insert.on_conflict(OnConflict::new().do_nothing().to_owned());
        }
        run(conn, insert.into_query()).await?;
    }
    Ok(())
}

/// Which of `user_ids` are deactivated, in one statement (its list of ids padded to a size in
/// [`CHUNKS`] by repeating the last, so that a handful of statements serve every batch).
async fn deactivated_of<C: ConnectionTrait>(
    conn: &C,
    user_ids: &[&str],
) -> Result<Vec<String>, DbErr> {
    let mut deactivated = Vec::new();
    for chunk in user_ids.chunks(CHUNKS[0]) {
        let size =
            CHUNKS.iter().rev().copied().find(|size| *size >= chunk.len()).unwrap_or(chunk.len());
        let last = chunk[chunk.len() - 1];
        let ids = chunk.iter().copied().chain(std::iter::repeat(last)).take(size);
        let found = user::Entity::find()
            .select_only()
            .column(user::Column::UserId)
            .filter(user::Column::UserId.is_in(ids))
            .filter(user::Column::Active.eq(false))
            .into_tuple::<String>()
            .all(conn)
            .await?;
        deactivated.extend(found);
    }
    Ok(deactivated)
}

/// `rows` split into the statements that insert them. On SQLite, chunks of the sizes in
/// [`CHUNKS`], largest first: rusqlite keeps 16 prepared statements a connection, so a few
/// shapes serve every batch. On PostgreSQL a statement is a round trip the writer waits for:
/// as few statements as [`CHUNKS`]' largest allows (a size the connection's 24 prepared
/// statements no longer hold costs a prepare, one round trip more: still fewer than a chunk
/// each).
pub(crate) fn chunks<T>(mut rows: Vec<T>, backend: sea_orm::DbBackend) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    while !rows.is_empty() {
        let size = match backend {
            sea_orm::DbBackend::Postgres => rows.len().min(CHUNKS[0]),
            _ => CHUNKS.iter().copied().find(|size| *size <= rows.len()).unwrap_or(1),
        };
        let rest = rows.split_off(size);
        out.push(std::mem::replace(&mut rows, rest));
    }
    out
}
