//! The group commit's promises, each shown on a real SQLite file by a test that fails without
//! it (issue 19): one bad plan in a batch fails alone; a sign-in's answer comes from its commit;
//! a plan made from a snapshot another writer changed is refused and made again; two
//! identities racing for one user id make one account and one refusal. And a snapshot
//! remembered on SQLite is used only while nothing it holds has changed, and a plan made on one
//! is made again after another process's write. PostgreSQL's promises across replicas are in
//! [`super::replicas`].
//!
//! Plans are made the way sign-ins make them: a snapshot read ([`store::snapshot`]), then
//! [`rules::decide`]. Batches are forced without timing: the test holds the server's write lock
//! while it queues plans, so the writer, blocked on that lock with whatever it took first,
//! finds the rest queued together when the test lets go.

use chrono::{DateTime, Utc};
use plugin_api::{OpenId, UserRole};
use sea_orm::ConnectionTrait;
use tokio::sync::oneshot;

use super::{Applied, Job, Queued, Writer};
use crate::{Db, DbErr, entity::user, store, tests_support::Scratch};
use hookgate_core::{
    identity::{Binding, Proof},
    policy::Policy,
    records::{NewSession, SignInRecord},
    signin as rules,
    values::Values,
};

/// Why a decision was not made.
#[derive(Debug)]
enum Decided {
    /// The snapshot could not be read.
    Db(DbErr),
    /// The rules refused.
    Refused(rules::Refusal),
}

impl std::fmt::Display for Decided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decided::Db(error) => error.fmt(f),
            Decided::Refused(refusal) => refusal.fmt(f),
        }
    }
}

/// A database in a folder of its own, and its writer; the folder goes when it is dropped,
/// after them.
pub(super) struct Fixture {
    pub(super) db: Db,
    pub(super) writer: Writer,
    pub(super) dir: Scratch,
}

async fn fixture() -> Fixture {
    let (dir, db) = Scratch::new("writer").await;
    let writer = Writer::start(db.clone(), std::sync::Arc::new(|_| {}));
    Fixture { db, writer, dir }
}

/// An identity signing in: its user id, and the binding (issuer, subject) it proves.
pub(super) struct Identity {
    openid: OpenId,
    proof: Proof,
    values: Values,
}

impl Identity {
    /// The decision's input for this identity's sign-in (no hook writes).
    fn input(&self) -> rules::Input<'_> {
        rules::Input {
            openid: &self.openid,
            proof: &self.proof,
            idp_id: self.openid.id.as_deref(),
            values: &self.values,
            staged: &[],
        }
    }
}

pub(super) fn identity(
    user_id: &str,
    issuer: &str,
    subject: &str,
    max_budget: Option<f64>,
) -> Identity {
    Identity {
        openid: OpenId {
            id: Some(user_id.into()),
            email: Some(format!("{user_id}@example.test")),
            ..OpenId::default()
        },
        proof: Proof {
            binding: Some(Binding { issuer: issuer.into(), subject: subject.into() }),
            email_verified: true,
            role_groups: None,
            directory_id: None,
        },
        values: Values {
            models: Vec::new(),
            user_id: user_id.into(),
            user_email: Some(format!("{user_id}@example.test")),
            user_role: Some(UserRole::InternalUser),
            max_budget,
            budget_duration: None,
            from_hook: true,
        },
    }
}

impl Fixture {
    /// What a sign-in of `who` decides now (with an empty config's policy): a snapshot read,
    /// then the pure decision.
    async fn decide(&self, who: &Identity) -> Result<rules::Plan, Decided> {
        let input = who.input();
        let policy = Policy::default();
        let snapshot =
            self.db.read_snapshot(&rules::keys(&input, &policy)).await.map_err(Decided::Db)?;
        rules::decide(&input, &snapshot, &policy, store::now()).map_err(Decided::Refused)
    }

    /// What a sign-in of `who` decides now on the snapshot [`Db::snapshot`] gives (remembered
    /// or read), and whether it was remembered.
    pub(super) async fn decide_remembering(
        &self,
        who: &Identity,
    ) -> (rules::Plan, Option<crate::Remembered>) {
        let input = who.input();
        let policy = Policy::default();
        let read = self.db.snapshot(&rules::keys(&input, &policy)).await.unwrap();
        (rules::decide(&input, &read.snapshot, &policy, store::now()).unwrap(), read.remembered)
    }

    /// The plan's job, with a session of key hash `token_hash` and an "allowed" event.
    pub(super) fn job(&self, plan: rules::Plan, token_hash: &str) -> Job {
        let now = store::now();
        let user_id = plan.account.user_id.clone();
        let session = NewSession {
            token_hash: token_hash.into(),
            user_id: user_id.clone(),
            user_role: plan.role,
            login_method: "sso",
            models: plan.models.clone(),
            max_budget: plan.account.max_budget,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
        };
        let event = SignInRecord::new(
            now,
            Some(&user_id),
            "header",
            "allowed",
            None,
            "127.0.0.1".into(),
            token_hash,
        );
        Job { plan, session, event, now, remembered: None }
    }

    /// Applies `who`'s sign-in as a sign-in does (no batch forced).
    pub(super) async fn sign_in(&self, who: &Identity, token_hash: &str) -> Applied {
        let plan = self.decide(who).await.unwrap();
        self.writer.apply(self.job(plan, token_hash)).await.unwrap()
    }

    /// Queues `jobs` in this order while the write lock is held, then lets the writer go:
    /// the writer takes a prefix of them into its first batch (whatever had arrived when it
    /// woke) and the rest into the next, so a job with others on both sides shares a batch.
    /// Returns each job's answer, in order.
    async fn in_batches(&self, jobs: Vec<Job>) -> Vec<Result<Applied, DbErr>> {
        let held = self.db.sqlite_for_test().hold();
        let mut answers = Vec::new();
        for job in jobs {
            let (reply, answer) = oneshot::channel();
            self.writer.queue.try_send(Queued { job, reply }).unwrap();
            answers.push(answer);
        }
        drop(held);
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.unwrap());
        }
        outcomes
    }

    pub(super) async fn count(&self, sql: &str) -> i64 {
        self.db.count_for_test(sql).await
    }

    async fn user(&self, user_id: &str) -> Option<user::Model> {
        self.db.user_by_id(user_id).await.unwrap()
    }
}

/// Runs `sql` on a connection of its own (not the server's): another process's write.
async fn outsider_writes(fixture: &Fixture, sql: &str) {
    let url = fixture.dir.sqlite_url();
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    conn.execute_unprepared(sql).await.unwrap();
    conn.close().await.unwrap();
}

/// A fresh connection of its own (not the server's pool): what another process sees.
async fn outsider(fixture: &Fixture, sql: &str) -> i64 {
    let url = fixture.dir.sqlite_url();
    let conn = sea_orm::Database::connect(url.as_str()).await.unwrap();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, sql))
        .await
        .unwrap()
        .unwrap();
    let count = row.try_get_by_index(0).unwrap();
    conn.close().await.unwrap();
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_plan_in_a_batch_fails_alone() {
    let fixture = fixture().await;
    // The bad plan: its session key hash is taken, which only the database can tell.
    fixture
        .db
        .execute_for_test(&crate::tests_support::user_with_sessions(
            "owner",
            "internal_user",
            &["taken"],
        ))
        .await
        .unwrap();
    let names = ["amy", "bad", "cal", "dee", "eve"];
    let mut jobs = Vec::new();
    for name in names {
        let plan = fixture.decide(&identity(name, "oauth-proxy", name, None)).await.unwrap();
        let token_hash = if name == "bad" { "taken".to_owned() } else { format!("key-{name}") };
        jobs.push(fixture.job(plan, &token_hash));
    }
    let outcomes = fixture.in_batches(jobs).await;
    for (name, outcome) in names.iter().zip(&outcomes) {
        match (*name, outcome) {
            ("bad", Err(error)) => assert!(error.to_string().contains("UNIQUE"), "{error}"),
            ("bad", Ok(applied)) => panic!("the bad plan was applied: {applied:?}"),
            (_, Ok(Applied::Done)) => {}
            (name, other) => panic!("{name} failed with the bad plan: {other:?}"),
        }
    }
    // The good plans' rows are all there; the bad one wrote nothing (its new user neither).
    for name in ["amy", "cal", "dee", "eve"] {
        assert!(fixture.user(name).await.is_some(), "{name}");
    }
    assert!(fixture.user("bad").await.is_none());
    assert_eq!(
        fixture.count("SELECT count(*) FROM sessions WHERE token_hash LIKE 'key-%'").await,
        4
    );
    assert_eq!(fixture.count("SELECT count(*) FROM sessions WHERE user_id = 'bad'").await, 0);
    assert_eq!(fixture.count("SELECT count(*) FROM sign_in_events").await, 4);
    assert_eq!(fixture.count("SELECT count(*) FROM sign_in_events WHERE user_id = 'bad'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_answers_with_its_commit() {
    let fixture = fixture().await;
    // Answered `Done`: the rows are committed, visible to any other connection at once.
    assert_eq!(
        fixture.sign_in(&identity("ann", "oauth-proxy", "ann", None), "key-ann").await,
        Applied::Done
    );
    assert_eq!(
        outsider(&fixture, "SELECT count(*) FROM sessions WHERE token_hash = 'key-ann'").await,
        1
    );
    assert_eq!(
        outsider(&fixture, "SELECT count(*) FROM sign_in_events WHERE user_id = 'ann'").await,
        1
    );

    // A commit that fails: every statement of tom's sign-in succeeds, but its session trips a
    // deferred foreign key, which SQLite checks at COMMIT. The answer is that failure (the
    // server's 503), never `Done`, and nothing of the sign-in is visible.
    fixture
        .db
        .execute_for_test(
            "CREATE TABLE commit_gate (id TEXT PRIMARY KEY); \
             CREATE TABLE commit_trap (gate TEXT REFERENCES commit_gate (id) \
             DEFERRABLE INITIALLY DEFERRED); \
             CREATE TRIGGER trap_tom AFTER INSERT ON sessions WHEN NEW.user_id = 'tom' \
             BEGIN INSERT INTO commit_trap VALUES ('closed'); END",
        )
        .await
        .unwrap();
    let plan = fixture.decide(&identity("tom", "oauth-proxy", "tom", None)).await.unwrap();
    let answer = fixture.writer.apply(fixture.job(plan, "key-tom")).await;
    let error = answer.expect_err("tom's commit failed, and the answer must say so");
    assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    for table in ["users", "sessions", "sign_in_events"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE user_id = 'tom'");
        assert_eq!(outsider(&fixture, &sql).await, 0, "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_from_a_snapshot_another_writer_changed_is_refused_and_made_again() {
    let fixture = fixture().await;
    let first = identity("sue", "oauth-proxy", "sue", None);
    assert_eq!(fixture.sign_in(&first, "key-1").await, Applied::Done);

    // Her next sign-in's hook gives a budget of 10: the plan changes the row, if still as read.
    let with_budget = identity("sue", "oauth-proxy", "sue", Some(10.0));
    let plan = fixture.decide(&with_budget).await.unwrap();
    let rules::UserWrite::Update { read_at, .. } = &plan.user else {
        panic!("expected an update, got {:?}", plan.user);
    };
    let read_at: DateTime<Utc> = *read_at;
    // Meanwhile an administrator changes her row (through the port, on another connection than
    // the writer thread's: the timestamps each writes must compare equal).
    let later = read_at + chrono::Duration::seconds(1);
    let edit = crate::UserEdit { user_alias: Some("Sue the admin's".into()), ..Default::default() };
    fixture.db.write(move |tx| tx.edit_user("sue", edit, later)).await.unwrap().unwrap();

    // The stale plan writes nothing: no session, no event, the administrator's change kept.
    let stale = fixture.writer.apply(fixture.job(plan, "key-2")).await.unwrap();
    assert_eq!(stale, Applied::Stale);
    assert_eq!(fixture.count("SELECT count(*) FROM sessions WHERE token_hash = 'key-2'").await, 0);
    assert_eq!(fixture.count("SELECT count(*) FROM sign_in_events").await, 1);
    let sue = fixture.user("sue").await.unwrap();
    assert_eq!((sue.max_budget, sue.user_alias.as_deref()), (None, Some("Sue the admin's")));
    assert_eq!(sue.updated_at, later);

    // Made again from a new read, it applies, over the administrator's change.
    let plan = fixture.decide(&with_budget).await.unwrap();
    assert_eq!(fixture.writer.apply(fixture.job(plan, "key-3")).await.unwrap(), Applied::Done);
    let sue = fixture.user("sue").await.unwrap();
    assert_eq!((sue.max_budget, sue.user_alias.as_deref()), (Some(10.0), Some("Sue the admin's")));
    assert_eq!(fixture.count("SELECT count(*) FROM sessions").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_for_a_user_deactivated_since_the_read_is_refused_and_made_again() {
    let fixture = fixture().await;
    let tess = identity("tess", "oauth-proxy", "tess", None);
    assert_eq!(fixture.sign_in(&tess, "key-1").await, Applied::Done);
    // Her next sign-in changes nothing in her row; meanwhile SCIM deactivates her.
    let plan = fixture.decide(&tess).await.unwrap();
    assert_eq!(plan.user, rules::UserWrite::Unchanged);
    let row = fixture.user("tess").await.unwrap();
    let fields = crate::ScimUser {
        user_email: row.user_email.clone(),
        user_alias: row.user_alias.clone(),
        active: false,
        scim: serde_json::json!({"userName": "tess"}),
    };
    fixture.db.write(move |tx| tx.update_scim_user(row, fields, store::now())).await.unwrap();

    // The plan writes nothing (no session), and decided again it is refused.
    assert_eq!(fixture.writer.apply(fixture.job(plan, "key-2")).await.unwrap(), Applied::Stale);
    assert_eq!(fixture.count("SELECT count(*) FROM sessions WHERE token_hash = 'key-2'").await, 0);
    let refusal = fixture.decide(&tess).await.unwrap_err();
    assert!(refusal.to_string().contains("deactivated"), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_identities_racing_for_one_user_id_make_one_account_and_one_refusal() {
    let fixture = fixture().await;
    // Two identities whose sign-ins both want the new user id `sam`, each decided before the
    // other wrote: the OAuth proxy's `sam`, and an OIDC account whose hook also says `sam`.
    let proxy_sam = identity("sam", "oauth-proxy", "sam", None);
    let oidc_sam = identity("sam", "https://idp.example.test", "s-9", None);
    let first = fixture.decide(&proxy_sam).await.unwrap();
    let second = fixture.decide(&oidc_sam).await.unwrap();
    assert!(first.is_new && second.is_new);
    let jobs = vec![fixture.job(first, "key-proxy"), fixture.job(second, "key-oidc")];
    let outcomes = fixture.in_batches(jobs).await;
    // One wins; the other's insert finds the id taken and writes nothing (no error: the
    // sign-in decides again).
    assert_eq!(
        outcomes.iter().map(|o| o.as_ref().ok().copied()).collect::<Vec<_>>(),
        [Some(Applied::Done), Some(Applied::Stale)]
    );
    let sam = fixture.user("sam").await.unwrap();
    assert_eq!(
        (sam.sso_issuer.as_deref(), sam.sso_user_id.as_deref()),
        (Some("oauth-proxy"), Some("sam"))
    );
    assert_eq!(fixture.count("SELECT count(*) FROM users").await, 1);
    assert_eq!(fixture.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(
        fixture.count("SELECT count(*) FROM sessions WHERE token_hash = 'key-oidc'").await,
        0
    );
    // Decided again, the loser is refused: `sam` is bound to another identity (403, not 500).
    match fixture.decide(&oidc_sam).await {
        Err(Decided::Refused(refusal)) => {
            let message = refusal.to_string();
            assert!(message.contains("sam"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(fixture.count("SELECT count(*) FROM users").await, 1);
}

/// A returning user's snapshot is remembered while nothing it holds changes: a sign-in that
/// writes only its session and event keeps it, and so does the WAL checkpoint (another
/// connection of this process, which commits nothing); a write that may change an account does
/// not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_remembered_while_nothing_it_holds_changes() {
    let fixture = fixture().await;
    let file = fixture.dir.path().join("hookgate.db");
    let contents = || std::fs::read(&file).unwrap();
    let before = contents();
    let rita = identity("rita", "https://idp.test", "s-r", None);
    assert_eq!(fixture.sign_in(&rita, "r1").await, Applied::Done);
    let (_, remembered) = fixture.decide_remembering(&rita).await;
    assert_eq!(remembered, None, "read after the sign-in that created rita");
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some(), "the same keys again");
    assert!(plan.keeps_accounts(), "{plan:?}");

    // The checkpointer copies r1's commit into the file (only a checkpoint writes to it: the
    // commits go to the WAL) without counting as another process: a plan made on the
    // remembered snapshot applies.
    for _ in 0..500 {
        if contents() != before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(contents() != before, "no checkpoint in 10 s");
    let job = Job { remembered, ..fixture.job(plan, "r2") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Done);
    let (_, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some(), "a sign-in that changed no account keeps it");

    fixture.db.write(|tx| tx.ensure_member_user("sam", "test")).await.unwrap();
    let (_, remembered) = fixture.decide_remembering(&rita).await;
    assert_eq!(remembered, None, "a write that created a user forgets it");
}

/// Another process's commit is seen by the next write: a plan made on a snapshot remembered
/// before it is stale (whatever the commit changed), and nothing remembered is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_on_a_snapshot_remembered_before_another_process_wrote_is_made_again() {
    let fixture = fixture().await;
    let rita = identity("rita", "https://idp.test", "s-r", None);
    assert_eq!(fixture.sign_in(&rita, "r1").await, Applied::Done);
    let _ = fixture.decide_remembering(&rita).await;
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert!(remembered.is_some());

    outsider_writes(&fixture, "UPDATE users SET user_alias = 'by hand' WHERE user_id = 'rita'")
        .await;
    let job = Job { remembered, ..fixture.job(plan, "r2") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Stale);
    let (plan, remembered) = fixture.decide_remembering(&rita).await;
    assert_eq!(remembered, None, "read again");
    let job = Job { remembered, ..fixture.job(plan, "r3") };
    assert_eq!(fixture.writer.apply(job).await.unwrap(), Applied::Done);
    assert_eq!(fixture.count("SELECT COUNT(*) FROM sessions").await, 2, "r1 and r3");
}
