//! Group commit: one writer thread per server applies the plans of concurrent sign-ins, many per
//! transaction, with multi-row statements. A sign-in waits for the commit that holds its rows
//! before it answers, so no acknowledged sign-in is lost; a batch that fails on the database is
//! applied again one plan at a time, so one bad plan fails alone.
//!
//! In a batch, each plan's check-first write (its user row: created if absent, changed if still
//! as read, or, left as it is, still active) runs first; a plan whose check fails is stale and
//! writes nothing. Then, for the plans that passed, one statement each: the users the hooks
//! created, the teams the sign-ins create, the memberships, the sessions, the "allowed" events.
//!
//! The statements are built with sea-orm's query builder. On SQLite the writer runs them on its
//! own rusqlite connection through sea-orm's synchronous backend (`sea-orm-sync`), taking the
//! server's write lock for each batch; on PostgreSQL it runs them on the pool, through the
//! runtime.

use chrono::{DateTime, Utc};
use hookgate_core::records::{NewSession, SignInRecord};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryTrait,
    Statement,
    sea_query::{Expr, OnConflict},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    Db,
    entity::{session, sign_in_event, team, team_member, user},
    store,
};
use hookgate_core::signin::{Plan, Source, UserWrite};

/// The most plans one transaction applies.
const MAX_BATCH: usize = 64;
/// The row counts of multi-row statements: a batch's rows go out in chunks of these sizes, so
/// each connection prepares (and caches) a handful of statements, not one per batch size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];
/// How many plans may wait for the writer before sign-ins wait to hand theirs over.
const QUEUE: usize = 4096;

/// What the writer tells of each transaction: how long it took (the server's metrics).
pub type Timed = std::sync::Arc<dyn Fn(std::time::Duration) + Send + Sync>;

/// Whether a plan was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Written and committed.
    Done,
    /// The account changed since the snapshot (created, or updated, by someone else): nothing
    /// was written; decide again.
    Stale,
}

/// One sign-in's writes.
pub struct Job {
    /// The plan.
    pub plan: Plan,
    /// Its session.
    pub session: NewSession,
    /// Its "allowed" event.
    pub event: SignInRecord,
    /// When it was decided.
    pub now: DateTime<Utc>,
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
    /// Starts the writer thread over `db` (from within the runtime), telling `timed` how long
    /// each of its transactions took; it ends when every handle is dropped.
    pub fn start(db: Db, timed: Timed) -> Writer {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("hookgate-writer".into())
            .spawn(move || run(db, runtime, receiver, timed))
            .expect("the operating system refused to start the database writer thread");
        Writer { queue }
    }

    /// Applies `job` in the next batch and waits for its commit.
    pub async fn apply(&self, job: Job) -> Result<Applied, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { job, reply })
            .await
            .map_err(|_| DbErr::Custom("the database writer has stopped".into()))?;
        answer.await.map_err(|_| DbErr::Custom("the database writer has stopped".into()))?
    }
}

fn run(
    db: Db,
    runtime: tokio::runtime::Handle,
    mut receiver: mpsc::Receiver<Queued>,
    timed: Timed,
) {
    let mut target = Target::new(db.clone(), runtime);
    let transaction = |target: &mut Target, jobs: &[&Job]| {
        let started = std::time::Instant::now();
        let outcome = target.transaction(|txn| apply_batch(txn, jobs));
        timed(started.elapsed());
        outcome
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        gather(&mut receiver, &mut batch);
        let jobs: Vec<&Job> = batch.iter().map(|queued| &queued.job).collect();
        match transaction(&mut target, &jobs) {
            Ok(outcomes) => {
                for (queued, outcome) in batch.drain(..).zip(outcomes) {
                    forget_changed(&db, &queued.job, outcome);
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
                    let outcome = transaction(&mut target, &[&queued.job])
                        .map(|mut outcomes| outcomes.remove(0));
                    if let Ok(outcome) = outcome {
                        forget_changed(&db, &queued.job, outcome);
                    }
                    let _ = queued.reply.send(outcome);
                }
            }
        }
    }
}

/// After the commit, before the sign-in answers: a user the plan changed has its session checks
/// forgotten (a sign-in may change the role, models or budget that every check reads, or revoke
/// the user's earlier sessions when a sync takes teams away).
fn forget_changed(db: &Db, job: &Job, outcome: Applied) {
    if outcome == Applied::Done
        && (matches!(job.plan.user, UserWrite::Update { .. }) || !job.plan.removed.is_empty())
    {
        db.forget_user(&job.plan.account.user_id);
    }
    if outcome == Applied::Done {
        for (_, user_id) in &job.plan.hook_removed {
            db.forget_user(user_id);
        }
    }
}

/// Adds what else is queued to `batch`. While the batch keeps growing, the writer first lets
/// the sign-ins that are running hand in their plans (a yield of its time slice): on a busy
/// core, the first plan's arrival wakes the writer long before the next ones arrive, and
/// without this a batch is two plans on average and every sign-in pays a commit of its own.
fn gather(receiver: &mut mpsc::Receiver<Queued>, batch: &mut Vec<Queued>) {
    loop {
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        if batch.len() >= MAX_BATCH {
            return;
        }
        std::thread::yield_now();
        if receiver.is_empty() {
            return;
        }
    }
}

/// Where the writer's transactions run.
enum Target {
    /// SQLite: a connection of the writer thread's own, opened on first use (and again after a
    /// failure), and the server's in-process write lock.
    Sqlite { db: Db, path: std::path::PathBuf, conn: Option<sea_orm_sync::DatabaseConnection> },
    /// PostgreSQL: the pool, through the runtime.
    Postgres { db: Db, runtime: tokio::runtime::Handle },
}

/// An open transaction: runs one statement, returns the rows it changed.
pub(super) trait Txn {
    /// Runs `statement`; returns how many rows it changed.
    fn run(&mut self, statement: Statement) -> Result<u64, DbErr>;
    /// The SQL dialect statements are built for.
    fn backend(&self) -> DbBackend;
}

impl Target {
    fn new(db: Db, runtime: tokio::runtime::Handle) -> Target {
        match db.sqlite_path().map(std::path::Path::to_owned) {
            Some(path) => Target::Sqlite { db, path, conn: None },
            None => Target::Postgres { db, runtime },
        }
    }

    /// Runs `work` in one transaction, committed if it returns `Ok`, rolled back otherwise.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Txn) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        match self {
            Target::Sqlite { db, path, conn } => {
                let _guard = db.write_lock.as_ref().map(|lock| lock.blocking_lock());
                let connection = match conn.take() {
                    Some(connection) => connection,
                    None => super::sync::open_writer(path)?,
                };
                let result = super::sync::transaction(&connection, work);
                // A connection that failed is dropped; the next batch opens a new one.
                if result.is_ok() {
                    *conn = Some(connection);
                }
                result
            }
            Target::Postgres { db, runtime } => {
                let _context = runtime.enter();
                let txn = runtime.block_on(db.begin_write())?;
                let mut exec = Pooled { txn: &txn, runtime };
                match work(&mut exec) {
                    Ok(value) => runtime.block_on(txn.commit()).map(|()| value),
                    Err(error) => {
                        let _ = runtime.block_on(txn.rollback());
                        Err(error)
                    }
                }
            }
        }
    }
}

/// A PostgreSQL transaction, driven from the writer thread.
struct Pooled<'a> {
    txn: &'a super::WriteTxn,
    runtime: &'a tokio::runtime::Handle,
}

impl Txn for Pooled<'_> {
    fn run(&mut self, statement: Statement) -> Result<u64, DbErr> {
        Ok(self.runtime.block_on(self.txn.conn().execute_raw(statement))?.rows_affected())
    }

    fn backend(&self) -> DbBackend {
        DbBackend::Postgres
    }
}
/// Applies `jobs` in the open transaction; returns each one's outcome.
fn apply_batch(txn: &mut dyn Txn, jobs: &[&Job]) -> Result<Vec<Applied>, DbErr> {
    let backend = txn.backend();
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let plan = &job.plan;
        let statement = match &plan.user {
            UserWrite::Insert(new) => Some(
                user::Entity::insert(store::row_of(new))
                    .on_conflict(OnConflict::new().do_nothing().to_owned())
                    .build(backend),
            ),
            UserWrite::Update { read_at, changes } => Some(
                store::update_if_unchanged(&plan.account.user_id, *read_at, changes, job.now)
                    .build(backend),
            ),
            UserWrite::Unchanged => None,
        };
        let fresh = match statement {
            Some(statement) => txn.run(statement)? > 0,
            // A row left as it is must still be active: deprovisioned (SCIM) since the read,
            // the plan is stale and the sign-in is decided again, and refused. The statement
            // matches no row in the usual case (so it changes nothing and notifies nobody).
            None => {
                let deactivated = user::Entity::update_many()
                    .col_expr(user::Column::Active, Expr::col(user::Column::Active))
                    .filter(user::Column::UserId.eq(plan.account.user_id.as_str()))
                    .filter(user::Column::Active.eq(false))
                    .build(backend);
                txn.run(deactivated)? == 0
            }
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
    insert_many::<user::Entity>(txn, new_users, true)?;
    // Teams the sign-ins create, before their memberships; one another sign-in created first
    // is left as it is (and joined all the same).
    let teams = done
        .iter()
        .flat_map(|job| job.plan.new_teams.iter().map(|new| store::sign_in_team_row(new, job.now)));
    insert_many::<team::Entity>(txn, teams.collect(), true)?;
    let memberships = done.iter().flat_map(|job| {
        job.plan.memberships.iter().map(|m| team_member::ActiveModel {
            team_id: Set(m.team_id.clone()),
            user_id: Set(m.user_id.clone()),
            role: Set(m.role.as_str().to_owned()),
            created_at: Set(job.now),
            source: Set(m.source.as_str().to_owned()),
        })
    });
    insert_many::<team_member::Entity>(txn, memberships.collect(), true)?;
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
            txn.run(removed.build(txn.backend()))?;
            losers.push(user_id);
        }
        for (team_id, user_id) in &job.plan.hook_removed {
            let removed = team_member::Entity::delete_many()
                .filter(team_member::Column::UserId.eq(user_id.as_str()))
                .filter(team_member::Column::TeamId.eq(team_id.as_str()))
                .filter(
                    team_member::Column::Source.is_in(Source::HOOK_REMOVABLE.map(Source::as_str)),
                );
            txn.run(removed.build(txn.backend()))?;
            if !losers.contains(&user_id.as_str()) {
                losers.push(user_id);
            }
        }
        if !losers.is_empty() {
            let revoked = session::Entity::update_many()
                .col_expr(session::Column::RevokedAt, Expr::value(job.now))
                .filter(session::Column::UserId.is_in(losers))
                .filter(session::Column::RevokedAt.is_null());
            txn.run(revoked.build(txn.backend()))?;
        }
    }
    insert_many::<session::Entity>(
        txn,
        done.iter().map(|job| store::session_row(&job.session)).collect(),
        false,
    )?;
    insert_many::<sign_in_event::Entity>(
        txn,
        done.iter().map(|job| store::event_row(&job.event)).collect(),
        false,
    )?;
    Ok(outcomes)
}

/// Multi-row `INSERT`s of `rows` (none for no rows), `ON CONFLICT DO NOTHING` if
/// `ignoring_conflicts`.
fn insert_many<E: EntityTrait>(
    txn: &mut dyn Txn,
    rows: Vec<E::ActiveModel>,
    ignoring_conflicts: bool,
) -> Result<(), DbErr> {
    let backend = txn.backend();
    for chunk in chunks(rows) {
        let mut insert = E::insert_many(chunk);
        if ignoring_conflicts {
            insert = insert.on_conflict(OnConflict::new().do_nothing().to_owned());
        }
        txn.run(insert.build(backend))?;
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
mod promises;

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
