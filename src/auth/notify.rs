//! Events announced by webhook (`[notify]`): each is queued in the outbox inside the
//! transaction of the change it announces, so it is sent exactly when that change is kept;
//! [`crate::notify`] delivers them. Never a secret or a digest in one.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use super::{
    AuditEvent, Auth, Result,
    audit::{self, kind},
};
use crate::{
    config::NotifyEvent,
    store::{self, outbox, tokens as store_tokens},
};

/// The last expiry warning comes this long before a token expires.
const LAST_WARNING: SignedDuration = SignedDuration::from_hours(24);
/// Tokens warned about in one write at most; the rest at the next look.
const WARN_AT_ONCE: i64 = 500;

/// What one delivery says, as the outbox keeps it.
pub(crate) struct Notice<'a> {
    pub event: NotifyEvent,
    pub user_id: Option<&'a str>,
    pub token_name: Option<&'a str>,
    pub detail: Option<&'a str>,
}

impl<'a> Notice<'a> {
    /// The notice of an audited change: its user, token and detail.
    pub fn of(event: NotifyEvent, audited: &'a AuditEvent) -> Self {
        Self {
            event,
            user_id: audited.user_id.as_deref(),
            token_name: audited.token_name.as_deref(),
            detail: audited.detail.as_deref(),
        }
    }
}

/// Queues `notice` in the write's transaction, with a fresh unique id. Its texts are escaped
/// and bounded as the audit log's are.
pub(crate) fn queue(tx: &store::Tx, now: Timestamp, notice: &Notice<'_>) -> store::Result<()> {
    let shown = |text: Option<&str>| text.map(|t| crate::text::bounded(t, audit::MAX_TEXT));
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

/// "in 6 days" or "in 23 hours": how far off an expiry is, rounded down.
fn how_soon(left: SignedDuration) -> String {
    let hours = left.as_hours().max(0);
    match hours / 24 {
        0 if hours == 0 => "within the hour".to_owned(),
        0 if hours == 1 => "in 1 hour".to_owned(),
        0 => format!("in {hours} hours"),
        1 => "in 1 day".to_owned(),
        days => format!("in {days} days"),
    }
}

impl Auth {
    /// Whether `event` is delivered.
    pub(crate) fn sends(&self, event: NotifyEvent) -> bool {
        self.settings().notify.sends(event)
    }

    /// Tells the sender that a delivery was queued.
    pub(crate) fn wake_sender(&self) {
        self.outbox_queued.notify_one();
    }

    /// Waits until a delivery was queued by this process since the last call.
    pub(crate) async fn delivery_queued(&self) {
        self.outbox_queued.notified().await;
    }

    /// Queues `token.expiring` for every live token that came within a warning it has not had:
    /// once on entering `tokens.warn_before`, once more a day before it expires. Does nothing
    /// while the event is not sent (so turning it on later warns about the tokens then within
    /// reach). Gives how many were queued.
    pub async fn warn_of_expiring_tokens(&self) -> Result<usize> {
        if !self.sends(NotifyEvent::TokenExpiring) {
            return Ok(0);
        }
        let now = self.now();
        let warn_before = self.settings().tokens.warn_before.0;
        let queued = self
            .store()
            .write(move |tx| {
                let expiring = store_tokens::expiring_unnoticed(
                    tx,
                    now.as_microsecond(),
                    warn_before.as_micros() as i64,
                    LAST_WARNING.as_micros() as i64,
                    WARN_AT_ONCE,
                )?;
                for token in &expiring {
                    let expires = super::from_micros(token.expires_at);
                    let detail = format!(
                        "expires {} ({expires:.0})",
                        how_soon(expires.duration_since(now))
                    );
                    let notice = Notice {
                        event: NotifyEvent::TokenExpiring,
                        user_id: Some(&token.user_id),
                        token_name: Some(&token.name),
                        detail: Some(&detail),
                    };
                    queue(tx, now, &notice)?;
                    store_tokens::set_expiry_notice(tx, token.id, token.notice)?;
                }
                Ok(expiring.len())
            })
            .await?;
        if queued > 0 {
            self.wake_sender();
        }
        Ok(queued)
    }

    /// An account locked by failed logins until `until` (or, `browser`, one of its trusted
    /// browsers, which holds its own budget): logged, audited as `user.locked` and, when an
    /// account `exists` by that name, announced.
    pub(super) async fn account_locked(
        &self,
        user_id: &str,
        address: Option<IpAddr>,
        until: Timestamp,
        browser: bool,
        exists: bool,
    ) {
        let failures = self.settings().limits.account_failures;
        let whose = if browser {
            "a browser trusted for the account "
        } else {
            ""
        };
        let event = AuditEvent::new(kind::USER_LOCKED, true)
            .user(user_id)
            .address(address)
            .detail(format!(
                "{whose}locked until {until:.0} after {failures} failed password checks"
            ));
        tracing::warn!(
            user = crate::text::bounded(user_id, audit::MAX_TEXT),
            address = address.map(tracing::field::display),
            until = %format_args!("{until:.0}"),
            "{}",
            if browser {
                "a trusted browser locked by failed logins (the account is not)"
            } else {
                "account locked by failed logins"
            }
        );
        // A name no account has is locked all the same (or the lock would tell who exists), but
        // not announced: it is anyone's text, posted into the team's chat.
        let sends = exists && self.sends(NotifyEvent::UserLocked);
        let now = self.now();
        let written = self
            .store()
            .write(move |tx| {
                audit::record(tx, now, &event)?;
                if sends {
                    queue(tx, now, &Notice::of(NotifyEvent::UserLocked, &event))?;
                }
                Ok(())
            })
            .await;
        match written {
            Ok(()) if sends => self.wake_sender(),
            Ok(()) => {}
            Err(e) => tracing::error!("cannot record the lock of an account: {e:#}"),
        }
    }
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

    #[test]
    fn how_soon_rounds_down() {
        assert_eq!(how_soon(SignedDuration::from_hours(7 * 24)), "in 7 days");
        assert_eq!(how_soon(SignedDuration::from_hours(47)), "in 1 day");
        assert_eq!(how_soon(SignedDuration::from_mins(90)), "in 1 hour");
        assert_eq!(how_soon(SignedDuration::from_mins(59)), "within the hour");
    }
}
