//! The port's own suite: each test runs on a fresh SQLite file and on a fresh PostgreSQL
//! database (the one `scripts/test.sh` starts), through [`Db`]'s methods only, and reads back
//! what was written.

use chrono::Duration;
use hookgate_core::{
    budget::{BudgetDuration, period_end},
    identity::Binding,
    records::SignInRecord,
};
use plugin_api::UserRole;
use sea_orm::DbErr;

use crate::{Db, NewTeam, NewUser, UserEdit, UserFilter, list_of, now};

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL database.
async fn on_each_backend(test: impl AsyncFn(&Db)) {
    let (scratch, db) = crate::tests_support::Scratch::new("port").await;
    test(&db).await;
    db.close().await.unwrap();
    drop(scratch);

    let Some(database) = crate::tests_support::TestDatabase::create("hookgate_port").await else {
        return;
    };
    let db = Db::connect(&database.url).await.unwrap();
    test(&db).await;
    db.close().await.unwrap();
    database.drop_database().await;
}

fn new_user(user_id: &str, email: &str) -> NewUser {
    NewUser {
        user_id: user_id.to_owned(),
        user_email: Some(email.to_owned()),
        user_alias: None,
        role: UserRole::InternalUser,
        models: vec!["gpt-4o".to_owned()],
        max_budget: Some(5.0),
        budget_duration: Some("30d".parse::<BudgetDuration>().unwrap()),
        binding: None,
        metadata: serde_json::json!({"by": "test"}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_found_listed_edited_and_deleted() {
    on_each_backend(async |db| {
        let bound = NewUser {
            binding: Some(Binding { issuer: "https://idp.test".into(), subject: "s-1".into() }),
            ..new_user("ann", "Ann@Example.com")
        };
        let created = db.write(move |tx| tx.insert_user_if_absent(bound, now())).await.unwrap();
        assert!(created);
        let again = new_user("ann", "other@example.com");
        let created = db.write(move |tx| tx.insert_user_if_absent(again, now())).await.unwrap();
        assert!(!created, "an id that is taken");
        db.write(|tx| tx.insert_user_if_absent(new_user("bob", "bob@example.com"), now()))
            .await
            .unwrap();

        let ann = db.user_by_id("ann").await.unwrap().expect("ann");
        assert_eq!(ann.user_email.as_deref(), Some("ann@example.com"), "stored lower-case");
        assert_eq!(list_of(&ann.models), ["gpt-4o"]);
        assert_eq!((ann.max_budget, ann.spend), (Some(5.0), 0.0));
        assert_eq!(ann.budget_duration.as_deref(), Some("30d"));
        let period = ann.budget_duration.as_deref().map(|d| d.parse().unwrap());
        assert_eq!(ann.budget_reset_at, period_end(period, ann.created_at), "the first period");
        assert_eq!(ann.metadata, serde_json::json!({"by": "test"}));
        let by_binding = db.user_by_binding("https://idp.test", "s-1").await.unwrap();
        assert_eq!(by_binding.map(|row| row.user_id).as_deref(), Some("ann"));
        assert!(db.user_by_binding("https://other.test", "s-1").await.unwrap().is_none());

        let filter = UserFilter { email_contains: Some("EXAMPLE".into()), ..UserFilter::default() };
        let (page, total) = db.list_users(&filter, 2, 1).await.unwrap();
        assert_eq!((page.len(), total), (1, 2));
        let ids: Vec<String> =
            db.all_users().await.unwrap().into_iter().map(|u| u.user_id).collect();
        assert_eq!(ids, ["ann", "bob"]);

        let edit = UserEdit {
            user_role: Some(UserRole::ProxyAdmin),
            budget_duration: Some(Some("1d".parse::<BudgetDuration>().unwrap())),
            ..UserEdit::default()
        };
        let saved = db.write(move |tx| tx.edit_user("ann", edit, now())).await.unwrap();
        let saved = saved.expect("ann is there");
        assert_eq!(saved.user_role.as_deref(), Some("proxy_admin"));
        let read = db.user_by_id("ann").await.unwrap().unwrap();
        assert_eq!(read, saved, "what the write answered is what was stored");
        assert_eq!(
            read.budget_reset_at,
            period_end(Some("1d".parse().unwrap()), read.updated_at),
            "a changed budget period starts now"
        );
        let missing = db.write(|tx| tx.edit_user("nobody", UserEdit::default(), now())).await;
        assert_eq!(missing.unwrap(), None);

        let team = NewTeam { team_id: "t1".into(), ..NewTeam::default() };
        db.write(move |tx| {
            tx.insert_team(team, now())?;
            tx.upsert_member("t1", "bob", "user")
        })
        .await
        .unwrap();
        let deleted =
            db.write(|tx| tx.delete_users(&["bob".to_owned(), "nobody".to_owned()])).await.unwrap();
        assert_eq!(deleted, ["bob"], "the ids that existed");
        assert!(db.user_by_id("bob").await.unwrap().is_none());
        assert!(db.members_of_team("t1").await.unwrap().is_empty(), "memberships go too");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_memberships_keep_roles_and_order() {
    on_each_backend(async |db| {
        db.write(|tx| {
            for user_id in ["ann", "bob"] {
                tx.ensure_member_user(user_id, "test")?;
            }
            tx.ensure_member_user("ann", "again")?;
            for team_id in ["t2", "t1"] {
                let team = NewTeam {
                    team_id: team_id.into(),
                    team_alias: Some(format!("Team {team_id}")),
                    models: vec!["m".into()],
                    max_budget: Some(1.5),
                    metadata: None,
                };
                tx.insert_team(team, now())?;
            }
            tx.upsert_member("t1", "ann", "admin")?;
            tx.add_member_if_absent("t1", "ann", "user")?;
            tx.add_member_if_absent("t1", "bob", "user")?;
            tx.upsert_member("t2", "ann", "user")
        })
        .await
        .unwrap();
        let ann = db.user_by_id("ann").await.unwrap().unwrap();
        assert_eq!(ann.metadata, serde_json::json!({"created_by": "test"}), "not made twice");
        assert_eq!(ann.user_role.as_deref(), Some("internal_user"));

        let teams: Vec<String> =
            db.list_teams().await.unwrap().into_iter().map(|t| t.team_id).collect();
        assert_eq!(teams, ["t1", "t2"]);
        let t1 = db.team_by_id("t1").await.unwrap().unwrap();
        assert_eq!((t1.team_alias.as_deref(), t1.max_budget), (Some("Team t1"), Some(1.5)));
        assert_eq!(list_of(&t1.models), ["m"]);
        let members: Vec<(String, String)> = db
            .members_of_team("t1")
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        assert_eq!(
            members,
            [("ann".to_owned(), "admin".to_owned()), ("bob".to_owned(), "user".to_owned())],
            "add_member_if_absent left ann's role alone"
        );
        assert_eq!(db.team_ids_of_user("ann").await.unwrap(), ["t1", "t2"], "joining order");
        let with_members = db.all_teams_with_members().await.unwrap();
        assert_eq!(with_members[0].1, ["ann"], "t2, made first, has ann");
        let existing =
            db.write(|tx| tx.existing_teams(&["t1".to_owned(), "nope".to_owned()])).await.unwrap();
        assert_eq!(existing, ["t1"]);

        assert!(db.write(|tx| tx.delete_member("t1", "bob")).await.unwrap());
        assert!(!db.write(|tx| tx.delete_member("t1", "bob")).await.unwrap(), "gone already");
        db.write(|tx| tx.delete_team("t2")).await.unwrap();
        assert!(db.team_by_id("t2").await.unwrap().is_none());
        assert_eq!(db.team_ids_of_user("ann").await.unwrap(), ["t1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_fails_or_panics_leaves_nothing_behind() {
    on_each_backend(async |db| {
        let failed = db
            .write(|tx| {
                tx.insert_user_if_absent(new_user("ann", "ann@example.com"), now())?;
                tx.insert_team(NewTeam { team_id: "t1".into(), ..NewTeam::default() }, now())?;
                Err::<(), _>(DbErr::Custom("the work changed its mind".into()))
            })
            .await;
        assert!(failed.unwrap_err().to_string().contains("changed its mind"));
        assert!(db.user_by_id("ann").await.unwrap().is_none(), "rolled back");
        assert!(db.team_by_id("t1").await.unwrap().is_none(), "rolled back");

        let panicked = db
            .write(|tx| {
                tx.insert_user_if_absent(new_user("ann", "ann@example.com"), now())?;
                if tx.user_by_id("ann")?.is_some() {
                    panic!("the work panicked after a statement");
                }
                Ok::<_, DbErr>(())
            })
            .await;
        assert!(panicked.unwrap_err().to_string().contains("stopped before it finished"));
        assert!(db.user_by_id("ann").await.unwrap().is_none(), "rolled back");

        // The database still takes writes afterwards (no lock or transaction left behind).
        let created =
            db.write(|tx| tx.insert_user_if_absent(new_user("ann", "a@example.com"), now()));
        assert!(created.await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_completed_flows_are_recorded() {
    on_each_backend(async |db| {
        let at = now();
        for (n, user) in [(1, Some("ann")), (2, Some("bob")), (3, Some("ann")), (4, None)] {
            let mut record = SignInRecord::new(
                at + Duration::seconds(n),
                user,
                "header",
                "refused",
                Some("no"),
                "127.0.0.1".to_owned(),
                &format!("req-{n}"),
            );
            record.groups = None;
            db.insert_event(&record).await.unwrap();
        }
        let ann: Vec<String> = db
            .recent_events(Some("ann"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.request_id)
            .collect();
        assert_eq!(ann, ["req-3", "req-1"], "newest first, one user's");
        let (page, total) = db.events_page(2, 3).await.unwrap();
        assert_eq!(total, 4);
        assert_eq!(page.into_iter().map(|e| e.request_id).collect::<Vec<_>>(), ["req-1"]);

        let expires = now() + Duration::minutes(10);
        assert!(db.complete_flow("flow-1", expires).await.unwrap());
        assert!(!db.complete_flow("flow-1", expires).await.unwrap(), "a replayed callback");
    })
    .await;
}
