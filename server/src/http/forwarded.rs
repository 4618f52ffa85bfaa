//! The client's address behind trusted reverse proxies (`X-Forwarded-For`, RFC 7239 `Forwarded`):
//! rate limits and connection caps key on it instead of the proxy's address.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// The nearest address in the forwarding chain that is not a trusted proxy; the peer itself when
/// the peer is not trusted (headers from untrusted peers are ignored: anyone can send them).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(v) = value.to_str() else { continue };
        for element in v.split(',') {
            for pair in element.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k.trim().eq_ignore_ascii_case("for") {
                    if let Some(ip) = parse_node(v) {
                        chain.push(ip);
                    }
                }
            }
        }
    }
    if chain.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(v) = value.to_str() else { continue };
            chain.extend(v.split(',').filter_map(parse_node));
        }
    }
    // Walk from the nearest hop outwards, skipping our own proxies.
    chain
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// An address as the headers write it: `203.0.113.7`, `"[2001:db8::1]:4711"`, `203.0.113.7:80`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.2");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.9, 203.0.113.7"),
        );
        assert_eq!(
            client_ip(ip("192.0.2.1"), &h, &[proxy]),
            ip("192.0.2.1"),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(proxy, &h, &[proxy]),
            ip("203.0.113.7"),
            "nearest hop"
        );
        let two = [proxy, ip("203.0.113.7")];
        assert_eq!(
            client_ip(proxy, &h, &two),
            ip("198.51.100.9"),
            "skips own proxies"
        );
        h.insert(
            "forwarded",
            HeaderValue::from_static("for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""),
        );
        assert_eq!(
            client_ip(proxy, &h, &[proxy]),
            ip("2001:db8:cafe::17"),
            "Forwarded wins"
        );
        assert_eq!(
            client_ip(proxy, &HeaderMap::new(), &[proxy]),
            proxy,
            "no header"
        );
    }
}
