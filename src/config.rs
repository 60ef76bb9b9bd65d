//! Settings: built-in defaults, then `config.toml` (or `--config PATH`), then `LODGE_*` variables.

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment, Provider as _,
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Value},
};
use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Deserialize` for settings written as text, through each type's
/// `parse(&str) -> Result<Self, String>`: a bad value's message is the parser's.
macro_rules! deserialize_by_parse {
    ($($type:ty),+) => {$(
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                <$type>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    )+};
}
pub(crate) use deserialize_by_parse;

deserialize_by_parse!(IpNet, HeaderName, Duration, PublicUrl);

mod database;
mod forward_auth;
mod log;
mod metrics;
mod password;
pub use crate::notify::config::{NotifyEvent, NotifyFormat, NotifySettings, WebhookUrl};
pub use database::{DatabaseSettings, DatabaseUrl};
pub use forward_auth::{ForwardAuthSettings, RequestHeaders};
pub use log::{LogFormat, LogLevel, LogSettings};
pub use metrics::MetricsSettings;
pub use password::PasswordSettings;

/// The file read when no `--config` is given; it may be absent.
pub const DEFAULT_FILE: &str = "config.toml";

/// Every setting of the server, read once at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub admin: AdminSettings,
    pub session: SessionSettings,
    pub password: PasswordSettings,
    pub graphql: GraphqlSettings,
    pub tokens: TokenSettings,
    pub forward_auth: ForwardAuthSettings,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    pub notify: NotifySettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_url: PublicUrl,
    pub trusted_proxies: Vec<IpNet>,
    pub shutdown_timeout: Duration,
    /// How long a request body may take to arrive, from its headers to its last byte.
    pub body_timeout: Duration,
    /// Connections open at once; beyond, new ones wait to be accepted.
    pub max_connections: u32,
    /// Connections one client address may hold open; beyond, a new one is closed at once. 0:
    /// no limit. `trusted_proxies` are not limited.
    pub max_connections_per_address: u32,
    /// Host names (and `host:port`) browsers may reach the API at besides loopback and IP
    /// addresses, when `public_url` is not set.
    pub allowed_hosts: Vec<String>,
    /// A PEM certificate chain to serve https with; empty: plain http.
    pub tls_cert: PathBuf,
    /// Its PEM private key.
    pub tls_key: PathBuf,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    pub user: String,
    pub password: String,
    /// A file holding the password instead (its first line); empty: none.
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// Password sessions one user may hold; a password login beyond ends their oldest.
    pub max_per_user: u32,
    /// Sessions each API token may hold; a token login beyond ends that token's oldest.
    pub max_per_token: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlSettings {
    pub introspection: bool,
    pub console: bool,
    pub max_depth: usize,
    pub max_tokens: usize,
    pub max_fields: usize,
    pub max_logins_per_request: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    pub admins_only: bool,
    pub max_per_user: u32,
    pub default_lifetime: Lifetime,
    pub allow_never: bool,
    pub end_sessions_on_delete: bool,
    pub keep_expired: Duration,
    /// A token expiring within this is marked as expiring soon.
    pub warn_before: Duration,
    /// The longest grace a rotation may give the previous secret.
    pub max_rotation_grace: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    pub retention: Duration,
    /// Events kept at most; housekeeping removes the oldest beyond.
    pub max_events: u32,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: Duration(SignedDuration::from_hours(90 * 24)),
            max_events: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub account_failures: u32,
    pub account_lock: Duration,
    /// The longest lock, however many failures follow it.
    pub account_lock_max: Duration,
    pub address_burst: u32,
    pub address_refill: Duration,
    /// Password hashes computed at once, each with 19 MiB; 0: one a core.
    pub password_hashes_at_once: u32,
    /// Reports of leaked tokens (`POST /api/tokens/revoke`) one client address may send a minute.
    pub revoke_per_minute: u32,
    /// The IPv6 prefix one client holds: its addresses share one budget (0 to 128).
    pub ipv6_prefix: Ipv6Prefix,
}

/// How many leading bits of an IPv6 address name one client: a home or an office is given a
/// whole /64 and may send from any address in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ipv6Prefix(pub u8);

impl<'de> Deserialize<'de> for Ipv6Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bits = u32::deserialize(deserializer)?;
        u8::try_from(bits)
            .ok()
            .filter(|b| *b <= 128)
            .map(Self)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{bits} is not an IPv6 prefix length: 0 to 128 (64: a home's or an office's network)"
                ))
            })
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            account_failures: 10,
            account_lock: Duration(SignedDuration::from_mins(5)),
            account_lock_max: Duration(SignedDuration::from_hours(1)),
            address_burst: 30,
            address_refill: Duration(SignedDuration::from_secs(2)),
            password_hashes_at_once: 1,
            revoke_per_minute: 10,
            ipv6_prefix: Ipv6Prefix(64),
        }
    }
}

/// An address or a network in CIDR form: `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub address: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not an IP address or network such as 10.0.0.0/8");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}/{}", self.address, self.prefix))
    }
}

/// An HTTP header name: letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub String);

impl HeaderName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid =
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a header name (letters, digits and -)"
            ))
        }
    }
}

impl Serialize for HeaderName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A web origin, `scheme://host[:port]`, such as `https://grafana.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(pub String);

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match PublicUrl::parse(&text).map_err(serde::de::Error::custom)?.0 {
            Some(origin) => Ok(Origin(origin)),
            None => Err(serde::de::Error::custom("an origin may not be empty")),
        }
    }
}

impl ServerSettings {
    /// Whether browsers may use the server at `authority` (a `Host` header: a name or address
    /// with an optional port): an IP address, `localhost`, or one of `allowed_hosts`. Any other
    /// name may be an attacker's, pointed at this server by DNS rebinding.
    pub fn is_allowed_host(&self, authority: &str) -> bool {
        let authority = authority.trim().to_ascii_lowercase();
        let host = if authority.starts_with('[') {
            return authority.contains(']');
        } else {
            authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h)
        };
        host.parse::<IpAddr>().is_ok()
            || host == "localhost"
            || host.ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .any(|a| a == authority || a == host)
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8978,
            public_url: PublicUrl::default(),
            trusted_proxies: Vec::new(),
            shutdown_timeout: Duration(SignedDuration::from_secs(10)),
            body_timeout: Duration(SignedDuration::from_secs(10)),
            max_connections: 512,
            max_connections_per_address: 64,
            allowed_hosts: Vec::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            user: "admin".into(),
            password: String::new(),
            password_file: PathBuf::new(),
        }
    }
}

impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("AdminSettings")
            .field("user", &self.user)
            .field("password", &password)
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration(SignedDuration::from_mins(30)),
            max_lifetime: Duration(SignedDuration::from_hours(12)),
            max_per_user: 20,
            max_per_token: 100,
        }
    }
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self {
            introspection: true,
            console: true,
            max_depth: 32,
            max_tokens: 5_000,
            max_fields: 1_000,
            max_logins_per_request: 5,
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            admins_only: true,
            max_per_user: 5,
            default_lifetime: Lifetime::Month,
            allow_never: true,
            end_sessions_on_delete: true,
            keep_expired: Duration(SignedDuration::from_hours(30 * 24)),
            warn_before: Duration(SignedDuration::from_hours(7 * 24)),
            max_rotation_grace: Duration(SignedDuration::from_hours(7 * 24)),
        }
    }
}

/// How long a new API token lives: the profile page's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifetime {
    Day,
    Week,
    Month,
    Year,
    Never,
}

/// A positive length of time written in jiff's friendly format (`30m`, `12h`, `1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub SignedDuration);

impl Duration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let span: Span = text
            .trim()
            .parse()
            .map_err(|e| format!("`{text}` is not a duration such as 30m, 12h or 1d ({e})"))?;
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| format!("`{text}` uses months or years; write it in days (30d)"))?;
        if duration <= SignedDuration::ZERO {
            return Err(format!("`{text}` must be longer than zero"));
        }
        Ok(Self(duration))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let printer = jiff::fmt::friendly::SpanPrinter::new();
        f.write_str(&printer.duration_to_string(&self.0))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The address people reach the server at, such as `https://lodge.example.com`; may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrl(Option<String>);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim().trim_end_matches('/');
        if text.is_empty() {
            return Ok(Self(None));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| format!("`{text}` must start with http:// or https://"))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
            return Err(format!(
                "`{text}` must be a scheme and a host with an optional port, without a path"
            ));
        }
        Ok(Self(Some(text.to_ascii_lowercase())))
    }

    /// The origin (`scheme://host[:port]`), when one is configured.
    pub fn origin(&self) -> Option<&str> {
        self.0.as_deref()
    }

    pub fn is_https(&self) -> bool {
        self.0.as_deref().is_some_and(|u| u.starts_with("https://"))
    }
}

impl Serialize for PublicUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_deref().unwrap_or(""))
    }
}

/// Every problem found in the configuration, each naming its key and where the value came from.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads the settings; an explicit `path` must exist, the default `config.toml` may be absent.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut given = Figment::new();
        match path {
            Some(path) => {
                if let Err(e) = std::fs::File::open(path) {
                    return Err(ConfigError(vec![format!(
                        "cannot read the config file {}: {e}",
                        path.display()
                    )]));
                }
                given = given.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_FILE).exists() => {
                given = given.merge(Toml::file_exact(DEFAULT_FILE));
            }
            None => {}
        }
        Self::from_sources(given.merge(Env::prefixed("LODGE_").ignore(&["LOG"]).split("__")))
            .map_err(|mut e| {
                // A file that does not parse is the one error figment cannot place itself.
                if let Some(file) = path.or(Some(Path::new(DEFAULT_FILE)).filter(|p| p.exists())) {
                    for problem in &mut e.0 {
                        if problem.starts_with("TOML parse error") {
                            *problem = format!("cannot parse {}: {problem}", file.display());
                        }
                    }
                }
                e
            })
    }

    /// Reads the settings from `given` (anything but defaults) over the built-in defaults.
    pub fn from_sources(given: Figment) -> Result<Self, ConfigError> {
        let defaults = Figment::from(Serialized::defaults(Settings::default()));
        let first = match defaults.clone().merge(given.clone()).extract::<Settings>() {
            Ok(settings) => return Ok(settings),
            Err(e) => e,
        };
        // serde stops at the first bad value; try each given key alone to report them all.
        let data = match given.data() {
            Ok(data) => data,
            Err(e) => return Err(ConfigError(e.into_iter().map(describe).collect())),
        };
        let mut problems = Vec::new();
        for dict in data.values() {
            for (key, value) in leaves(dict) {
                let probe = defaults
                    .clone()
                    .merge(Serialized::global(&key, value))
                    .extract::<Settings>();
                if let Err(e) = probe {
                    let source = given
                        .find_metadata(&key)
                        .map(|m| source_of(m, &key))
                        .unwrap_or_default();
                    for e in e {
                        problems.push(format!("{}{source}", describe_kind(&e)));
                    }
                }
            }
        }
        if problems.is_empty() {
            problems.extend(first.into_iter().map(describe));
        }
        problems.dedup();
        Err(ConfigError(problems))
    }
}

/// The dotted paths and values of every leaf of a dictionary.
fn leaves(dict: &Dict) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (key, value) in dict {
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => {
                for (sub, leaf) in leaves(inner) {
                    out.push((format!("{key}.{sub}"), leaf));
                }
            }
            _ => out.push((key.clone(), value.clone())),
        }
    }
    out
}

fn source_of(metadata: &figment::Metadata, key: &str) -> String {
    match &metadata.source {
        Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
        _ if metadata.name.contains("environment") => format!(
            " (from the environment variable LODGE_{})",
            key.replace('.', "__").to_ascii_uppercase()
        ),
        _ => format!(" (from {})", metadata.name),
    }
}

fn describe_kind(e: &figment::Error) -> String {
    use figment::error::Kind;
    let path = e.path.join(".");
    match &e.kind {
        Kind::UnknownField(field, _) => {
            let key = if path.is_empty() || path.ends_with(field.as_str()) {
                path.clone()
            } else {
                format!("{path}.{field}")
            };
            format!("unknown key `{key}`")
        }
        kind => format!("key `{path}`: {kind}"),
    }
}

fn describe(e: figment::Error) -> String {
    let source = match (&e.metadata, e.path.is_empty()) {
        (Some(m), false) => source_of(m, &e.path.join(".")),
        (Some(m), true) => match &m.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            _ => String::new(),
        },
        (None, _) => String::new(),
    };
    if e.path.is_empty() {
        format!("{}{source}", e.kind)
    } else {
        format!("{}{source}", describe_kind(&e))
    }
}
