//! The server's log on standard error: text or JSON lines (`[log]`), colours only for a person's
//! terminal.

use std::io::IsTerminal as _;

use crate::config::{LogFormat, LogSettings};

/// Whether lines get colours: on a terminal, unless `NO_COLOR` is set to anything
/// (<https://no-color.org>).
pub fn colours(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Where the PostgreSQL client logs statements with their parameters, held to `info`.
const NO_PARAMETERS: &str = "tokio_postgres::query=info";

/// Installs the log for this process. `LODGE_LOG`, when set, is the filter instead of
/// `log.level`.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("LODGE_LOG")
        .ok()
        .and_then(|text| tracing_subscriber::EnvFilter::try_new(text).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(&settings.level.0))
        // The PostgreSQL client logs each statement's parameters at debug: token digests,
        // password hashes, session ids. Never shown, whatever the level asked for (the
        // statements themselves, prepared at debug under `tokio_postgres::prepare`, are).
        .add_directive(NO_PARAMETERS.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match settings.format {
        LogFormat::Text => builder
            .with_ansi(colours(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        let set = std::ffi::OsStr::new("1");
        let empty = std::ffi::OsStr::new("");
        assert!(colours(true, None));
        assert!(colours(true, Some(empty)), "an empty NO_COLOR is unset");
        assert!(!colours(true, Some(set)));
        assert!(!colours(false, None));
    }
}
