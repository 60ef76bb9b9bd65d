//! API tokens: created by their owner, shown once, stored as digests, deleted by name.

mod lifetime;

use std::{net::IpAddr, sync::Arc};

use jiff::{SignedDuration, Timestamp, ToSpan, tz::TimeZone};

use super::{
    Auth, Error, Result, User,
    audit::{self, Actor, AuditEvent, kind},
    from_micros,
    grants::Grants,
    secret::ApiTokenSecret,
};
pub use lifetime::LifetimeRule;

use crate::{
    config::{Lifetime, NotifyEvent},
    notify::outbox::{self as notify, Notice},
    store::{
        sessions as store_sessions,
        tokens::{self as store_tokens, TokenRow},
    },
};

/// A token name: 1 to 64 characters after trimming, none of them invisible
/// ([`crate::text::is_invisible`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > Self::MAX_LEN {
            return Err(Error::InvalidInput(format!(
                "a token name must have 1 to {} characters",
                Self::MAX_LEN
            )));
        }
        if let Some(bad) = text.chars().find(|c| crate::text::is_invisible(*c)) {
            return Err(Error::InvalidInput(format!(
                "a token name may not hold control, bidirectional or zero-width characters \
                 (it holds U+{:04X})",
                u32::from(bad)
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// When a new token stops working, as asked.
#[derive(Debug, Clone, Copy)]
pub enum Expiry {
    /// Neither a lifetime nor a date: `tokens.default_lifetime`.
    Default,
    Lifetime(Lifetime),
    At(Timestamp),
}

/// Where a token was last used from: the text its row keeps, or the address of a use held in
/// memory since, written out only when it is shown. A list holds one for each token, and
/// formatting an address costs more than the rest of a token's entry; most lists never show it.
#[derive(Debug, Clone)]
pub enum UsedFrom {
    Stored(String),
    Held(IpAddr),
}

impl std::fmt::Display for UsedFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stored(text) => f.write_str(text),
            Self::Held(address) => address.fmt(f),
        }
    }
}

/// A token as its owner sees it: never its secret.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// The client address of that use, when known.
    pub last_used_address: Option<UsedFrom>,
    /// What it may do and where; `None`: every scope, anywhere.
    pub grants: Option<Arc<Grants>>,
    /// Until when the secret before its last rotation still works.
    pub grace_until: Option<Timestamp>,
}

impl Token {
    /// A token from its row, its grants parsed by `parse` ([`Auth::grants_of`], which keeps
    /// them parsed: a list is read on every `tokenApiList`).
    fn from_row(row: TokenRow, parse: impl FnOnce(&str) -> Arc<Grants>) -> Self {
        Self {
            grants: row.grants.as_deref().map(parse),
            grace_until: row.grace_until.map(from_micros),
            name: row.name,
            created_at: from_micros(row.created_at),
            expires_at: row.expires_at.map(from_micros),
            last_used_at: row.last_used_at.map(from_micros),
            last_used_address: row.last_used_address.map(UsedFrom::Stored),
        }
    }
}

/// A token as its list shows it, with its last use as the database has it or a later one held
/// in memory; `None` when it expired before `shown_after` (`tokens.keep_expired`).
fn listed(
    row: TokenRow,
    shown_after: i64,
    pending: &std::collections::HashMap<i64, super::LastUse>,
    parse: impl FnOnce(&str) -> Arc<Grants>,
) -> Option<Token> {
    if row.expires_at.is_some_and(|at| at < shown_after) {
        return None;
    }
    let held = pending
        .get(&row.id)
        .filter(|last| row.last_used_at.is_none_or(|at| at < last.at));
    let mut token = Token::from_row(row, parse);
    if let Some(last) = held {
        token.last_used_at = Some(from_micros(last.at));
        token.last_used_address = last.address.map(UsedFrom::Held);
    }
    Some(token)
}

fn listed_or_any(list: &[String]) -> String {
    if list.is_empty() {
        "any".to_owned()
    } else {
        list.join(" ")
    }
}

/// A token just created, with the secret shown this once.
#[derive(Debug)]
pub struct NewToken {
    pub secret: ApiTokenSecret,
    pub token: Token,
}

/// The end of a lifetime started at `now`, in calendar terms: a month from 31 January ends on
/// the last day of February.
pub fn lifetime_end(now: Timestamp, lifetime: Lifetime) -> Option<Timestamp> {
    let span = match lifetime {
        Lifetime::Day => 1.day(),
        Lifetime::Week => 1.week(),
        Lifetime::Month => 1.month(),
        Lifetime::Year => 1.year(),
        Lifetime::Never => return None,
    };
    let end = now
        .to_zoned(TimeZone::UTC)
        .checked_add(span)
        .expect("a year from now is within jiff's range");
    Some(end.timestamp())
}

/// API tokens: created, listed, looked up, rotated, revoked and deleted.
pub struct Tokens<'a>(pub(super) &'a Auth);

super::facet!(Tokens);

impl Tokens<'_> {
    /// Creates a token for `user`; counting and inserting happen in one write transaction.
    pub async fn create_token(
        &self,
        actor: &Actor,
        user: &User,
        name: &TokenName,
        expiry: Expiry,
        grants: Option<Grants>,
    ) -> Result<NewToken> {
        let rules = &self.settings().tokens;
        // The command line acts for the operator, who may give any user a token.
        let by_admin = actor.user.as_ref().is_none_or(User::is_admin);
        if rules.admins_only && !user.is_admin() && !by_admin {
            return Err(Error::AccessDenied(
                "only administrators may create API tokens on this server",
            ));
        }
        let now = self.now();
        let rule = self.asked_rule(now, expiry)?;
        let expires_at = rule.end(now);
        let secret = ApiTokenSecret::generate();
        let digest = secret.digest();
        let max = rules.max_per_user;
        let owner = user.id;
        // A token its owner made because they are an administrator is suspended while they are
        // not; one the command line gave is the operator's grant and is not.
        let needs_admin = rules.admins_only && actor.user.is_some();
        let token_name = name.clone();
        let micros = now.as_microsecond();
        let expiry_text = match expires_at {
            Some(at) => format!("expires {at}"),
            None => "never expires".to_owned(),
        };
        let detail = match &grants {
            Some(g) => format!(
                "{expiry_text}; scopes {}; services {}; allowed from {}",
                g.scopes().join(" "),
                listed_or_any(&g.services()),
                listed_or_any(&g.allow_from())
            ),
            None => expiry_text,
        };
        let stored_grants = grants.as_ref().map(Grants::to_stored);
        let event = AuditEvent::new(kind::TOKEN_CREATE, true)
            .user(user.user_id.clone())
            .token(name.as_str())
            .detail(detail)
            .by(actor);
        let outcome = self
            .store()
            .write(move |tx| {
                // The writer holds the write lock: parallel creates count one after another.
                store_tokens::delete_expired_named(tx, owner, token_name.as_str(), micros)?;
                if store_tokens::count_live(tx, owner, micros)? >= i64::from(max) {
                    return Ok(Err(Error::QuotaExceeded(max)));
                }
                let inserted = store_tokens::insert(
                    tx,
                    &store_tokens::NewToken {
                        user: owner,
                        name: token_name.as_str(),
                        digest: &digest,
                        now: micros,
                        expires_at: expires_at.map(|t| t.as_microsecond()),
                        lifetime: &rule.to_stored(),
                        needs_admin,
                        grants: stored_grants.as_deref(),
                    },
                );
                match inserted {
                    Ok(_) => {
                        audit::record(tx, now, &event)?;
                        Ok(Ok(()))
                    }
                    Err(e) if e.is_taken() => Ok(Err(Error::AlreadyExists(format!(
                        "you already have a token named `{}`",
                        token_name.as_str()
                    )))),
                    Err(e) => Err(e),
                }
            })
            .await?;
        outcome?;
        self.metrics().token_created();
        Ok(NewToken {
            secret,
            token: Token {
                name: name.as_str().to_owned(),
                created_at: now,
                expires_at,
                last_used_at: None,
                last_used_address: None,
                grants: grants.map(Arc::new),
                grace_until: None,
            },
        })
    }

    /// Tokens of users in user id order, each user's oldest first, as their owners list them:
    /// an administrator's view. At most 10,000.
    pub async fn list_all_tokens(&self) -> Result<Vec<(String, Token)>> {
        let rows = self
            .store()
            .run(|conn| store_tokens::all_with_owner(conn, 10_000))
            .await?;
        let shown_after = self.shown_after();
        let pending = self.pending_last_used();
        Ok(rows
            .into_iter()
            .filter_map(|(owner, row)| {
                let token = listed(row, shown_after, &pending, |g| self.grants_of(g))?;
                Some((owner, token))
            })
            .collect())
    }

    /// The owner and the token behind a secret someone found, when it is a live token (not
    /// expired, its owner enabled), and whether the secret is the one before its last rotation
    /// (then only within its grace); recorded in the audit log, which token or not.
    pub async fn lookup_token(
        &self,
        actor: &Actor,
        text: &str,
    ) -> Result<Option<(String, Token, bool)>> {
        let found = match ApiTokenSecret::parse(text.trim()) {
            Ok(secret) => self.sessions().token_entry(&secret.digest()).await?,
            Err(_) => None,
        };
        let now = self.now().as_microsecond();
        let live = found.filter(|entry| {
            let token = &entry.token;
            token.expires_at.is_none_or(|at| at > now)
                && (!token.previous || token.grace_until.is_some_and(|at| at > now))
        });
        let mut event = AuditEvent::new(kind::TOKEN_LOOKUP, live.is_some()).by(actor);
        if let Some(entry) = &live {
            event = event
                .user(entry.user.user_id.clone())
                .token(entry.token.name.clone());
        } else {
            event = event.detail("no live token has this secret");
        }
        self.audit().record(event).await;
        Ok(live.map(|entry| {
            let previous = entry.token.previous;
            let mut token = Token::from_row(entry.token, |g| self.grants_of(g));
            // The kept entry holds the grants parsed, not in the row.
            token.grants = entry.grants;
            (entry.user.user_id, token, previous)
        }))
    }

    /// How many of the user's tokens can log in now: what counts toward the quota.
    pub async fn live_token_count(&self, user: &User) -> Result<i64> {
        let (owner, now) = (user.id, self.now().as_microsecond());
        Ok(self
            .store()
            .run(move |conn| store_tokens::count_live(conn, owner, now))
            .await?)
    }

    /// Whether the token expires within `tokens.warn_before` and has not yet.
    pub fn expires_soon(&self, token: &Token) -> bool {
        let now = self.now();
        token
            .expires_at
            .is_some_and(|at| at > now && at <= now + self.settings().tokens.warn_before.0)
    }

    /// Live tokens of every user that expire within `tokens.warn_before`, soonest first.
    pub async fn expiring_tokens(&self) -> Result<Vec<(String, Token)>> {
        let now = self.now();
        let until = (now + self.settings().tokens.warn_before.0).as_microsecond();
        let now = now.as_microsecond();
        let rows = self
            .store()
            .run(move |conn| store_tokens::expiring(conn, now, until))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(owner, row)| (owner, Token::from_row(row, |g| self.grants_of(g))))
            .collect())
    }

    /// When a token expired before this, it is no longer listed (`tokens.keep_expired`).
    fn shown_after(&self) -> i64 {
        (self.now() - self.settings().tokens.keep_expired.0).as_microsecond()
    }

    /// The user's tokens, oldest first; expired ones stay listed for `tokens.keep_expired`.
    pub async fn list_tokens(&self, user: &User) -> Result<Vec<Token>> {
        let shown_after = self.shown_after();
        let owner = user.id;
        let all = match self
            .cache
            .token_list(self.sessions().change_counter().await?, owner)
        {
            Some(all) => all,
            None => {
                let (read_at, all) = self
                    .store()
                    .read(move |tx| store_tokens::all_of_user(tx, owner))
                    .await?;
                let all = Arc::new(all);
                self.cache.keep_token_list(read_at, owner, Arc::clone(&all));
                all
            }
        };
        let pending = self.pending_last_used();
        Ok(all
            .iter()
            .filter_map(|row| listed(row.clone(), shown_after, &pending, |g| self.grants_of(g)))
            .collect())
    }

    /// Deletes the user's token by name; it fails at once, and its sessions end when configured.
    /// The lifetime rule `expiry` asks for at `now`, by the server's rules.
    fn asked_rule(&self, now: Timestamp, expiry: Expiry) -> Result<LifetimeRule> {
        let rules = &self.settings().tokens;
        let rule = match expiry {
            Expiry::Default => LifetimeRule::Calendar(rules.default_lifetime),
            Expiry::Lifetime(lifetime) => LifetimeRule::Calendar(lifetime),
            Expiry::At(at) if at <= now => {
                return Err(Error::InvalidInput(
                    "expiresAt must be in the future".into(),
                ));
            }
            Expiry::At(at) => LifetimeRule::Exactly(at.duration_since(now)),
        };
        if rule.never_ends() && !rules.allow_never {
            return Err(Error::InvalidInput(
                "tokens without expiry are not allowed on this server; choose a lifetime".into(),
            ));
        }
        Ok(rule)
    }

    /// A new secret for the user's token `name`, shown once; the same name, scopes and bounds.
    /// Its expiry follows the token's own lifetime rule (a year-long token gets a year from now,
    /// one that never expires still does not), or the one `expiry` asks for: never longer than
    /// the holder could have made it, so under `tokens.admins_only` a user who is not an
    /// administrator keeps the rule an administrator gave, or shortens it. An expired token is
    /// not rotated: it would come back to life beside the quota. The previous secret keeps
    /// working for `grace` (at most `tokens.max_rotation_grace`; zero: not at all), the one
    /// before it stops at once, and the sessions opened with a secret that stops end with it
    /// when `tokens.end_sessions_on_delete` says so. Not counted toward the quota.
    pub async fn rotate_token(
        &self,
        actor: &Actor,
        user: &User,
        name: &str,
        expiry: Expiry,
        grace: SignedDuration,
    ) -> Result<NewToken> {
        let rules = &self.settings().tokens;
        if grace < SignedDuration::ZERO || grace > rules.max_rotation_grace.0 {
            return Err(Error::InvalidInput(format!(
                "the grace period must be from 0 to {:#} (tokens.max_rotation_grace)",
                rules.max_rotation_grace.0
            )));
        }
        let now = self.now();
        let asked = match expiry {
            Expiry::Default => None,
            asked => Some(self.asked_rule(now, asked)?),
        };
        let bound_by_admin =
            rules.admins_only && actor.user.as_ref().is_some_and(|u| !u.is_admin());
        let allow_never = rules.allow_never;
        let fallback = LifetimeRule::Calendar(rules.default_lifetime);
        let secret = ApiTokenSecret::generate();
        let digest = secret.digest();
        let grace_until = (grace > SignedDuration::ZERO).then(|| (now + grace).as_microsecond());
        let name = name.trim().to_owned();
        let owner = user.id;
        let event = AuditEvent::new(kind::TOKEN_ROTATE, true)
            .user(user.user_id.clone())
            .token(name.clone())
            .detail(match grace_until {
                Some(_) => format!("the previous secret works for {grace:#} more"),
                None => "the previous secret stopped at once".to_owned(),
            })
            .by(actor);
        let missing = format!("`{}` has no token named `{name}`", user.user_id);
        let sends = self.notices().sends(NotifyEvent::TokenRotate);
        let micros = now.as_microsecond();
        let rotated = self
            .store()
            .write(move |tx| {
                let Some((expires, stored)) = store_tokens::expiry_and_lifetime(tx, owner, &name)?
                else {
                    return Ok(Err(Error::NotFound(missing)));
                };
                if let Some(at) = expires.filter(|&at| at <= micros) {
                    return Ok(Err(Error::InvalidInput(format!(
                        "`{name}` expired on {:.0}: an expired token is not rotated; create a new one",
                        from_micros(at)
                    ))));
                }
                // Tokens whose rule no Lodge wrote (none should be) take the server's default.
                let kept = stored
                    .as_deref()
                    .and_then(LifetimeRule::from_stored)
                    .unwrap_or(fallback);
                let rule = match asked {
                    Some(asked) if bound_by_admin && asked.outlasts(kept, now) => {
                        return Ok(Err(Error::AccessDenied(
                            "only an administrator may give this token a longer life on this \
                             server (tokens.admins_only): rotate it without a lifetime to keep \
                             its own",
                        )));
                    }
                    Some(asked) => asked,
                    None if kept.never_ends() && !allow_never => {
                        return Ok(Err(Error::InvalidInput(
                            "tokens without expiry are no longer allowed on this server: rotate \
                             it with a lifetime"
                                .into(),
                        )));
                    }
                    None => kept,
                };
                let expires_at = rule.end(now);
                let rotated = store_tokens::rotate(
                    tx,
                    owner,
                    &name,
                    &digest,
                    (expires_at.map(|t| t.as_microsecond()), &rule.to_stored()),
                    grace_until,
                )?;
                if rotated.is_some() {
                    audit::record(tx, now, &event)?;
                    if sends {
                        notify::queue(tx, now, &event.notice(NotifyEvent::TokenRotate))?;
                    }
                }
                Ok(rotated.ok_or(Error::NotFound(missing)))
            })
            .await??;
        if sends {
            self.notices().wake_sender();
        }
        Ok(NewToken {
            secret,
            token: Token::from_row(rotated, |g| self.grants_of(g)),
        })
    }

    /// Revokes every live token among `texts`, reported as leaked by whoever found them (no
    /// login needed, so at most `limits.revoke_per_minute` reports an address a minute): each is
    /// deleted and its sessions end at once, recorded as `token.leaked` with the reporter's
    /// address. Anything else (malformed, unknown, expired) is passed over, and the caller's
    /// answer is the same either way; gives how many were revoked.
    pub async fn revoke_leaked(&self, texts: &[String], address: Option<IpAddr>) -> Result<usize> {
        self.revoke_limit
            .admit(address.map(|ip| self.limits().address_key(ip)), self.now())
            .map_err(Error::TooManyRequests)?;
        let mut digests: Vec<_> = texts
            .iter()
            .filter_map(|t| ApiTokenSecret::parse(t).ok())
            .map(|secret| secret.digest())
            .collect();
        digests.sort_unstable();
        digests.dedup();
        if digests.is_empty() {
            return Ok(0);
        }
        let now = self.now();
        let micros = now.as_microsecond();
        let sends = self.notices().sends(NotifyEvent::TokenLeaked);
        let revoked = self
            .store()
            .write(move |tx| {
                let mut found: Vec<(store_tokens::TokenRow, _)> = Vec::new();
                for digest in &digests {
                    // The current secret, or the one before a rotation while its grace lasts:
                    // either still opens the token, so either revokes it, both secrets at once.
                    let row = match store_tokens::by_digest(tx, digest)? {
                        Some(row) => Some(row),
                        None => store_tokens::by_previous_digest(tx, digest)?
                            .filter(|(_, t, _)| t.grace_until.is_some_and(|at| at > micros)),
                    };
                    if let Some((_, token, user)) = row
                        && token.expires_at.is_none_or(|at| at > micros)
                        && !found.iter().any(|(t, _)| t.id == token.id)
                    {
                        found.push((token, user));
                    }
                }
                if found.is_empty() {
                    return Ok(0);
                }
                let ids: Vec<i64> = found.iter().map(|(t, _)| t.id).collect();
                let ended = store_sessions::delete_for_tokens(tx, &ids)?;
                for (token, user) in &found {
                    store_tokens::delete(tx, token.id)?;
                    let sessions = ended.iter().filter(|&&t| t == token.id).count();
                    let event = AuditEvent::new(kind::TOKEN_LEAKED, true)
                        .user(user.user_id.clone())
                        .token(token.name.clone())
                        .address(address)
                        .detail(format!(
                            "reported as leaked: revoked, {sessions} sessions ended"
                        ));
                    audit::record(tx, now, &event)?;
                    if sends {
                        let detail = match address {
                            Some(from) => format!("reported as leaked from {from}: revoked"),
                            None => "reported as leaked: revoked".to_owned(),
                        };
                        let notice = Notice {
                            detail: Some(&detail),
                            ..event.notice(NotifyEvent::TokenLeaked)
                        };
                        notify::queue(tx, now, &notice)?;
                    }
                }
                Ok(found.len())
            })
            .await?;
        if sends && revoked > 0 {
            self.notices().wake_sender();
        }
        self.metrics().tokens_deleted(revoked as u64);
        Ok(revoked)
    }

    pub async fn delete_token(&self, actor: &Actor, user: &User, name: &str) -> Result<()> {
        let name = name.trim().to_owned();
        let now = self.now();
        let mut event = AuditEvent::new(kind::TOKEN_DELETE, true)
            .user(user.user_id.clone())
            .token(name.clone())
            .by(actor);
        let owner = user.id;
        let end_sessions = self.settings().tokens.end_sessions_on_delete;
        let missing = if actor.user.as_ref().is_some_and(|a| a.id == user.id) {
            format!("you have no token named `{name}`")
        } else {
            format!("`{}` has no token named `{name}`", user.user_id)
        };
        let deleted = self
            .store()
            .write(move |tx| {
                let Some(id) = store_tokens::id_by_name(tx, owner, &name)? else {
                    return Ok(false);
                };
                if end_sessions {
                    let ended = store_sessions::delete_for_token(tx, id)?;
                    if ended > 0 {
                        let detail = event.detail.take().unwrap_or_default();
                        event = event.detail(format!("{detail}, {ended} sessions ended"));
                    }
                }
                store_tokens::delete(tx, id)?;
                audit::record(tx, now, &event)?;
                Ok(true)
            })
            .await?;
        if deleted {
            self.metrics().tokens_deleted(1);
            Ok(())
        } else {
            Err(Error::NotFound(missing))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn lifetimes_follow_the_calendar() {
        let cases = [
            (
                "2027-01-31T10:00:00Z",
                Lifetime::Month,
                "2027-02-28T10:00:00Z",
            ),
            (
                "2028-01-31T10:00:00Z",
                Lifetime::Month,
                "2028-02-29T10:00:00Z",
            ),
            (
                "2028-02-29T10:00:00Z",
                Lifetime::Year,
                "2029-02-28T10:00:00Z",
            ),
            (
                "2027-12-31T23:30:00Z",
                Lifetime::Day,
                "2028-01-01T23:30:00Z",
            ),
            (
                "2027-03-01T00:00:00Z",
                Lifetime::Week,
                "2027-03-08T00:00:00Z",
            ),
        ];
        for (start, lifetime, end) in cases {
            assert_eq!(
                lifetime_end(at(start), lifetime),
                Some(at(end)),
                "{lifetime:?} from {start}"
            );
        }
        assert_eq!(
            lifetime_end(at("2027-01-31T10:00:00Z"), Lifetime::Never),
            None
        );
    }
}
