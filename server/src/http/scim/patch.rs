//! SCIM `PATCH` (RFC 7644 §3.5.2) applied to a resource's JSON representation, in the forms
//! Okta and Entra ID send: `replace` with no path and an object of attributes; `add` to
//! `members`; `remove` with `members[value eq "…"]`, or (Entra) with `members` and the values
//! to remove; `replace` of `emails[type eq "work"].value` (creating the element when none
//! matches, as Entra expects); operation names in any case (`"Replace"`).
//!
//! Attributes the resource does not keep (an enterprise extension's, `title`, `phoneNumbers`)
//! are ignored, as they are in a create; read-only ones (`id`, `meta`) are refused
//! (`mutability`) unless the value is the one they have.

use serde_json::{Map, Value};

use super::{
    filter::{self, AttrPath, Filter, Op},
    schemas::{self, Attr, PATCH_SCHEMA},
};

/// Why a PATCH cannot be applied; nothing of it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchError {
    /// SCIM's `scimType`.
    pub(crate) scim_type: &'static str,
    pub(crate) message: String,
}

fn problem(scim_type: &'static str, message: impl Into<String>) -> PatchError {
    PatchError { scim_type, message: message.into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Applies the PATCH request `body` to `resource`, whose attributes are `attrs`.
///
/// # Errors
/// A body that is not a PatchOp, an unknown operation, a path that does not parse, a remove
/// without a path, a filter that matches nothing where something must be replaced, a
/// read-only attribute changed.
pub(crate) fn apply(resource: &mut Value, body: &Value, attrs: &[Attr]) -> Result<(), PatchError> {
    let schemas_ok =
        filter::get_ci(body, "schemas").and_then(Value::as_array).is_some_and(|list| {
            list.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA)))
        });
    if !schemas_ok {
        return Err(problem(
            "invalidSyntax",
            format!("a PATCH body's schemas must list {PATCH_SCHEMA}"),
        ));
    }
    let Some(operations) = filter::get_ci(body, "Operations").and_then(Value::as_array) else {
        return Err(problem("invalidSyntax", "a PATCH body needs an Operations array"));
    };
    for (index, operation) in operations.iter().enumerate() {
        let at = |message: String| format!("Operations[{index}]: {message}");
        let kind = match filter::get_ci(operation, "op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Kind::Add,
            Some("replace") => Kind::Replace,
            Some("remove") => Kind::Remove,
            _ => {
                return Err(problem(
                    "invalidSyntax",
                    at("op must be add, replace or remove".into()),
                ));
            }
        };
        let value = filter::get_ci(operation, "value").cloned();
        let path = filter::get_ci(operation, "path")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty());
        match (path, kind) {
            (None, Kind::Remove) => {
                return Err(problem("noTarget", at("remove needs a path".into())));
            }
            (None, _) => {
                let Some(Value::Object(values)) = value else {
                    return Err(problem(
                        "invalidValue",
                        at("without a path, value must be an object of attributes".into()),
                    ));
                };
                for (name, value) in values {
                    let Some((attr, sub)) = filter::split_name(&name) else {
                        return Err(problem(
                            "invalidPath",
                            at(format!("{name:?} is not an attribute name")),
                        ));
                    };
                    let path = AttrPath { attr, filter: None, sub };
                    apply_one(resource, kind, &path, Some(value), attrs)
                        .map_err(|e| PatchError { message: at(e.message), ..e })?;
                }
            }
            (Some(path), _) => {
                let parsed = parse_path(path).map_err(|e| problem("invalidPath", at(e.message)))?;
                if kind != Kind::Remove && value.is_none() {
                    return Err(problem("invalidValue", at("add and replace need a value".into())));
                }
                apply_one(resource, kind, &parsed, value, attrs)
                    .map_err(|e| PatchError { message: at(e.message), ..e })?;
            }
        }
    }
    Ok(())
}

/// Parses a PATCH path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub` (a filter's
/// attribute without the comparison: `path pr` is parsed and taken apart).
fn parse_path(path: &str) -> Result<AttrPath, filter::FilterError> {
    match filter::parse(&format!("{path} pr"), &|_: &str| true) {
        Ok(Filter::Present(parsed)) => Ok(parsed),
        Ok(_) => Err(filter::FilterError {
            message: format!("{} is not a path", hookgate_core::ids::shown(path)),
        }),
        Err(error) => Err(filter::FilterError {
            message: format!("invalid path {}: {}", hookgate_core::ids::shown(path), error.message),
        }),
    }
}

fn apply_one(
    resource: &mut Value,
    kind: Kind,
    path: &AttrPath,
    value: Option<Value>,
    attrs: &[Attr],
) -> Result<(), PatchError> {
    let Some(attr) = schemas::find(attrs, &path.attr) else {
        // Not kept (an extension's attribute, `title`…): ignored, as in a create.
        return Ok(());
    };
    let sub = match &path.sub {
        Some(sub) => match schemas::find_sub(&attr, sub) {
            Some(sub) => Some(sub),
            None => return Ok(()),
        },
        None => None,
    };
    if attr.read_only {
        let current = resource.get(attr.name);
        if kind == Kind::Remove || path.sub.is_some() || current != value.as_ref() {
            return Err(problem("mutability", format!("{} is read-only", attr.name)));
        }
        return Ok(());
    }
    let object = resource.as_object_mut().expect("a resource is an object");
    if let Some(filter) = &path.filter {
        return apply_filtered(object, kind, &attr, filter, sub, value);
    }
    match (kind, sub) {
        (Kind::Remove, None) => {
            match (value, attr.multi) {
                // Entra: remove `members` with the values to remove.
                (Some(Value::Array(gone)), true) => {
                    if let Some(Value::Array(items)) = object.get_mut(attr.name) {
                        items.retain(|item| !gone.iter().any(|g| same_element(item, g)));
                    }
                }
                _ => {
                    object.remove(attr.name);
                }
            }
            Ok(())
        }
        (Kind::Remove, Some(sub)) => {
            match object.get_mut(attr.name) {
                Some(Value::Object(inner)) => {
                    inner.remove(sub);
                }
                Some(Value::Array(items)) => {
                    items.iter_mut().filter_map(Value::as_object_mut).for_each(|item| {
                        item.remove(sub);
                    })
                }
                _ => {}
            }
            Ok(())
        }
        (_, Some(sub)) => {
            let value = value.unwrap_or(Value::Null);
            match object.entry(attr.name).or_insert_with(|| Value::Object(Map::new())) {
                Value::Array(items) => {
                    items.iter_mut().filter_map(Value::as_object_mut).for_each(|item| {
                        item.insert(sub.to_owned(), value.clone());
                    })
                }
                slot => {
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    slot.as_object_mut().expect("an object").insert(sub.to_owned(), value);
                }
            }
            Ok(())
        }
        (kind, None) => {
            let value = value.unwrap_or(Value::Null);
            if attr.multi {
                let new = match value {
                    Value::Array(items) => items,
                    Value::Null => Vec::new(),
                    single => vec![single],
                };
                let slot = object.entry(attr.name).or_insert_with(|| Value::Array(Vec::new()));
                match (kind, slot) {
                    (Kind::Add, Value::Array(items)) => {
                        for item in new {
                            if !items.iter().any(|have| same_element(have, &item)) {
                                items.push(item);
                            }
                        }
                    }
                    (_, slot) => *slot = Value::Array(new),
                }
            } else if let (Value::Object(new), Some(Value::Object(have))) =
                (&value, object.get_mut(attr.name))
            {
                // A complex attribute (`name`): the sub-attributes given, the others kept.
                for (key, item) in new {
                    let key = schemas::find_sub(&attr, key).map_or(key.clone(), str::to_owned);
                    have.insert(key, item.clone());
                }
            } else {
                object.insert(attr.name.to_owned(), value);
            }
            Ok(())
        }
    }
}

/// An operation on the elements of a multi-valued attribute a filter selects.
fn apply_filtered(
    object: &mut Map<String, Value>,
    kind: Kind,
    attr: &Attr,
    filter: &Filter,
    sub: Option<&'static str>,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let items = match object.get_mut(attr.name) {
        Some(Value::Array(items)) => items,
        _ => {
            object.insert(attr.name.to_owned(), Value::Array(Vec::new()));
            object.get_mut(attr.name).and_then(Value::as_array_mut).expect("just inserted")
        }
    };
    let selected: Vec<usize> =
        (0..items.len()).filter(|&i| filter::matches(filter, &items[i])).collect();
    match kind {
        Kind::Remove => {
            let mut index = 0;
            items.retain_mut(|item| {
                let chosen = selected.contains(&index);
                index += 1;
                match (chosen, sub) {
                    (false, _) => true,
                    (true, None) => false,
                    (true, Some(sub)) => {
                        if let Some(inner) = item.as_object_mut() {
                            inner.remove(sub);
                        }
                        true
                    }
                }
            });
            Ok(())
        }
        Kind::Add | Kind::Replace => {
            let value = value.unwrap_or(Value::Null);
            if selected.is_empty() {
                // Entra replaces `emails[type eq "work"].value` on a user with no work email:
                // the element the filter describes is made.
                let Filter::Compare(key, Op::Eq, literal) = filter else {
                    return Err(problem(
                        "noTarget",
                        format!("no {} element matches the filter", attr.name),
                    ));
                };
                let mut element = Map::new();
                let key = schemas::find_sub(attr, &key.attr).unwrap_or("value");
                element.insert(key.to_owned(), literal.clone());
                match (sub, value) {
                    (Some(sub), value) => {
                        element.insert(sub.to_owned(), value);
                    }
                    (None, Value::Object(given)) => element.extend(given),
                    (None, other) => {
                        element.insert("value".to_owned(), other);
                    }
                }
                items.push(Value::Object(element));
                return Ok(());
            }
            for index in selected {
                match (sub, &value, &mut items[index]) {
                    (Some(sub), value, Value::Object(item)) => {
                        item.insert(sub.to_owned(), value.clone());
                    }
                    (None, Value::Object(given), Value::Object(item)) => {
                        for (key, v) in given {
                            item.insert(key.clone(), v.clone());
                        }
                    }
                    (_, value, slot) => *slot = value.clone(),
                }
            }
            Ok(())
        }
    }
}

/// Whether two elements of a multi-valued attribute are the same one (their `value`s, or all
/// of them).
fn same_element(a: &Value, b: &Value) -> bool {
    match (filter::get_ci(a, "value"), filter::get_ci(b, "value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
