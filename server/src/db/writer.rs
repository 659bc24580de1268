//! Group commit: one writer task per server applies the plans of concurrent sign-ins, many per
//! transaction, with multi-row statements. A sign-in waits for the commit that holds its rows
//! before it answers, so no acknowledged sign-in is lost; a batch that fails on the database is
//! applied again one plan at a time, so one bad plan fails alone.
//!
//! In a batch, each plan's check-first write (its user row: created if absent, or changed if
//! still as read) runs first; a plan whose check fails is stale and writes nothing. Then, for
//! the plans that passed, one statement each: the users the hooks created, the memberships, the
//! sessions, the "allowed" events.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, sea_query::OnConflict};
use tokio::sync::{mpsc, oneshot};

use super::{
    Db,
    entity::{session, sign_in_event, team_member, user},
    store,
};
use crate::signin::rules::{Plan, UserWrite};

/// The most plans one transaction applies.
const MAX_BATCH: usize = 64;
/// The row counts of multi-row statements: a batch's rows go out in chunks of these sizes, so
/// each connection prepares (and caches) a handful of statements, not one per batch size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];
/// How many plans may wait for the writer before sign-ins wait to hand theirs over.
const QUEUE: usize = 4096;

/// Whether a plan was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Written and committed.
    Done,
    /// The account changed since the snapshot (created, or updated, by someone else): nothing
    /// was written; decide again.
    Stale,
}

/// One sign-in's writes.
pub(crate) struct Job {
    /// The plan.
    pub(crate) plan: Plan,
    /// Its session row.
    pub(crate) session: session::ActiveModel,
    /// Its "allowed" event.
    pub(crate) event: sign_in_event::ActiveModel,
    /// When it was decided.
    pub(crate) now: DateTime<Utc>,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<Applied, DbErr>>,
}

/// The handle sign-ins hand their plans to.
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

impl Writer {
    /// Starts the writer task over `db`; it ends when every handle is dropped.
    pub fn start(db: Db) -> Writer {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, receiver));
        Writer { queue }
    }

    /// Applies `job` in the next batch and waits for its commit.
    pub(crate) async fn apply(&self, job: Job) -> Result<Applied, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { job, reply })
            .await
            .map_err(|_| DbErr::Custom("the database writer has stopped".into()))?;
        answer.await.map_err(|_| DbErr::Custom("the database writer has stopped".into()))?
    }
}

async fn run(db: Db, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<&Job> = batch.iter().map(|queued| &queued.job).collect();
        match apply_batch(&db, &jobs).await {
            Ok(outcomes) => {
                for (queued, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = queued.reply.send(Ok(outcome));
                }
            }
            Err(error) if batch.len() == 1 => {
                let queued = batch.pop().expect("one job");
                let _ = queued.reply.send(Err(error));
            }
            Err(error) => {
                tracing::warn!(
                    plans = batch.len(),
                    "a batch of sign-ins failed on the database ({error}); applying them one by one"
                );
                for queued in batch.drain(..) {
                    let outcome = apply_batch(&db, &[&queued.job]).await.map(|mut o| o.remove(0));
                    let _ = queued.reply.send(outcome);
                }
            }
        }
    }
}

/// Applies `jobs` in one transaction; returns each one's outcome.
async fn apply_batch(db: &Db, jobs: &[&Job]) -> Result<Vec<Applied>, DbErr> {
    let txn = db.write().await?;
    let conn = txn.conn();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let plan = &job.plan;
        let fresh = match &plan.user {
            UserWrite::Insert(new) => {
                store::insert_user_if_absent(conn, store::row_of(new)).await?
            }
            UserWrite::Update { read_at, changes } => {
                store::update_if_unchanged(conn, &plan.account.user_id, *read_at, changes, job.now)
                    .await?
            }
            UserWrite::Unchanged => true,
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
        new_users.extend(job.plan.hook_users.iter().map(store::row_of));
        new_users.extend(
            job.plan
                .member_users
                .iter()
                .map(|user_id| store::member_user_row(user_id, "custom_sso", job.now)),
        );
    }
    insert_ignoring_conflicts::<user::Entity, _>(conn, new_users).await?;

    let memberships = done.iter().flat_map(|job| {
        job.plan.memberships.iter().map(|m| team_member::ActiveModel {
            team_id: Set(m.team_id.clone()),
            user_id: Set(m.user_id.clone()),
            role: Set(m.role.as_str().to_owned()),
            created_at: Set(job.now),
        })
    });
    insert_ignoring_conflicts::<team_member::Entity, _>(conn, memberships.collect()).await?;

    let sessions: Vec<session::ActiveModel> = done.iter().map(|job| job.session.clone()).collect();
    if !sessions.is_empty() {
        session::Entity::insert_many(sessions).exec_without_returning(conn).await?;
    }
    let events: Vec<sign_in_event::ActiveModel> =
        done.iter().map(|job| job.event.clone()).collect();
    if !events.is_empty() {
        sign_in_event::Entity::insert_many(events).exec_without_returning(conn).await?;
    }
    txn.commit().await?;
    Ok(outcomes)
}

/// One multi-row `INSERT … ON CONFLICT DO NOTHING` (nothing for no rows).
async fn insert_ignoring_conflicts<E, C>(conn: &C, rows: Vec<E::ActiveModel>) -> Result<(), DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    for chunk in chunks(rows) {
        E::insert_many(chunk)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .try_insert()
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// `rows` split into chunks of the sizes in [`CHUNKS`], largest first.
fn chunks<T>(mut rows: Vec<T>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    while !rows.is_empty() {
        let size = CHUNKS.iter().copied().find(|size| *size <= rows.len()).unwrap_or(1);
        let rest = rows.split_off(size);
        out.push(std::mem::replace(&mut rows, rest));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_go_out_in_a_few_fixed_sizes() {
        let sizes = |n: usize| super::chunks(vec![0; n]).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(7), [4, 1, 1, 1]);
        assert_eq!(sizes(64), [64]);
        assert_eq!(sizes(86), [64, 16, 4, 1, 1]);
    }
}
