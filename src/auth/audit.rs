//! The audit log: logins, logouts, token and user changes, ended sessions. Never a secret.

use std::{borrow::Cow, net::IpAddr};

use jiff::Timestamp;

use super::{Auth, Result, User, from_micros};
use crate::{
    config::NotifyEvent,
    notify::outbox::Notice,
    store::audit::{self as store_audit, AuditRow},
};

pub mod kind {
    pub const LOGIN: &str = "login";
    pub const LOGOUT: &str = "logout";
    pub const TOKEN_CREATE: &str = "token.create";
    pub const TOKEN_DELETE: &str = "token.delete";
    pub const TOKEN_LOOKUP: &str = "token.lookup";
    /// A right token used beyond its scopes or bounds.
    pub const TOKEN_DENIED: &str = "token.denied";
    /// A live token reported as leaked, and revoked.
    pub const TOKEN_LEAKED: &str = "token.leaked";
    /// A token's secret replaced by a new one.
    pub const TOKEN_ROTATE: &str = "token.rotate";
    /// An account locked by failed password checks.
    pub const USER_LOCKED: &str = "user.locked";
    pub const USER_UNLOCK: &str = "user.unlock";
    pub const USER_CREATE: &str = "user.create";
    pub const USER_UPDATE: &str = "user.update";
    pub const USER_DELETE: &str = "user.delete";
    pub const PASSWORD_CHANGE: &str = "password.change";
    pub const SESSION_END: &str = "session.end";
    pub const ALL: &[&str] = &[
        LOGIN,
        LOGOUT,
        TOKEN_CREATE,
        TOKEN_DELETE,
        TOKEN_LOOKUP,
        TOKEN_DENIED,
        TOKEN_LEAKED,
        TOKEN_ROTATE,
        USER_CREATE,
        USER_UPDATE,
        USER_DELETE,
        PASSWORD_CHANGE,
        SESSION_END,
        USER_LOCKED,
        USER_UNLOCK,
    ];
}

/// Who asks for a change: a user over the API (with their address), or the command line.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user: Option<User>,
    pub address: Option<IpAddr>,
}

impl Actor {
    pub fn command_line() -> Self {
        Self::default()
    }

    fn by(&self) -> String {
        match &self.user {
            Some(user) => format!("by {}", user.user_id),
            None => "by the command line".to_owned(),
        }
    }
}

/// One event of the audit log: built by the change it records, and read back by
/// [`Audit::log`] with every text escaped for showing.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// When it happened: the moment it is recorded, for an event being written.
    pub time: Timestamp,
    pub kind: Cow<'static, str>,
    pub success: bool,
    pub user_id: Option<String>,
    pub provider: Option<Cow<'static, str>>,
    pub token_name: Option<String>,
    /// The client's address.
    pub address: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub user_id: Option<String>,
    pub kind: Option<String>,
    pub since: Option<Timestamp>,
    pub limit: Option<i32>,
    pub offset: Option<i32>,
}

impl AuditEvent {
    /// The webhook's notice of this audited change: its user, token and detail.
    pub(crate) fn notice(&self, event: NotifyEvent) -> Notice<'_> {
        Notice {
            event,
            user_id: self.user_id.as_deref(),
            token_name: self.token_name.as_deref(),
            detail: self.detail.as_deref(),
        }
    }

    pub fn new(kind: &'static str, success: bool) -> Self {
        Self {
            kind: Cow::Borrowed(kind),
            success,
            ..Self::default()
        }
    }

    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    pub fn provider(mut self, provider: &'static str) -> Self {
        self.provider = Some(Cow::Borrowed(provider));
        self
    }

    pub fn token(mut self, name: impl Into<String>) -> Self {
        self.token_name = Some(name.into());
        self
    }

    pub fn address(mut self, address: Option<IpAddr>) -> Self {
        self.address = address.map(|a| a.to_string());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The actor's address, and who acted in the detail.
    pub fn by(mut self, actor: &Actor) -> Self {
        self.address = actor.address.map(|a| a.to_string());
        let by = actor.by();
        self.detail = Some(match self.detail.take() {
            Some(detail) => format!("{detail} {by}"),
            None => by,
        });
        self
    }
}

/// The most characters of one text in an event ([`crate::text::MAX_RECORDED`]).
pub const MAX_TEXT: usize = crate::text::MAX_RECORDED;

/// A client's text as the log keeps it: one line, nothing invisible, at most [`MAX_TEXT`].
fn shown(text: &str) -> String {
    crate::text::bounded(text, MAX_TEXT)
}

/// A stored text escaped for showing; kept as it is when it needs nothing (almost always).
fn escaped(text: String) -> String {
    match crate::text::escape(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(escaped) => escaped,
    }
}

/// Writes an event with the connection at hand, inside the caller's transaction. Its texts are
/// escaped and bounded ([`crate::text::bounded`]), so no client can forge a line or fill the
/// disk with one.
pub(crate) fn record(
    conn: &crate::store::Tx,
    now: Timestamp,
    event: &AuditEvent,
) -> crate::store::Result<()> {
    store_audit::insert(
        conn,
        &AuditRow {
            time: now.as_microsecond(),
            kind: event.kind.to_string(),
            success: event.success,
            user_id: event.user_id.as_deref().map(shown),
            provider: event.provider.as_deref().map(str::to_owned),
            token_name: event.token_name.as_deref().map(shown),
            address: event.address.clone(),
            detail: event.detail.as_deref().map(shown),
        },
    )
}

/// How many events a page holds at most.
const MAX_PAGE: i64 = 1000;

/// The audit log: what is recorded, and how it is read.
pub struct Audit<'a>(pub(super) &'a Auth);

super::facet!(Audit);

impl Audit<'_> {
    /// Records an event on its own; a failure to write is logged, never shown to the caller.
    pub async fn record(&self, event: AuditEvent) {
        let now = self.now();
        let kind = event.kind.clone();
        let written = self
            .store()
            .write(move |conn| record(conn, now, &event))
            .await;
        if let Err(e) = written {
            tracing::error!(%kind, "cannot write the audit log: {e:#}");
        }
    }

    /// Events newest first, every text escaped again as it is shown (rows written by a version
    /// that stored them raw included).
    pub async fn log(&self, filter: AuditFilter) -> Result<Vec<AuditEvent>> {
        let limit = i64::from(filter.limit.unwrap_or(100)).clamp(0, MAX_PAGE);
        let offset = i64::from(filter.offset.unwrap_or(0)).max(0);
        let since = filter.since.map(|t| t.as_microsecond());
        // Stored as shown: a user id given with a control character finds its escaped rows.
        let filter = AuditFilter {
            user_id: filter.user_id.as_deref().map(shown),
            ..filter
        };
        let rows = self
            .store()
            .run(move |conn| {
                store_audit::list(
                    conn,
                    filter.user_id.as_deref(),
                    filter.kind.as_deref(),
                    since,
                    limit,
                    offset,
                )
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEvent {
                time: from_micros(r.time),
                kind: Cow::Owned(escaped(r.kind)),
                success: r.success,
                user_id: r.user_id.map(escaped),
                provider: r.provider.map(|p| Cow::Owned(escaped(p))),
                token_name: r.token_name.map(escaped),
                address: r.address.map(escaped),
                detail: r.detail.map(escaped),
            })
            .collect())
    }
}
