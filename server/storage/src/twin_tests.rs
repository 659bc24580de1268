//! The promises of `build.rs`'s twin (SQLite's copy of `store/` and `entity/`), held on sample
//! text: every `async` and `.await` goes, the crate paths move to sea-orm-sync's and the twin's
//! modules, a child module includes its own twin, and a `use crate::{…}` group naming `entity`
//! (which the renaming would miss) stops the build with a message saying what to write.

#[path = "../build/twin.rs"]
mod twin;

use twin::twin;

#[test]
fn the_twin_is_the_same_text_made_synchronous_for_sea_orm_sync() {
    let source = "//! Docs of the original.\n\
                  use crate::entity::user;\n\
                  use crate::store::now;\n\
                  mod batch;\n\
                  pub mod users;\n\
                  pub(crate) async fn count<C: sea_orm::ConnectionTrait>(conn: &C) -> u64 {\n    \
                  user::Entity::find().count(conn).await.unwrap()\n}\n";
    let out = twin(source, "store");
    assert!(!out.contains("async") && !out.contains(".await"), "{out}");
    assert!(!out.contains("Docs of the original"), "{out}");
    assert!(out.contains("use crate::lite::entity::user;"), "{out}");
    assert!(out.contains("use crate::lite::store::now;"), "{out}");
    assert!(
        out.contains("pub(crate) fn count<C: sea_orm_sync::ConnectionTrait>(conn: &C)"),
        "{out}"
    );
    assert!(out.contains("user::Entity::find().count(conn).unwrap()"), "{out}");
    for (visibility, name) in [("", "batch"), ("pub ", "users")] {
        let include = format!(
            "{visibility}mod {name} {{\n    #[allow(unused_imports)]\n    use ::sea_orm_sync as sea_orm;\n    include!(concat!(env!(\"OUT_DIR\"), \"/lite/store/{name}.rs\"));\n}}\n"
        );
        assert!(out.contains(&include), "{name}: {out}");
    }
}

#[test]
#[should_panic(expected = "write `use crate::entity::…;` on a line of its own in src/store")]
fn an_entity_in_a_use_group_stops_the_build() {
    twin("use crate::{entity::user, store::now};\n", "store");
}
