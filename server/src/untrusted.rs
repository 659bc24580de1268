//! Text a client chose (an OIDC `error_description`, a hook's echo of a header), made safe for a
//! log line or a page: control and bidirectional-formatting characters escaped, so no line can
//! be forged or reordered, and the whole cut short, so no request can write kilobytes of log.

/// The longest text a client can put into one message, in characters.
pub const MAX_SHOWN: usize = 200;

/// `text` with every control character (CR, LF, ESC, …), line or paragraph separator and
/// bidirectional override escaped as `\n`, `\u{1b}`, …, cut to `max_chars` characters (then
/// marked `… (N characters)`). Printable text, backslashes included, is kept as is, so the
/// function can be applied twice without changing the result.
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut shown = String::with_capacity(text.len().min(max_chars.saturating_mul(2)));
    let mut count = 0usize;
    for c in text.chars() {
        count += 1;
        if count > max_chars {
            continue;
        }
        if needs_escape(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if count > max_chars {
        shown.push_str(&format!("… ({count} characters)"));
    }
    shown
}

/// Characters a terminal or log viewer would act on instead of showing.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{2028}' | '\u{2029}'            // line and paragraph separators
            | '\u{200e}' | '\u{200f}'          // left-to-right and right-to-left marks
            | '\u{202a}'..='\u{202e}'          // embeddings and overrides
            | '\u{2066}'..='\u{2069}'          // isolates
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        let check = |text: &str, max: usize, expected: &str| {
            assert_eq!(printable(text, max), expected, "{text:?}");
            assert_eq!(printable(&printable(text, max), usize::MAX), expected, "idempotent");
        };
        check("End-User aborted interaction", 200, "End-User aborted interaction");
        check(
            "x\r\n2026-12-04T18:00:00Z  INFO hookgate::signin: signed in",
            200,
            "x\\r\\n2026-12-04T18:00:00Z  INFO hookgate::signin: signed in",
        );
        check("\u{1b}[31mred\ttab", 200, "\\u{1b}[31mred\\ttab");
        check("a\u{2028}b\u{202e}c\u{85}", 200, "a\\u{2028}b\\u{202e}c\\u{85}");
        check("back\\slash \"quotes\" é", 200, "back\\slash \"quotes\" é");
        check("abcdef", 3, "abc… (6 characters)");
        check("", 3, "");
    }
}
