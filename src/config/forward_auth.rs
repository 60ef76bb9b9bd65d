//! `[forward_auth]`: what `GET /api/auth/verify` trusts and answers.

use serde::{Deserialize, Deserializer, Serialize};

use super::{HeaderName, Origin};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthSettings {
    pub allow_tokens: bool,
    pub allow_sessions: bool,
    /// Which headers carry the method, host and path of the request the proxy asks about.
    pub request_headers: RequestHeaders,
    pub user_header: HeaderName,
    pub team_header: HeaderName,
    pub full_name_header: HeaderName,
    /// Where a 200 names the token that passed (empty: not sent).
    #[serde(deserialize_with = "header_or_empty")]
    pub token_header: HeaderName,
    pub return_origins: Vec<Origin>,
}

/// The one header set a proxy describes the original request with. The other set is never
/// read: nginx's `auth_request` hands the client's own headers to Lodge, so a set the proxy does
/// not overwrite is the client's to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestHeaders {
    /// None: a token limited to methods or services is refused at the gate.
    #[default]
    None,
    /// `X-Original-Method` and `X-Original-URL` (the documented nginx configuration).
    Original,
    /// `X-Forwarded-Method`, `X-Forwarded-Host` and `X-Forwarded-Uri` (Traefik, Caddy).
    Forwarded,
}

impl RequestHeaders {
    /// The header that carries the method, named in refusals.
    pub fn method_header(self) -> &'static str {
        match self {
            Self::None => "none: forward_auth.request_headers is not set",
            Self::Original => "X-Original-Method",
            Self::Forwarded => "X-Forwarded-Method",
        }
    }

    /// The header that carries the host, named in refusals.
    pub fn host_header(self) -> &'static str {
        match self {
            Self::None => "none: forward_auth.request_headers is not set",
            Self::Original => "X-Original-URL",
            Self::Forwarded => "X-Forwarded-Host",
        }
    }
}

/// A header name, or an empty text for none.
fn header_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(HeaderName(text));
    }
    HeaderName::parse(&text).map_err(serde::de::Error::custom)
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            allow_tokens: true,
            allow_sessions: true,
            request_headers: RequestHeaders::None,
            user_header: HeaderName("X-User".into()),
            team_header: HeaderName("X-Team".into()),
            full_name_header: HeaderName("X-Full-name".into()),
            token_header: HeaderName("X-Lodge-Token".into()),
            return_origins: Vec::new(),
        }
    }
}
