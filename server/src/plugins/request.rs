//! Building the request view a sign-in hook sees, straight from the HTTP request: the view
//! borrows the header map, so no header is copied.

use std::net::SocketAddr;

use http::HeaderMap;
use plugin_api::{HeaderPair, SignInRequest};

/// A header whose value is not UTF-8, which no hook can be handed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value of request header `{name}` is not valid UTF-8")]
pub struct InvalidHeader {
    /// The header's name.
    pub name: String,
}

/// Every header line, in order, names lower-case (the `http` crate keeps them so), values
/// checked to be UTF-8.
pub fn header_pairs(headers: &HeaderMap) -> Result<Vec<HeaderPair<'_>>, InvalidHeader> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let value = std::str::from_utf8(value.as_bytes())
            .map_err(|_| InvalidHeader { name: name.as_str().to_owned() })?;
        pairs.push(HeaderPair::new(name.as_str(), value));
    }
    Ok(pairs)
}

/// The longest header value a sign-in hook is handed.
pub const MAX_HEADER_VALUE: usize = 8 * 1024;
/// The most header bytes (names and values) a sign-in hook is handed.
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;

/// Why a request cannot be handed to a sign-in hook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnfitRequest {
    /// A header value is over [`MAX_HEADER_VALUE`], or the headers over [`MAX_HEADERS_TOTAL`].
    #[error(
        "request header `{name}` is {len} bytes long; at most {MAX_HEADER_VALUE} bytes per value \
         and {MAX_HEADERS_TOTAL} in all are accepted"
    )]
    TooLarge {
        /// The header that went over.
        name: String,
        /// Its value's length.
        len: usize,
    },
    /// A header value is not UTF-8.
    #[error(transparent)]
    NotUtf8(#[from] InvalidHeader),
}

/// A request a sign-in hook may be handed: its line and its headers, checked for size and
/// UTF-8. Owned, so it can move to the hook's thread; the sign-in flow sees no HTTP types.
#[derive(Debug)]
pub struct HookRequest {
    line: RequestLine,
    headers: HeaderMap,
}

impl HookRequest {
    /// Checks `headers` and keeps them with `line`.
    ///
    /// # Errors
    /// A header too long (or too many bytes in all), or not UTF-8.
    pub fn new(line: RequestLine, headers: HeaderMap) -> Result<HookRequest, UnfitRequest> {
        let mut total = 0;
        for (name, value) in &headers {
            total += name.as_str().len() + value.len();
            if value.len() > MAX_HEADER_VALUE || total > MAX_HEADERS_TOTAL {
                return Err(UnfitRequest::TooLarge {
                    name: name.as_str().to_owned(),
                    len: value.len(),
                });
            }
        }
        header_pairs(&headers)?;
        Ok(HookRequest { line, headers })
    }

    /// Calls `f` with the hook's view of the request.
    pub fn with_view<T>(&self, f: impl FnOnce(&SignInRequest<'_>) -> T) -> T {
        let pairs = header_pairs(&self.headers).expect("checked in HookRequest::new");
        f(&self.line.view(&pairs))
    }
}

/// The parts of a request a [`SignInRequest`] borrows, besides the headers.
#[derive(Debug, Clone)]
pub struct RequestLine {
    /// `GET`.
    pub method: String,
    /// `/sso/key/generate`.
    pub path: String,
    /// The raw query, without `?`.
    pub query: String,
    /// The TCP peer's address as text.
    pub peer_ip: String,
    /// The TCP peer's port.
    pub peer_port: u16,
}

impl RequestLine {
    /// The request line of `method path?query` from `peer`.
    pub fn new(method: &http::Method, uri: &http::Uri, peer: SocketAddr) -> Self {
        Self {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            peer_ip: peer.ip().to_canonical().to_string(),
            peer_port: peer.port(),
        }
    }

    /// The view of this request with `headers`.
    pub fn view<'a>(&'a self, headers: &'a [HeaderPair<'a>]) -> SignInRequest<'a> {
        SignInRequest::new(
            &self.method,
            &self.path,
            &self.query,
            &self.peer_ip,
            self.peer_port,
            headers,
        )
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn headers_keep_order_repeats_and_utf8() {
        let mut headers = HeaderMap::new();
        headers.append("X-Forwarded-Groups", HeaderValue::from_static("admins"));
        headers.append("x-forwarded-user", HeaderValue::from_static("alice"));
        headers.append("x-forwarded-groups", HeaderValue::from_static("staff"));
        headers.append("x-forwarded-name", HeaderValue::from_bytes("José".as_bytes()).unwrap());
        let pairs = header_pairs(&headers).unwrap();
        let line = RequestLine::new(
            &http::Method::GET,
            &"/sso/key/generate?a=1".parse().unwrap(),
            "[::ffff:127.0.0.1]:4000".parse().unwrap(),
        );
        let view = line.view(&pairs);
        assert_eq!(view.headers_all("x-forwarded-groups").collect::<Vec<_>>(), ["admins", "staff"]);
        assert_eq!(view.header("x-forwarded-name"), Some("José"));
        assert_eq!(view.client_addr(), "127.0.0.1", "IPv4-mapped addresses are shown as IPv4");
        assert_eq!((view.path(), view.query()), ("/sso/key/generate", "a=1"));
    }

    proptest::proptest! {
        #[test]
        fn any_header_bytes_convert_or_are_refused_by_name(
            headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,20}", proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..12),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
                    map.append(name, value);
                }
            }
            match header_pairs(&map) {
                Ok(pairs) => {
                    proptest::prop_assert_eq!(pairs.len(), map.len());
                    for (pair, (name, value)) in pairs.iter().zip(map.iter()) {
                        proptest::prop_assert_eq!(pair.name(), name.as_str());
                        proptest::prop_assert_eq!(pair.value().as_bytes(), value.as_bytes());
                    }
                }
                Err(error) => {
                    let bad = map.iter().find(|(_, value)| std::str::from_utf8(value.as_bytes()).is_err());
                    proptest::prop_assert_eq!(Some(error.name.as_str()), bad.map(|(name, _)| name.as_str()));
                }
            }
        }
    }

    #[test]
    fn a_non_utf8_value_is_refused_by_name() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-user", HeaderValue::from_bytes(b"\xffalice").unwrap());
        let err = header_pairs(&headers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value of request header `x-forwarded-user` is not valid UTF-8"
        );
    }
}
