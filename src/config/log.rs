//! `[log]`: what the server's log holds and in which form.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a filter such as `info,access=off`; the
    /// variable `LODGE_LOG`, when set, wins.
    pub level: LogLevel,
    pub format: LogFormat,
    /// One line for each request (the `access` target).
    pub requests: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: LogLevel("info".into()),
            format: LogFormat::Text,
            requests: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line an event.
    Text,
    /// One JSON object a line, for a log collector.
    Json,
}

/// A level or a filter in `tracing_subscriber`'s `EnvFilter` syntax, checked when read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLevel(pub String);

impl LogLevel {
    pub fn parse(text: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::builder()
            .parse(text)
            .map(|_| Self(text.trim().to_owned()))
            .map_err(|e| {
                format!(
                    "`{text}` is not a log level (error, warn, info, debug, trace) or filter: {e}"
                )
            })
    }
}

deserialize_by_parse!(LogLevel);
