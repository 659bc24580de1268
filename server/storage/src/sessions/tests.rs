//! The session cache's promises: what is remembered, what is forgotten and when, this
//! process's own writes (on both databases), and (on PostgreSQL, when the test command started
//! one) the listener's loss and return.

use std::time::Instant;

use super::*;
use crate::tests_support::{TestDatabase, until_live, user_with_sessions};

fn found(token_hash: &str, user_id: &str, expires_at: DateTime<Utc>) -> Found {
    let at = crate::store::now();
    (
        session::Model {
            token_hash: token_hash.to_owned(),
            user_id: user_id.to_owned(),
            user_role: "proxy_admin".into(),
            login_method: "header".into(),
            models: serde_json::json!([]),
            max_budget: None,
            created_at: at,
            expires_at,
            revoked_at: None,
        },
        user::Model {
            user_id: user_id.to_owned(),
            user_email: None,
            user_alias: None,
            user_role: Some("proxy_admin".into()),
            sso_user_id: None,
            sso_issuer: None,
            models: serde_json::json!([]),
            max_budget: None,
            spend: 0.0,
            budget_duration: None,
            budget_reset_at: None,
            metadata: serde_json::json!({}),
            created_at: at,
            updated_at: at,
            active: true,
            scim: None,
            scim_external_id: None,
        },
    )
}

/// Looks `token_hash` up, keeping `found` on a miss; returns whether it was a hit.
fn check(cache: &SessionCache, token_hash: &str, found: &Found) -> bool {
    match cache.lookup(token_hash, crate::store::now()) {
        Ok(_) => true,
        Err(ticket) => {
            if let Some(ticket) = ticket {
                cache.keep(ticket, token_hash, found);
            }
            false
        }
    }
}

fn later() -> DateTime<Utc> {
    crate::store::now() + chrono::Duration::hours(1)
}

#[test]
fn nothing_is_remembered_until_the_listener_is_up() {
    let cache = SessionCache::new();
    let alice = found("h1", "alice", later());
    assert!(!check(&cache, "h1", &alice));
    assert!(!check(&cache, "h1", &alice), "kept while no listener was up");
    cache.hears_every_change();
    assert!(!check(&cache, "h1", &alice));
    assert!(check(&cache, "h1", &alice));
}

#[test]
fn a_lost_listener_forgets_everything_and_remembers_nothing_until_it_is_back() {
    let cache = SessionCache::new();
    cache.hears_every_change();
    let alice = found("h1", "alice", later());
    check(&cache, "h1", &alice);
    assert!(check(&cache, "h1", &alice));

    cache.may_miss_changes();
    assert!(!cache.is_live());
    assert!(!check(&cache, "h1", &alice), "used after the listener was lost");
    assert!(!check(&cache, "h1", &alice), "kept while the listener was down");

    // A check that missed just before the loss must not keep what it read (a notification
    // may have been lost meanwhile).
    cache.hears_every_change();
    let Err(Some(ticket)) = cache.lookup("h1", crate::store::now()) else {
        panic!("a miss with a ticket")
    };
    cache.may_miss_changes();
    cache.hears_every_change();
    cache.keep(ticket, "h1", &alice);
    assert!(!check(&cache, "h1", &alice), "kept a read from before the loss");
    assert!(check(&cache, "h1", &alice));
}

#[test]
fn forgetting_a_user_or_a_session_drops_only_those() {
    let cache = SessionCache::new();
    cache.hears_every_change();
    let alice = found("h1", "alice", later());
    let alice2 = found("h2", "alice", later());
    let bob = found("h3", "bob", later());
    for (hash, found) in [("h1", &alice), ("h2", &alice2), ("h3", &bob)] {
        check(&cache, hash, found);
    }
    cache.forget(Forget::of_payload("user:alice"));
    assert!(!check(&cache, "h1", &alice));
    assert!(!check(&cache, "h2", &alice2));
    assert!(check(&cache, "h3", &bob));
    cache.forget(Forget::of_payload("session:h3"));
    assert!(!check(&cache, "h3", &bob));
    assert!(check(&cache, "h1", &alice));
    cache.forget(Forget::of_payload("*"));
    assert!(!check(&cache, "h1", &alice));
    assert_eq!(Forget::of_payload("from a newer version"), Forget::All);
}

#[test]
fn a_read_that_a_forgetting_overtook_is_not_kept() {
    // The revocation commits while the check reads the row as it was: the forgetting comes
    // between the miss and the keep, so what was read must not be remembered.
    let cache = SessionCache::new();
    cache.hears_every_change();
    let alice = found("h1", "alice", later());
    let Err(Some(ticket)) = cache.lookup("h1", crate::store::now()) else {
        panic!("a miss with a ticket")
    };
    cache.forget(Forget::User("alice".into()));
    cache.keep(ticket, "h1", &alice);
    assert!(!check(&cache, "h1", &alice), "kept a read older than a revocation");
}

#[test]
fn a_thread_sees_what_another_forgot_even_past_the_logs_reach() {
    let cache = SessionCache::new();
    cache.hears_every_change();
    let alice = found("h1", "alice", later());
    check(&cache, "h1", &alice);
    assert!(check(&cache, "h1", &alice));
    let other = Arc::clone(&cache);
    std::thread::spawn(move || other.forget(Forget::User("alice".into()))).join().unwrap();
    assert!(!check(&cache, "h1", &alice), "another thread's forgetting was missed");
    assert!(check(&cache, "h1", &alice));
    let other = Arc::clone(&cache);
    std::thread::spawn(move || {
        for n in 0..LOG + 10 {
            other.forget(Forget::User(format!("someone-{n}")));
        }
    })
    .join()
    .unwrap();
    assert!(!check(&cache, "h1", &alice), "kept past the log's reach");
}

#[test]
fn an_expired_session_is_never_served() {
    let cache = SessionCache::new();
    cache.hears_every_change();
    let soon = crate::store::now() + chrono::Duration::milliseconds(1);
    let alice = found("h1", "alice", soon);
    check(&cache, "h1", &alice);
    let after = soon + chrono::Duration::milliseconds(1);
    assert!(cache.lookup("h1", after).is_err(), "served past its expiry");
}

/// On PostgreSQL (when the test command started one, `HOOKGATE_TEST_POSTGRES_URL`): a
/// change that notifies nobody (triggers off for the writing connection) is not seen while
/// the check is remembered; losing the listener forgets it, so the next check reads the
/// change; the listener comes back by itself and checks are remembered again.
#[tokio::test]
async fn a_lost_listener_forgets_what_it_may_have_missed_and_comes_back() {
    use sea_orm::{ConnectionTrait, Database};
    let Some(database) = TestDatabase::create("hookgate_listener").await else { return };
    let url = database.url.clone();
    let mut db = crate::Db::connect(&url).await.unwrap();
    let cache = db.session_cache_for_test().clone().expect("PostgreSQL remembers session checks");
    until_live(&cache).await;

    let behind = Database::connect(url.as_str()).await.unwrap();
    behind.execute_unprepared(&user_with_sessions("ann", "proxy_admin", &["h1"])).await.unwrap();
    let role = async || {
        let (_, user) = db.live_session_user("h1").await.unwrap().expect("a live session");
        user.user_role.unwrap()
    };
    assert_eq!(role().await, "proxy_admin");
    // Behind the triggers' back (a superuser's replication role fires none): remembered.
    behind
        .execute_unprepared(
            "SET session_replication_role = replica; \
             UPDATE users SET user_role = 'internal_user' WHERE user_id = 'ann'; \
             SET session_replication_role = DEFAULT",
        )
        .await
        .unwrap();
    assert_eq!(role().await, "proxy_admin", "not remembered (this runtime has one thread)");

    // The listener's connection dies: what the cache held is forgotten.
    let killed = admin_of(&url)
        .await
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'hookgate-sessions-listener' AND datname = current_database()",
        )
        .await
        .unwrap();
    assert_eq!(killed.rows_affected(), 1, "one listener");
    let started = Instant::now();
    while role().await != "internal_user" {
        assert!(started.elapsed() < Duration::from_secs(2), "still remembered after the loss");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("the lost listener was noticed after {:?}", started.elapsed());

    // Back by itself; a notified change is seen (here with nothing forgotten locally).
    until_live(&cache).await;
    assert_eq!(role().await, "internal_user");
    behind
        .execute_unprepared("UPDATE users SET user_role = 'proxy_admin' WHERE user_id = 'ann'")
        .await
        .unwrap();
    let started = Instant::now();
    while role().await != "proxy_admin" {
        assert!(started.elapsed() < Duration::from_secs(1), "the notification was not heard");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("a notified change was heard after {:?}", started.elapsed());

    behind.close().await.unwrap();
    db.close().await.unwrap();
    database.drop_database().await;
}

/// This process's own writes make it forget before they return, on both databases. On SQLite
/// nothing else can make it forget here: every write passes through this process (only another
/// connection's commit would, and there is none). On PostgreSQL the cache here has no listener
/// (it is made live by hand), so nothing but the writes themselves can make it forget.
#[tokio::test]
async fn this_processs_own_writes_forget_before_they_return() {
    let (scratch, db) = crate::tests_support::Scratch::new("forget").await;
    own_writes_forget(&db).await;
    db.close().await.unwrap();
    drop(scratch);

    let Some(database) = TestDatabase::create("hookgate_forget").await else { return };
    let mut db = crate::Db::connect(&database.url).await.unwrap();
    let cache = SessionCache::new();
    cache.hears_every_change();
    *db.session_cache_for_test() = Some(cache);
    own_writes_forget(&db).await;
    db.close().await.unwrap();
    database.drop_database().await;
}

async fn own_writes_forget(db: &crate::Db) {
    for (user_id, hashes) in [("ann", ["a1", "a2", "a3"]), ("bob", ["b1", "b2", "b3"])] {
        db.execute_for_test(&user_with_sessions(user_id, "proxy_admin", &hashes)).await.unwrap();
    }
    let check = async |hash: &str| {
        db.live_session_user(hash).await.unwrap().map(|(_, user)| user.user_role.unwrap())
    };
    for hash in ["a1", "a2", "a3", "b1", "b2", "b3"] {
        assert_eq!(check(hash).await.as_deref(), Some("proxy_admin"));
    }

    // A logout.
    assert!(db.revoke_session("a1").await.unwrap());
    assert_eq!(check("a1").await, None, "a logout");
    // An administrator's edit (the port forgets what the write changed before it answers).
    let edit = crate::UserEdit {
        user_role: Some(plugin_api::UserRole::InternalUser),
        ..Default::default()
    };
    db.write(move |tx| tx.edit_user("ann", edit, crate::now())).await.unwrap();
    assert_eq!(check("a2").await.as_deref(), Some("internal_user"), "a demotion");
    // Signed out everywhere.
    assert_eq!(db.revoke_user_sessions("ann").await.unwrap(), 2);
    assert_eq!(check("a3").await, None, "signed out everywhere");
    // Deleted.
    let deleted = db.write(|tx| tx.delete_users(&["bob".to_owned()])).await.unwrap();
    assert_eq!(deleted, ["bob"]);
    for hash in ["b1", "b2", "b3"] {
        assert_eq!(check(hash).await, None, "a deleted user");
    }
}

/// On PostgreSQL: a user's teams (what `GET /user/info` and the Admin UI read) are remembered
/// while no change to a team or membership is heard: a change made behind the triggers' back
/// is not seen (so they are remembered), one made by another connection is seen within a
/// second (its notification; the delay is printed), and one made through this process at once.
#[tokio::test]
async fn a_users_teams_are_remembered_until_a_change_to_teams_or_memberships() {
    use sea_orm::{ConnectionTrait, Database};
    let Some(database) = TestDatabase::create("hookgate_teams").await else { return };
    let mut db = crate::Db::connect(&database.url).await.unwrap();
    let cache = db.session_cache_for_test().clone().expect("PostgreSQL remembers");
    until_live(&cache).await;
    let elsewhere = Database::connect(database.url.as_str()).await.unwrap();
    elsewhere
        .execute_unprepared(
            "INSERT INTO users (user_id, models, spend, metadata, created_at, updated_at) \
             VALUES ('ann', '[]', 0, '{}', now(), now()); \
             INSERT INTO teams (team_id, team_alias, models, metadata, created_at, updated_at) \
             VALUES ('eng', 'Eng', '[]', '{}', now(), now()); \
             INSERT INTO team_members (team_id, user_id, role, created_at, source) \
             VALUES ('eng', 'ann', 'user', now(), 'admin')",
        )
        .await
        .unwrap();
    let aliases = async || -> Vec<String> {
        let teams = db.teams_of_user("ann").await.unwrap();
        teams.into_iter().map(|team| team.team_alias.unwrap_or_default()).collect()
    };
    // The inserts' notifications are heard.
    let started = std::time::Instant::now();
    while aliases().await != ["Eng"] {
        assert!(started.elapsed() < Duration::from_secs(1), "the inserts were not seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Read (and remembered) once every notification of the inserts has come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(aliases().await, ["Eng"]);

    elsewhere
        .execute_unprepared(
            "SET session_replication_role = replica; \
             UPDATE teams SET team_alias = 'unseen' WHERE team_id = 'eng'; \
             SET session_replication_role = DEFAULT",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(aliases().await, ["Eng"], "remembered (no notification was sent)");

    elsewhere.execute_unprepared("UPDATE teams SET team_alias = 'Eng 2'").await.unwrap();
    let changed = std::time::Instant::now();
    while aliases().await != ["Eng 2"] {
        assert!(changed.elapsed() < Duration::from_secs(1), "another connection's change");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("another connection's change to a team was seen after {:?}", changed.elapsed());

    assert!(db.write(|tx| tx.delete_member("eng", "ann")).await.unwrap());
    assert_eq!(aliases().await, Vec::<String>::new(), "this process's own change, at once");

    elsewhere.close().await.unwrap();
    db.close().await.unwrap();
    database.drop_database().await;
}

/// A connection to the database at `url` (the test's admin user).
async fn admin_of(url: &str) -> sea_orm::DatabaseConnection {
    sea_orm::Database::connect(url).await.unwrap()
}

#[test]
fn a_thread_remembers_a_bounded_number() {
    let cache = SessionCache::new();
    cache.hears_every_change();
    for n in 0..PER_THREAD * 2 {
        let hash = format!("h{n}");
        check(&cache, &hash, &found(&hash, "alice", later()));
    }
    let kept = ENTRIES.with_borrow(|all| {
        all.iter().find(|mine| mine.cache == cache.id).map_or(0, |mine| mine.entries.len())
    });
    assert_eq!(kept, PER_THREAD);
}
