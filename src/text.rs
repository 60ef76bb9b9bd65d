//! Text from clients, made safe to keep and to show: what cannot be seen is refused in names and
//! escaped everywhere else, the same way in the audit log, the command line and the logs.

use std::{borrow::Cow, fmt::Write as _};

/// Whether `c` changes or hides what a reader sees: a control character (a newline, an escape
/// that starts a terminal sequence), or a default-ignorable code point (Unicode's
/// Default_Ignorable_Code_Point, 15.1: a soft hyphen, a zero-width character, a bidirectional
/// override or isolate, a variation selector, a byte order mark...). Text collations ignore
/// the latter, so `ad\u{AD}min` and `admin` are one name to PostgreSQL's ICU collation.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
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

/// The most characters of one text the server records (in the audit log, the log, a webhook's
/// notice): a user id, a token name, a detail. An event is a few hundred bytes whatever a client
/// sends.
pub const MAX_RECORDED: usize = 200;

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
    fn every_default_ignorable_code_point_counts_as_invisible() {
        use unicode_security::{
            GeneralSecurityProfile as _, general_security_profile::IdentifierType,
        };
        let ignorable = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.identifier_type() == Some(IdentifierType::Default_Ignorable));
        for c in ignorable {
            assert!(is_invisible(c), "U+{:04X}", u32::from(c));
        }
    }

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
