//! What a delivery's body says, in each `notify.format`, and its signature.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde_json::json;
use sha2::Sha256;

use super::config::NotifyFormat;
use crate::store::outbox::OutboxRow;

/// `sha256=<hex HMAC-SHA256 of body>` with `secret` as the key.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A delivery's body in `format`.
pub(super) fn body(format: NotifyFormat, row: &OutboxRow) -> Vec<u8> {
    let time = Timestamp::from_microsecond(row.time).unwrap_or(Timestamp::UNIX_EPOCH);
    let value = match format {
        NotifyFormat::Json => json!({
            "id": row.id,
            "event": row.event,
            "time": format!("{time:.0}"),
            "userId": row.user_id,
            "tokenName": row.token_name,
            "detail": row.detail,
        }),
        NotifyFormat::Slack => json!({ "text": slack_text(row) }),
    };
    serde_json::to_vec(&value).expect("JSON of strings")
}

/// One line for a chat (Slack, Mattermost): what happened, to whom, and the detail. Every field
/// may hold a client's text, so nothing in it is markup: Slack's `&`, `<` and `>` are escaped
/// as it asks, and the characters either chat reads as formatting, a mention or a link
/// (`` ` `` `@` `[` `]` `*` `_` `~` `|`) are sent as their full-width forms, which look alike and
/// mean nothing to either. Neither has an escape for those that both understand.
fn slack_text(row: &OutboxRow) -> String {
    let mut text = format!("Lodge: {}", chat_escaped(&row.event));
    if let Some(token) = &row.token_name {
        text.push_str(&format!(", token `{}`", chat_escaped(token)));
    }
    if let Some(user) = &row.user_id {
        text.push_str(&format!(", user `{}`", chat_escaped(user)));
    }
    if let Some(detail) = &row.detail {
        text.push_str(&format!(": {}", chat_escaped(detail)));
    }
    text
}

/// `text` with nothing a chat would read as markup ([`slack_text`]).
fn chat_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // The full-width forms sit 0xFEE0 above their ASCII originals.
            '`' | '@' | '[' | ']' | '*' | '_' | '~' | '|' => {
                out.push(char::from_u32(u32::from(c) + 0xFEE0).expect("a full-width form"));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            seq: 1,
            id: "0b9f6a52-7c1e-4d7a-9f43-6e0f0d8f2a11".into(),
            event: "token.rotate".into(),
            time: 1_800_000_000_000_000,
            queued_at: 1_800_000_000_000_000,
            user_id: Some("alice".into()),
            token_name: Some("<!channel> & ci".into()),
            detail: Some("the previous secret works for 1h more by alice".into()),
            attempts: 0,
        }
    }

    #[test]
    fn the_json_body_has_the_documented_fields() {
        let body: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Json, &row())).unwrap();
        assert_eq!(body["id"], "0b9f6a52-7c1e-4d7a-9f43-6e0f0d8f2a11");
        assert_eq!(body["event"], "token.rotate");
        assert_eq!(body["time"], "2027-01-15T08:00:00Z");
        assert_eq!(body["userId"], "alice");
        assert_eq!(body["tokenName"], "<!channel> & ci");
        assert_eq!(body.as_object().unwrap().len(), 6);
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        let body: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Slack, &row())).unwrap();
        assert_eq!(
            body["text"],
            "Lodge: token.rotate, token `&lt;!channel&gt; &amp; ci`, user `alice`: the previous \
             secret works for 1h more by alice"
        );
    }

    #[test]
    fn no_field_of_a_chat_text_is_markup() {
        let markup = "`@[]*_~|<>&";
        let row = OutboxRow {
            event: format!("e{markup}"),
            user_id: Some(format!("u{markup}")),
            token_name: Some(format!("t{markup}")),
            detail: Some(format!(
                "d{markup} @channel [x](http://evil.example) <!here>"
            )),
            ..row()
        };
        let body: serde_json::Value =
            serde_json::from_slice(&body(NotifyFormat::Slack, &row)).unwrap();
        let text = body["text"].as_str().unwrap();
        let escaped = "｀＠［］＊＿～｜&lt;&gt;&amp;";
        assert_eq!(
            text,
            format!(
                "Lodge: e{escaped}, token `t{escaped}`, user `u{escaped}`: d{escaped} ＠channel \
                 ［x］(http://evil.example) &lt;!here&gt;"
            )
        );
        // The only markup left is the code spans around the names, Lodge's own.
        let outside: String = text
            .replace(&format!("`t{escaped}`"), "")
            .replace(&format!("`u{escaped}`"), "");
        for c in "`@[]*_~|".chars() {
            assert!(!outside.contains(c), "{c} in {text}");
        }
    }

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
