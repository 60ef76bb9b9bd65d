//! Logging in: a password or a token checked within the login limits, what a failure and a
//! lock leave in the logs, and the session a success opens (`sessions`).

use std::net::IpAddr;

use jiff::Timestamp;

use super::{
    ApiAccess, Auth, Error, Result, User,
    audit::{self, AuditEvent, kind},
    devices,
    limits::{Attempt, Check, Limits, SharedAccount, SharedAddress},
    password::{self, ClientHash},
    secret::ApiTokenSecret,
    sessions::{LoginOptions, LoginOutcome, TokenMiss},
    users::UserId,
};
use crate::store::{
    failures::{self as store_failures, AccountRow, AddressRow},
    users::{self as store_users, UserRow},
};

fn shared_account(row: AccountRow) -> SharedAccount {
    SharedAccount {
        failures: u32::try_from(row.failures).unwrap_or(u32::MAX),
        last: super::from_micros(row.last),
        locked_until: row.locked_until.map(super::from_micros),
    }
}

fn account_row(account: &SharedAccount) -> AccountRow {
    AccountRow {
        failures: i64::from(account.failures),
        last: account.last.as_microsecond(),
        locked_until: account.locked_until.map(|t| t.as_microsecond()),
    }
}

fn shared_address(row: AddressRow) -> SharedAddress {
    SharedAddress {
        level: row.level,
        at: super::from_micros(row.at),
    }
}

/// How a login ended, for `lodge_logins_total`.
fn login_result<T>(outcome: &Result<T>) -> &'static str {
    match outcome {
        Ok(_) => "success",
        Err(Error::TokenDenied(_)) => "denied",
        Err(_) => "failure",
    }
}

/// Logins by password and by token, and the limits on failed ones.
pub struct Logins<'a>(pub(super) &'a Auth);

super::facet!(Logins);

impl Logins<'_> {
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
            let attempt = self
                .begin_attempt(Check::Token, login.address, None)
                .await?;
            self.settle(attempt, false).await;
            self.metrics().login("local", "failure");
            self.login_failed("local", Some(user_id), login.address, "no such user id")
                .await;
            return Err(Error::AuthFailed);
        };
        // Counted first in the budget of the name as typed, before any database work...
        let attempt = self.begin_password_attempt(&user_id, login).await?;
        let key = user_id.clone();
        let row = self
            .store()
            .read(move |tx| store_users::by_user_id(tx, &key))
            .await?;
        let exists = row.is_some();
        // ...and, when the database's collation took it for an account spelled otherwise
        // (PostgreSQL's ICU takes `νικοσ` for `νικος`), in that account's own budget instead:
        // no spelling brings a budget of its own.
        let (user_id, attempt) = match &row {
            Some(found) if Limits::account_key(&found.user_id) != Limits::account_key(&user_id) => {
                drop(attempt);
                let attempt = self.begin_password_attempt(&found.user_id, login).await?;
                (found.user_id.clone(), attempt)
            }
            _ => (user_id, attempt),
        };
        // A browser that logged in to this account before checks in a budget of its own.
        let device = login
            .device
            .and_then(|cookie| self.devices().trusted_device(cookie, &user_id));
        let mut outcome = self.check_password(row, credential, login).await;
        let locked = self.settle(attempt, outcome.is_ok()).await;
        self.metrics().login("local", login_result(&outcome));
        if let Err(Error::AuthFailed) = outcome {
            let detail = "wrong user, password or disabled user";
            self.login_failed("local", Some(&user_id), login.address, detail)
                .await;
        }
        if let Some(until) = locked {
            self.notices()
                .account_locked(&user_id, login.address, until, device.is_some(), exists)
                .await;
        }
        if let Ok(outcome) = &mut outcome {
            outcome.device_cookie = self.devices().device_cookie(&user_id);
        }
        outcome
    }

    /// A password check for `user_id` counted in the limits: in its own budget, or, from a
    /// browser that logged in to the account before, in that browser's.
    async fn begin_password_attempt(
        &self,
        user_id: &str,
        login: LoginOptions<'_>,
    ) -> Result<Attempt> {
        let device = login
            .device
            .and_then(|cookie| self.devices().trusted_device(cookie, user_id));
        let budget = device.as_deref().map(devices::budget_name);
        self.begin_attempt_in(
            Check::Password,
            login.address,
            Some(user_id),
            Some(budget.as_deref().unwrap_or(user_id)),
        )
        .await
    }

    /// Records a failed login in the audit log and the server's log, the user id as given
    /// (escaped and cut short there).
    pub(super) async fn login_failed(
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
        self.audit().record(event).await;
    }

    async fn check_password(
        &self,
        row: Option<UserRow>,
        credential: &str,
        login: LoginOptions<'_>,
    ) -> Result<LoginOutcome> {
        match self.check_credential_of(row, credential).await? {
            (Some(row), true) if row.enabled => {
                self.sessions()
                    .open_session(User::from(row), "local", None, login)
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
        let key = user_id.trim().to_owned();
        let row = self
            .store()
            .read(move |tx| store_users::by_user_id(tx, &key))
            .await?;
        self.check_credential_of(row, credential).await
    }

    /// [`Logins::check_credential`] of a user already read (or `None`: no such user).
    async fn check_credential_of(
        &self,
        row: Option<UserRow>,
        credential: &str,
    ) -> Result<(Option<UserRow>, bool)> {
        let client = ClientHash::from_credential(credential);
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
        let attempt = self
            .begin_attempt(Check::Token, login.address, None)
            .await?;
        let mut missed = None;
        let outcome = async {
            let Ok(secret) = ApiTokenSecret::parse(text) else {
                missed = Some(TokenMiss::MALFORMED);
                return Err(Error::AuthFailed);
            };
            let used = match self.sessions().token_owner(&secret, login.address).await? {
                Ok(used) => used,
                Err(miss) => {
                    missed = Some(miss);
                    return Err(Error::AuthFailed);
                }
            };
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
                    self.sessions()
                        .token_denied(user, token, login.address, &reason)
                        .await;
                    return Err(Error::TokenDenied(reason));
                }
            }
            self.sessions()
                .open_session(used.user, "token", Some(used.token), login)
                .await
        }
        .await;
        // A token used beyond its scope was right: not a failure to count.
        let succeeded = outcome.is_ok() || matches!(outcome, Err(Error::TokenDenied(_)));
        self.settle(attempt, succeeded).await;
        self.metrics().login("token", login_result(&outcome));
        if let (Err(Error::AuthFailed), Some(miss)) = (&outcome, &missed) {
            self.token_failed("token", miss, login.address).await;
        }
        outcome
    }

    /// Records a token that logged nobody in, naming the token its secret matched (expired,
    /// suspended, rotated away, its owner disabled) when one did; never the secret.
    pub(super) async fn token_failed(
        &self,
        provider: &'static str,
        miss: &TokenMiss,
        address: Option<IpAddr>,
    ) {
        let mut event = AuditEvent::new(kind::LOGIN, false)
            .provider(provider)
            .address(address)
            .detail(miss.why);
        if let Some((user, token)) = &miss.matched {
            event = event.user(user.clone()).token(token.clone());
        }
        let matched = miss.matched.as_ref();
        tracing::info!(
            user = matched
                .map(|(u, _)| crate::text::bounded(u, audit::MAX_TEXT))
                .as_deref(),
            token = matched
                .map(|(_, t)| crate::text::bounded(t, audit::MAX_TEXT))
                .as_deref(),
            provider,
            address = address.map(tracing::field::display),
            "login failed: {}",
            miss.why
        );
        self.audit().record(event).await;
    }

    /// Counts a check in the limits before it starts. A locked account whose lock was lifted
    /// from outside this server since (`lodge user unlock`, a password change: see
    /// [`Users::lock_lifted`]) is unlocked here and checked.
    pub(super) async fn begin_attempt(
        &self,
        check: Check,
        address: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Attempt> {
        self.begin_attempt_in(check, address, account, account)
            .await
    }

    /// [`Logins::begin_attempt`] counted in the budget named `budget` (an account's, or a trusted
    /// browser's: [`devices::budget_name`]) for `account`'s login.
    async fn begin_attempt_in(
        &self,
        check: Check,
        address: Option<IpAddr>,
        account: Option<&str>,
        budget: Option<&str>,
    ) -> Result<Attempt> {
        // One budget for a client's whole IPv6 network, and for an IPv4 address however written.
        let address = address.map(|ip| self.limits().address_key(ip));
        if self.shares_limits() {
            self.merge_shared_limits(address, budget.map(Limits::account_key))
                .await?;
        }
        let throttled = match self.limits().begin(self.now(), check, address, budget) {
            Ok(attempt) => return Ok(attempt),
            Err(throttled) => throttled,
        };
        let own_budget = budget != account;
        // A database that cannot be read now leaves the lock as it is. A browser's own lock
        // is not the account's, which is what a command lifts.
        let lifted = match account {
            Some(account) if !throttled.in_flight && !own_budget => {
                self.users().lock_lifted(account).await.unwrap_or_else(|e| {
                    tracing::warn!("cannot read whether a lock was lifted: {e}");
                    false
                })
            }
            _ => false,
        };
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

    /// Ends an attempt; gives the end of the lock its failure set on an unlocked account. Where
    /// several nodes share the database, the failure is counted in it too (and the lock it set
    /// is told by the one node whose failure set it), and a success clears the account's.
    pub(super) async fn settle(&self, attempt: Attempt, succeeded: bool) -> Option<Timestamp> {
        let now = self.now();
        let (address, account) = attempt.for_whom();
        if !self.shares_limits() {
            return match succeeded {
                true => {
                    attempt.succeeded(now);
                    None
                }
                false => attempt.failed(now),
            };
        }
        if succeeded {
            let had_failures = account.is_some_and(|key| self.limits().has_failures(&key));
            attempt.succeeded(now);
            if let Some(key) = account.filter(|_| had_failures) {
                // A row of no failures, not none: its time tells other nodes it is newer than
                // the failures they hold.
                let row = AccountRow {
                    failures: 0,
                    last: now.as_microsecond(),
                    locked_until: None,
                };
                let cleared = self
                    .store()
                    .write(move |tx| store_failures::put_account(tx, &key, &row))
                    .await;
                if let Err(e) = cleared {
                    tracing::warn!("cannot clear the account's failures in the database: {e}");
                }
            }
            return None;
        }
        let local = attempt.failed(now);
        let limits = self.limits().clone();
        let at = now.as_microsecond();
        let counted = self
            .store()
            .write(move |tx| {
                let shown = address.map(|a| a.to_string());
                let (_, stored_account, stored_address) =
                    store_failures::both(tx, account.as_ref(), shown.as_deref())?;
                let account = match account {
                    Some(key) => {
                        let (after, locked) =
                            limits.account_failed(stored_account.map(shared_account), now);
                        store_failures::put_account(tx, &key, &account_row(&after))?;
                        Some((key, after, locked))
                    }
                    None => None,
                };
                let address = match (address, shown) {
                    (Some(ip), Some(shown)) => {
                        let after = limits.address_failed(stored_address.map(shared_address), now);
                        let row = store_failures::AddressRow {
                            level: after.level,
                            at,
                        };
                        store_failures::put_address(tx, &shown, &row)?;
                        Some((ip, after))
                    }
                    _ => None,
                };
                Ok((account, address))
            })
            .await;
        match counted {
            Ok((account, address)) => {
                self.limits().merge(
                    account.map(|(key, after, _)| (key, Some(after))),
                    address.map(|(ip, after)| (ip, Some(after))),
                    now,
                );
                account.and_then(|(.., locked)| locked)
            }
            Err(e) => {
                tracing::warn!("cannot count a failed login in the database: {e}");
                local
            }
        }
    }

    /// Whether the failed-login limits are shared with other nodes through the database.
    pub(super) fn shares_limits(&self) -> bool {
        self.store().shares_with_other_nodes()
    }

    /// Takes the database's count of the address's and the account's failures for this node's.
    pub(super) async fn merge_shared_limits(
        &self,
        address: Option<IpAddr>,
        account: Option<[u8; 16]>,
    ) -> Result<()> {
        let shown = address.map(|a| a.to_string());
        let (_, stored_account, stored_address) = self.store().failures(account, shown).await?;
        self.limits().merge(
            account.map(|key| (key, stored_account.map(shared_account))),
            address.map(|ip| (ip, stored_address.map(shared_address))),
            self.now(),
        );
        Ok(())
    }
}
