//! Ids and emails as hookgate stores them, and how a client's value is quoted in a message.

/// The longest user id, team id, issuer or subject stored.
pub const MAX_ID: usize = 255;

/// The longest email address stored (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Whether an id fits its column: at most [`MAX_ID`] bytes, no control characters.
pub fn is_storable_id(id: &str) -> bool {
    id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

/// What is wrong with an id an administrator gives (user, team, binding issuer or subject), if
/// anything: it must be storable and not blank.
pub fn id_problem(field: &str, id: &str) -> Option<String> {
    (id.trim().is_empty() || !is_storable_id(id))
        .then(|| format!("{field} must be 1 to {MAX_ID} characters without control characters"))
}

/// An email as stored: trimmed and lower-case; `None` when blank.
pub fn normalise_email(email: &str) -> Option<String> {
    Some(email.trim().to_lowercase()).filter(|email| !email.is_empty())
}

/// An address with exactly one `@`, something on both sides, no spaces or control characters.
pub fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `text` cut to at most `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A value quoted for a message, cut short: messages must not echo megabytes back.
pub fn shown(text: &str) -> String {
    const MAX: usize = 64;
    let count = text.chars().count();
    if count <= MAX {
        format!("{text:?}")
    } else {
        format!("{:?}… ({count} characters)", shorten(text, MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for (id, problem) in [
            ("alice", false),
            ("  ", true),
            ("", true),
            ("tab\there", true),
            (&"x".repeat(255), false),
            (&"x".repeat(256), true),
            // 128 two-byte characters: 256 bytes, over the column's limit.
            (&"é".repeat(128), true),
        ] {
            assert_eq!(id_problem("user_id", id).is_some(), problem, "{id:?}");
        }
        assert_eq!(
            id_problem("team_id", "").unwrap(),
            "team_id must be 1 to 255 characters without control characters"
        );
    }

    #[test]
    fn emails() {
        for (email, plausible) in [
            ("a@b", true),
            ("a@b@c", false),
            ("@b", false),
            ("a@", false),
            ("a b@c", false),
            ("nobody", false),
        ] {
            assert_eq!(is_plausible_email(email), plausible, "{email:?}");
        }
        assert_eq!(normalise_email("  Alice@Example.TEST "), Some("alice@example.test".into()));
        assert_eq!(normalise_email("   "), None);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(shown("short"), "\"short\"");
        let long = "y".repeat(100);
        assert_eq!(shown(&long), format!("{:?}… (100 characters)", "y".repeat(64)));
    }
}
