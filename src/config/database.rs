//! `[database]`: the SQLite file, or a PostgreSQL database for several nodes.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// The SQLite file, unless `url` names a PostgreSQL database.
    pub path: PathBuf,
    /// A PostgreSQL database (`postgres://user@host:port/db`); empty: SQLite at `path`.
    pub url: DatabaseUrl,
    /// A PEM file of the certificate authorities PostgreSQL's certificate must come from, for
    /// TLS to it (`sslmode`); empty: the public roots.
    pub ca_file: PathBuf,
}

/// A PostgreSQL connection URL, or none. Shown with its password hidden.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DatabaseUrl(pub Option<String>);

impl DatabaseUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(None));
        }
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(
                "the database URL must start with postgres:// or postgresql:// (empty: the \
                 SQLite file at database.path)"
                    .to_owned(),
            );
        }
        Ok(Self(Some(text.to_owned())))
    }

    /// The URL with any password in it replaced, for logs and messages.
    pub fn redacted(&self) -> String {
        let Some(url) = &self.0 else {
            return String::new();
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let hidden_authority = match authority.rsplit_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => format!("{name}:<redacted>@{host}"),
                None => authority.to_owned(),
            },
            None => authority.to_owned(),
        };
        // A password may also come as a parameter.
        let tail: String = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some(("password", _)) => "password=<redacted>".to_owned(),
                        _ => pair.to_owned(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_owned(),
        };
        format!("{scheme}://{hidden_authority}{tail}")
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_deref().unwrap_or(""))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            path: "lodge.db".into(),
            url: DatabaseUrl::default(),
            ca_file: PathBuf::new(),
        }
    }
}

deserialize_by_parse!(DatabaseUrl);

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_urls_password_is_never_shown() {
        let shown = |text: &str| DatabaseUrl::parse(text).unwrap().redacted();
        assert_eq!(
            shown("postgres://lodge:s3cret@db:5432/lodge?sslmode=require"),
            "postgres://lodge:<redacted>@db:5432/lodge?sslmode=require"
        );
        assert_eq!(
            shown("postgresql://lodge@db1,db2/lodge?password=s3cret&sslmode=require"),
            "postgresql://lodge@db1,db2/lodge?password=<redacted>&sslmode=require"
        );
        assert_eq!(shown("postgres://db/lodge"), "postgres://db/lodge");
        assert!(
            !format!("{:?}", DatabaseUrl::parse("postgres://a:pw@h/d").unwrap()).contains("pw")
        );
        assert_eq!(DatabaseUrl::parse("").unwrap(), DatabaseUrl(None));
        let refused = DatabaseUrl::parse("mysql://db/lodge").unwrap_err();
        assert!(refused.contains("postgres://"), "{refused}");
    }
}
