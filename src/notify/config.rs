//! `[notify]`: where and how events are announced by webhook.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::deserialize_by_parse;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    /// Where deliveries are posted; empty: no notifications.
    pub webhook_url: WebhookUrl,
    /// Signs each delivery (`X-Lodge-Signature`); empty: unsigned.
    pub webhook_secret: String,
    pub format: NotifyFormat,
    pub events: Vec<NotifyEvent>,
    /// A PEM file of the certificate authorities an https receiver's certificate must come
    /// from instead of the public ones (an internal CA); empty: Mozilla's root list.
    pub ca_file: std::path::PathBuf,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            webhook_url: WebhookUrl::default(),
            webhook_secret: String::new(),
            format: NotifyFormat::Json,
            events: NotifyEvent::ALL.to_vec(),
            ca_file: std::path::PathBuf::new(),
        }
    }
}

impl NotifySettings {
    /// Whether `event` is delivered: a webhook is set and the event is among `events`.
    pub fn sends(&self, event: NotifyEvent) -> bool {
        self.webhook_url.0.is_some() && self.events.contains(&event)
    }
}

impl fmt::Debug for NotifySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.webhook_secret.is_empty() {
            ""
        } else {
            "<redacted>"
        };
        f.debug_struct("NotifySettings")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &secret)
            .field("format", &self.format)
            .field("events", &self.events)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A delivery's body: Lodge's own JSON, or a `text` for Slack's and Mattermost's incoming
/// webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    Json,
    Slack,
}

/// What can be announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyEvent {
    /// A token entered `tokens.warn_before`, or has a day left.
    #[serde(rename = "token.expiring")]
    TokenExpiring,
    /// A live token was reported as leaked and revoked.
    #[serde(rename = "token.leaked")]
    TokenLeaked,
    /// A token got a new secret.
    #[serde(rename = "token.rotate")]
    TokenRotate,
    /// An account was locked by failed logins.
    #[serde(rename = "user.locked")]
    UserLocked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] = [
        Self::TokenExpiring,
        Self::TokenLeaked,
        Self::TokenRotate,
        Self::UserLocked,
    ];

    /// The name a delivery carries in `event`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TokenExpiring => "token.expiring",
            Self::TokenLeaked => "token.leaked",
            Self::TokenRotate => "token.rotate",
            Self::UserLocked => "user.locked",
        }
    }
}

/// An `http://` or `https://` URL, or empty for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookUrl(pub Option<String>);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(None));
        }
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| format!("`{text}` must start with http:// or https://"))?;
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || text.contains(char::is_whitespace) || host.contains('@') {
            return Err(format!(
                "`{text}` must name a host, without spaces or a user name"
            ));
        }
        Ok(Self(Some(text.to_owned())))
    }
}

impl Serialize for WebhookUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_deref().unwrap_or(""))
    }
}

deserialize_by_parse!(WebhookUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked() {
        assert_eq!(WebhookUrl::parse(" ").unwrap(), WebhookUrl(None));
        assert!(WebhookUrl::parse("https://hooks.example.com/services/T0/B0/x").is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:9000").is_ok());
        for bad in [
            "hooks.example.com",
            "ftp://example.com",
            "https:///path",
            "https://user:pw@example.com/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
