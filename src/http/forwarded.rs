//! What a request looked like to the client, when a trusted proxy stands between: its address
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded: for=`), and the scheme and host it used
//! (`X-Forwarded-Proto` and `X-Forwarded-Host`, or `Forwarded: proto=` and `host=`). From any
//! other peer these headers are the client's own claims and are ignored.

use std::net::IpAddr;

use actix_web::{HttpRequest, http::header};

use crate::config::IpNet;

/// The origin a request was made to, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Whether the client used https: Lodge's own TLS, or a trusted proxy's word.
    pub https: bool,
    /// The host (and port) the client used: a trusted proxy's word, else `Host`.
    pub host: Option<String>,
    /// Whether `host` is a trusted proxy's word: the proxy chose to serve that name.
    pub vouched: bool,
}

fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// Whether the request came straight from a trusted proxy.
fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    req.peer_addr()
        .is_some_and(|peer| is_trusted(trusted, peer.ip()))
}

/// The values of a header, every comma-separated element of every line, in order.
fn elements<'r>(req: &'r HttpRequest, name: &str) -> impl Iterator<Item = &'r str> {
    req.headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// A parameter of one element of `Forwarded` (`for=`, `proto=`, `host=`), unquoted.
fn parameter<'e>(element: &'e str, name: &str) -> Option<&'e str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address of `Forwarded: for=`: `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`.
fn forwarded_for(value: &str) -> Option<IpAddr> {
    if let Ok(ip) = value.parse() {
        return Some(ip);
    }
    if let Some(bracketed) = value.strip_prefix('[') {
        return bracketed.split_once(']')?.0.parse().ok();
    }
    value.rsplit_once(':')?.0.parse().ok()
}

/// The peer's address, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` (or, without it, in `Forwarded: for=`) that is not one of the trusted
/// proxies: every proxy appends the address it was reached from, so entries on the left may be
/// the client's forgeries.
pub fn client_address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let mut forwarded: Vec<IpAddr> = elements(req, "x-forwarded-for")
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if forwarded.is_empty() {
        forwarded = elements(req, "forwarded")
            .filter_map(|e| forwarded_for(parameter(e, "for")?))
            .collect();
    }
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(trusted, *ip))
            .unwrap_or(peer),
    )
}

/// The scheme and host the client used. `tls`: Lodge itself serves https. From a trusted proxy,
/// the first element of `Forwarded` with `proto=` or `host=`, else the first of
/// `X-Forwarded-Proto` and `X-Forwarded-Host`: the proxy the client reached writes it (nginx's
/// `proxy_set_header` replaces what the client sent).
pub fn seen(req: &HttpRequest, trusted: &[IpNet], tls: bool) -> Seen {
    let own_host = || {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if !from_trusted_proxy(req, trusted) {
        return Seen {
            https: tls,
            host: own_host(),
            vouched: false,
        };
    }
    let standard = elements(req, "forwarded").next();
    let proto = standard
        .and_then(|e| parameter(e, "proto"))
        .or_else(|| elements(req, "x-forwarded-proto").next());
    let host = standard
        .and_then(|e| parameter(e, "host"))
        .or_else(|| elements(req, "x-forwarded-host").next())
        .filter(|h| is_host(h));
    Seen {
        https: match proto {
            Some(proto) => proto.eq_ignore_ascii_case("https"),
            None => tls,
        },
        vouched: host.is_some(),
        host: host.map(str::to_owned).or_else(own_host),
    }
}

/// Whether `text` can be a host with an optional port: nothing a URL would read otherwise.
fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn trusted() -> [IpNet; 2] {
        [
            IpNet::parse("127.0.0.1").unwrap(),
            IpNet::parse("10.0.0.0/30").unwrap(),
        ]
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = TestRequest::default()
            .peer_addr(format!("{peer}:4000").parse().unwrap())
            .insert_header(("Host", "127.0.0.1:8978"));
        for header in headers {
            req = req.append_header(*header);
        }
        req.to_http_request()
    }

    #[test]
    fn the_client_address_is_the_rightmost_that_no_trusted_proxy_wrote() {
        let from = |peer: &str, forwarded: &[&str]| {
            let headers: Vec<_> = forwarded.iter().map(|v| ("X-Forwarded-For", *v)).collect();
            client_address(&request(peer, &headers), &trusted()).map(|ip| ip.to_string())
        };
        let cases = [
            (
                "an untrusted peer's own claim",
                "203.0.113.9",
                &["1.2.3.4"][..],
                "203.0.113.9",
            ),
            ("one proxy", "127.0.0.1", &["198.51.100.7"], "198.51.100.7"),
            (
                "a client's forged entries on the left",
                "127.0.0.1",
                &["1.2.3.4, 5.6.7.8, 198.51.100.7"],
                "198.51.100.7",
            ),
            (
                "two proxies, two headers",
                "127.0.0.1",
                &["1.2.3.4", "198.51.100.7, 10.0.0.2"],
                "198.51.100.7",
            ),
            (
                "garbage on the right",
                "127.0.0.1",
                &["198.51.100.7, nonsense"],
                "198.51.100.7",
            ),
            (
                "a trusted peer without the header",
                "127.0.0.1",
                &[],
                "127.0.0.1",
            ),
        ];
        for (case, peer, forwarded, expected) in cases {
            assert_eq!(from(peer, forwarded).as_deref(), Some(expected), "{case}");
        }
    }

    #[test]
    fn rfc_7239_forwarded_gives_the_address_without_x_forwarded_for() {
        let address = |peer: &str, value: &str| {
            client_address(&request(peer, &[("Forwarded", value)]), &trusted())
                .map(|ip| ip.to_string())
        };
        assert_eq!(
            address("127.0.0.1", "for=1.2.3.4, for=198.51.100.7;proto=https").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            address("127.0.0.1", "for=\"[2001:db8::7]:4711\"").as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(
            address("127.0.0.1", "For=\"198.51.100.7:80\"").as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(
            address("203.0.113.9", "for=1.2.3.4").as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn the_scheme_and_host_are_a_trusted_proxys_word_only() {
        let https_proxy = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "lodge.example.com"),
        ];
        assert_eq!(
            seen(&request("127.0.0.1", &https_proxy), &trusted(), false),
            Seen {
                https: true,
                host: Some("lodge.example.com".into()),
                vouched: true
            }
        );
        assert_eq!(
            seen(&request("203.0.113.9", &https_proxy), &trusted(), false),
            Seen {
                https: false,
                host: Some("127.0.0.1:8978".into()),
                vouched: false
            },
            "a client's own claim"
        );
        let standard = [(
            "Forwarded",
            "for=198.51.100.7;proto=https;host=\"lodge.example.com:8443\"",
        )];
        assert_eq!(
            seen(&request("10.0.0.1", &standard), &trusted(), false),
            Seen {
                https: true,
                host: Some("lodge.example.com:8443".into()),
                vouched: true
            }
        );
        let proto_only = [("X-Forwarded-Proto", "https")];
        let seen_proto = seen(&request("127.0.0.1", &proto_only), &trusted(), false);
        assert!(seen_proto.https && !seen_proto.vouched);
        assert_eq!(seen_proto.host.as_deref(), Some("127.0.0.1:8978"));
        let odd_host = [("X-Forwarded-Host", "evil.example/path")];
        assert!(!seen(&request("127.0.0.1", &odd_host), &trusted(), false).vouched);
        assert!(
            seen(&request("203.0.113.9", &[]), &trusted(), true).https,
            "Lodge's TLS"
        );
    }
}
