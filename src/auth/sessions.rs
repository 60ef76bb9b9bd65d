//! Logging in, the sessions a login opens, and who is calling.

use std::{net::IpAddr, sync::Arc};

use jiff::{SignedDuration, Timestamp};

use super::{
    ApiAccess, Auth, Caller, Error, Grants, Result, Role, User,
    audit::{self, AuditEvent, kind},
    cache::{SessionChange, TokenEntry},
    devices, from_micros,
    limits::{Attempt, Check},
    password::{self, ClientHash},
    secret::{ApiTokenSecret, Digest, SessionCookie, SessionSecret, random_id},
    users::UserId,
};
use crate::store::{
    StoreError,
    sessions::{self as store_sessions, NewSession, SessionRow},
    tokens as store_tokens,
    users::{self as store_users, UserRow},
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
const BAD_TOKEN: &str = "unknown, expired, malformed or suspended token";

/// The characters of a `User-Agent` a session keeps at most.
const MAX_USER_AGENT: usize = 200;

/// How often at most a session's last access or a token's last use is written.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// A live token and its owner, as a use of it found them.
struct TokenUse {
    user: User,
    token: UsedToken,
}

/// A live token: what a session it opens keeps of it.
struct UsedToken {
    id: i64,
    name: String,
    grants: Option<Arc<Grants>>,
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

/// How a login ended, for `lodge_logins_total`.
fn login_result<T>(outcome: &Result<T>) -> &'static str {
    match outcome {
        Ok(_) => "success",
        Err(Error::TokenDenied(_)) => "denied",
        Err(_) => "failure",
    }
}

impl Auth {
    /// Identifies the caller by its bearer token (first) or its session cookie.
    /// Failed bearer tokens count toward the address's login limit.
    pub async fn caller(
        &self,
        cookie: Option<&str>,
        bearer: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<Caller> {
        if let Some(bearer) = bearer {
            let attempt = match self.begin_attempt(Check::Token, address, None) {
                Ok(attempt) => attempt,
                Err(Error::TooManyRequests(wait) | Error::TooManyAtOnce(wait)) => {
                    return Ok(Caller::Throttled(wait));
                }
                Err(e) => return Err(e),
            };
            let caller = self.bearer(bearer, address).await;
            // A token used from outside its allowFrom was right: not a failure to count.
            let right = matches!(caller, Ok(Caller::Bearer { .. } | Caller::Denied(_)));
            self.settle(attempt, right);
            self.metrics().login(
                "bearer",
                match &caller {
                    Ok(Caller::Bearer { .. }) => "success",
                    Ok(Caller::Denied(_)) => "denied",
                    _ => "failure",
                },
            );
            if matches!(caller, Ok(Caller::BadBearer)) {
                self.login_failed("bearer", None, address, BAD_TOKEN).await;
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
        let Some(mut row) = self.session_row(cookie.id)? else {
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
    pub(super) fn change_counter(&self) -> Result<i64> {
        Ok(self.store().change_counter()?)
    }

    /// The session with this id: from the cache when nothing changed since, else read and kept.
    fn session_row(&self, id: i64) -> Result<Option<SessionRow>> {
        if let Some(row) = self.cache.session(self.change_counter()?, id) {
            return Ok(Some(row));
        }
        let found = self.store().read(|conn| store_sessions::by_id(conn, id))?;
        Ok(found.map(|(read_at, row)| {
            self.cache.keep_session(read_at, row.clone());
            row
        }))
    }

    /// The token with this digest and its owner, from the cache or read and kept, as
    /// [`Auth::session_row`].
    pub(super) fn token_entry(&self, digest: &Digest) -> Result<Option<TokenEntry>> {
        if let Some(entry) = self.cache.token(self.change_counter()?, digest) {
            return Ok(Some(entry));
        }
        let found = self.store().read(|conn| {
            match store_tokens::by_digest(conn, digest)? {
                Some(found) => Ok(Some(found)),
                // A secret rotated away, maybe within its grace.
                None => store_tokens::by_previous_digest(conn, digest),
            }
        })?;
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

    async fn bearer(&self, text: &str, address: Option<IpAddr>) -> Result<Caller> {
        let Ok(secret) = ApiTokenSecret::parse(text) else {
            return Ok(Caller::BadBearer);
        };
        let Some(used) = self.token_owner(&secret, address).await? else {
            return Ok(Caller::BadBearer);
        };
        if let Some(grants) = &used.token.grants
            && let Err(denied) = grants.check_address(address)
        {
            self.token_denied(&used.user.user_id, &used.token.name, address, &denied.0)
                .await;
            return Ok(Caller::Denied(denied.0));
        }
        Ok(Caller::Bearer {
            user: used.user,
            token_name: used.token.name,
            grants: used.token.grants,
        })
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
        let event = AuditEvent::new(kind::TOKEN_DENIED, false)
            .user(user_id)
            .token(token)
            .address(address)
            .detail(reason);
        self.audit(event).await;
    }

    /// The enabled owner of a live token, recording its use.
    async fn token_owner(
        &self,
        secret: &ApiTokenSecret,
        address: Option<IpAddr>,
    ) -> Result<Option<TokenUse>> {
        let digest = secret.digest();
        let now = self.now();
        let Some(TokenEntry {
            token,
            user,
            grants,
        }) = self.token_entry(&digest)?
        else {
            return Ok(None);
        };
        let expired = token.expires_at.is_some_and(|t| t <= now.as_microsecond());
        let suspended = token.needs_admin && !self.admin_held(&user.role);
        // A previous secret works only within its grace.
        let graceless = token.previous
            && token
                .grace_until
                .is_none_or(|until| until <= now.as_microsecond());
        if expired || suspended || graceless || !user.enabled {
            return Ok(None);
        }
        let mut pending = self.pending_last_used();
        let known = token.last_used_at.max(pending.get(&token.id).map(|u| u.at));
        if known.is_none_or(|t| now.duration_since(from_micros(t)) >= TOUCH_EVERY) {
            let at = now.as_microsecond();
            pending.insert(token.id, super::LastUse { at, address });
        }
        drop(pending);
        Ok(Some(TokenUse {
            user: User::from(user),
            token: UsedToken {
                id: token.id,
                name: token.name,
                grants,
                generation: token.generation - i64::from(token.previous),
            },
        }))
    }

    /// `authLogin` with the `local` provider: a user id and a password or its client hash.
    /// Throttled per client address and per account before any work; a user id no user can
    /// have is refused without a hash, and counts toward the address only.
    pub async fn login_local(
        &self,
        user_id: &str,
        credential: &str,
        login: LoginOptions<'_>,
    ) -> Result<LoginOutcome> {
        let Some(user_id) = UserId::for_login(user_id) else {
            let attempt = self.begin_attempt(Check::Token, login.address, None)?;
            self.settle(attempt, false);
            self.metrics().login("local", "failure");
            self.login_failed("local", Some(user_id), login.address, "no such user id")
                .await;
            return Err(Error::AuthFailed);
        };
        // A browser that logged in to this account before checks in a budget of its own.
        let device = login
            .device
            .and_then(|cookie| self.trusted_device(cookie, &user_id));
        let budget = device.as_deref().map(devices::budget_name);
        let attempt = self.begin_attempt_in(
            Check::Password,
            login.address,
            Some(&user_id),
            Some(budget.as_deref().unwrap_or(&user_id)),
        )?;
        let mut outcome = self.check_password(&user_id, credential, login).await;
        let locked = self.settle(attempt, outcome.is_ok());
        self.metrics().login("local", login_result(&outcome));
        if let Err(Error::AuthFailed) = outcome {
            let detail = "wrong user, password or disabled user";
            self.login_failed("local", Some(&user_id), login.address, detail)
                .await;
        }
        if let Some(until) = locked {
            self.account_locked(&user_id, login.address, until, device.is_some())
                .await;
        }
        if let Ok(outcome) = &mut outcome {
            outcome.device_cookie = self.device_cookie(&user_id);
        }
        outcome
    }

    /// Records a failed login in the audit log and the server's log, the user id as given
    /// (escaped and cut short there).
    async fn login_failed(
        &self,
        provider: &'static str,
        user_id: Option<&str>,
        address: Option<IpAddr>,
        detail: &'static str,
    ) {
        let mut event = AuditEvent::new(kind::LOGIN, false)
            .provider(provider)
            .address(address)
            .detail(detail);
        if let Some(user_id) = user_id {
            event = event.user(user_id.trim());
        }
        let shown = user_id.map(|u| crate::text::bounded(u.trim(), audit::MAX_TEXT));
        tracing::info!(
            user = shown.as_deref().map(tracing::field::display),
            provider,
            address = address.map(tracing::field::display),
            "login failed: {detail}"
        );
        self.audit(event).await;
    }

    async fn check_password(
        &self,
        user_id: &str,
        credential: &str,
        login: LoginOptions<'_>,
    ) -> Result<LoginOutcome> {
        match self.check_credential(user_id, credential).await? {
            (Some(row), true) if row.enabled => {
                self.open_session(User::from(row), "local", None, login)
                    .await
            }
            _ => Err(Error::AuthFailed),
        }
    }

    /// The user with this id, and whether `credential` is their password. An unknown user, or
    /// one without a password, costs the same Argon2 work and never matches. Callers count the
    /// check in the limits first ([`Check::Password`]).
    pub(super) async fn check_credential(
        &self,
        user_id: &str,
        credential: &str,
    ) -> Result<(Option<UserRow>, bool)> {
        let client = ClientHash::from_credential(credential);
        let key = user_id.trim().to_owned();
        let row = self
            .store()
            .read(|conn| store_users::by_user_id(conn, &key))?;
        let stored = row.as_ref().and_then(|r| r.password_hash.clone());
        let has_password = stored.is_some();
        let stored = stored.unwrap_or_else(|| password::DUMMY_HASH.to_owned());
        let matches = self
            .hashing(move || password::verify(&client, &stored))
            .await?;
        Ok((row, matches && has_password))
    }

    /// `authLogin` with the `token` provider, throttled per client address.
    pub async fn login_token(&self, text: &str, login: LoginOptions<'_>) -> Result<LoginOutcome> {
        let attempt = self.begin_attempt(Check::Token, login.address, None)?;
        let outcome = async {
            let secret = ApiTokenSecret::parse(text).map_err(|_| Error::AuthFailed)?;
            let used = self
                .token_owner(&secret, login.address)
                .await?
                .ok_or(Error::AuthFailed)?;
            if let Some(grants) = &used.token.grants {
                let refused = match grants.api() {
                    ApiAccess::None => Err(format!(
                        "the token `{}` has no api or read_api scope: it is for forward auth only",
                        used.token.name
                    )),
                    ApiAccess::ReadOnly if login.end_other_sessions => Err(format!(
                        "the token `{}` has the scope read_api, which allows queries only; \
                         forceSessionsLogout ends sessions and needs the scope api",
                        used.token.name
                    )),
                    _ => grants.check_address(login.address).map_err(|d| d.0),
                };
                if let Err(reason) = refused {
                    let (user, token) = (&used.user.user_id, &used.token.name);
                    self.token_denied(user, token, login.address, &reason).await;
                    return Err(Error::TokenDenied(reason));
                }
            }
            self.open_session(used.user, "token", Some(used.token), login)
                .await
        }
        .await;
        // A token used beyond its scope was right: not a failure to count.
        let succeeded = outcome.is_ok() || matches!(outcome, Err(Error::TokenDenied(_)));
        self.settle(attempt, succeeded);
        self.metrics().login("token", login_result(&outcome));
        if let Err(Error::AuthFailed) = outcome {
            self.login_failed("token", None, login.address, BAD_TOKEN)
                .await;
        }
        outcome
    }

    /// Counts a check in the limits before it starts. A locked account whose lock was lifted
    /// from outside this server since (`lodge user unlock`, a password change: see
    /// [`Auth::lock_lifted`]) is unlocked here and checked.
    pub(super) fn begin_attempt(
        &self,
        check: Check,
        address: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Attempt> {
        self.begin_attempt_in(check, address, account, account)
    }

    /// [`Auth::begin_attempt`] counted in the budget named `budget` (an account's, or a trusted
    /// browser's: [`devices::budget_name`]) for `account`'s login.
    fn begin_attempt_in(
        &self,
        check: Check,
        address: Option<IpAddr>,
        account: Option<&str>,
        budget: Option<&str>,
    ) -> Result<Attempt> {
        let throttled = match self.limits().begin(self.now(), check, address, budget) {
            Ok(attempt) => return Ok(attempt),
            Err(throttled) => throttled,
        };
        let own_budget = budget != account;
        // A database that cannot be read now leaves the lock as it is. A browser's own lock
        // is not the account's, which is what a command lifts.
        let lifted = !throttled.in_flight
            && !own_budget
            && account.is_some_and(|account| {
                self.lock_lifted(account).unwrap_or_else(|e| {
                    tracing::warn!("cannot read whether a lock was lifted: {e}");
                    false
                })
            });
        let throttled = match lifted {
            true => match self.limits().begin(self.now(), check, address, budget) {
                Ok(attempt) => return Ok(attempt),
                Err(throttled) => throttled,
            },
            false => throttled,
        };
        let check = match check {
            Check::Password => "password",
            Check::Token => "token",
        };
        self.metrics().throttled(check);
        tracing::info!(
            user = account.map(|a| crate::text::bounded(a, audit::MAX_TEXT)),
            check,
            address = address.map(tracing::field::display),
            retry_after_s = throttled.retry_after.as_secs(),
            "login throttled: {}{}",
            match throttled.in_flight {
                true => "too many checks at once",
                false => "too many failures",
            },
            if own_budget {
                " from this trusted browser"
            } else {
                ""
            }
        );
        Err(match throttled.in_flight {
            true => Error::TooManyAtOnce(throttled.retry_after),
            false => Error::TooManyRequests(throttled.retry_after),
        })
    }

    /// Ends an attempt; gives the end of the lock its failure set on an unlocked account.
    pub(super) fn settle(&self, attempt: Attempt, succeeded: bool) -> Option<Timestamp> {
        if succeeded {
            attempt.succeeded(self.now());
            None
        } else {
            attempt.failed(self.now())
        }
    }

    async fn open_session(
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

impl Auth {
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
