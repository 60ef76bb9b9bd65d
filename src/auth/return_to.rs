//! Where the login page may send a browser after login: never to an origin nobody allowed.

use crate::config::ForwardAuthSettings;

/// The longest `return_to` accepted.
const MAX_LEN: usize = 2048;

/// `target` when it is a path on Lodge, or an absolute http(s) URL on Lodge's own host
/// (`own_host`, the request's Host), on `public_url`'s origin, or on one of
/// `forward_auth.return_origins`; otherwise nothing.
pub fn allowed_return(
    target: &str,
    own_host: Option<&str>,
    public_origin: Option<&str>,
    rules: &ForwardAuthSettings,
) -> Option<String> {
    let target = target.trim();
    let plain = target.len() <= MAX_LEN
        && !target.is_empty()
        && !target
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\');
    if !plain {
        return None;
    }
    if target.starts_with('/') {
        // `//host/path` is another origin to a browser.
        return (!target.starts_with("//")).then(|| target.to_owned());
    }
    let (scheme, rest) = target.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let origin = format!("{scheme}://{authority}");
    let allowed = own_host.is_some_and(|host| host.eq_ignore_ascii_case(&authority))
        || public_origin == Some(origin.as_str())
        || rules.return_origins.iter().any(|o| o.0 == origin);
    allowed.then(|| target.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    #[test]
    fn only_allowed_origins_and_local_paths_pass() {
        let rules = ForwardAuthSettings {
            return_origins: vec![Origin("https://grafana.example.com".into())],
            ..ForwardAuthSettings::default()
        };
        let check = |t: &str| {
            allowed_return(
                t,
                Some("lodge.local:8978"),
                Some("https://lodge.example.com"),
                &rules,
            )
        };
        let allowed = [
            "/",
            "/api/gql/console?x=1",
            "http://lodge.local:8978/somewhere",
            "https://lodge.example.com/",
            "https://GRAFANA.example.com/d/abc?x=1#y",
        ];
        for target in allowed {
            assert_eq!(check(target).as_deref(), Some(target), "{target}");
        }
        let refused = [
            "",
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "https://grafana.example.com.evil.example/",
            "https://grafana.example.com@evil.example/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://lodge.example.com:8443/",
            "http://grafana.example.com/",
            "https://evil.example/ https://grafana.example.com/",
            "ftp://grafana.example.com/",
        ];
        for target in refused {
            assert_eq!(check(target), None, "{target}");
        }
    }
}
