//! Users: the first administrator, administration by administrators, and own passwords.

use unicode_normalization::UnicodeNormalization as _;
use unicode_security::MixedScript as _;

use super::{
    Auth, Error, Result, Role, SessionKey, User,
    audit::{self, Actor, AuditEvent, kind},
    limits::{Check, Limits},
    password::{self, NewPassword},
};
use crate::store::{
    failures as store_failures, sessions as store_sessions,
    users::{self as store_users, NewUser},
};

/// A user id: 1 to 64 characters after trimming and NFKC normalisation, letters, digits and
/// `.`, `_`, `-`, `@`, the letters of one script: so `ａｄｍｉｎ` is `admin`, and `аdmin` with a
/// Cyrillic `а` is refused rather than mistaken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self> {
        let text = Self::normalized(text).ok_or_else(|| {
            Error::InvalidInput(format!(
                "a user id must have 1 to {} characters, none of them control, bidirectional \
                 or zero-width characters",
                Self::MAX_LEN
            ))
        })?;
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
        {
            return Err(Error::InvalidInput(format!(
                "a user id may hold letters, digits and . _ - @, not {bad:?}"
            )));
        }
        if !text.as_str().is_single_script() {
            return Err(Error::InvalidInput(
                "a user id may not mix letters of different scripts (such as Latin and Cyrillic)"
                    .into(),
            ));
        }
        Ok(Self(text))
    }

    /// The id a login names, normalised as [`UserId::parse`] does, or `None` when no user can
    /// have it: too long, empty, or holding an invisible character. Checked before any work.
    pub fn for_login(text: &str) -> Option<String> {
        Self::normalized(text)
    }

    fn normalized(text: &str) -> Option<String> {
        let text = text.trim();
        // Bounds the work before normalising: an id has at most 256 bytes, and NFKC shrinks
        // little (composing accents), so three times that is generous.
        if text.is_empty() || text.len() > Self::MAX_LEN * 4 * 3 {
            return None;
        }
        let text: String = text.nfkc().collect();
        let valid = !text.is_empty()
            && text.chars().count() <= Self::MAX_LEN
            && !text.chars().any(crate::text::is_invisible);
        valid.then_some(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `listUsers` filters on.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub id_contains: Option<String>,
    pub enabled: Option<bool>,
    pub limit: Option<i32>,
    pub offset: Option<i32>,
}

/// How many users a page holds at most.
const MAX_PAGE: i64 = 1000;

/// Accounts: the first administrator, created, listed, enabled, promoted, given a password, unlocked and deleted.
pub struct Users<'a>(pub(super) &'a Auth);

super::facet!(Users);

impl Users<'_> {
    /// Creates the first administrator when there is no user; gives the password it generated.
    pub async fn ensure_first_admin(&self) -> anyhow::Result<Option<(String, Option<String>)>> {
        let admin = self.settings().admin.clone();
        let user_id = UserId::parse(&admin.user)
            .map_err(|e| anyhow::anyhow!("config key `admin.user`: {e}"))?;
        let count = self.store().read(store_users::count).await?;
        if count > 0 {
            return Ok(None);
        }
        let from_file = !admin.password_file.as_os_str().is_empty();
        let (password, generated) = match (admin.password.is_empty(), from_file) {
            (false, true) => anyhow::bail!(
                "config keys `admin.password` and `admin.password_file` are both set: keep one"
            ),
            (true, true) => (first_line_of(&admin.password_file)?, None),
            (true, false) => {
                let generated = password::generate();
                (generated.clone(), Some(generated))
            }
            (false, false) => (admin.password.clone(), None),
        };
        let key = if from_file {
            "admin.password_file"
        } else {
            "admin.password"
        };
        let password = NewPassword::parse_plain(&password)
            .map_err(|e| anyhow::anyhow!("config key `{key}`: {e}"))?;
        let created = self
            .create_user(
                &Actor::command_line(),
                &user_id,
                Role::Admin,
                true,
                Some(password),
            )
            .await;
        match created {
            Ok(_) => Ok(Some((user_id.0, generated))),
            // Another node starting on the same empty database made it first.
            Err(Error::AlreadyExists(_)) => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "cannot create the first administrator: {e:#}"
            )),
        }
    }

    pub async fn create_user(
        &self,
        actor: &Actor,
        user_id: &UserId,
        role: Role,
        enabled: bool,
        password: Option<NewPassword>,
    ) -> Result<User> {
        let hash = match password {
            Some(p) => Some(self.hashing(move || p.hash()).await?),
            None => None,
        };
        let user_id = user_id.clone();
        let now = self.now();
        let event = AuditEvent::new(kind::USER_CREATE, true)
            .user(user_id.as_str())
            .detail(format!("role {}", role.as_str()))
            .by(actor);
        self.store()
            .write(move |tx| {
                let inserted = store_users::insert(
                    tx,
                    &NewUser {
                        user_id: user_id.as_str(),
                        display_name: user_id.as_str(),
                        role: role.as_str(),
                        enabled,
                        password_hash: hash.as_deref(),
                        now: now.as_microsecond(),
                    },
                );
                match inserted {
                    Ok(_) => {
                        audit::record(tx, now, &event)?;
                        let user = store_users::by_user_id(tx, user_id.as_str())?;
                        Ok(user.map(User::from))
                    }
                    Err(e) if e.is_taken() => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?
            .ok_or_else(|| Error::AlreadyExists("a user with that id exists already".into()))
    }

    pub async fn user(&self, user_id: &str) -> Result<User> {
        let key = user_id.trim().to_owned();
        self.store()
            .read(move |tx| store_users::by_user_id(tx, &key))
            .await?
            .map(User::from)
            .ok_or_else(|| Error::NotFound(format!("no user `{}`", user_id.trim())))
    }

    pub async fn list_users(&self, filter: UserFilter) -> Result<Vec<User>> {
        let limit = i64::from(filter.limit.unwrap_or(100)).clamp(0, MAX_PAGE);
        let offset = i64::from(filter.offset.unwrap_or(0)).max(0);
        let mask = filter.id_contains.filter(|m| !m.trim().is_empty());
        let enabled = filter.enabled;
        let rows = self
            .store()
            .run(move |conn| store_users::list(conn, mask.as_deref(), enabled, limit, offset))
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Deletes a user with their tokens and sessions; nobody deletes themselves.
    pub async fn delete_user(&self, actor: &Actor, user_id: &str) -> Result<()> {
        let user = self.user(user_id).await?;
        refuse_self(actor, &user, "delete")?;
        let event = AuditEvent::new(kind::USER_DELETE, true)
            .user(user.user_id.clone())
            .by(actor);
        self.write_with_audit(event, move |tx| {
            store_users::delete(tx, user.id)?;
            Ok(())
        })
        .await
    }

    /// Runs `change` and records `event` in one transaction.
    async fn write_with_audit<F>(&self, event: AuditEvent, change: F) -> Result<()>
    where
        F: FnOnce(&crate::store::Tx) -> crate::store::Result<()> + Send + 'static,
    {
        let now = self.now();
        self.store()
            .write(move |conn| {
                change(conn)?;
                audit::record(conn, now, &event)
            })
            .await?;
        Ok(())
    }

    /// Enables or disables a user; disabling ends their sessions at once.
    pub async fn enable_user(&self, actor: &Actor, user_id: &str, enabled: bool) -> Result<()> {
        let user = self.user(user_id).await?;
        if !enabled {
            refuse_self(actor, &user, "disable")?;
        }
        let event = AuditEvent::new(kind::USER_UPDATE, true)
            .user(user.user_id.clone())
            .detail(if enabled {
                "enabled"
            } else {
                "disabled, sessions ended"
            })
            .by(actor);
        self.write_with_audit(event, move |tx| {
            store_users::set_enabled(tx, user.id, enabled)?;
            if !enabled {
                store_sessions::delete_for_user(tx, user.id, None)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn set_role(&self, actor: &Actor, user_id: &str, role: Role) -> Result<()> {
        let user = self.user(user_id).await?;
        if role != Role::Admin {
            refuse_self(actor, &user, "demote")?;
        }
        let event = AuditEvent::new(kind::USER_UPDATE, true)
            .user(user.user_id.clone())
            .detail(format!("role {}", role.as_str()))
            .by(actor);
        self.write_with_audit(event, move |tx| {
            store_users::set_role(tx, user.id, role.as_str())?;
            Ok(())
        })
        .await
    }

    /// Sets a user's password, ends their sessions but `keep`, and lifts a lock on their
    /// account in this server.
    pub async fn set_password(
        &self,
        actor: &Actor,
        user_id: &str,
        password: NewPassword,
        keep: Option<SessionKey>,
    ) -> Result<()> {
        let user = self.user(user_id).await?;
        let hash = self.hashing(move || password.hash()).await?;
        let event = AuditEvent::new(kind::PASSWORD_CHANGE, true)
            .user(user.user_id.clone())
            .detail("other sessions ended")
            .by(actor);
        let user_id = user.user_id.clone();
        let now = self.now().as_microsecond();
        let key = Limits::account_key(&user_id);
        self.write_with_audit(event, move |tx| {
            store_users::set_password(tx, user.id, &hash, now)?;
            store_failures::clear_account(tx, &key)?;
            let keep = keep.as_ref().map(|k| (k.id, &k.secret_digest));
            store_sessions::delete_for_user(tx, user.id, keep)?;
            Ok(())
        })
        .await?;
        self.limits().unlock(&user_id);
        Ok(())
    }

    /// Lifts a failed-login lock on the user's account (`adminUnlockUser`, `lodge user
    /// unlock`): at once in this server, and in the database, where any server holding a lock
    /// set before finds it lifted at the account's next login. Gives whether this server held
    /// the account locked.
    pub async fn unlock_user(&self, actor: &Actor, user_id: &str) -> Result<bool> {
        let user = self.user(user_id).await?;
        let locked = self.is_locked(&user).await?;
        let now = self.now();
        let event = AuditEvent::new(kind::USER_UNLOCK, true)
            .user(user.user_id.clone())
            .detail(if locked {
                "lock lifted"
            } else {
                "no lock held here; lifted for any server that holds one"
            })
            .by(actor);
        let row = user.id;
        let key = Limits::account_key(&user.user_id);
        self.write_with_audit(event, move |tx| {
            store_users::lift_lock(tx, row, now.as_microsecond())?;
            store_failures::clear_account(tx, &key)?;
            Ok(())
        })
        .await?;
        self.limits().unlock(&user.user_id);
        Ok(locked)
    }

    /// Whether the failed-login limit holds the user's account locked now, and no one lifted
    /// the lock since from outside this server.
    pub async fn is_locked(&self, user: &User) -> Result<bool> {
        if self.logins().shares_limits() {
            let key = Limits::account_key(&user.user_id);
            self.logins().merge_shared_limits(None, Some(key)).await?;
        }
        Ok(self.limits().is_locked(&user.user_id, self.now())
            && !self.lock_lifted(&user.user_id).await?)
    }

    /// Whether the account's lock in this server was set before its last lift in the database
    /// ([`store_users::lift_lock`]); if so it is lifted here too. Read only while the account
    /// is locked.
    pub(super) async fn lock_lifted(&self, account: &str) -> Result<bool> {
        let Some(since) = self.limits().locked_since(account, self.now()) else {
            return Ok(false);
        };
        let key = account.trim().to_owned();
        let lifted = self
            .store()
            .read(move |tx| store_users::lock_lifted_at(tx, &key))
            .await?;
        if lifted.is_some_and(|at| at > since.as_microsecond()) {
            self.limits().unlock(account);
            return Ok(true);
        }
        Ok(false)
    }

    /// `authChangeLocalPassword`: the old password must match, checked within the same limits
    /// as a password login; other sessions end.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        session: Option<SessionKey>,
        old: &str,
        new: &str,
    ) -> Result<()> {
        let user = actor.user.as_ref().ok_or(Error::AuthRequired)?;
        let new = NewPassword::parse_credential(new, self.settings().password.accept_client_hash)?;
        let attempt = self
            .logins()
            .begin_attempt(Check::Password, actor.address, Some(&user.user_id))
            .await?;
        let checked = self.logins().check_credential(&user.user_id, old).await;
        let matches = checked.as_ref().is_ok_and(|(_, matches)| *matches);
        if let Some(until) = self.logins().settle(attempt, matches).await {
            self.notices()
                .account_locked(&user.user_id, actor.address, until, false, true)
                .await;
        }
        checked?;
        if !matches {
            let event = AuditEvent::new(kind::PASSWORD_CHANGE, false)
                .user(user.user_id.clone())
                .detail("wrong old password")
                .by(actor);
            self.audit().record(event).await;
            return Err(Error::InvalidInput("the old password is wrong".into()));
        }
        self.set_password(actor, &user.user_id, new, session).await
    }
}

/// The first line of the file `admin.password_file` names, without its line ending.
fn first_line_of(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "config key `admin.password_file`: cannot read {}: {e}",
            path.display()
        )
    })?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn refuse_self(actor: &Actor, target: &User, what: &str) -> Result<()> {
    if actor.user.as_ref().is_some_and(|u| u.id == target.id) {
        return Err(Error::InvalidInput(format!(
            "you cannot {what} yourself; ask another administrator"
        )));
    }
    Ok(())
}
