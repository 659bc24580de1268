//! SQLite's twin of the queries: `entity` and `store` compiled a second time, against
//! sea-orm-sync over rusqlite (written by `build.rs` from the same source, `async` and `.await`
//! removed), and the conversions between the two flavours of each row. The SQLite backend
//! (`sqlite.rs`) runs only these; PostgreSQL runs only the originals.

/// The tables, for sea-orm-sync.
#[allow(dead_code, unreachable_pub, unused_imports, clippy::all)]
pub(crate) mod entity {
    include!(concat!(env!("OUT_DIR"), "/lite/entity/mod.rs"));
}

/// The queries, for sea-orm-sync.
#[allow(dead_code, unreachable_pub, unused_imports, clippy::all)]
pub(crate) mod store {
    include!(concat!(env!("OUT_DIR"), "/lite/store/mod.rs"));
}

include!(concat!(env!("OUT_DIR"), "/lite/convert.rs"));

use sea_orm::DbErr;

/// A sea-orm-sync error as the port's (sea-orm's): the message is kept; every database failure
/// is answered the same way above the port (503).
pub(crate) fn from_sync(error: sea_orm_sync::DbErr) -> DbErr {
    match error {
        sea_orm_sync::DbErr::RecordNotFound(what) => DbErr::RecordNotFound(what),
        other => DbErr::Custom(format!("sqlite: {other}")),
    }
}

/// What a twin query gives, as the port gives it: each row in the port's (sea-orm's) flavour.
pub(crate) trait Neutral {
    /// The port's type.
    type Out;
    /// Converts.
    fn neutral(self) -> Self::Out;
}

macro_rules! same {
    ($($ty:ty),*) => { $(impl Neutral for $ty { type Out = $ty; fn neutral(self) -> $ty { self } })* };
}
same!((), bool, u64, String, hookgate_core::signin::Snapshot, crate::types::UserStanding);

macro_rules! rows {
    ($($module:ident),*) => {
        $(impl Neutral for entity::$module::Model {
            type Out = crate::entity::$module::Model;
            fn neutral(self) -> Self::Out { self.into() }
        })*
    };
}
rows!(completed_oidc_flow, session, sign_in_event, team, team_member, user);

impl<T: Neutral> Neutral for Option<T> {
    type Out = Option<T::Out>;
    fn neutral(self) -> Self::Out {
        self.map(Neutral::neutral)
    }
}

impl<T: Neutral> Neutral for Vec<T> {
    type Out = Vec<T::Out>;
    fn neutral(self) -> Self::Out {
        self.into_iter().map(Neutral::neutral).collect()
    }
}

impl<A: Neutral, B: Neutral> Neutral for (A, B) {
    type Out = (A::Out, B::Out);
    fn neutral(self) -> Self::Out {
        (self.0.neutral(), self.1.neutral())
    }
}
