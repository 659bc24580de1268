use serde_json::json;

use super::*;
use crate::http::scim::schemas::{GROUP_ATTRS, USER_ATTRS};

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

fn user() -> Value {
    json!({
        "schemas": [schemas::USER_SCHEMA],
        "id": "alice",
        "userName": "alice@example.com",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "displayName": "Alice Liddell",
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "active": true
    })
}

fn group() -> Value {
    json!({
        "id": "g1",
        "displayName": "Engineering",
        "members": [{"value": "alice"}, {"value": "bob"}]
    })
}

#[test]
fn okta_replace_without_a_path_sets_the_attributes_given() {
    let mut resource = user();
    apply(
        &mut resource,
        &patch(json!([{"op": "replace", "value": {"active": false}}])),
        USER_ATTRS,
    )
    .unwrap();
    assert_eq!(resource["active"], json!(false));
    assert_eq!(resource["userName"], json!("alice@example.com"), "the rest kept");

    let mut resource = group();
    let body = patch(json!([{"op": "replace", "value": {"id": "g1", "displayName": "Eng"}}]));
    apply(&mut resource, &body, GROUP_ATTRS).unwrap();
    assert_eq!(resource["displayName"], json!("Eng"));
    assert_eq!(resource["members"].as_array().unwrap().len(), 2, "members kept");
}

#[test]
fn entra_operations_in_any_case_with_string_booleans() {
    let mut resource = user();
    let body = patch(json!([
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "path": "name.givenName", "value": "Alicia"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
        {"op": "Add", "path": "title", "value": "ignored"}
    ]));
    apply(&mut resource, &body, USER_ATTRS).unwrap();
    assert_eq!(resource["active"], json!("False"), "coerced when the row is made");
    assert_eq!(resource["name"], json!({"givenName": "Alicia", "familyName": "Liddell"}));
    assert!(resource.get("title").is_none() && resource.get("department").is_none());
}

#[test]
fn entra_replaces_the_work_email_creating_it_when_there_is_none() {
    let mut resource = user();
    let body = patch(
        json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@new.example"}]),
    );
    apply(&mut resource, &body, USER_ATTRS).unwrap();
    assert_eq!(
        resource["emails"],
        json!([{"value": "a@new.example", "type": "work", "primary": true}])
    );

    let mut resource = json!({"userName": "bob"});
    apply(&mut resource, &body, USER_ATTRS).unwrap();
    assert_eq!(resource["emails"], json!([{"type": "work", "value": "a@new.example"}]));
}

#[test]
fn members_are_added_and_removed_by_value() {
    let mut resource = group();
    let body = patch(json!([
        {"op": "add", "path": "members", "value": [{"value": "carol"}, {"value": "alice"}]},
        {"op": "remove", "path": "members[value eq \"bob\"]"}
    ]));
    apply(&mut resource, &body, GROUP_ATTRS).unwrap();
    assert_eq!(resource["members"], json!([{"value": "alice"}, {"value": "carol"}]));

    // Entra: remove with the path `members` and the values to remove.
    let body = patch(json!([{"op": "Remove", "path": "members", "value": [{"value": "alice"}]}]));
    apply(&mut resource, &body, GROUP_ATTRS).unwrap();
    assert_eq!(resource["members"], json!([{"value": "carol"}]));

    // Removing `members` without a value removes them all; replace sets the list.
    let body = patch(json!([{"op": "replace", "path": "members", "value": [{"value": "dan"}]}]));
    apply(&mut resource, &body, GROUP_ATTRS).unwrap();
    assert_eq!(resource["members"], json!([{"value": "dan"}]));
    apply(&mut resource, &patch(json!([{"op": "remove", "path": "members"}])), GROUP_ATTRS)
        .unwrap();
    assert!(resource.get("members").is_none());
}

#[test]
fn bad_patches_are_refused_with_their_scim_type() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"Operations": []}), "invalidSyntax", "schemas must list"),
        (json!({"schemas": [PATCH_SCHEMA]}), "invalidSyntax", "Operations array"),
        (
            patch(json!([{"op": "move", "path": "active"}])),
            "invalidSyntax",
            "Operations[0]: op must be",
        ),
        (patch(json!([{"op": "remove"}])), "noTarget", "remove needs a path"),
        (patch(json!([{"op": "replace", "value": 3}])), "invalidValue", "value must be an object"),
        (
            patch(json!([{"op": "replace", "path": "emails[type eq]", "value": "x"}])),
            "invalidPath",
            "invalid path",
        ),
        (patch(json!([{"op": "replace", "path": "active"}])), "invalidValue", "need a value"),
        (
            patch(json!([{"op": "replace", "path": "id", "value": "other"}])),
            "mutability",
            "id is read-only",
        ),
        (
            patch(
                json!([{"op": "replace", "path": "emails[type eq \"work\" or type eq \"home\"].value", "value": "x"}]),
            ),
            "noTarget",
            "no emails element",
        ),
    ];
    for (body, scim_type, wanted) in cases {
        let mut resource = json!({"id": "alice", "userName": "alice"});
        let error = apply(&mut resource, &body, USER_ATTRS).expect_err(&body.to_string());
        assert_eq!(error.scim_type, scim_type, "{body}: {}", error.message);
        assert!(error.message.contains(wanted), "{body}: {}", error.message);
    }
    // The same id is no change.
    let mut resource = json!({"id": "alice"});
    apply(&mut resource, &patch(json!([{"op": "replace", "value": {"id": "alice"}}])), USER_ATTRS)
        .unwrap();
}
