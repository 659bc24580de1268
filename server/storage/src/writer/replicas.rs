//! The writer's promises on PostgreSQL, where other replicas write the same tables (when the
//! test command started a server, `HOOKGATE_TEST_POSTGRES_URL`): a sign-in that changes its
//! user forgets the user's remembered session checks before it answers; a returning user's
//! snapshot is remembered while no replica changes an account, team or membership; and a plan
//! made on a snapshot remembered before another replica's commit is made again, even when this
//! replica has not heard of the commit yet (the writer's barrier).

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, sqlx::postgres::PgListener};

use super::{
    Applied, Job, Writer,
    promises::{Fixture, identity},
};
use crate::{
    Db,
    sessions::SessionCache,
    tests_support::{TestDatabase, until_live},
};

/// A fresh database on the test command's PostgreSQL, and its writer.
struct Replica {
    fixture: Fixture,
    database: TestDatabase,
}

impl Replica {
    /// A fresh database; `None` when the run opted out of PostgreSQL. With `listening`, the
    /// replica hears changes as a server does (it waits until its listener is up); without,
    /// its cache is made live by hand and hears nothing unless the test says
    /// ([`SessionCache::heard_on_accounts`]).
    async fn start(listening: bool) -> Option<(Replica, Arc<SessionCache>)> {
        let database = TestDatabase::create("hookgate_writer").await?;
        let mut db = Db::connect(&database.url).await.unwrap();
        let cache = if listening {
            let cache = db.session_cache_for_test().clone().unwrap();
            until_live(&cache).await;
            cache
        } else {
            let cache = SessionCache::new();
            cache.hears_every_change();
            *db.session_cache_for_test() = Some(cache.clone());
            cache
        };
        let dir = crate::tests_support::Scratch::dir("writer");
        let writer = Writer::start(db.clone(), Arc::new(|_| {}));
        Some((Replica { fixture: Fixture { dir, db, writer }, database }, cache))
    }

    /// Runs `sql` on a connection of its own: another replica's (or an operator's) write.
    async fn elsewhere(&self, sql: &str) {
        let conn = sea_orm::Database::connect(self.database.url.as_str()).await.unwrap();
        conn.execute_unprepared(sql).await.unwrap();
        conn.close().await.unwrap();
    }

    async fn drop_database(self) {
        let Replica { fixture, database } = self;
        drop(fixture);
        database.drop_database().await;
    }
}

/// A sign-in that changes its user makes this process forget the user's remembered session
/// checks before the sign-in is answered. The cache has no listener here (it is made live by
/// hand): only the writer can make it forget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_changes_its_user_forgets_its_session_checks_before_it_answers() {
    let Some((replica, _)) = Replica::start(false).await else { return };
    let fixture = &replica.fixture;
    let budget = async || {
        let (_, user) = fixture.db.live_session_user("h1").await.unwrap().expect("live");
        user.max_budget
    };
    let ann = identity("ann", "https://idp.test", "s-1", Some(1.0));
    assert_eq!(fixture.sign_in(&ann, "h1").await, Applied::Done);
    assert_eq!(budget().await, Some(1.0));
    assert_eq!(budget().await, Some(1.0));
    let ann = identity("ann", "https://idp.test", "s-1", Some(2.0));
    assert_eq!(fixture.sign_in(&ann, "h2").await, Applied::Done);
    assert_eq!(budget().await, Some(2.0), "the session check was not forgotten");
    replica.drop_database().await;
}

/// A returning user's snapshot is remembered while no replica changes what it holds: a
/// sign-in that writes only its session and event keeps it; a change by another replica is
/// heard, and a plan made on the snapshot before it is made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_remembered_while_no_replica_changes_what_it_holds() {
    let Some((replica, _)) = Replica::start(true).await else { return };
    let fixture = &replica.fixture;
    let rita = identity("rita", "https://idp.test", "s-r", None);
    assert_eq!(fixture.sign_in(&rita, "r1").await, Applied::Done);
    // r1's creation is heard (its notifications come back within milliseconds).
    let mut remembered = None;
    for _ in 0..500 {
        let _ = fixture.decide_remembering(&rita).await;
        let (_, again) = fixture.decide_remembering(&rita).await;
        if again.is_some() {
            remembered = again;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(remembered.is_some(), "rita's snapshot was never remembered");
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some() && plan.keeps_accounts(), "{plan:?}");
    let job = Job { remembered, ..fixture.job(plan, "r2") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Done);
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some(), "a sign-in that changed no account keeps it");

    replica.elsewhere("UPDATE users SET user_alias = 'by hand' WHERE user_id = 'rita'").await;
    let job = Job { remembered, ..fixture.job(plan, "r3") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Stale);
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert_eq!(remembered, None, "read again");
    let job = Job { remembered, ..fixture.job(plan, "r4") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Done);
    assert_eq!(fixture.count("SELECT count(*) FROM sessions").await, 3, "r1, r2 and r4");
    replica.drop_database().await;
}

/// Hands `cache` what `listener` hears on `hookgate_accounts` — but only once `cache`'s own
/// barrier has arrived, and then everything that arrived before it, in order: as if this
/// replica's listener had been slow to hear the changes committed before the barrier.
async fn hear_at_the_barrier(listener: &mut PgListener, cache: &SessionCache) {
    let mut held = Vec::new();
    loop {
        let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("the writer sent no barrier within 5 s")
            .unwrap();
        held.push(heard.payload().to_owned());
        if heard.payload().starts_with("barrier:") && !heard.payload().starts_with("barrier:test") {
            break;
        }
    }
    for payload in held {
        cache.heard_on_accounts(&payload);
    }
}

/// A plan made on a snapshot remembered before another replica's commit is made again even
/// when this replica has not heard of the commit when the plan reaches the writer: the writer
/// waits for its barrier, which comes after every notification committed before it. The
/// replica's listener is the test's, which hands nothing on until the barrier has arrived. And
/// a change made through this replica forgets before it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_on_a_snapshot_remembered_before_another_replica_wrote_is_made_again() {
    let Some((replica, cache)) = Replica::start(false).await else { return };
    let fixture = &replica.fixture;
    let mut listener = PgListener::connect(&replica.database.url).await.unwrap();
    listener.listen(crate::sessions::ACCOUNTS).await.unwrap();
    let rita = identity("rita", "https://idp.test", "s-r", None);
    assert_eq!(fixture.sign_in(&rita, "r1").await, Applied::Done);
    // What r1's creation notified is heard before anything is remembered (a barrier of another
    // replica's marks the end of it, and changes nothing).
    replica.elsewhere("SELECT pg_notify('hookgate_accounts', 'barrier:test:1')").await;
    loop {
        let heard = listener.recv().await.unwrap();
        cache.heard_on_accounts(heard.payload());
        if heard.payload() == "barrier:test:1" {
            break;
        }
    }
    let _ = fixture.decide_remembering(&rita).await;
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some());

    // Nothing changed: the barrier comes back and the plan applies.
    let job = Job { remembered, ..fixture.job(plan.clone(), "r2") };
    let (applied, ()) =
        tokio::join!(fixture.writer.apply(job), hear_at_the_barrier(&mut listener, &cache));
    assert_eq!(applied.unwrap(), Applied::Done);

    // Another replica renames rita: the plan's snapshot is older than that commit.
    replica.elsewhere("UPDATE users SET user_alias = 'by hand' WHERE user_id = 'rita'").await;
    let job = Job { remembered, ..fixture.job(plan, "r3") };
    let (applied, ()) =
        tokio::join!(fixture.writer.apply(job), hear_at_the_barrier(&mut listener, &cache));
    assert_eq!(applied.unwrap(), Applied::Stale);
    assert_eq!(fixture.count("SELECT count(*) FROM sessions").await, 2, "r1 and r2");

    // A change made through this replica forgets before it answers, before any notification
    // of it is heard (none is handed on here).
    let _ = fixture.decide_remembering(&rita).await;
    let (_, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some());
    fixture.db.write(|tx| tx.ensure_member_user("sam", "test")).await.unwrap();
    let (_, remembered) = fixture.decide_remembering(&rita).await;
    assert_eq!(remembered, None, "this replica's write forgets it before it answers");
    replica.drop_database().await;
}
