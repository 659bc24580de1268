use serde_json::json;

use super::*;

fn known(name: &str) -> bool {
    [
        "id",
        "username",
        "externalid",
        "displayname",
        "active",
        "emails",
        "emails.value",
        "emails.type",
        "emails.primary",
        "name",
        "name.givenname",
        "name.familyname",
        "members",
        "members.value",
        "meta.lastmodified",
    ]
    .contains(&name)
}

fn alice() -> Value {
    json!({
        "id": "Alice-1",
        "userName": "Alice@Example.com",
        "externalId": "00u1",
        "displayName": "Alice Liddell",
        "active": true,
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [
            {"value": "alice@example.com", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "meta": {"lastModified": "2026-12-04T10:00:00Z"}
    })
}

fn check(filter: &str) -> bool {
    let parsed = parse(filter, &known).unwrap_or_else(|e| panic!("{filter}: {e}"));
    matches(&parsed, &alice())
}

#[test]
fn operators_on_the_attributes_identity_providers_filter_by() {
    let cases: &[(&str, bool)] = &[
        (r#"userName eq "alice@example.com""#, true),
        (r#"USERNAME EQ "ALICE@EXAMPLE.COM""#, true),
        (r#"userName eq "bob@example.com""#, false),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@example.com""#, true),
        (r#"externalId eq "00u1""#, true),
        (r#"externalId eq "00U1""#, false),
        (r#"id eq "alice-1""#, false),
        (r#"displayName co "liddell""#, true),
        (r#"userName sw "alice@""#, true),
        (r#"userName ew "example.com""#, true),
        (r#"userName ne "alice@example.com""#, false),
        ("userName pr", true),
        ("externalId pr and active eq true", true),
        ("active eq false", false),
        (r#"active eq "False""#, false),
        (r#"emails.value eq "alice@home.example""#, true),
        (r#"emails[type eq "work"].value eq "alice@example.com""#, true),
        (r#"emails[type eq "work"].value eq "alice@home.example""#, false),
        (r#"emails[type eq "work" and primary eq true]"#, true),
        (r#"emails[type eq "other"]"#, false),
        (r#"name.givenName eq "alice" and name.familyName sw "Lid""#, true),
        (r#"userName eq "x" or displayName eq "alice liddell""#, true),
        (r#"not (userName eq "x")"#, true),
        (r#"(userName eq "x" or userName eq "y") and active eq true"#, false),
        (r#"meta.lastModified gt "2026-01-01T00:00:00Z""#, true),
        (r#"members.value eq "Alice-1""#, false),
    ];
    for (filter, expected) in cases {
        assert_eq!(check(filter), *expected, "{filter}");
    }
}

#[test]
fn and_binds_tighter_than_or() {
    // x or (y and z), not (x or y) and z.
    assert!(check(r#"userName eq "alice@example.com" or active eq false and id eq "none""#));
}

#[test]
fn bad_filters_say_what_and_where() {
    let cases: &[(&str, &str)] = &[
        ("userName eq", "expected a value, found the end"),
        (r#"userName xx "a""#, "\"xx\" is not an operator"),
        (r#"nickName eq "a""#, "unknown attribute \"nickName\""),
        (r#"emails[colour eq "red"]"#, "unknown attribute \"colour\""),
        (r#"userName eq "a" and"#, "expected an attribute, found the end"),
        (r#"(userName eq "a""#, "expected \")\", found the end"),
        (r#"userName eq "a"#, "a string is not closed"),
        (r#"userName eq "a" extra"#, "unexpected \"extra\""),
        (r#"userName eq bare"#, "expected a value"),
        ("userName eq \"a\" ; drop", "unexpected ';'"),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x""#,
            "unknown attribute",
        ),
    ];
    for (filter, wanted) in cases {
        let problem = parse(filter, &known).expect_err(filter).message;
        assert!(problem.contains(wanted), "{filter}: {problem}");
        assert!(problem.starts_with("invalid filter at character "), "{filter}: {problem}");
    }
    let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
    assert!(parse(&deep, &known).unwrap_err().message.contains("nested deeper"));
    let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER));
    assert!(parse(&long, &known).unwrap_err().message.contains("longer than"));
}

#[test]
fn the_position_points_at_the_problem() {
    let problem = parse(r#"userName eq "a" and nick eq "b""#, &known).unwrap_err().message;
    assert!(problem.starts_with("invalid filter at character 21:"), "{problem}");
}
