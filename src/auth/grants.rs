//! What a token may do and where: its scopes, the services it may reach through forward auth,
//! and the addresses it may be used from. A session opened with a token carries a copy.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::config::{IpNet, RequestHeaders};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Lodge's GraphQL API as the owner.
    Api,
    /// Lodge's GraphQL API, queries only.
    ReadApi,
    /// Forward auth, any method.
    Proxy,
    /// Forward auth for `GET`, `HEAD` and `OPTIONS` only.
    ReadProxy,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Api, Scope::ReadApi, Scope::Proxy, Scope::ReadProxy];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadApi => "read_api",
            Scope::Proxy => "proxy",
            Scope::ReadProxy => "read_proxy",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown scope `{}`: use api, read_api, proxy or read_proxy",
                    crate::text::bounded(text.trim(), 40)
                ))
            })
    }
}

/// How much of the GraphQL API a caller may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAccess {
    Full,
    ReadOnly,
    None,
}

/// A host pattern with an optional path prefix: `grafana.example.com`, `*.internal.example.com`,
/// `ci.example.com/api/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    /// Lower-case; for `*.example.com`, `example.com` with `any_subdomain`.
    host: String,
    any_subdomain: bool,
    /// Whole segments, without a trailing `/`; empty for any path.
    path: String,
}

impl Service {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "service `{}` {why}: give a host with an optional path, such as \
                 grafana.example.com, *.internal.example.com or ci.example.com/api/",
                crate::text::bounded(text, 80)
            ))
        };
        if text.contains("://") {
            return Err(bad("has a scheme"));
        }
        let (host, path) = match text.find('/') {
            Some(at) => (&text[..at], &text[at..]),
            None => (text, ""),
        };
        let (any_subdomain, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !host_ok {
            return Err(bad("is not a host name"));
        }
        if path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(bad("has a path with spaces, a query or a fragment"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            any_subdomain,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    fn matches(&self, host: &str, path: &str) -> bool {
        let mut host = host;
        // A pattern without a port matches the host on any port.
        if !self.host.contains(':')
            && let Some((name, port)) = host.rsplit_once(':')
            && !name.contains(':')
            && port.bytes().all(|b| b.is_ascii_digit())
        {
            host = name;
        }
        let host_ok = if self.any_subdomain {
            // `host` ends with `.` and the pattern, with at least one letter before the dot.
            host.len() > self.host.len() + 1
                && host.is_char_boundary(host.len() - self.host.len() - 1)
                && host[host.len() - self.host.len()..].eq_ignore_ascii_case(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host.eq_ignore_ascii_case(&self.host)
        };
        host_ok
            && (self.path.is_empty()
                || path.strip_prefix(self.path.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')
                }))
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any_subdomain {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if !self.path.is_empty() {
            write!(f, "{}/", self.path)?;
        }
        Ok(())
    }
}

/// A token's scopes and bounds, as stored (JSON in `api_tokens.grants` and `sessions.grants`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allow_from: Vec<String>,
}

/// What a token may do and where. A token without any (`None` where one is held) may do
/// everything its owner may, from anywhere: CloudBeaver's tokens, and Lodge's before scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    scopes: Vec<Scope>,
    services: Vec<Service>,
    allow_from: Vec<IpNet>,
}

/// Why a use of a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl Grants {
    /// The grants `tokenApiCreate` or `lodge token create` asked for; `None` when they are
    /// today's default (`api` and `proxy`, any service, any address).
    pub fn from_request(
        scopes: Option<&[String]>,
        services: Option<&[String]>,
        allow_from: Option<&[String]>,
    ) -> Result<Option<Self>> {
        let mut parsed_scopes = match scopes {
            None => vec![Scope::Api, Scope::Proxy],
            Some(list) => list
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>>>()?,
        };
        parsed_scopes.sort_by_key(|s| Scope::ALL.iter().position(|a| a == s));
        parsed_scopes.dedup();
        if parsed_scopes.is_empty() {
            return Err(Error::InvalidInput(
                "a token needs at least one scope: api, read_api, proxy or read_proxy".into(),
            ));
        }
        let services = services
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Service::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let allow_from = allow_from
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_net(s))
            .collect::<Result<Vec<_>>>()?;
        if services.len() > 32 || allow_from.len() > 32 {
            return Err(Error::InvalidInput(
                "a token may list at most 32 services and 32 address ranges".into(),
            ));
        }
        let grants = Self {
            scopes: parsed_scopes,
            services,
            allow_from,
        };
        Ok((grants != Self::everything()).then_some(grants))
    }

    /// Every scope, anywhere: what a password session and an unscoped token may do.
    pub fn everything() -> Self {
        Self {
            scopes: vec![Scope::Api, Scope::Proxy],
            services: Vec::new(),
            allow_from: Vec::new(),
        }
    }

    /// The grants as stored.
    pub fn to_stored(&self) -> String {
        let stored = Stored {
            scopes: self.scopes.clone(),
            services: self.services.iter().map(ToString::to_string).collect(),
            allow_from: self.allow_from(),
        };
        serde_json::to_string(&stored).expect("plain data serialises")
    }

    /// Grants read back from the database. A value that does not parse grants nothing: a
    /// token's limits never widen by a damaged row.
    pub fn from_stored(text: &str) -> Self {
        let parsed = serde_json::from_str::<Stored>(text).ok().and_then(|s| {
            Some(Self {
                scopes: s.scopes,
                services: s
                    .services
                    .iter()
                    .map(|x| Service::parse(x).ok())
                    .collect::<Option<_>>()?,
                allow_from: s
                    .allow_from
                    .iter()
                    .map(|x| parse_net(x).ok())
                    .collect::<Option<_>>()?,
            })
        });
        parsed.unwrap_or_else(|| {
            tracing::error!("a token's stored grants do not parse; the token may do nothing");
            Self {
                scopes: Vec::new(),
                services: Vec::new(),
                allow_from: Vec::new(),
            }
        })
    }

    pub fn scopes(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.as_str().to_owned()).collect()
    }

    pub fn services(&self) -> Vec<String> {
        self.services.iter().map(ToString::to_string).collect()
    }

    pub fn allow_from(&self) -> Vec<String> {
        self.allow_from
            .iter()
            .map(|net| format!("{}/{}", net.address, net.prefix))
            .collect()
    }

    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn api(&self) -> ApiAccess {
        if self.has(Scope::Api) {
            ApiAccess::Full
        } else if self.has(Scope::ReadApi) {
            ApiAccess::ReadOnly
        } else {
            ApiAccess::None
        }
    }

    /// Whether the token may be used from `address` (unknown: only when no range is set).
    pub fn check_address(&self, address: Option<IpAddr>) -> std::result::Result<(), Denied> {
        if self.allow_from.is_empty() {
            return Ok(());
        }
        match address {
            Some(ip) if self.allow_from.iter().any(|net| net.contains(ip)) => Ok(()),
            Some(ip) => Err(Denied(format!("not allowed from {ip} (allowFrom)"))),
            None => Err(Denied("the client address is unknown (allowFrom)".into())),
        }
    }

    /// Whether forward auth may let this request through: the proxy scopes and the method, then
    /// the services. `host` and `path` are the original request's, as the proxy passed them in
    /// the header set `from`.
    pub fn check_proxy(
        &self,
        method: Option<&str>,
        host: Option<&str>,
        path: Option<&str>,
        from: RequestHeaders,
    ) -> std::result::Result<(), Denied> {
        if !self.has(Scope::Proxy) {
            if !self.has(Scope::ReadProxy) {
                return Err(Denied("the token has no proxy scope".into()));
            }
            let reading = |m: &str| {
                ["GET", "HEAD", "OPTIONS"]
                    .iter()
                    .any(|r| m.eq_ignore_ascii_case(r))
            };
            match method {
                Some(m) if reading(m) => {}
                Some(other) => {
                    return Err(Denied(format!(
                        "read_proxy allows GET, HEAD and OPTIONS, not {}",
                        crate::text::bounded(other, 20)
                    )));
                }
                None => {
                    return Err(Denied(format!(
                        "read_proxy needs the original method ({})",
                        from.method_header()
                    )));
                }
            }
        }
        if self.services.is_empty() {
            return Ok(());
        }
        let Some(host) = host else {
            return Err(Denied(format!(
                "the token is limited to services and the proxy passed no original host ({})",
                from.host_header()
            )));
        };
        let path = path.unwrap_or("/");
        if self.services.iter().any(|s| s.matches(host, path)) {
            Ok(())
        } else {
            Err(Denied(format!(
                "not allowed for {}{} (services)",
                crate::text::bounded(host, 80),
                crate::text::bounded(path, 80)
            )))
        }
    }
}

fn parse_net(text: &str) -> Result<IpNet> {
    IpNet::parse(text).map_err(|_| {
        Error::InvalidInput(format!(
            "`{}` is not an address or a CIDR range such as 10.0.0.0/8 or 2001:db8::/32",
            crate::text::bounded(text.trim(), 60)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(scopes: &[&str], services: &[&str], from: &[&str]) -> Grants {
        let owned = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Grants::from_request(
            Some(&owned(scopes)),
            Some(&owned(services)),
            Some(&owned(from)),
        )
        .unwrap()
        .unwrap_or_else(Grants::everything)
    }

    #[test]
    fn the_default_is_no_grants_and_unknown_scopes_are_refused() {
        assert_eq!(Grants::from_request(None, None, None).unwrap(), None);
        let same = ["proxy".to_string(), "api".to_string()];
        assert_eq!(Grants::from_request(Some(&same), None, None).unwrap(), None);
        let bad = ["admin".to_string()];
        assert!(Grants::from_request(Some(&bad), None, None).is_err());
        assert!(Grants::from_request(Some(&[]), None, None).is_err());
    }

    #[test]
    fn services_match_hosts_and_whole_path_segments() {
        let g = grants(
            &["proxy"],
            &[
                "Grafana.example.com",
                "*.internal.example.com",
                "ci.example.com/api/",
            ],
            &[],
        );
        let ok = |h: &str, p: &str| {
            g.check_proxy(Some("POST"), Some(h), Some(p), RequestHeaders::Original)
                .is_ok()
        };
        assert!(ok("grafana.example.com", "/d/1"));
        assert!(ok("GRAFANA.example.com", "/"));
        assert!(ok("grafana.example.com:8443", "/"), "any port");
        assert!(!ok("grafana.example.com.evil.net", "/"));
        assert!(ok("a.internal.example.com", "/"));
        assert!(ok("b.a.internal.example.com", "/"));
        assert!(
            !ok("internal.example.com", "/"),
            "*. matches subdomains only"
        );
        assert!(!ok("xinternal.example.com", "/"));
        assert!(ok("ci.example.com", "/api"));
        assert!(ok("ci.example.com", "/api/jobs"));
        assert!(ok("ci.example.com", "/api?x=1"));
        assert!(!ok("ci.example.com", "/apix"), "whole segments");
        assert!(!ok("ci.example.com", "/"));
        assert!(
            g.check_proxy(Some("GET"), None, None, RequestHeaders::Original)
                .is_err(),
            "no host"
        );
    }

    #[test]
    fn read_proxy_allows_reading_methods_only_and_needs_the_method() {
        let g = grants(&["read_proxy"], &[], &[]);
        for m in ["GET", "head", "OPTIONS"] {
            assert!(
                g.check_proxy(Some(m), None, None, RequestHeaders::Original)
                    .is_ok(),
                "{m}"
            );
        }
        assert!(
            g.check_proxy(Some("POST"), None, None, RequestHeaders::Original)
                .is_err()
        );
        assert!(
            g.check_proxy(None, None, None, RequestHeaders::Original)
                .is_err()
        );
        assert!(
            grants(&["api"], &[], &[])
                .check_proxy(Some("GET"), None, None, RequestHeaders::Original)
                .is_err()
        );
    }

    #[test]
    fn addresses_must_fall_in_a_range() {
        let g = grants(&["api"], &[], &["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]);
        assert!(g.check_address(Some("10.1.2.3".parse().unwrap())).is_ok());
        assert!(
            g.check_address(Some("2001:db8::1".parse().unwrap()))
                .is_ok()
        );
        assert!(g.check_address(Some("192.0.2.7".parse().unwrap())).is_ok());
        assert!(g.check_address(Some("192.0.2.8".parse().unwrap())).is_err());
        assert!(g.check_address(Some("127.0.0.1".parse().unwrap())).is_err());
        assert!(g.check_address(None).is_err());
        assert!(Grants::everything().check_address(None).is_ok());
        let bad = ["10.0.0.0/33".to_string()];
        assert!(Grants::from_request(None, None, Some(&bad)).is_err());
    }

    #[test]
    fn grants_survive_storage_and_a_damaged_value_grants_nothing() {
        let g = grants(
            &["read_api", "read_proxy"],
            &["*.example.com/x/"],
            &["10.0.0.0/8"],
        );
        assert_eq!(Grants::from_stored(&g.to_stored()), g);
        let nothing = Grants::from_stored("{not json");
        assert_eq!(nothing.api(), ApiAccess::None);
        assert!(
            nothing
                .check_proxy(Some("GET"), None, None, RequestHeaders::Original)
                .is_err()
        );
    }
}
