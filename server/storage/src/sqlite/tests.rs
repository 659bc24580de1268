//! SQLite's backend on a real file: its readers, its checkpointer, what it remembers and how it
//! learns of another process's commits.

use std::{path::Path, sync::mpsc, time::Duration};

use sea_orm_sync::ConnectionTrait as _;

use super::{Lite, from_sync};
use crate::tests_support::Scratch;

fn count_users(lite: &Lite) -> i64 {
    lite.with_reader(|conn| {
        let statement = sea_orm_sync::Statement::from_string(
            sea_orm_sync::DbBackend::Sqlite,
            "SELECT count(*) FROM users",
        );
        let row = conn.query_one_raw(statement).map_err(from_sync)?.unwrap();
        row.try_get_by_index::<i64>(0).map_err(from_sync)
    })
    .unwrap()
}

/// The file descriptors this process has open on the files in `dir`.
#[cfg(target_os = "linux")]
fn descriptors_in(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Every read connection is opened with the database: reads from many more threads than
/// there are readers, and threads that end, open none (the load test's file descriptors
/// stay as they were after its warm-up).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_any_number_of_threads_open_no_connection() {
    let (scratch, db) = Scratch::new("readers").await;
    let lite = db.sqlite_for_test();
    assert!(lite.readers.iter().all(|slot| slot.0.lock().unwrap().is_some()));
    let before = descriptors_in(scratch.path());
    assert!(before >= lite.readers.len(), "{before} descriptors for {}", lite.readers.len());
    for _ in 0..4 {
        std::thread::scope(|scope| {
            for _ in 0..lite.readers.len() * 4 {
                scope.spawn(|| assert_eq!(count_users(lite), 0));
            }
        });
    }
    assert_eq!(descriptors_in(scratch.path()), before);
}

/// Commits reach the database file through the checkpointer's thread within moments, with
/// the WAL far below the writer's own checkpoint (the backstop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_moves_commits_into_the_database_file() {
    let (scratch, db) = Scratch::new("readers").await;
    let file = scratch.path().join("hookgate.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    // About 50 pages of rows: far below the backstop's 10,000.
    db.execute_for_test(
        "CREATE TABLE filler (x TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
         INSERT INTO filler SELECT hex(randomblob(500)) FROM n",
    )
    .await
    .unwrap();
    // Generous: a busy machine may be slow to run the thread and its fsync.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before + 100_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(super::checkpoint::INTERVAL / 4).await;
    }
    assert!(size() > before + 100_000, "the file is still {} bytes ({before} before)", size());
}

/// The SQLite this crate runs was built without memory statistics (`.cargo/config.toml`):
/// with them, every allocation SQLite makes, on any thread, takes one process-wide mutex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_built_without_memory_statistics() {
    let (_scratch, db) = Scratch::new("readers").await;
    let options: Vec<String> = db
        .sqlite_for_test()
        .with_held_for_test(|conn| {
            let statement = sea_orm_sync::Statement::from_string(
                sea_orm_sync::DbBackend::Sqlite,
                "PRAGMA compile_options",
            );
            conn.query_all_raw(statement).unwrap()
        })
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect();
    assert!(options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"), "{options:?}");
}

/// A thread whose home reader is busy reads on another, without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_reader_is_passed_over() {
    let (_scratch, db) = Scratch::new("readers").await;
    let lite = db.sqlite_for_test();
    let home = super::home() % lite.readers.len();
    let held = lite.readers[home].0.lock().unwrap();
    assert_eq!(count_users(lite), 0, "read while the home reader is held");
    drop(held);
}

/// A reader whose read failed drops its connection; the next read on it opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_reopens_its_connection() {
    let (_scratch, db) = Scratch::new("readers").await;
    let lite = db.sqlite_for_test();
    let home = super::home() % lite.readers.len();
    let failed = lite.with_reader(|conn| {
        conn.execute_unprepared("SELECT * FROM no_such_table").map_err(from_sync)
    });
    assert!(failed.is_err());
    assert!(lite.readers[home].0.lock().unwrap().is_none(), "dropped");
    assert_eq!(count_users(lite), 0);
    assert!(lite.readers[home].0.lock().unwrap().is_some(), "opened again");
}

/// A user with a live session (key hash `h1`), written behind the port's back.
async fn user_with_a_session(db: &crate::Db) {
    let sql = crate::tests_support::user_with_sessions("ann", "proxy_admin", &["h1"]);
    db.execute_for_test(&sql).await.unwrap();
}

/// A session check this thread remembers makes no statement: with every read connection
/// held elsewhere, it still answers at once (a statement would wait for a reader).
#[test]
fn a_remembered_session_check_makes_no_statement() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_scratch, db) = runtime.block_on(Scratch::new("readers"));
    runtime.block_on(user_with_a_session(&db));
    let (go, gone) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel();
    let checker = std::thread::spawn({
        let db = db.clone();
        let runtime = runtime.handle().clone();
        move || {
            let check = || {
                let found = runtime.block_on(db.live_session_user("h1")).unwrap();
                found.map(|(_, user)| user.user_id)
            };
            answer.send(check()).unwrap();
            gone.recv().unwrap();
            answer.send(check()).unwrap();
        }
    });
    assert_eq!(answers.recv().unwrap().as_deref(), Some("ann"), "read, and remembered");
    let lite = db.sqlite_for_test();
    let held: Vec<_> = lite.readers.iter().map(|slot| slot.0.lock().unwrap()).collect();
    go.send(()).unwrap();
    let again = answers.recv_timeout(Duration::from_secs(5));
    drop(held);
    assert_eq!(again, Ok(Some("ann".to_owned())), "the remembered check waited for a reader");
    checker.join().unwrap();
}

/// Another process's commit (here another connection's, behind the server's back) is
/// forgotten within [`super::LOOK_OUTSIDE`] with no write of this process's to look: the
/// checkpointer's thread looks. The delay is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_processs_commit_is_seen_without_a_write_of_this_ones() {
    let (scratch, db) = Scratch::new("readers").await;
    user_with_a_session(&db).await;
    let role = async || {
        let found = db.live_session_user("h1").await.unwrap();
        found.and_then(|(_, user)| user.user_role)
    };
    assert_eq!(role().await.as_deref(), Some("proxy_admin"));
    let elsewhere = sea_orm_sync::Database::connect(
        super::file_uri(&scratch.path().join("hookgate.db"), "mode=rw").as_str(),
    )
    .unwrap();
    elsewhere
        .execute_unprepared("UPDATE users SET user_role = 'internal_user' WHERE user_id = 'ann'")
        .unwrap();
    let changed = std::time::Instant::now();
    while role().await.as_deref() != Some("internal_user") {
        assert!(changed.elapsed() < Duration::from_secs(2), "still the old role");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("another process's commit was seen after {:?}", changed.elapsed());
    drop(elsewhere);
}

/// While the write connection's `data_version` cannot be read, another process's commits could
/// go unseen: nothing is remembered until it can be read again (here the file is missing, then
/// there), and the log says so each way, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_remembered_while_another_processs_commits_cannot_be_seen() {
    let (scratch, _db) = Scratch::new("readers").await;
    let missing = scratch.path().join("elsewhere.db");
    let memory = crate::sessions::SessionCache::new();
    memory.hears_every_change();
    let writable = super::Writable {
        uri: super::file_uri(&missing, "mode=rw"),
        writer: std::sync::Mutex::new(None),
        memory,
    };
    let log = Log::default();
    let logged = log.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || logged.clone()).finish();
    tracing::subscriber::with_default(subscriber, || {
        writable.look_outside_now();
        assert!(!writable.memory.is_live(), "remembers while it cannot look");
        let lines = log.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains(
                    "session checks read the database every time until SQLite's data_version \
                     can be read again (another process's changes could not be seen): "
                )
                && lines[0].contains("unable to open database file"),
            "{lines:?}"
        );
        writable.look_outside_now();
        assert!(!writable.memory.is_live(), "the file is still missing");
        assert_eq!(log.lines().len(), 1, "logged once while it lasts: {:?}", log.lines());
        std::fs::copy(scratch.path().join("hookgate.db"), &missing).unwrap();
        writable.look_outside_now();
        assert!(writable.memory.is_live(), "remembers again once it can look");
        let lines = log.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1].contains("INFO")
                && lines[1].contains(
                    "session checks are remembered again: SQLite's data_version can be read"
                ),
            "{lines:?}"
        );
    });
}

/// What a test's subscriber writes.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(str::to_owned).collect()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
