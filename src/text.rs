//! Text from clients, made safe to keep and to show: what cannot be seen is refused in names and
//! escaped everywhere else, the same way in the audit log, the command line and the logs.

use std::{borrow::Cow, fmt::Write as _};

/// Whether `c` changes or hides what a reader sees: a control character (a newline, an escape
/// that starts a terminal sequence), a bidirectional override or isolate, a zero-width
/// character, or a byte order mark.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every invisible character written as `\u{hex}`: one line, shown as it is.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_invisible(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`]d and cut to at most `max` characters, the cut marked with `…`.
pub fn bounded(text: &str, max: usize) -> String {
    // Almost every text: short enough in bytes, so in characters, and nothing to escape.
    if text.len() <= max && !text.chars().any(is_invisible) {
        return text.to_owned();
    }
    let escaped = escape(text);
    match escaped.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if escaped.chars().count() > max => format!("{}…", &escaped[..end]),
        _ => escaped.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_seen_is_escaped_and_the_rest_is_kept() {
        let cases = [
            ("admin", "admin"),
            ("naïve Ωmega", "naïve Ωmega"),
            ("a\nlogin ok admin", "a\\u{a}login ok admin"),
            ("\u{1b}[2J\u{1b}[31mred", "\\u{1b}[2J\\u{1b}[31mred"),
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
        ];
        for (given, shown) in cases {
            assert_eq!(escape(given), shown, "{given:?}");
            assert_eq!(escape(shown), shown, "escaping twice changes nothing");
        }
    }

    #[test]
    fn bounded_text_is_cut_with_a_mark() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("exactly10!", 10), "exactly10!");
        assert_eq!(bounded("eleven char", 10), "eleven ch…");
        assert_eq!(bounded(&"é".repeat(100), 4), "ééé…");
        assert_eq!(bounded("\n\n", 100), "\\u{a}\\u{a}");
    }
}
