//! What hookgate's SCIM resources have (the attributes of RFC 7643's User and Group that it
//! keeps), and the discovery documents built from it: `ServiceProviderConfig`,
//! `ResourceTypes`, `Schemas`.

use serde_json::{Value, json};

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub(crate) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const CONFIG_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one list answer holds (a larger `count` is cut to it).
pub(crate) const MAX_PAGE: usize = 1000;
/// The largest request body, in bytes.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// An attribute of a resource.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) multi: bool,
    pub(crate) read_only: bool,
    pub(crate) required: bool,
    pub(crate) case_exact: bool,
    pub(crate) unique: bool,
    pub(crate) subs: &'static [(&'static str, &'static str)],
}

const fn attr(name: &'static str, kind: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        read_only: false,
        required: false,
        case_exact: false,
        unique: false,
        subs: &[],
    }
}

const ID: Attr = Attr { read_only: true, case_exact: true, unique: true, ..attr("id", "string") };
const EXTERNAL_ID: Attr = Attr { case_exact: true, ..attr("externalId", "string") };
const META: Attr = Attr {
    read_only: true,
    subs: &[
        ("resourceType", "string"),
        ("created", "dateTime"),
        ("lastModified", "dateTime"),
        ("location", "reference"),
        ("version", "string"),
    ],
    ..attr("meta", "complex")
};

/// The User's attributes hookgate keeps.
pub(crate) const USER_ATTRS: &[Attr] = &[
    ID,
    EXTERNAL_ID,
    Attr { required: true, unique: true, ..attr("userName", "string") },
    Attr {
        subs: &[
            ("formatted", "string"),
            ("familyName", "string"),
            ("givenName", "string"),
            ("middleName", "string"),
            ("honorificPrefix", "string"),
            ("honorificSuffix", "string"),
        ],
        ..attr("name", "complex")
    },
    attr("displayName", "string"),
    Attr {
        multi: true,
        subs: &[
            ("value", "string"),
            ("type", "string"),
            ("primary", "boolean"),
            ("display", "string"),
        ],
        ..attr("emails", "complex")
    },
    attr("active", "boolean"),
    META,
];

/// The Group's attributes hookgate keeps.
pub(crate) const GROUP_ATTRS: &[Attr] = &[
    ID,
    EXTERNAL_ID,
    Attr { required: true, ..attr("displayName", "string") },
    Attr {
        multi: true,
        subs: &[
            ("value", "string"),
            ("display", "string"),
            ("type", "string"),
            ("$ref", "reference"),
        ],
        ..attr("members", "complex")
    },
    META,
];

/// The attribute named `name` (any case).
pub(crate) fn find(attrs: &[Attr], name: &str) -> Option<Attr> {
    attrs.iter().copied().find(|attr| attr.name.eq_ignore_ascii_case(name))
}

/// The canonical name of `sub` in `attr` (any case).
pub(crate) fn find_sub(attr: &Attr, sub: &str) -> Option<&'static str> {
    attr.subs.iter().find(|(name, _)| name.eq_ignore_ascii_case(sub)).map(|(name, _)| *name)
}

/// Whether `dotted` (lower-case `attr` or `attr.sub`) is one of `attrs`'.
pub(crate) fn knows(attrs: &[Attr], dotted: &str) -> bool {
    let (attr, sub) = match dotted.split_once('.') {
        Some((attr, sub)) => (attr, Some(sub)),
        None => (dotted, None),
    };
    match (find(attrs, attr), sub) {
        (Some(_), None) => true,
        (Some(found), Some(sub)) => find_sub(&found, sub).is_some(),
        (None, _) => false,
    }
}

/// `GET /ServiceProviderConfig`.
pub(crate) fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [CONFIG_SCHEMA],
        "documentationUri": "https://example.invalid/hookgate/docs/scim.md",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_PAGE},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "general_settings.scim_token, sent as Authorization: Bearer <token>",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

/// The resource types, as `GET /ResourceTypes` lists them.
pub(crate) fn resource_types(base: &str) -> Vec<Value> {
    [("User", "/Users", USER_SCHEMA), ("Group", "/Groups", GROUP_SCHEMA)]
        .into_iter()
        .map(|(name, endpoint, schema)| {
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": name,
                "name": name,
                "endpoint": endpoint,
                "description": name,
                "schema": schema,
                "schemaExtensions": [],
                "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}")}
            })
        })
        .collect()
}

/// The schemas, as `GET /Schemas` lists them.
pub(crate) fn schemas(base: &str) -> Vec<Value> {
    [(USER_SCHEMA, "User", USER_ATTRS), (GROUP_SCHEMA, "Group", GROUP_ATTRS)]
        .into_iter()
        .map(|(id, name, attrs)| {
            json!({
                "schemas": [SCHEMA_SCHEMA],
                "id": id,
                "name": name,
                "description": name,
                "attributes": attrs.iter().filter(|a| a.name != "id" && a.name != "meta").map(describe).collect::<Vec<_>>(),
                "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")}
            })
        })
        .collect()
}

fn describe(attr: &Attr) -> Value {
    let mut out = json!({
        "name": attr.name,
        "type": attr.kind,
        "multiValued": attr.multi,
        "description": attr.name,
        "required": attr.required,
        "caseExact": attr.case_exact,
        "mutability": if attr.read_only { "readOnly" } else { "readWrite" },
        "returned": "default",
        "uniqueness": if attr.unique { "server" } else { "none" },
    });
    if !attr.subs.is_empty() {
        let subs: Vec<Value> = attr
            .subs
            .iter()
            .map(|(name, kind)| {
                let mut sub = json!({
                    "name": name,
                    "type": kind,
                    "multiValued": false,
                    "description": name,
                    "required": false,
                    "caseExact": *name == "value" && attr.name == "members",
                    "mutability": if *name == "display" && attr.name == "members" { "readOnly" } else { "readWrite" },
                    "returned": "default",
                    "uniqueness": "none",
                });
                if *kind == "reference" {
                    sub["referenceTypes"] = json!(["User", "Group"]);
                }
                if *name == "type" && attr.name == "emails" {
                    sub["canonicalValues"] = json!(["work", "home", "other"]);
                }
                if *name == "type" && attr.name == "members" {
                    sub["canonicalValues"] = json!(["User"]);
                    sub["mutability"] = json!("immutable");
                }
                sub
            })
            .collect();
        out["subAttributes"] = Value::Array(subs);
    }
    out
}
