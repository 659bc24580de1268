//! Who the client is: its address (the TCP peer or, behind a trusted proxy, the nearest
//! untrusted `X-Forwarded-For` hop), and the bucket per-client limits count it in.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::Config;

pub(super) use crate::signin::client_bucket;

/// The client's address: the TCP peer, or — only when the peer is a trusted proxy
/// (`trusted_proxy_ranges`) — the nearest `X-Forwarded-For` hop that is not itself a trusted
/// proxy. The hops are walked from the right (the one the trusted peer appended) leftwards,
/// skipping trusted proxies; the walk stops at the first hop that is not an address, and then
/// the last trusted hop seen stands for the client. Hops left of the answer are never read, so
/// a client reaching the server directly, or writing garbage into the header, cannot choose its
/// address, and cannot make the server discard the hops its proxies appended.
pub(super) fn client_address(config: &Config, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    if !config.is_trusted_proxy(&peer) {
        return peer;
    }
    // Every hop in order, `None` for one that is not an address. Several header lines are one
    // list, in order (RFC 9110, section 5.3).
    let hops: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(line) => line
                .split(',')
                .map(str::trim)
                .filter(|hop| !hop.is_empty())
                .map(parse_hop)
                .collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect();
    let mut nearest = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if config.is_trusted_proxy(&ip) => nearest = ip,
            Some(ip) => return ip,
            None => break,
        }
    }
    nearest
}

/// One `X-Forwarded-For` hop: an address, optionally bracketed (IPv6) or with a port, as some
/// proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|address| address.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_ipv4_as_is() {
        for (a, b) in [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"),
            ("2001:db8:1:2:aaaa::", "2001:db8:1:2::"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            assert_eq!(client_bucket(ip(a)), client_bucket(ip(b)), "{a} and {b}");
        }
        for (a, b) in [
            ("2001:db8:1:2::1", "2001:db8:1:3::1"),
            ("192.0.2.1", "192.0.2.2"),
            ("::1", "::2:0:0:0:1"),
        ] {
            assert_ne!(client_bucket(ip(a)), client_bucket(ip(b)), "{a} and {b}");
        }
        assert_eq!(client_bucket(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
    }

    fn config(trusted: &[&str]) -> Arc<Config> {
        let ranges = trusted.iter().map(|range| format!("{range:?}")).collect::<Vec<_>>();
        let text = format!("general_settings:\n  trusted_proxy_ranges: [{}]\n", ranges.join(", "));
        let file = std::path::Path::new("/nonexistent/config.yaml");
        Arc::new(Config::from_text(file, &text, &|_| None).unwrap())
    }

    fn forwarded(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    #[test]
    fn forwarded_hops_are_walked_from_the_right_up_to_the_first_untrusted_or_unreadable_one() {
        let config = config(&["127.0.0.1/32", "10.0.0.0/8"]);
        let proxy = ip("127.0.0.1");
        let check = |lines: &[&[u8]], expected: &str| {
            assert_eq!(
                client_address(&config, proxy, &forwarded(lines)),
                ip(expected),
                "{:?}",
                lines.iter().map(|line| String::from_utf8_lossy(line)).collect::<Vec<_>>()
            );
        };
        check(&[b"203.0.113.10"], "203.0.113.10");
        // A client's own garbage left of what the proxy appended changes nothing.
        check(&[b"not-an-ip, 203.0.113.10"], "203.0.113.10");
        check(&[b"198.51.100.1, not-an-ip, 203.0.113.10"], "203.0.113.10");
        check(&[b"not-an-ip", b"203.0.113.10"], "203.0.113.10");
        check(&[b"\xff\xfe", b"203.0.113.10"], "203.0.113.10");
        // Trusted proxies on the way are skipped; the client is the first untrusted hop.
        check(&[b"198.51.100.1, 203.0.113.10, 10.1.2.3, 10.4.5.6"], "203.0.113.10");
        // Ports and brackets, as some proxies write them.
        check(&[b"203.0.113.10:4711"], "203.0.113.10");
        check(&[b"[2001:db8::7]:443"], "2001:db8::7");
        check(&[b"[2001:db8::7]"], "2001:db8::7");
        check(&[b"::ffff:203.0.113.10"], "203.0.113.10");
        // Nothing readable right of the trusted hops: the nearest trusted hop stands for it.
        check(&[b"203.0.113.10, not-an-ip"], "127.0.0.1");
        check(&[b"203.0.113.10, junk, 10.1.2.3"], "10.1.2.3");
        check(&[b"10.1.2.3"], "10.1.2.3");
        check(&[], "127.0.0.1");
        // An untrusted peer's header is never read.
        let direct = ip("192.0.2.9");
        assert_eq!(client_address(&config, direct, &forwarded(&[b"203.0.113.10"])), direct);
    }
}
