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
//! The statements are a query like any other (`store::apply_batch`). On SQLite the writer runs
//! its twin on the write connection, taking the lock every write takes for each batch; on
//! PostgreSQL it runs the original on the pool, through the runtime.

use chrono::{DateTime, Utc};
use hookgate_core::records::{NewSession, SignInRecord};
use sea_orm::DbErr;
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Db, sqlite::Wrote, store};
use hookgate_core::signin::{Plan, UserWrite};

/// The most plans one transaction applies.
const MAX_BATCH: usize = 64;
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
    /// Whether the plan was made on a remembered snapshot ([`crate::SignInRead::remembered`]):
    /// stale if another process changed the database since.
    pub remembered: Option<crate::Remembered>,
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
    let mut target = Target::new(&db, runtime.clone());
    let transaction = |target: &mut Target, jobs: &[&Job]| {
        let started = std::time::Instant::now();
        let outcome = target.transaction(jobs);
        timed(started.elapsed());
        outcome
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        gather(&mut receiver, &mut batch);
        let jobs: Vec<&Job> = batch.iter().map(|queued| &queued.job).collect();
        let mut answers = Answers::with_capacity(batch.len());
        match transaction(&mut target, &jobs) {
            Ok(outcomes) => {
                for (queued, outcome) in batch.drain(..).zip(outcomes) {
                    forget_changed(&db, &queued.job, outcome);
                    answers.push((queued.reply, Ok(outcome)));
                }
            }
            Err(error) if batch.len() == 1 => {
                let queued = batch.pop().expect("one job");
                answers.push((queued.reply, Err(error)));
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
                    answers.push((queued.reply, outcome));
                }
            }
        }
        answer(&runtime, answers);
    }
}

/// A batch's sign-ins and what to tell each.
type Answers = Vec<(oneshot::Sender<Result<Applied, DbErr>>, Result<Applied, DbErr>)>;

/// Tells a batch's sign-ins their outcomes with one wake-up of the runtime: a task that answers
/// them all from a worker. Answered one by one from this thread, each answer woke a worker that
/// had nothing else to do, which on a busy core took the core from the writer at once, ran that
/// one sign-in, and gave it back: a batch of 31 sign-ins cost ~17 pairs of context switches.
/// If the runtime is shutting down, the task is dropped and each sign-in hears that the writer
/// has stopped.
fn answer(runtime: &tokio::runtime::Handle, answers: Answers) {
    runtime.spawn(async move {
        for (reply, outcome) in answers {
            let _ = reply.send(outcome);
        }
    });
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
/// without this a batch is two plans on average and every sign-in pays a commit of its own (one
/// core, c=32, measured again with the one-wake-up answers: returning users 33.2–33.9k/s with
/// the yield, 28.3–28.4k/s and a p99 of 3.2–3.3 ms without it; new users 17.2–17.3k/s against
/// 15.0–16.1k/s). It never spins: one yield, and the batch closes if nothing came in.
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
    /// SQLite: the write connection, behind the lock every write takes.
    Sqlite(std::sync::Arc<crate::sqlite::Lite>),
    /// PostgreSQL: the pool, through the runtime.
    Postgres { pg: crate::Pg, runtime: tokio::runtime::Handle },
}

impl Target {
    fn new(db: &Db, runtime: tokio::runtime::Handle) -> Target {
        match db.backend() {
            Backend::Sqlite(sqlite) => Target::Sqlite(sqlite.clone()),
            Backend::Postgres(pg) => Target::Postgres { pg: pg.clone(), runtime },
        }
    }

    /// Applies `jobs` in one transaction, committed if every statement ran, rolled back
    /// otherwise; returns each job's outcome. Plans made on a snapshot remembered from before
    /// a change made elsewhere are stale and write nothing ([`crate::accounts`]); after a commit
    /// that may have changed an account, the accounts' generation moves on before anyone is
    /// answered.
    fn transaction(&mut self, jobs: &[&Job]) -> Result<Vec<Applied>, DbErr> {
        match self {
            Target::Sqlite(sqlite) => sqlite.write(|conn| {
                // The write has just looked for another process's commit.
                let outdated = outdated(jobs, sqlite.accounts());
                let outcomes = apply_current(jobs, &outdated, |current| {
                    crate::lite::store::apply_batch(conn, current).map_err(crate::lite::from_sync)
                })?;
                let wrote =
                    if changes_accounts(jobs, &outcomes) { Wrote::Accounts } else { Wrote::Other };
                Ok((outcomes, wrote))
            }),
            Target::Postgres { pg, runtime } => {
                let _context = runtime.enter();
                let cache = pg.sessions.as_deref();
                // Every change committed before the barrier has been heard after it.
                if let Some(cache) = cache
                    && cache.is_live()
                    && jobs.iter().any(|job| job.remembered.is_some())
                {
                    runtime.block_on(cache.barrier(&pg.conn));
                }
                let outdated = outdated(jobs, cache.map(|cache| &cache.accounts));
                let txn = runtime.block_on(Db::begin_write(pg))?;
                let outcomes = apply_current(jobs, &outdated, |current| {
                    runtime.block_on(store::apply_batch(txn.conn(), current))
                });
                match outcomes {
                    Ok(outcomes) => {
                        runtime.block_on(txn.commit())?;
                        if let Some(cache) = cache
                            && changes_accounts(jobs, &outcomes)
                        {
                            cache.accounts.changed();
                        }
                        Ok(outcomes)
                    }
                    Err(error) => {
                        let _ = runtime.block_on(txn.rollback());
                        Err(error)
                    }
                }
            }
        }
    }
}

/// Which of `jobs` were planned on a snapshot remembered from before a change made elsewhere
/// (all of those that were remembered, when nothing tells the generations: nothing remembers
/// then).
fn outdated(jobs: &[&Job], accounts: Option<&crate::accounts::Accounts>) -> Vec<bool> {
    jobs.iter()
        .map(|job| match (job.remembered, accounts) {
            (None, _) => false,
            (Some(at), Some(accounts)) => accounts.changed_outside_since(at.0),
            (Some(_), None) => true,
        })
        .collect()
}

/// Applies the jobs not `outdated` with `apply`; every job's outcome, in order (the outdated
/// ones stale).
fn apply_current(
    jobs: &[&Job],
    outdated: &[bool],
    apply: impl FnOnce(&[&Job]) -> Result<Vec<Applied>, DbErr>,
) -> Result<Vec<Applied>, DbErr> {
    let current: Vec<&Job> =
        jobs.iter().zip(outdated).filter(|(_, out)| !**out).map(|(job, _)| *job).collect();
    let mut applied = apply(&current)?.into_iter();
    Ok(outdated
        .iter()
        .map(|out| match out {
            true => Applied::Stale,
            false => applied.next().expect("an outcome for every plan applied"),
        })
        .collect())
}

/// Whether applying `jobs` with these outcomes may have changed an account, a team or a
/// membership (a batch of returning users with nothing new changes none).
fn changes_accounts(jobs: &[&Job], outcomes: &[Applied]) -> bool {
    jobs.iter()
        .zip(outcomes)
        .any(|(job, outcome)| *outcome == Applied::Done && !job.plan.keeps_accounts())
}

#[cfg(test)]
mod promises;
#[cfg(test)]
mod replicas;

#[cfg(test)]
mod tests {
    #[test]
    fn rows_go_out_in_a_few_fixed_sizes() {
        use sea_orm::DatabaseBackend::{Postgres, Sqlite};
        let sizes = |n: usize, backend| {
            crate::store::chunks(vec![0; n], backend).iter().map(Vec::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0, Sqlite), Vec::<usize>::new());
        assert_eq!(sizes(1, Sqlite), [1]);
        assert_eq!(sizes(7, Sqlite), [4, 1, 1, 1]);
        assert_eq!(sizes(64, Sqlite), [64]);
        assert_eq!(sizes(86, Sqlite), [64, 16, 4, 1, 1]);
        assert_eq!(sizes(0, Postgres), Vec::<usize>::new());
        assert_eq!(sizes(7, Postgres), [7]);
        assert_eq!(sizes(86, Postgres), [64, 22]);
    }
}
