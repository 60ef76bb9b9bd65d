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
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

    pub fn parse(text: &str) -> Result<Self, String> {
        // A bare word is a target to EnvFilter, all of whose lines it shows: `inf` would show
        // nothing but a module named `inf`. Each part is a level, or `target=level`.
        if let Some(word) = text.split(',').map(str::trim).find(|part| {
            !part.contains('=') && !Self::LEVELS.contains(&part.to_ascii_lowercase().as_str())
        }) {
            return Err(format!(
                "`{word}` is not a log level (error, warn, info, debug, trace, off); a filter \
                 names each target with its level, as in `info,lodge=debug`"
            ));
        }
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
