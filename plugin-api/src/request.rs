//! The sign-in request a `custom_ui_sso_sign_in_handler` hook sees.

use std::{borrow::Cow, net::IpAddr};

use abi_stable::{
    StableAbi,
    std_types::{RSlice, RStr},
};

/// One request header. Names are lower-case; repeated headers appear once per line, in order.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPair<'a> {
    name: RStr<'a>,
    value: RStr<'a>,
}

impl<'a> HeaderPair<'a> {
    /// A header line. The server passes names lower-cased; so should tests.
    pub const fn new(name: &'a str, value: &'a str) -> Self {
        Self { name: RStr::from_str(name), value: RStr::from_str(value) }
    }

    /// The header's name, lower-case.
    pub fn name(&self) -> &'a str {
        self.name.as_str()
    }

    /// The header's value.
    pub fn value(&self) -> &'a str {
        self.value.as_str()
    }
}

/// The HTTP request that reached `GET /sso/key/generate`, as the OAuth proxy forwarded it.
///
/// It borrows everything from the server, so building it costs no copies. Every header is here,
/// in the order received, names lower-cased, repeated headers kept (oauth2-proxy sends one
/// `x-forwarded-groups` line per group). Header values are valid UTF-8: the server refuses a
/// request whose headers are not before any hook runs.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct SignInRequest<'a> {
    method: RStr<'a>,
    path: RStr<'a>,
    query: RStr<'a>,
    client_ip: RStr<'a>,
    client_port: u16,
    headers: RSlice<'a, HeaderPair<'a>>,
}

impl<'a> SignInRequest<'a> {
    /// A request view. The server builds these; plugin authors build them in unit tests.
    ///
    /// `query` is the raw query string without `?`; `client_ip` is the TCP peer's address.
    pub fn new(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        client_ip: &'a str,
        client_port: u16,
        headers: &'a [HeaderPair<'a>],
    ) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            client_ip: client_ip.into(),
            client_port,
            headers: headers.into(),
        }
    }

    /// The HTTP method, e.g. `GET`.
    pub fn method(&self) -> &'a str {
        self.method.as_str()
    }

    /// The request path, e.g. `/sso/key/generate`.
    pub fn path(&self) -> &'a str {
        self.path.as_str()
    }

    /// The raw query string, without the `?` (empty when there is none).
    pub fn query(&self) -> &'a str {
        self.query.as_str()
    }

    /// The TCP peer's address as text: the OAuth proxy's, not the browser's.
    pub fn client_addr(&self) -> &'a str {
        self.client_ip.as_str()
    }

    /// The TCP peer's address.
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip.as_str().parse().ok()
    }

    /// The TCP peer's port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Every header line, in order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { inner: self.headers.as_slice().iter() }
    }

    /// The first value of the header `name` (ASCII case-insensitive). An empty value counts as
    /// absent, as an OAuth proxy sends an empty header for "no such claim".
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers_all(name).find(|value| !value.is_empty())
    }

    /// Every value of the header `name`, in order (ASCII case-insensitive).
    pub fn headers_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers()
            .filter(move |header| header.name().eq_ignore_ascii_case(name))
            .map(|header| header.value())
    }

    /// The value of the cookie `name`, from any `cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers_all("cookie").flat_map(|line| line.split(';')).find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
    }

    /// The first value of the query parameter `name`, percent-decoded (`+` is a space).
    /// Invalid UTF-8 after decoding is replaced with U+FFFD.
    pub fn query_param(&self, name: &str) -> Option<Cow<'a, str>> {
        self.query().split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }
}

/// An iterator over a request's header lines.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    inner: std::slice::Iter<'a, HeaderPair<'a>>,
}

impl<'a> Iterator for Headers<'a> {
    type Item = HeaderPair<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

fn percent_decode(input: &str) -> Cow<'_, str> {
    if !input.contains(['%', '+']) {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'+' => out.push(b' '),
            b'%' if idx + 2 < bytes.len() => match (hex(bytes[idx + 1]), hex(bytes[idx + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    idx += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        idx += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: &[HeaderPair<'static>] = &[
        HeaderPair::new("x-forwarded-user", "alice"),
        HeaderPair::new("x-forwarded-groups", "admins"),
        HeaderPair::new("x-forwarded-email", ""),
        HeaderPair::new("x-forwarded-groups", "staff"),
        HeaderPair::new("cookie", "a=1; session=\"abc\""),
        HeaderPair::new("cookie", "b=2"),
        HeaderPair::new("x-forwarded-email", "alice@example.com"),
    ];

    fn request() -> SignInRequest<'static> {
        SignInRequest::new(
            "GET",
            "/sso/key/generate",
            "return_to=%2Fui%2F&x=a+b&bad=%zz&empty",
            "127.0.0.1",
            40000,
            HEADERS,
        )
    }

    #[test]
    fn headers_keep_order_and_repeats() {
        let request = request();
        assert_eq!(request.header("X-Forwarded-User"), Some("alice"));
        assert_eq!(
            request.headers_all("x-forwarded-groups").collect::<Vec<_>>(),
            ["admins", "staff"]
        );
        assert_eq!(
            request.header("x-forwarded-email"),
            Some("alice@example.com"),
            "empty is absent"
        );
        assert_eq!(request.header("x_forwarded_user"), None, "underscores are not dashes");
        assert_eq!(request.headers().count(), HEADERS.len());
    }

    #[test]
    fn cookies_and_query_parameters() {
        let request = request();
        assert_eq!(request.cookie("session"), Some("abc"));
        assert_eq!(request.cookie("b"), Some("2"));
        assert_eq!(request.cookie("missing"), None);
        assert_eq!(request.query_param("return_to").as_deref(), Some("/ui/"));
        assert_eq!(request.query_param("x").as_deref(), Some("a b"));
        assert_eq!(request.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(request.query_param("empty").as_deref(), Some(""));
        assert_eq!(request.query_param("nope"), None);
        assert_eq!(request.client_ip(), Some(IpAddr::from([127, 0, 0, 1])));
    }

    #[test]
    fn percent_decoding_edges() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%41%42"), "AB");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
