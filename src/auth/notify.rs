//! What `Auth` announces by webhook (`[notify]`) beyond the changes it queues with
//! [`crate::notify::outbox::queue`]: locks of accounts, tokens coming within an expiry
//! warning; and the sender's wake-up.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

use super::{
    AuditEvent, Auth, Result,
    audit::{self, kind},
};
use crate::{
    config::NotifyEvent,
    notify::outbox::{Notice, queue},
    store::{
        outbox::{self as store_outbox, OutboxRow},
        tokens as store_tokens,
    },
};

/// The last expiry warning comes this long before a token expires.
const LAST_WARNING: SignedDuration = SignedDuration::from_hours(24);
/// Tokens warned about in one write at most; the rest at the next look.
const WARN_AT_ONCE: i64 = 500;

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

/// What Auth announces by webhook itself: locks of accounts, expiring tokens; and the sender's wake-up.
pub struct Notices<'a>(pub(super) &'a Auth);

super::facet!(Notices);

impl Notices<'_> {
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

    /// The oldest deliveries waiting in the outbox, at most `limit`.
    pub(crate) async fn waiting(&self, limit: i64) -> crate::store::Result<Vec<OutboxRow>> {
        self.store()
            .run(move |conn| store_outbox::oldest(conn, limit))
            .await
    }

    /// Removes a delivery acknowledged (or given up), or counts its failed attempt.
    pub(crate) async fn settle(&self, seq: i64, done: bool) -> crate::store::Result<()> {
        self.store()
            .write(move |tx| match done {
                true => store_outbox::remove(tx, seq),
                false => store_outbox::failed(tx, seq),
            })
            .await
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
                    queue(tx, now, &event.notice(NotifyEvent::UserLocked))?;
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
    fn how_soon_rounds_down() {
        assert_eq!(how_soon(SignedDuration::from_hours(7 * 24)), "in 7 days");
        assert_eq!(how_soon(SignedDuration::from_hours(47)), "in 1 day");
        assert_eq!(how_soon(SignedDuration::from_mins(90)), "in 1 hour");
        assert_eq!(how_soon(SignedDuration::from_mins(59)), "within the hour");
    }
}
