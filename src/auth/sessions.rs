//! The sessions a login opens, and who is calling.

use std::{net::IpAddr, sync::Arc};

use jiff::{SignedDuration, Timestamp};

use super::{
    Auth, Caller, Error, Grants, Result, Role, User,
    audit::{self, AuditEvent, kind},
    cache::{SessionChange, TokenEntry},
    from_micros,
    limits::Check,
    secret::{ApiTokenSecret, Digest, SessionCookie, SessionSecret, random_id},
};
use crate::store::{
    StoreError,
    sessions::{self as store_sessions, NewSession, SessionRow},
    tokens as store_tokens,
};

/// Whether a session's insert was refused by its foreign keys: its user or its token was
/// deleted by another process after the login looked them up. The login then fails as for an
/// unknown token or user, and its write (the session it replaced too) is rolled back.
fn parent_gone(e: &Error) -> bool {
    let Error::Internal(cause) = e else {
        return false;
    };
    cause
        .downcast_ref::<StoreError>()
        .is_some_and(StoreError::is_parent_gone)
}

/// What the audit log says of a token that does not log in.
/// A secret that opened no token: why, and the token whose row it matched when one did (its
/// owner's id and its name; never the secret).
pub(super) struct TokenMiss {
    pub(super) matched: Option<(String, String)>,
    pub(super) why: &'static str,
}

impl TokenMiss {
    pub(super) const MALFORMED: Self = Self {
        matched: None,
        why: "a malformed token",
    };
    pub(super) const UNKNOWN: Self = Self {
        matched: None,
        why: "no token has this secret (unknown or deleted)",
    };
}

/// The characters of a `User-Agent` a session keeps at most.
const MAX_USER_AGENT: usize = 200;

/// How often at most a session's last access or a token's last use is written.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// A live token and its owner, as a use of it found them.
pub(super) struct TokenUse {
    pub(super) user: User,
    pub(super) token: UsedToken,
}

/// A live token: what a session it opens keeps of it.
pub(super) struct UsedToken {
    id: i64,
    pub(super) name: String,
    pub(super) grants: Option<Arc<Grants>>,
    /// The generation of the secret used: the token's now, or the one before for its previous
    /// secret during a rotation's grace.
    generation: i64,
}

/// A live login.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    /// The digest of its secret: with the id, what names this session and not a later one in
    /// the same row (`store::sessions`).
    pub secret_digest: Digest,
    pub user: User,
    pub provider: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The token it was opened with, while that token exists.
    pub token_name: Option<String>,
    /// That token's scopes and bounds, for the session's whole life; `None`: every scope.
    pub grants: Option<Arc<Grants>>,
}

/// How a login is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginOptions<'a> {
    /// The client's address, for throttling and for the session's list.
    pub address: Option<IpAddr>,
    /// The client's `User-Agent`, shown in the session's list.
    pub user_agent: Option<&'a str>,
    /// The session the caller had, which the new one replaces.
    pub replaces: Option<SessionKey>,
    /// `forceSessionsLogout`: end the user's other sessions.
    pub end_other_sessions: bool,
    /// The browser's device cookie ([`devices::DEVICE_COOKIE`]), if it sent one.
    pub device: Option<&'a str>,
}

/// A session, its secret's digest and its user's row id: what ending it takes.
#[derive(Debug, Clone, Copy)]
pub struct SessionKey {
    pub id: i64,
    pub secret_digest: Digest,
    pub user: i64,
}

/// A successful login: the new cookie and its session.
#[derive(Debug)]
pub struct LoginOutcome {
    pub cookie: SessionCookie,
    pub session: Session,
    pub auth_id: String,
    /// After a password login: the device cookie that trusts this browser for the account.
    pub device_cookie: Option<String>,
}

/// What `sessionState` reports.
pub struct SessionState {
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub valid: bool,
    pub remaining: SignedDuration,
}

/// Who calls (a session cookie or a Bearer token), the sessions logins open, logout.
pub struct Sessions<'a>(pub(super) &'a Auth);

super::facet!(Sessions);

impl Sessions<'_> {
    /// Identifies the caller by its bearer token (first) or its session cookie.
    /// Failed bearer tokens count toward the address's login limit.
    pub async fn caller(
        &self,
        cookie: Option<&str>,
        bearer: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Caller> {
        if let Some(bearer) = bearer {
            let attempt = match self
                .logins()
                .begin_attempt(Check::Token, address, None)
                .await
            {
                Ok(attempt) => attempt,
                Err(Error::TooManyRequests(wait) | Error::TooManyAtOnce(wait)) => {
                    return Ok(Caller::Throttled(wait));
                }
                Err(e) => return Err(e),
            };
            let (caller, miss) = match self.bearer(bearer, address).await {
                Ok(Err(miss)) => (Ok(Caller::BadBearer), Some(miss)),
                Ok(Ok(caller)) => (Ok(caller), None),
                Err(e) => (Err(e), None),
            };
            // A token used from outside its allowFrom was right: not a failure to count.
            let right = matches!(caller, Ok(Caller::Bearer { .. } | Caller::Denied(_)));
            self.logins().settle(attempt, right).await;
            self.metrics().login(
                "bearer",
                match &caller {
                    Ok(Caller::Bearer { .. }) => "success",
                    Ok(Caller::Denied(_)) => "denied",
                    _ => "failure",
                },
            );
            if let Some(miss) = miss {
                self.logins().token_failed("bearer", &miss, address).await;
            }
            return caller;
        }
        let Some(cookie) = cookie else {
            return Ok(Caller::Anonymous);
        };
        let Some(cookie) = SessionCookie::parse(cookie) else {
            return Ok(Caller::Expired);
        };
        let now = self.now();
        let (idle, _) = self.session_limits();
        let Some(mut row) = self.session_row(cookie.id).await? else {
            return Ok(Caller::Expired);
        };
        if !cookie.proves(&row.secret_digest) {
            return Ok(Caller::Expired);
        }
        let ages = Ages {
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            token_expires_at: row.token_expires_at,
            generations: (
                row.token_generation,
                row.token_now_generation,
                row.token_grace_until,
            ),
        };
        let user = (row.user.enabled, row.user.role.as_str());
        let reason = self.session_ended(user, row.token_needs_admin, ages, now);
        if let Some(reason) = reason {
            let (id, digest, user, user_id) = (
                row.id,
                row.secret_digest,
                row.user.id,
                row.user.user_id.clone(),
            );
            self.write_sessions(move |conn, lists, changes| {
                // Another request may have ended it first; only the one that did records it.
                if lists.delete(conn, user, id, &digest)? {
                    changes.push(SessionChange::Ended(id));
                    let event = AuditEvent::new(kind::SESSION_END, true)
                        .user(user_id)
                        .detail(reason);
                    audit::record(conn, now, &event)?;
                }
                Ok(())
            })
            .await?;
            return Ok(Caller::Expired);
        }
        if now.duration_since(from_micros(row.last_seen_at)) >= touch_every(idle) {
            let (id, digest, at) = (row.id, row.secret_digest, now.as_microsecond());
            self.write_sessions(move |conn, _, changes| {
                if store_sessions::touch(conn, id, &digest, at)? {
                    changes.push(SessionChange::Seen { id, at });
                }
                Ok(())
            })
            .await?;
            row.last_seen_at = at;
        }
        let grants = row.grants.as_deref().map(|g| self.grants_of(g));
        let session = session_from_row(row, grants);
        if let Some(grants) = &session.grants
            && let Err(denied) = grants.check_address(address)
        {
            let token = session.token_name.as_deref().unwrap_or_default();
            self.token_denied(&session.user.user_id, token, address, &denied.0)
                .await;
            return Ok(Caller::Denied(denied.0));
        }
        Ok(Caller::Session(session))
    }

    /// The database's change counter now (`Store::change_counter`).
    pub(super) async fn change_counter(&self) -> Result<i64> {
        Ok(self.store().change_counter().await?)
    }

    /// The session with this id: from the cache when nothing changed since, else read and kept.
    async fn session_row(&self, id: i64) -> Result<Option<SessionRow>> {
        if let Some(row) = self.cache.session(self.change_counter().await?, id) {
            return Ok(Some(row));
        }
        let found = self
            .store()
            .read(move |tx| store_sessions::by_id(tx, id))
            .await?;
        Ok(found.map(|(read_at, row)| {
            self.cache.keep_session(read_at, row.clone());
            row
        }))
    }

    /// The token with this digest and its owner, from the cache or read and kept, as
    /// [`Sessions::session_row`].
    pub(super) async fn token_entry(&self, digest: &Digest) -> Result<Option<TokenEntry>> {
        if let Some(entry) = self.cache.token(self.change_counter().await?, digest) {
            return Ok(Some(entry));
        }
        let key = *digest;
        let found = self
            .store()
            .read(move |tx| {
                match store_tokens::by_digest(tx, &key)? {
                    Some(found) => Ok(Some(found)),
                    // A secret rotated away, maybe within its grace.
                    None => store_tokens::by_previous_digest(tx, &key),
                }
            })
            .await?;
        Ok(found.map(|(read_at, mut token, user)| {
            let grants = token.grants.take().map(|g| self.grants_of(&g));
            let entry = TokenEntry {
                token,
                user,
                grants,
            };
            self.cache.keep_token(read_at, *digest, entry.clone());
            entry
        }))
    }

    /// The caller a bearer token makes, or why it opens nothing.
    async fn bearer(
        &self,
        text: &str,
        address: Option<IpAddr>,
    ) -> Result<std::result::Result<Caller, TokenMiss>> {
        let Ok(secret) = ApiTokenSecret::parse(text) else {
            return Ok(Err(TokenMiss::MALFORMED));
        };
        let used = match self.token_owner(&secret, address).await? {
            Ok(used) => used,
            Err(miss) => return Ok(Err(miss)),
        };
        if let Some(grants) = &used.token.grants
            && let Err(denied) = grants.check_address(address)
        {
            self.token_denied(&used.user.user_id, &used.token.name, address, &denied.0)
                .await;
            return Ok(Ok(Caller::Denied(denied.0)));
        }
        Ok(Ok(Caller::Bearer {
            user: used.user,
            token_name: used.token.name,
            grants: used.token.grants,
        }))
    }

    /// Records a right token used beyond its scopes or bounds (`token.denied`): not a failed
    /// login, since the token was right.
    pub async fn token_denied(
        &self,
        user_id: &str,
        token: &str,
        address: Option<IpAddr>,
        reason: &str,
    ) {
        // A script that keeps using a token beyond its scope would write a row at every
        // request: the same refusal is recorded once a minute, with how many came between.
        let Some(before) = self
            .denials
            .first_in_a_while(user_id, token, reason, self.now())
        else {
            return;
        };
        let detail = match before {
            0 => reason.to_owned(),
            n => format!("{reason} (and {n} more such refusals in the minute before)"),
        };
        let event = AuditEvent::new(kind::TOKEN_DENIED, false)
            .user(user_id)
            .token(token)
            .address(address)
            .detail(detail);
        self.audit().record(event).await;
    }

    /// The enabled owner of a live token, recording its use; or why the secret opens nothing.
    pub(super) async fn token_owner(
        &self,
        secret: &ApiTokenSecret,
        address: Option<IpAddr>,
    ) -> Result<std::result::Result<TokenUse, TokenMiss>> {
        let digest = secret.digest();
        let now = self.now();
        let Some(TokenEntry {
            token,
            user,
            grants,
        }) = self.token_entry(&digest).await?
        else {
            return Ok(Err(TokenMiss::UNKNOWN));
        };
        let why = if token.expires_at.is_some_and(|t| t <= now.as_microsecond()) {
            Some("the token has expired")
        } else if token.needs_admin && !self.admin_held(&user.role) {
            Some("the token is suspended: its owner is no longer an administrator")
        } else if token.previous
            && token
                .grace_until
                .is_none_or(|until| until <= now.as_microsecond())
        {
            // A previous secret works only within its grace.
            Some("a secret the token was rotated away from, past its grace")
        } else if !user.enabled {
            Some("the token's owner is disabled")
        } else {
            None
        };
        if let Some(why) = why {
            return Ok(Err(TokenMiss {
                matched: Some((user.user_id, token.name)),
                why,
            }));
        }
        let mut pending = self.pending_last_used();
        let known = token.last_used_at.max(pending.get(&token.id).map(|u| u.at));
        if known.is_none_or(|t| now.duration_since(from_micros(t)) >= TOUCH_EVERY) {
            let at = now.as_microsecond();
            pending.insert(token.id, super::LastUse { at, address });
        }
        drop(pending);
        Ok(Ok(TokenUse {
            user: User::from(user),
            token: UsedToken {
                id: token.id,
                name: token.name,
                grants,
                generation: token.generation - i64::from(token.previous),
            },
        }))
    }

    pub(super) async fn open_session(
        &self,
        user: User,
        provider: &'static str,
        token: Option<UsedToken>,
        login: LoginOptions<'_>,
    ) -> Result<LoginOutcome> {
        let LoginOptions {
            replaces,
            end_other_sessions,
            address,
            user_agent,
            device: _,
        } = login;
        let seen_from = address.map(|a| a.to_string());
        let user_agent = user_agent.map(|agent| crate::text::bounded(agent, MAX_USER_AGENT));
        let token_id = token.as_ref().map(|t| t.id);
        let token_generation = token.as_ref().map(|t| t.generation);
        let mut event = AuditEvent::new(kind::LOGIN, true)
            .user(user.user_id.clone())
            .provider(provider)
            .address(address);
        let (token_name, grants) = match token {
            Some(t) => (Some(t.name), t.grants),
            None => (None, None),
        };
        // The session keeps the token's grants for its whole life.
        let stored_grants = grants.as_deref().map(Grants::to_stored);
        if let Some(name) = &token_name {
            event = event.token(name.clone());
        }
        let user_id = user.user_id.clone();
        let secret = SessionSecret::generate();
        let secret_digest = secret.digest();
        let now = self.now();
        let user_row = user.id;
        let keep = self.session_caps();
        let id = self
            .write_sessions(move |tx, lists, changes| {
                if let Some(old) = replaces
                    && lists.delete(tx, old.user, old.id, &old.secret_digest)?
                {
                    changes.push(SessionChange::Ended(old.id));
                }
                let (id, ended) = lists.open(
                    tx,
                    &NewSession {
                        secret_digest: &secret_digest,
                        user: user_row,
                        provider,
                        token_id,
                        now: now.as_microsecond(),
                        address: seen_from.as_deref(),
                        user_agent: user_agent.as_deref(),
                        grants: stored_grants.as_deref(),
                        token_generation,
                    },
                    keep,
                )?;
                changes.extend(ended.into_iter().map(SessionChange::Ended));
                audit::record(tx, now, &event)?;
                if end_other_sessions {
                    let ended = lists.end_user(tx, user_row, id)?;
                    changes.extend(ended.iter().copied().map(SessionChange::Ended));
                    let ended = ended.len();
                    if ended > 0 {
                        let ended = AuditEvent::new(kind::SESSION_END, true)
                            .user(user_id)
                            .address(address)
                            .detail(format!("{ended} sessions ended by forceSessionsLogout"));
                        audit::record(tx, now, &ended)?;
                    }
                }
                Ok(id)
            })
            .await
            .map_err(|e| {
                if parent_gone(&e) {
                    Error::AuthFailed
                } else {
                    e
                }
            })?;
        self.note_login(user_row, now);
        Ok(LoginOutcome {
            cookie: SessionCookie { id, secret },
            session: Session {
                id,
                secret_digest,
                user,
                provider: provider.to_owned(),
                created_at: now,
                last_seen_at: now,
                token_name,
                grants,
            },
            auth_id: random_id(),
            device_cookie: None,
        })
    }

    /// Ends one session on the server.
    pub async fn logout(&self, session: &Session, address: Option<IpAddr>) -> Result<()> {
        let (id, digest, user) = (session.id, session.secret_digest, session.user.id);
        let now = self.now();
        let event = AuditEvent::new(kind::LOGOUT, true)
            .user(session.user.user_id.clone())
            .provider(provider_name(&session.provider))
            .address(address);
        self.write_sessions(move |conn, lists, changes| {
            if lists.delete(conn, user, id, &digest)? {
                changes.push(SessionChange::Ended(id));
            }
            audit::record(conn, now, &event)
        })
        .await?;
        Ok(())
    }

    pub fn session_state(&self, caller: &Caller) -> SessionState {
        let now = self.now();
        match caller {
            Caller::Session(s) => {
                let (idle, max) = self.session_limits();
                let ends = (s.last_seen_at + idle).min(s.created_at + max);
                let remaining = ends.duration_since(now);
                SessionState {
                    created_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                    valid: true,
                    remaining: remaining.max(SignedDuration::ZERO),
                }
            }
            _ => SessionState {
                created_at: now,
                last_seen_at: now,
                valid: false,
                remaining: SignedDuration::ZERO,
            },
        }
    }

    /// Whether a user with this stored role keeps the tokens they made as an administrator:
    /// under `tokens.admins_only`, only while they still are one.
    pub(super) fn admin_held(&self, role: &str) -> bool {
        role == Role::Admin.as_str() || !self.settings().tokens.admins_only
    }

    pub(super) fn session_limits(&self) -> (SignedDuration, SignedDuration) {
        let s = &self.settings().session;
        (s.idle_timeout.0, s.max_lifetime.0)
    }

    /// Why a session of `user`'s has ended, if it has: its token's secret rotated away (with
    /// `tokens.end_sessions_on_delete`), its user disabled, its token suspended, or its time up.
    /// The one rule for a request's session and for the session lists.
    pub(super) fn session_ended(
        &self,
        (user_enabled, role): (bool, &str),
        token_needs_admin: bool,
        ages: Ages,
        now: Timestamp,
    ) -> Option<&'static str> {
        if self.settings().tokens.end_sessions_on_delete
            && rotated_away(ages.generations, now.as_microsecond())
        {
            return Some("its API token was rotated and the previous secret's grace is over");
        }
        let suspended = token_needs_admin && !self.admin_held(role);
        session_end(user_enabled, suspended, ages, now, self.session_limits())
    }
}

fn provider_name(provider: &str) -> &'static str {
    if provider == "token" {
        "token"
    } else {
        "local"
    }
}

fn touch_every(idle: SignedDuration) -> SignedDuration {
    TOUCH_EVERY.min(idle / 10)
}

/// What ends a session in time: when it was opened and last seen, when its token expires, and
/// the generations of its token's secrets ([`rotated_away`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ages {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub token_expires_at: Option<i64>,
    pub generations: Generations,
}

/// The generation of the secret a session was opened with, its token's generation now, and until
/// when the token's previous secret works (`store::tokens::rotate`).
pub(super) type Generations = (Option<i64>, Option<i64>, Option<i64>);

/// Why a session has ended, if it has: its user disabled, its token suspended, or its time up.
fn session_end(
    user_enabled: bool,
    token_suspended: bool,
    ages: Ages,
    now: Timestamp,
    (idle, max): (SignedDuration, SignedDuration),
) -> Option<&'static str> {
    if !user_enabled {
        Some("user disabled")
    } else if token_suspended {
        Some("its API token is suspended: its user is no longer an administrator")
    } else if now.duration_since(from_micros(ages.last_seen_at)) >= idle {
        Some("idle timeout")
    } else if now.duration_since(from_micros(ages.created_at)) >= max {
        Some("maximum lifetime")
    } else if ages
        .token_expires_at
        .is_some_and(|t| now.as_microsecond() >= t)
    {
        Some("its API token expired")
    } else {
        None
    }
}

/// Whether a session was opened with a secret its token no longer accepts: one before the
/// previous, or the previous after its grace.
fn rotated_away((opened_with, now_at, grace_until): Generations, now: i64) -> bool {
    let (Some(opened_with), Some(now_at)) = (opened_with, now_at) else {
        return false;
    };
    opened_with < now_at - 1
        || (opened_with == now_at - 1 && grace_until.is_none_or(|until| until <= now))
}

fn session_from_row(row: SessionRow, grants: Option<Arc<Grants>>) -> Session {
    Session {
        id: row.id,
        secret_digest: row.secret_digest,
        provider: row.provider,
        created_at: from_micros(row.created_at),
        last_seen_at: from_micros(row.last_seen_at),
        token_name: row.token_name,
        grants,
        user: User::from(row.user),
    }
}
