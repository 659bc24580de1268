//! The text transformation `build.rs` makes SQLite's twin with (a file of its own, so that the
//! crate's tests can hold it to its promises: `src/twin_tests.rs`).

/// The synchronous twin of one source file.
pub(crate) fn twin(text: &str, dir: &str) -> String {
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
