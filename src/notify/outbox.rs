//! What a change queues for the webhook: one row of the outbox, written in the change's own
//! transaction, so it is sent exactly when that change is kept. Never a secret or a digest in
//! one.

use jiff::Timestamp;

use super::config::NotifyEvent;
use crate::store::{self, outbox};

/// What one delivery says, as the outbox keeps it.
pub(crate) struct Notice<'a> {
    pub event: NotifyEvent,
    pub user_id: Option<&'a str>,
    pub token_name: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// Queues `notice` in the write's transaction, with a fresh unique id. Its texts are escaped
/// and bounded as the audit log's are.
pub(crate) fn queue(tx: &store::Tx, now: Timestamp, notice: &Notice<'_>) -> store::Result<()> {
    let shown =
        |text: Option<&str>| text.map(|t| crate::text::bounded(t, crate::text::MAX_RECORDED));
    let (user_id, token_name, detail) = (
        shown(notice.user_id),
        shown(notice.token_name),
        shown(notice.detail),
    );
    outbox::insert(
        tx,
        &outbox::NewDelivery {
            id: &delivery_id(),
            event: notice.event.name(),
            time: now.as_microsecond(),
            // How long it has waited is the system's business, whatever clock the rules use.
            queued_at: Timestamp::now().as_microsecond(),
            user_id: user_id.as_deref(),
            token_name: token_name.as_deref(),
            detail: detail.as_deref(),
        },
    )
}

/// A random id in the form of a UUID (version 4), which receivers commonly store as one.
fn delivery_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_version_4_uuids() {
        let (a, b) = (delivery_id(), delivery_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<_> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
