//! Who is calling: the client's address and whether its connection used TLS, as the connection
//! shows them, or as the proxies in `[server] trusted_proxies` report them (`X-Forwarded-For` and
//! `X-Forwarded-Proto`, or RFC 7239 `Forwarded`, per `[server] proxy_headers`). Nobody else's
//! forwarding headers are believed. Pure: no I/O.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::ProxyHeaders;

/// The client of one request, put into the request's extensions by the server: policies'
/// `aws:SourceIp` and `aws:SecureTransport`, the failed-login limiter and (later) the console's
/// `Secure` cookie flag read it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address: the connection's peer, or the first address trusted proxies name
    /// that is not itself a trusted proxy.
    pub ip: IpAddr,
    /// Whether the client reached the registry over TLS: Berth's own listener, or what the
    /// trusted proxy nearest to the client says about its hop.
    pub secure: bool,
}

/// Resolves [`ClientInfo`] from a connection and a request's headers.
#[derive(Debug, Clone)]
pub struct ClientResolver {
    trusted: Vec<IpNet>,
    headers: ProxyHeaders,
}

/// A hop that a forwarding header names: its address when it is one (`unknown`, obfuscated
/// names and garbage are `None`) and, for `Forwarded`, the protocol it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hop {
    addr: Option<IpAddr>,
    secure: Option<bool>,
}

impl ClientResolver {
    pub fn new(trusted: Vec<IpNet>, headers: ProxyHeaders) -> ClientResolver {
        ClientResolver { trusted, headers }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that arrived from `peer`, over TLS when `tls`. The forwarding
    /// headers are read only when `peer` is a trusted proxy; they are walked from the right (the
    /// entry the nearest proxy appended) past every trusted proxy, and the first address that is
    /// not one is the client, so entries a client wrote itself further left are never reached.
    pub fn resolve(&self, peer: IpAddr, tls: bool, headers: &HeaderMap) -> ClientInfo {
        let peer = peer.to_canonical();
        let mut client = ClientInfo {
            ip: peer,
            secure: tls,
        };
        if !self.trusts(peer) {
            return client;
        }
        let hops = match self.headers {
            ProxyHeaders::XForwarded => {
                // The protocol the nearest proxy reports (a proxy that appends puts its own last).
                if let Some(proto) = list_values(headers, "x-forwarded-proto").last() {
                    client.secure = proto.eq_ignore_ascii_case("https");
                }
                list_values(headers, "x-forwarded-for")
                    .iter()
                    .map(|v| Hop {
                        addr: parse_node(v),
                        secure: None,
                    })
                    .collect()
            }
            ProxyHeaders::Forwarded => forwarded_hops(headers),
        };
        for hop in hops.iter().rev() {
            // A trusted proxy wrote this hop; an entry it could not name ends the walk at it.
            let Some(addr) = hop.addr else { break };
            client.ip = addr.to_canonical();
            if let Some(secure) = hop.secure {
                client.secure = secure;
            }
            if !self.trusts(client.ip) {
                break;
            }
        }
        client
    }
}

/// The comma-separated values of every `name` header, in order.
fn list_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<IpAddr>().ok())
}

/// The elements of every `Forwarded` header (RFC 7239), in order, as hops.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            // An element we cannot read: the walk must stop there, not skip it.
            hops.push(Hop {
                addr: None,
                secure: None,
            });
            continue;
        };
        for element in split_unquoted(value, ',') {
            let mut hop = Hop {
                addr: None,
                secure: None,
            };
            for pair in split_unquoted(&element, ';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = unquote(value.trim());
                match name.trim().to_ascii_lowercase().as_str() {
                    "for" => hop.addr = parse_node(&value),
                    "proto" => hop.secure = Some(value.eq_ignore_ascii_case("https")),
                    _ => {}
                }
            }
            hops.push(hop);
        }
    }
    hops
}

/// Splits at `sep` outside double quotes; empty pieces are dropped.
fn split_unquoted(text: &str, sep: char) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            pieces.push(std::mem::take(&mut piece));
            continue;
        }
        piece.push(c);
    }
    pieces.push(piece);
    pieces
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A token, or a quoted-string without its quotes and escapes.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(trusted: &[&str], headers: ProxyHeaders) -> ClientResolver {
        ClientResolver::new(
            trusted.iter().map(|t| t.parse().unwrap()).collect(),
            headers,
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const LB: &str = "10.0.0.5";

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let r = resolver(&["10.0.0.0/8"], ProxyHeaders::XForwarded);
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            r.resolve(ip("198.51.100.1"), false, &h),
            ClientInfo {
                ip: ip("198.51.100.1"),
                secure: false
            }
        );
        // Nobody is trusted by default.
        let none = resolver(&[], ProxyHeaders::XForwarded);
        assert_eq!(none.resolve(ip(LB), true, &h).ip, ip(LB));
        assert!(none.resolve(ip(LB), true, &h).secure);
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let r = resolver(&["10.0.0.0/8"], ProxyHeaders::XForwarded);
        let client = |xff: &str| {
            r.resolve(ip(LB), false, &headers(&[("x-forwarded-for", xff)]))
                .ip
        };
        assert_eq!(client("203.0.113.7"), ip("203.0.113.7"));
        // A client that writes its own header cannot choose its address: the proxy appended
        // the real one.
        assert_eq!(client("192.0.2.66, 203.0.113.7"), ip("203.0.113.7"));
        // Two trusted proxies in a row.
        assert_eq!(
            client("192.0.2.66, 203.0.113.7, 10.1.1.1"),
            ip("203.0.113.7")
        );
        // Ports, brackets, IPv6.
        assert_eq!(client("203.0.113.7:51234"), ip("203.0.113.7"));
        assert_eq!(client("[2001:db8::7]:443"), ip("2001:db8::7"));
        assert_eq!(client("2001:db8::7"), ip("2001:db8::7"));
        // Every hop trusted: the leftmost is the client.
        assert_eq!(client("10.9.9.9, 10.1.1.1"), ip("10.9.9.9"));
        // Garbage where the client should be: the proxy that wrote it is all we know.
        assert_eq!(client("203.0.113.7, unknown"), ip(LB));
        assert_eq!(client("203.0.113.7, unknown, 10.1.1.1"), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(r.resolve(ip(LB), false, &HeaderMap::new()).ip, ip(LB));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.66"),
            ("x-forwarded-for", "203.0.113.7"),
        ]);
        assert_eq!(r.resolve(ip(LB), false, &h).ip, ip("203.0.113.7"));
        // An IPv4-mapped peer (a dual-stack listener) matches IPv4 networks.
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            r.resolve(ip("::ffff:10.0.0.5"), false, &h).ip,
            ip("203.0.113.7")
        );
    }

    #[test]
    fn x_forwarded_proto_from_a_trusted_proxy_sets_secure_transport() {
        let r = resolver(&["127.0.0.1/32"], ProxyHeaders::XForwarded);
        let secure = |pairs: &[(&'static str, &str)], tls: bool| {
            r.resolve(ip("127.0.0.1"), tls, &headers(pairs)).secure
        };
        assert!(secure(&[("x-forwarded-proto", "https")], false));
        assert!(secure(&[("x-forwarded-proto", "HTTPS")], false));
        assert!(!secure(&[("x-forwarded-proto", "http")], true));
        // The nearest proxy's word counts.
        assert!(!secure(&[("x-forwarded-proto", "https, http")], false));
        // No claim: the connection's own transport.
        assert!(secure(&[], true));
        assert!(!secure(&[], false));
        // `Forwarded` is not read when the proxies set X-Forwarded-*.
        assert!(!secure(
            &[("forwarded", "for=203.0.113.7;proto=https")],
            false
        ));
        assert_eq!(
            r.resolve(
                ip("127.0.0.1"),
                false,
                &headers(&[("forwarded", "for=203.0.113.7")])
            )
            .ip,
            ip("127.0.0.1")
        );
    }

    #[test]
    fn forwarded_elements_name_each_hop_and_its_protocol() {
        let r = resolver(&["10.0.0.0/8"], ProxyHeaders::Forwarded);
        let resolve = |value: &str| r.resolve(ip(LB), false, &headers(&[("forwarded", value)]));
        assert_eq!(
            resolve("for=203.0.113.7;proto=https"),
            ClientInfo {
                ip: ip("203.0.113.7"),
                secure: true
            }
        );
        assert_eq!(
            resolve(r#"For="[2001:db8:cafe::17]:4711";Proto=http;by=10.0.0.5"#),
            ClientInfo {
                ip: ip("2001:db8:cafe::17"),
                secure: false
            }
        );
        // The client's own element is to the left of the proxies'; the hop that names the
        // client carries its protocol.
        assert_eq!(
            resolve(
                "for=192.0.2.66;proto=https, for=203.0.113.7;proto=http, for=10.1.1.1;proto=https"
            ),
            ClientInfo {
                ip: ip("203.0.113.7"),
                secure: false
            }
        );
        // Quoted commas and semicolons do not split.
        assert_eq!(
            resolve(r#"for=203.0.113.7;ext="a,b;c";proto=https"#).ip,
            ip("203.0.113.7")
        );
        // Obfuscated or unknown: the proxy that wrote it.
        assert_eq!(resolve("for=_hidden;proto=https").ip, ip(LB));
        assert_eq!(resolve("for=unknown").ip, ip(LB));
        // X-Forwarded-* is not read when the proxies set Forwarded.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            r.resolve(ip(LB), false, &h),
            ClientInfo {
                ip: ip(LB),
                secure: false
            }
        );
    }
}
