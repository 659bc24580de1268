//! Writes SQLite's twin of the queries: `src/store` and `src/entity` compiled a second time
//! against sea-orm-sync (rusqlite) instead of sea-orm (sqlx), the way sea-orm-sync itself is
//! made from sea-orm. The source is written once, as async sea-orm; the twin is the same text
//! with `async`/`.await` removed and the crate paths changed, included by `src/lite.rs`. So
//! each database has one driver, and no statement is built for one and run on the other.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

#[path = "build/twin.rs"]
mod twin;

use twin::twin;

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("lite");
    let mut conversions = String::new();
    for dir in ["entity", "store"] {
        println!("cargo::rerun-if-changed=src/{dir}");
        let target = out.join(dir);
        fs::create_dir_all(&target).expect("OUT_DIR is writable");
        let mut files: Vec<PathBuf> = fs::read_dir(Path::new("src").join(dir))
            .expect("the sources are there")
            .map(|entry| entry.expect("a readable folder").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect();
        files.sort();
        for path in files {
            let text = fs::read_to_string(&path).expect("a readable source file");
            if dir == "entity" {
                conversions.push_str(&conversion(&path, &text));
            }
            let name = path.file_name().expect("a file name");
            fs::write(target.join(name), twin(&text, dir)).expect("OUT_DIR is writable");
        }
    }
    fs::write(out.join("convert.rs"), conversions).expect("OUT_DIR is writable");
}

/// `From` both ways between an entity's two `Model`s, field by field.
fn conversion(path: &Path, text: &str) -> String {
    let Some(start) = text.find("pub struct Model {") else { return String::new() };
    let body = &text[start..text[start..].find("\n}").map_or(text.len(), |end| start + end)];
    let fields: Vec<&str> = body
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("pub "))
        .filter_map(|rest| rest.split_once(':').map(|(name, _)| name.trim()))
        .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let module = path.file_stem().and_then(|stem| stem.to_str()).expect("a UTF-8 file name");
    let moves: String = fields.iter().map(|field| format!("{field}: row.{field}, ")).collect();
    let mut out = String::new();
    for (from, to) in
        [("crate::lite::entity", "crate::entity"), ("crate::entity", "crate::lite::entity")]
    {
        out.push_str(&format!(
            "impl From<{from}::{module}::Model> for {to}::{module}::Model {{\n    fn from(row: \
             {from}::{module}::Model) -> Self {{\n        Self {{ {moves}}}\n    }}\n}}\n"
        ));
    }
    out
}
