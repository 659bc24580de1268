//! A returning user's sign-in decides on the snapshot its last one read, while nothing in it has
//! changed (`server/storage/src/accounts.rs`): every change, made through the server, by
//! another process or through another replica, decides the very next sign-in. Each test signs
//! the user in twice first, so that the sign-in after the change would find a remembered
//! snapshot.

use hookgate_tests::server::{Backend, ServerOptions, TestServer, for_each_backend};
use sea_orm::ConnectionTrait;

/// Signs `user` in twice (the second from a remembered snapshot, on SQLite).
fn sign_in_twice(server: &TestServer, user: &str, groups: &[&str]) {
    for _ in 0..2 {
        let reply = server.sign_in(user, &format!("{user}@example.test"), groups);
        assert_eq!(reply.status, 303, "{}", reply.body);
    }
}

/// A server with one runtime worker: each of its sign-ins reads on the same SQLite reader (on
/// PostgreSQL, the same thread), so a sign-in after another finds what that one remembered.
fn start(backend: &Backend) -> TestServer {
    let env = [("TOKIO_WORKER_THREADS", "1")];
    TestServer::start_with(backend, ServerOptions { env: &env, ..ServerOptions::default() })
}

/// An administrator takes `user_id` out of `team_id` through `server` (`/team/member_delete`).
fn take_out_of_team(server: &TestServer, team_id: &str, user_id: &str) {
    let reply = server.post_json(
        "/team/member_delete",
        &serde_json::json!({"team_id": team_id, "user_id": user_id}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Runs `sql` on the server's database from this process, as an operator's `sqlite3` or `psql`
/// would.
fn by_hand(server: &TestServer, sql: &str) {
    let sql = sql.to_owned();
    server.db(async move |conn| conn.execute_unprepared(&sql).await.unwrap());
}

#[test]
fn a_change_made_by_another_process_decides_the_next_sign_in() {
    for_each_backend(|backend| {
        let server = start(backend);
        server.create_team("staff");
        sign_in_twice(&server, "rita", &["staff"]);

        // Taken out of the team by hand: the plan made on the remembered snapshot (a member
        // already, nothing to add) is stale at the write, which has seen another process's
        // commit; decided again on a new read, it puts rita back.
        by_hand(&server, "DELETE FROM team_members WHERE user_id = 'rita'");
        let allowed = server.sign_in("rita", "rita@example.test", &["staff"]);
        assert_eq!(allowed.status, 303, "{}", allowed.body);
        assert_eq!(server.memberships("rita").len(), 1, "{}", backend.name());

        // Deactivated by hand, then reactivated: the snapshot the refused sign-ins remembered
        // says inactive, but a refusal is never decided on a remembered snapshot.
        by_hand(&server, "UPDATE users SET active = false WHERE user_id = 'rita'");
        for _ in 0..2 {
            let refused = server.sign_in("rita", "rita@example.test", &["staff"]);
            assert_eq!(refused.status, 403, "{}", refused.body);
            assert!(refused.body.contains("deactivated"), "{}", refused.body);
        }
        by_hand(&server, "UPDATE users SET active = true WHERE user_id = 'rita'");
        let allowed = server.sign_in("rita", "rita@example.test", &["staff"]);
        assert_eq!(allowed.status, 303, "{}", allowed.body);
        let outcomes: Vec<String> = server
            .events()
            .into_iter()
            .filter(|event| event.user_id.as_deref() == Some("rita"))
            .map(|event| event.outcome)
            .collect();
        let expected = ["allowed", "allowed", "allowed", "refused", "refused", "allowed"];
        assert_eq!(outcomes, expected, "{}", backend.name());
    });
}

#[test]
fn a_change_made_through_the_server_decides_the_next_sign_in() {
    for_each_backend(|backend| {
        let server = start(backend);
        server.create_team("staff");
        sign_in_twice(&server, "sam", &["staff"]);
        assert_eq!(server.memberships("sam").len(), 1);

        // An administrator takes sam out of the team; sam's groups still name it, so the next
        // sign-in puts sam back — which it does only if it reads the membership as gone.
        take_out_of_team(&server, "staff", "sam");
        assert!(server.memberships("sam").is_empty());
        sign_in_twice(&server, "sam", &["staff"]);
        assert_eq!(server.memberships("sam").len(), 1, "{}", backend.name());
    });
}

#[test]
fn a_change_made_through_another_replica_decides_the_next_sign_in() {
    // Two replicas on one PostgreSQL database; sam signs in on `a`, an administrator works on
    // `b`. Each change reaches `a` as a notification within milliseconds, and `a`'s writer
    // waits, before it applies a plan made on a remembered snapshot, until it has heard every
    // change committed before: the very next sign-in on `a` decides on what `b` did.
    let Some(admin) = hookgate_tests::server::postgres_url() else { return };
    let a = start(&Backend::Postgres(admin));
    let b = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            shared: Some((a.database_url.as_str(), a.master_key.as_str())),
            ..ServerOptions::default()
        },
    );
    b.create_team("staff");
    sign_in_twice(&a, "sam", &["staff"]);
    for round in 0..3 {
        take_out_of_team(&b, "staff", "sam");
        assert!(a.memberships("sam").is_empty());
        let allowed = a.sign_in("sam", "sam@example.test", &["staff"]);
        assert_eq!(allowed.status, 303, "{}", allowed.body);
        assert_eq!(a.memberships("sam").len(), 1, "round {round}: sam was not put back");
        let again = a.sign_in("sam", "sam@example.test", &["staff"]);
        assert_eq!(again.status, 303, "{}", again.body);
    }
}
