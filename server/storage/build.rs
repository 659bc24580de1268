//! Writes SQLite's twin of the queries: `src/store` and `src/entity` compiled a second time
//! against sea-orm-sync (rusqlite) instead of sea-orm (sqlx), the way sea-orm-sync itself is
//! made from sea-orm. The source is written once, as async sea-orm; the twin is the same text
//! with `async`/`.await` removed and the crate paths changed, included by `src/lite.rs`. So
//! each database has one driver, and no statement is built for one and run on the other.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

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

/// The synchronous twin of one source file.
fn twin(text: &str, dir: &str) -> String {
    // `crate::entity` is renamed only when it is written out: an `entity::` inside a
    // `use crate::{…}` group would stay the original's.
    if let Some(group) = text.find("use crate::{") {
        let end = text[group..].find("};").map_or(text.len(), |end| group + end);
        assert!(
            !text[group..end].contains("entity"),
            "write `use crate::entity::…;` on a line of its own in src/{dir}: build.rs renames \
             `crate::entity` for SQLite's twin"
        );
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//!") {
            continue;
        }
        if let Some(module) = child_module(trimmed) {
            let (visibility, name) = module;
            out.push_str(&format!(
                "{visibility}mod {name} {{\n    #[allow(unused_imports)]\n    use ::sea_orm_sync as \
                 sea_orm;\n    include!(concat!(env!(\"OUT_DIR\"), \"/lite/{dir}/{name}.rs\"));\n}}\n"
            ));
            continue;
        }
        let line = line
            .replace("sea_orm::", "sea_orm_sync::")
            .replace("crate::entity", "crate::lite::entity")
            .replace("crate::store", "crate::lite::store")
            .replace("async fn ", "fn ")
            .replace(".await", "");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `mod name;` or `pub mod name;` (a child module in a file of its own): its visibility and name.
fn child_module(line: &str) -> Option<(&str, &str)> {
    let (visibility, rest) = match line.strip_prefix("pub mod ") {
        Some(rest) => ("pub ", rest),
        None => ("", line.strip_prefix("mod ")?),
    };
    let name = rest.strip_suffix(';')?;
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_').then_some((visibility, name))
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
