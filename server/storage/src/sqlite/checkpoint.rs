//! The WAL checkpoint on a thread of its own. SQLite checkpoints inside the commit that takes
//! the WAL past 1,000 pages: on the sign-ins' writer, that put a checkpoint and its `fsync` into
//! the batch every sign-in of it waits for (8% of a sign-in's CPU; a larger threshold doubled
//! the p99, BENCHMARKS.md). Here a thread with its own connection runs a `PASSIVE` checkpoint,
//! which never blocks the writer or a reader, [`INTERVAL`] after a commit (the commits of that
//! interval join it); asleep while nothing is committed. The writer's own checkpoint stays, as a
//! backstop at [`BACKSTOP_PAGES`], for a checkpointer that cannot keep up.
//!
//! The same thread looks for another process's commits between writes (the caller's
//! `look_outside`, every [`super::LOOK_OUTSIDE`]: `Lite::file`).

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

use sea_orm_sync::{self as sync, ConnectionTrait as _};

/// How long after a commit the checkpointer checkpoints. Small, so that each checkpoint is
/// small: on one core a checkpoint holds the core while it copies its pages, and the requests
/// wait; not too small, as each checkpoint also costs an `fsync`. One core, c=32, two runs
/// each (BENCHMARKS.md): before session keys carried their time, every sign-in added a page to
/// copy, and the p99 followed the interval (returning users 18k/s, p99 3.2–3.5 ms at 2 ms,
/// 3.4–3.8 at 5, 4.2–4.5 at 10, 7.7–13 at 20, 20 at 100, 33–42 with only the backstop); since,
/// a batch shares its pages: returning users 27.4–28.0k/s, p99 2.0 ms at 5 ms; 28.7–29.1k/s,
/// 2.1–2.2 ms at 10; 29.3–29.8k/s, 2.3–2.5 ms at 20 (new users 16.6–16.7k, 17.6k, 17.5–18.1k).
pub(super) const INTERVAL: Duration = Duration::from_millis(10);

/// The WAL's size, in pages, at which a commit checkpoints anyway (`wal_autocheckpoint`).
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The checkpointer of one database; dropping it stops the thread and waits for it.
pub(super) struct Checkpointer {
    /// A commit's wake-up call (one is enough: those sent while one waits are dropped); `None`
    /// once dropped.
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpointer {
    /// Stops the thread and waits until it has closed its connection (at most one interval and
    /// a checkpoint): the database's last connection to close checkpoints and removes the WAL
    /// and its index, and a process that exited in the middle of that left a WAL without its
    /// index, which `hookgate try` and `hookgate sync` refuse to read.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Checkpointer {
    /// Starts the thread, which checkpoints the database at `uri` (read-write) on a connection
    /// of its own, and calls `look_outside` every `every` (dropped on the thread when it ends).
    pub(super) fn start(
        uri: &str,
        every: Duration,
        look_outside: impl FnMut() + Send + 'static,
    ) -> Result<Checkpointer, sea_orm::DbErr> {
        let conn = super::open_writer(uri)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("hookgate-checkpoint".into())
            .spawn(move || {
                // The whole `Conn` (which is `Send`), not its field.
                let conn = conn;
                run(&conn.0, &woken, every, look_outside);
            })
            .map_err(|error| {
                sea_orm::DbErr::Custom(format!("cannot start the WAL checkpoint thread: {error}"))
            })?;
        Ok(Checkpointer { wake: Some(wake), thread: Some(thread) })
    }

    /// Tells the checkpointer that a transaction committed (never waits).
    pub(super) fn committed(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

/// Until the database is dropped (the sender with it): wait for a commit, let the interval's
/// commits join it, checkpoint; and look outside every `every`, commits or not.
fn run(
    conn: &sync::DatabaseConnection,
    woken: &mpsc::Receiver<()>,
    every: Duration,
    mut look_outside: impl FnMut(),
) {
    let mut looked = Instant::now();
    loop {
        match woken.recv_timeout(every.saturating_sub(looked.elapsed())) {
            Ok(()) => {
                std::thread::sleep(INTERVAL);
                // What arrived during the sleep is in this checkpoint.
                let _ = woken.try_recv();
                if let Err(error) = conn.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)") {
                    // The next commit's wake-up, or the backstop, tries again.
                    tracing::warn!("SQLite's WAL checkpoint failed: {error}");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if looked.elapsed() >= every {
            look_outside();
            looked = Instant::now();
        }
    }
}
