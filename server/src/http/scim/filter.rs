//! SCIM filters (RFC 7644 §3.4.2.2): a tokenizer and a recursive-descent parser to a
//! [`Filter`], and its evaluation over a resource as its JSON representation.
//!
//! Written here rather than taken from a crate: the one maintained Rust crate for the grammar
//! (`scim-filter` 0.2) filters a whole serialised collection and reports errors without a
//! position, pulls in nom 7, rust_decimal and thiserror 1, and does not validate attribute
//! names against a schema; what hookgate needs (the operators, value paths such as
//! `emails[type eq "work"].value`, URN-prefixed names, unknown attributes refused with their
//! name) is about 300 lines.
//!
//! Attribute names are compared case-insensitively (RFC 7643 §2.1); values case-insensitively
//! too, except for the case-exact attributes ([`CASE_EXACT`]).

use std::fmt;

use serde_json::Value;

/// The core schemas' URNs, which may prefix an attribute name.
const CORE_PREFIXES: &[&str] = &[
    "urn:ietf:params:scim:schemas:core:2.0:user:",
    "urn:ietf:params:scim:schemas:core:2.0:group:",
];

/// Attributes compared case-exactly (RFC 7643: `id`, `externalId`, references).
const CASE_EXACT: &[&str] = &["id", "externalid", "members.value", "meta.version"];

/// The longest filter accepted, and how deep parentheses and value paths nest.
pub(crate) const MAX_FILTER: usize = 4096;
const MAX_DEPTH: usize = 32;

/// A filter that cannot be used: what is wrong, and where (a character offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError {
    pub(crate) message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn error(at: usize, message: impl fmt::Display) -> FilterError {
    FilterError { message: format!("invalid filter at character {}: {message}", at + 1) }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// An attribute path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub` (names
/// lower-cased, the core schema's URN removed).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AttrPath {
    pub(crate) attr: String,
    pub(crate) filter: Option<Box<Filter>>,
    pub(crate) sub: Option<String>,
}

impl AttrPath {
    /// `attr` or `attr.sub`, as the schema names it.
    pub(crate) fn dotted(&self) -> String {
        match &self.sub {
            Some(sub) => format!("{}.{sub}", self.attr),
            None => self.attr.clone(),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr pr`, or a bare value path `emails[type eq "work"]`.
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A name, keyword or operator (`userName`, `and`, `eq`, `true`, a number).
    Word(String),
    /// A quoted string, unescaped.
    Text(String),
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => (tokens.push((at, Token::Open)), i += 1).1,
            ')' => (tokens.push((at, Token::Close)), i += 1).1,
            '[' => (tokens.push((at, Token::OpenBracket)), i += 1).1,
            ']' => (tokens.push((at, Token::CloseBracket)), i += 1).1,
            '"' => {
                // A JSON string: find its end, then let serde_json unescape it.
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(error(at, "a string is not closed")),
                        Some((_, '\\')) => j += 2,
                        Some((_, '"')) => break,
                        Some(_) => j += 1,
                    }
                }
                let end = chars[j].0 + 1;
                let text: String = serde_json::from_str(&input[at..end])
                    .map_err(|_| error(at, "a string has an invalid escape"))?;
                tokens.push((at, Token::Text(text)));
                i = j + 1;
            }
            c if is_word_char(c) => {
                let mut j = i;
                while j < chars.len() && is_word_char(chars[j].1) {
                    j += 1;
                }
                let end = chars.get(j).map_or(input.len(), |(end, _)| *end);
                tokens.push((at, Token::Word(input[at..end].to_owned())));
                i = j;
            }
            other => return Err(error(at, format_args!("unexpected {other:?}"))),
        }
    }
    Ok(tokens)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-' | '$' | '+')
}

/// Parses `input`; every attribute it names must satisfy `known` (a lower-case `attr` or
/// `attr.sub`), else the filter is refused naming it.
pub(crate) fn parse(input: &str, known: &dyn Fn(&str) -> bool) -> Result<Filter, FilterError> {
    if input.len() > MAX_FILTER {
        return Err(FilterError {
            message: format!("the filter is longer than {MAX_FILTER} characters"),
        });
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser { tokens, next: 0, end: input.len(), known, depth: 0 };
    let filter = parser.or()?;
    match parser.tokens.get(parser.next) {
        None => Ok(filter),
        Some((at, token)) => Err(error(*at, format_args!("unexpected {}", describe(token)))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "\"(\"".into(),
        Token::Close => "\")\"".into(),
        Token::OpenBracket => "\"[\"".into(),
        Token::CloseBracket => "\"]\"".into(),
        Token::Word(word) => format!("{:?}", hookgate_core::ids::shorten(word, 64)),
        Token::Text(text) => format!("the string {}", hookgate_core::ids::shown(text)),
    }
}

struct Parser<'a> {
    tokens: Vec<(usize, Token)>,
    next: usize,
    end: usize,
    known: &'a dyn Fn(&str) -> bool,
    depth: usize,
}

impl Parser<'_> {
    fn peek_word(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.next), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(keyword))
    }

    fn at(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(at, _)| *at)
    }

    fn take(&mut self) -> Option<(usize, Token)> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn expect(&mut self, wanted: &Token, what: &str) -> Result<(), FilterError> {
        let at = self.at();
        match self.take() {
            Some((_, token)) if token == *wanted => Ok(()),
            Some((_, token)) => {
                Err(error(at, format_args!("expected {what}, found {}", describe(&token))))
            }
            None => Err(error(at, format_args!("expected {what}, found the end"))),
        }
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(self.at(), format_args!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.next += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.next += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_word("not") {
            self.next += 1;
            self.expect(&Token::Open, "\"(\" after not")?;
            self.deeper()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect(&Token::Close, "\")\"")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if matches!(self.tokens.get(self.next), Some((_, Token::Open))) {
            self.next += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.depth -= 1;
            self.expect(&Token::Close, "\")\"")?;
            return Ok(inner);
        }
        self.attribute_expression(None)
    }

    /// `path pr`, `path op value`, or a bare value path; `parent` is the attribute a value
    /// path's filter is inside (its names are sub-attributes).
    fn attribute_expression(&mut self, parent: Option<&str>) -> Result<Filter, FilterError> {
        let at = self.at();
        let name = match self.take() {
            Some((_, Token::Word(word))) => word,
            Some((_, token)) => {
                return Err(error(
                    at,
                    format_args!("expected an attribute, found {}", describe(&token)),
                ));
            }
            None => return Err(error(at, "expected an attribute, found the end")),
        };
        let (attr, mut sub) = split_name(&name).ok_or_else(|| {
            error(
                at,
                format_args!(
                    "{:?} is not an attribute name",
                    hookgate_core::ids::shorten(&name, 64)
                ),
            )
        })?;
        let mut filter = None;
        if parent.is_none()
            && sub.is_none()
            && matches!(self.tokens.get(self.next), Some((_, Token::OpenBracket)))
        {
            self.next += 1;
            self.deeper()?;
            let inner = self.value_filter(&attr)?;
            self.depth -= 1;
            self.expect(&Token::CloseBracket, "\"]\"")?;
            filter = Some(Box::new(inner));
            if let Some((dot_at, Token::Word(word))) = self.tokens.get(self.next).cloned()
                && let Some(rest) = word.strip_prefix('.')
            {
                if rest.is_empty() || rest.contains('.') {
                    return Err(error(dot_at, "expected one sub-attribute after \"]\""));
                }
                self.next += 1;
                sub = Some(rest.to_ascii_lowercase());
            }
        }
        let full = match (parent, &sub) {
            (Some(parent), None) => format!("{parent}.{attr}"),
            (Some(_), Some(_)) => {
                return Err(error(at, "a value filter names sub-attributes only"));
            }
            (None, Some(sub)) => format!("{attr}.{sub}"),
            (None, None) => attr.clone(),
        };
        if !(self.known)(&full) {
            return Err(error(
                at,
                format_args!("unknown attribute {:?}", hookgate_core::ids::shorten(&name, 64)),
            ));
        }
        let path = match parent {
            Some(_) => AttrPath { attr: attr.clone(), filter: None, sub: None },
            None => AttrPath { attr, filter, sub },
        };
        let op_at = self.at();
        let op = match self.tokens.get(self.next) {
            Some((_, Token::Word(word))) => word.to_ascii_lowercase(),
            _ if path.filter.is_some() => return Ok(Filter::Present(path)),
            Some((_, token)) => {
                return Err(error(
                    op_at,
                    format_args!("expected an operator, found {}", describe(token)),
                ));
            }
            None => return Err(error(op_at, "expected an operator, found the end")),
        };
        let op = match op.as_str() {
            "pr" => {
                self.next += 1;
                return Ok(Filter::Present(path));
            }
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ if path.filter.is_some() => return Ok(Filter::Present(path)),
            other => {
                return Err(error(
                    op_at,
                    format_args!(
                        "{:?} is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)",
                        hookgate_core::ids::shorten(other, 64)
                    ),
                ));
            }
        };
        self.next += 1;
        let value_at = self.at();
        let value = match self.take() {
            Some((_, Token::Text(text))) => Value::String(text),
            Some((_, Token::Word(word))) => match word.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&word).map(Value::Number).map_err(|_| {
                    error(value_at, format_args!("expected a value (a quoted string, a number, true, false or null), found {:?}", hookgate_core::ids::shorten(&word, 64)))
                })?,
            },
            Some((_, token)) => {
                return Err(error(value_at, format_args!("expected a value, found {}", describe(&token))));
            }
            None => return Err(error(value_at, "expected a value, found the end")),
        };
        Ok(Filter::Compare(path, op, value))
    }

    /// The filter inside `attr[…]`: and/or/not over sub-attribute expressions.
    fn value_filter(&mut self, attr: &str) -> Result<Filter, FilterError> {
        let mut left = self.value_and(attr)?;
        while self.peek_word("or") {
            self.next += 1;
            left = Filter::Or(Box::new(left), Box::new(self.value_and(attr)?));
        }
        Ok(left)
    }

    fn value_and(&mut self, attr: &str) -> Result<Filter, FilterError> {
        let mut left = self.value_unary(attr)?;
        while self.peek_word("and") {
            self.next += 1;
            left = Filter::And(Box::new(left), Box::new(self.value_unary(attr)?));
        }
        Ok(left)
    }

    fn value_unary(&mut self, attr: &str) -> Result<Filter, FilterError> {
        let negate = self.peek_word("not");
        if negate {
            self.next += 1;
        }
        let inner = if negate || matches!(self.tokens.get(self.next), Some((_, Token::Open))) {
            self.expect(&Token::Open, "\"(\"")?;
            self.deeper()?;
            let inner = self.value_filter(attr)?;
            self.depth -= 1;
            self.expect(&Token::Close, "\")\"")?;
            inner
        } else {
            self.attribute_expression(Some(attr))?
        };
        Ok(if negate { Filter::Not(Box::new(inner)) } else { inner })
    }
}

/// `name` lower-cased, without the core schema's URN, split at its one dot (`name.givenName`);
/// `None` when it is not a name.
pub(crate) fn split_name(name: &str) -> Option<(String, Option<String>)> {
    let lower = name.to_ascii_lowercase();
    let bare = CORE_PREFIXES.iter().find_map(|prefix| lower.strip_prefix(prefix)).unwrap_or(&lower);
    if bare.starts_with("urn:") {
        // Another schema's attribute (an extension's): named as it is, never known.
        return Some((bare.to_owned(), None));
    }
    let mut parts = bare.split('.');
    let attr = parts.next()?.to_owned();
    let sub = parts.next().map(str::to_owned);
    let valid = |part: &str| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if parts.next().is_some() || !valid(&attr) || sub.as_deref().is_some_and(|s| !valid(s)) {
        return None;
    }
    Some((attr, sub))
}

/// The value of `key` in an object, its name compared case-insensitively.
pub(crate) fn get_ci<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    object.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// The values `path` reaches in `resource` (an array's elements one by one).
pub(crate) fn values_at<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(value) = get_ci(resource, &path.attr) else { return Vec::new() };
    let elements: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    elements
        .into_iter()
        .filter(|element| path.filter.as_ref().is_none_or(|filter| matches(filter, element)))
        .filter_map(|element| match &path.sub {
            Some(sub) => get_ci(element, sub),
            None => Some(element),
        })
        .flat_map(|value| match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        })
        .collect()
}

/// Whether `resource` matches `filter`.
pub(crate) fn matches(filter: &Filter, resource: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
        Filter::Not(inner) => !matches(inner, resource),
        Filter::Present(path) => values_at(resource, path).into_iter().any(|value| match value {
            Value::Null => false,
            Value::String(text) => !text.is_empty(),
            Value::Object(map) if path.filter.is_none() => !map.is_empty(),
            _ => true,
        }),
        Filter::Compare(path, op, wanted) => {
            let exact = CASE_EXACT.contains(&path.dotted().as_str());
            let found = values_at(resource, path);
            if *op == Op::Ne {
                return !found.iter().any(|value| compare(value, Op::Eq, wanted, exact));
            }
            found.into_iter().any(|value| compare(value, *op, wanted, exact))
        }
    }
}

fn compare(value: &Value, op: Op, wanted: &Value, exact: bool) -> bool {
    match (value, wanted) {
        (Value::String(have), Value::String(want)) => {
            let (have, want) = if exact {
                (have.clone(), want.clone())
            } else {
                (have.to_lowercase(), want.to_lowercase())
            };
            match op {
                Op::Eq => have == want,
                Op::Ne => have != want,
                Op::Co => have.contains(&want),
                Op::Sw => have.starts_with(&want),
                Op::Ew => have.ends_with(&want),
                Op::Gt => have > want,
                Op::Ge => have >= want,
                Op::Lt => have < want,
                Op::Le => have <= want,
            }
        }
        (Value::Bool(have), Value::Bool(want)) => match op {
            Op::Eq => have == want,
            Op::Ne => have != want,
            _ => false,
        },
        // Entra writes booleans as strings ("False"): compare them as what they mean.
        (Value::Bool(have), Value::String(want)) => match want.to_ascii_lowercase().as_str() {
            "true" => compare(&Value::Bool(*have), op, &Value::Bool(true), exact),
            "false" => compare(&Value::Bool(*have), op, &Value::Bool(false), exact),
            _ => false,
        },
        (Value::Number(have), Value::Number(want)) => {
            let (Some(have), Some(want)) = (have.as_f64(), want.as_f64()) else { return false };
            match op {
                Op::Eq => have == want,
                Op::Ne => have != want,
                Op::Gt => have > want,
                Op::Ge => have >= want,
                Op::Lt => have < want,
                Op::Le => have <= want,
                Op::Co | Op::Sw | Op::Ew => false,
            }
        }
        (_, Value::Null) => matches!(op, Op::Eq) && value.is_null(),
        _ => false,
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
