//! What the product does: users, password and token login, sessions, API tokens.
//! Knows no HTTP or GraphQL type; takes the time from its [`Clock`].

pub mod audit;
mod cache;
mod caller;
pub mod devices;
pub mod grants;
pub mod limits;
mod logins;
mod notify;
pub mod password;
pub mod return_to;
pub mod secret;
mod session_list;
mod sessions;
mod tokens;
mod users;

use std::sync::{Arc, Mutex, MutexGuard};

use cache::SessionChange;
use jiff::Timestamp;

use crate::{
    clock::Clock,
    config::Settings,
    store::{
        Result as StoreResult, Store, StoreError, change_counter,
        sessions::{Caps, UserSessions},
        users::UserRow,
    },
};

pub use audit::{Actor, AuditEvent, AuditFilter};
pub use caller::Caller;
pub use grants::{ApiAccess, Grants};
pub use password::NewPassword;
pub use session_list::{Ender, SessionSummary};
pub use sessions::{LoginOptions, LoginOutcome, Session, SessionKey, SessionState};
pub use tokens::{Expiry, NewToken, Token, TokenName};
pub use users::{UserFilter, UserId};

/// The `Deref` of a facet of [`Auth`] to the state all facets share.
macro_rules! facet {
    ($facet:ident) => {
        impl std::ops::Deref for $facet<'_> {
            type Target = super::Auth;

            fn deref(&self) -> &super::Auth {
                self.0
            }
        }
    };
}
use facet;

/// Every failure a caller can see, each with CloudBeaver's `webErrorCode`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("User authentication failed")]
    AuthFailed,
    #[error("authentication required: log in first")]
    AuthRequired,
    #[error("the session has expired: log in again")]
    SessionExpired,
    #[error("access denied: {0}")]
    AccessDenied(&'static str),
    /// A right token used beyond its scopes or bounds (`auth::grants`).
    #[error("access denied: {0}")]
    TokenDenied(String),
    #[error("token quota exceeded: a user may hold at most {0} API tokens")]
    QuotaExceeded(u32),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NotFound(String),
    #[error("too many failed logins: try again in {} s", .0.as_secs().max(1))]
    TooManyRequests(jiff::SignedDuration),
    /// Password checks are counted before they start: this account or address has as many in
    /// flight as its budget allows.
    #[error(
        "too many password checks at once for this account or from this address: try again in {} s",
        .0.as_secs().max(1)
    )]
    TooManyAtOnce(jiff::SignedDuration),
    #[error("too many logins in one request: at most {0} authLogin fields")]
    TooManyLogins(usize),
    /// The database cannot take the change now (locked, full, read-only); nothing was saved.
    #[error("{0}; nothing was changed, try again later")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// CloudBeaver's `webErrorCode` for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Error::AuthFailed => "authFailed",
            Error::AuthRequired => "authRequired",
            Error::SessionExpired => "sessionExpired",
            Error::AccessDenied(_) | Error::TokenDenied(_) => "accessDenied",
            Error::QuotaExceeded(_) => "quotaExceeded",
            Error::InvalidInput(_) => "invalidInput",
            Error::AlreadyExists(_) => "alreadyExists",
            Error::NotFound(_) => "notFound",
            Error::TooManyRequests(_) | Error::TooManyAtOnce(_) | Error::TooManyLogins(_) => {
                "tooManyRequests"
            }
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internalError",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e.unavailable() {
            Some(fault) => {
                tracing::error!("{fault}: {e:#}");
                Error::Unavailable(fault)
            }
            None => Error::Internal(e.into()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(Error::InvalidInput(format!(
                "unknown role `{other}`: use `admin` or `user`"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub user_id: String,
    pub display_name: String,
    pub role: Role,
    pub enabled: bool,
    pub has_password: bool,
    pub created_at: Timestamp,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            role: if row.role == "admin" {
                Role::Admin
            } else {
                Role::User
            },
            user_id: row.user_id,
            display_name: row.display_name,
            enabled: row.enabled,
            has_password: row.password_hash.is_some(),
            created_at: from_micros(row.created_at),
        }
    }
}

/// A token's last use held in memory until [`Auth::flush_last_used`] writes it.
#[derive(Debug, Clone, Copy)]
struct LastUse {
    /// Microseconds.
    at: i64,
    address: Option<std::net::IpAddr>,
}

/// Ended sessions removed at most in one write by [`Auth::housekeeping`]: a few milliseconds.
const PURGE_AT_ONCE: usize = 1000;

/// The product's rules applied to the store, shared by the server and the command line.
#[derive(Clone)]
pub struct Auth {
    store: Store,
    clock: Clock,
    settings: Arc<Settings>,
    limits: Arc<limits::Limits>,
    /// Tokens' last uses not yet written: token row id to microseconds. Written together by
    /// [`Auth::flush_last_used`] (every minute and at shutdown), not one commit per token and
    /// minute, each of which made every reader read its pages again.
    last_used: Arc<std::sync::Mutex<std::collections::HashMap<i64, LastUse>>>,
    /// Users' last logins not yet written, user row id to microseconds: written with the
    /// tokens' last uses, so that a flood of logins writes its user's row once a minute.
    last_logins: Arc<std::sync::Mutex<std::collections::HashMap<i64, i64>>>,
    /// Sessions, tokens and token lists looked up, kept while the database says nothing changed.
    cache: Arc<cache::Cache>,
    /// Each user's sessions, used and changed only by session writes on the writer thread.
    user_sessions: Arc<Mutex<UserSessions>>,
    /// The threads that hash passwords.
    hashers: Arc<password::Hashers>,
    /// Reports of leaked tokens an address may send a minute (`limits.revoke_per_minute`).
    revoke_limit: Arc<limits::PerMinute>,
    /// Tokens' grants parsed, by their stored text: a scoped token's every use would otherwise
    /// parse its JSON again (12,000 instructions, a third of a forward-auth check).
    parsed_grants: Arc<Mutex<std::collections::HashMap<Box<str>, Arc<Grants>>>>,
    /// Woken when this process queues a webhook delivery (`notify`).
    outbox_queued: Arc<tokio::sync::Notify>,
    /// Counters and histograms shown at `/metrics`.
    metrics: Arc<crate::metrics::Metrics>,
    /// Signs the cookies of browsers trusted for an account (`devices`).
    device_key: Arc<devices::DeviceKey>,
    /// Which refusals of tokens beyond their grants were recorded last (`token.denied`).
    denials: Arc<limits::OncePerMinute>,
    /// This process's name among the nodes serving the database, as a lease's holder.
    node: Arc<str>,
}

/// A name for this process among the nodes: its host's name and 64 random bits.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}/{random}")
}

/// Grants kept parsed at most; beyond, the map starts afresh.
const MAX_PARSED_GRANTS: usize = 4096;

/// The lists of sessions; after a write that panicked holding them, read again from the table.
fn lock_lists(lists: &Mutex<UserSessions>) -> MutexGuard<'_, UserSessions> {
    lists.lock().unwrap_or_else(|poisoned| {
        lists.clear_poison();
        let mut lists = poisoned.into_inner();
        lists.settle(None);
        lists
    })
}

impl Auth {
    /// API tokens: created, listed, looked up, rotated, revoked and deleted.
    pub fn tokens(&self) -> tokens::Tokens<'_> {
        tokens::Tokens(self)
    }

    /// Accounts: the first administrator, created, listed, enabled, promoted, given a password, unlocked and deleted.
    pub fn users(&self) -> users::Users<'_> {
        users::Users(self)
    }

    /// Logins by password and by token, and the limits on failed ones.
    pub fn logins(&self) -> logins::Logins<'_> {
        logins::Logins(self)
    }

    /// The audit log: what is recorded, and how it is read.
    pub fn audit(&self) -> audit::Audit<'_> {
        audit::Audit(self)
    }

    /// A user's sessions as the page lists them, and ending them.
    pub fn session_list(&self) -> session_list::SessionList<'_> {
        session_list::SessionList(self)
    }

    /// Who calls (a session cookie or a Bearer token), the sessions logins open, logout.
    pub fn sessions(&self) -> sessions::Sessions<'_> {
        sessions::Sessions(self)
    }

    /// The cookies of browsers trusted for an account, and their key.
    pub fn devices(&self) -> devices::Devices<'_> {
        devices::Devices(self)
    }

    /// What Auth announces by webhook itself: locks of accounts, expiring tokens; and the sender's wake-up.
    pub fn notices(&self) -> notify::Notices<'_> {
        notify::Notices(self)
    }

    pub fn new(store: Store, clock: Clock, settings: Arc<Settings>) -> Self {
        let metrics = Arc::new(crate::metrics::Metrics::new(store.writer_metrics()));
        Self {
            store,
            clock,
            limits: Arc::new(limits::Limits::new(settings.limits.clone())),
            revoke_limit: Arc::new(limits::PerMinute::new(settings.limits.revoke_per_minute)),
            hashers: Arc::new(password::Hashers::new(
                settings.limits.password_hashes_at_once,
            )),
            settings,
            last_used: Arc::default(),
            last_logins: Arc::default(),
            cache: Arc::default(),
            user_sessions: Arc::default(),
            parsed_grants: Arc::default(),
            outbox_queued: Arc::default(),
            metrics,
            device_key: Arc::default(),
            denials: Arc::default(),
            node: node_name().into(),
        }
    }

    /// Whether this node is the one to run `task` now: always with SQLite (one server), and
    /// where several nodes share PostgreSQL, while it holds the task's lease (taken when free or
    /// run out, renewed at each call, for `lease`). A node that stops without giving it up is
    /// replaced once its lease runs out.
    pub async fn runs(&self, task: &'static str, lease: std::time::Duration) -> bool {
        if !self.store.shares_with_other_nodes() {
            return true;
        }
        let now = self.now();
        let until = now + jiff::SignedDuration::try_from(lease).unwrap_or_default();
        let (now, until) = (now.as_microsecond(), until.as_microsecond());
        let holder = self.node.clone();
        let taken = self
            .store
            .write(move |tx| crate::store::leases::take(tx, task, &holder, now, until))
            .await;
        taken.unwrap_or_else(|e| {
            tracing::warn!(task, "cannot take or renew the task's lease: {e}");
            false
        })
    }

    /// Gives up the lease of `task` if this node holds it (at a clean shutdown).
    pub async fn give_up(&self, task: &'static str) {
        if !self.store.shares_with_other_nodes() {
            return;
        }
        let holder = self.node.clone();
        let _ = self
            .store
            .write(move |tx| crate::store::leases::release(tx, task, &holder))
            .await;
    }

    /// A token's grants from their stored text, parsed once.
    fn grants_of(&self, stored: &str) -> Arc<Grants> {
        let mut parsed = self.parsed_grants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(grants) = parsed.get(stored) {
            return Arc::clone(grants);
        }
        if parsed.len() >= MAX_PARSED_GRANTS {
            parsed.clear();
        }
        let grants = Arc::new(Grants::from_stored(stored));
        parsed.insert(stored.into(), Arc::clone(&grants));
        grants
    }

    /// Runs password hashing on the hashing threads, first come first served.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        self.hashers
            .run(f)
            .await
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a password hash failed")))
    }

    /// A write of sessions by this server: `f` lists what it changed of them, so that what is
    /// cached is updated in commit order instead of forgotten, and opens and ends them
    /// through each user's list of sessions (made exact before it runs).
    async fn write_sessions<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&crate::store::Tx, &mut UserSessions, &mut Vec<SessionChange>) -> StoreResult<T>
            + Send
            + 'static,
    {
        let own_write = self.cache.own_write();
        let keep = self.session_caps();
        let lists = self.user_sessions.clone();
        let on_failure = self.user_sessions.clone();
        let (value, ..) = self
            .store
            .write_then(
                move |tx| {
                    let mut lists = lock_lists(&lists);
                    let before = lists.counters(tx)?;
                    let ended = lists.sync(tx, before.sessions_ended, keep)?;
                    // Read again after a failure below, so that nothing half done is kept.
                    lists.settle(None);
                    let mut changes: Vec<_> = ended.into_iter().map(SessionChange::Ended).collect();
                    let value = f(tx, &mut lists, &mut changes)?;
                    let after = change_counter::counters(tx)?;
                    lists.settle(Some(after.sessions_ended));
                    lists.leave(tx, after);
                    Ok((value, before.change_counter, after.change_counter, changes))
                },
                // Until what the write changed is applied, a moved counter is its own: the mark
                // goes with this closure, after.
                move |committed| match committed {
                    Some((_, before, after, changes)) => {
                        own_write.committed(*before, *after, changes);
                    }
                    // Rolled back after the lists took its changes.
                    None => lock_lists(&on_failure).settle(None),
                },
            )
            .await?;
        Ok(value)
    }

    /// `session.max_per_user` and `session.max_per_token`: the sessions a user keeps at most,
    /// of each kind.
    fn session_caps(&self) -> Caps {
        Caps {
            password: self.settings.session.max_per_user,
            token: self.settings.session.max_per_token,
        }
    }

    fn pending_last_used(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, LastUse>> {
        self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pending_logins(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, i64>> {
        self.last_logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a user's login, written by [`Auth::flush_last_used`].
    fn note_login(&self, user: i64, at: Timestamp) {
        self.pending_logins().insert(user, at.as_microsecond());
    }

    /// The user's last login: held in memory, or as the database has it.
    pub async fn last_login(&self, user: &User) -> Result<Option<Timestamp>> {
        if let Some(&at) = self.pending_logins().get(&user.id) {
            return Ok(Some(from_micros(at)));
        }
        let id = user.id;
        let at = self
            .store
            .run(move |conn| crate::store::users::last_login(conn, id))
            .await?;
        Ok(at.map(from_micros))
    }

    /// Writes the tokens' last uses and the users' last logins held in memory, in one write;
    /// gives how many.
    pub async fn flush_last_used(&self) -> Result<usize> {
        let pending: Vec<(i64, LastUse)> = self.pending_last_used().drain().collect();
        let logins: Vec<(i64, i64)> = self.pending_logins().drain().collect();
        if pending.is_empty() && logins.is_empty() {
            return Ok(0);
        }
        let count = pending.len() + logins.len();
        let (kept, kept_logins) = (pending.clone(), logins.clone());
        let written = self
            .store
            .write(move |conn| {
                for (id, last) in &pending {
                    let address = last.address.map(|a| a.to_string());
                    crate::store::tokens::touch(conn, *id, last.at, address.as_deref())?;
                }
                for &(user, at) in &logins {
                    crate::store::users::set_last_login(conn, user, at)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(
                "cannot write the tokens' last uses and the last logins; kept for the next try: {e:#}"
            );
            let mut held = self.pending_last_used();
            for (id, last) in kept {
                // A use recorded while the write failed is the later one.
                held.entry(id).or_insert(last);
            }
            drop(held);
            let mut held = self.pending_logins();
            for (user, at) in kept_logins {
                held.entry(user).or_insert(at);
            }
            return Err(e.into());
        }
        Ok(count)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// The `/metrics` page: what was counted, with the gauges read from the database now.
    pub async fn metrics_page(&self) -> Result<String> {
        let now = self.now();
        let settings = self.settings();
        let warn_until = (now + settings.tokens.warn_before.0).as_microsecond();
        let idle_before = (now - settings.session.idle_timeout.0).as_microsecond();
        let opened_before = (now - settings.session.max_lifetime.0).as_microsecond();
        let micros = now.as_microsecond();
        let (tokens_expiring, sessions_live) = self
            .store()
            .run(move |conn| {
                Ok((
                    crate::store::tokens::count_expiring(conn, micros, warn_until)?,
                    crate::store::sessions::count_live(conn, idle_before, opened_before)?,
                ))
            })
            .await?;
        let database_bytes = self.store().size().await?;
        Ok(self.metrics.render(crate::metrics::Scraped {
            tokens_expiring,
            sessions_live,
            database_bytes: i64::try_from(database_bytes).unwrap_or(i64::MAX),
        }))
    }

    /// Whether the database takes writes now (readiness): an empty write committed within
    /// `patience`.
    pub async fn check_writable(&self, patience: std::time::Duration) -> Result<()> {
        Ok(self.store.check_writable(patience).await?)
    }

    fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> &limits::Limits {
        &self.limits
    }

    /// Removes ended sessions and tokens past `tokens.keep_expired`.
    pub async fn housekeeping(&self) -> Result<(usize, usize)> {
        let now = self.now();
        let idle = (now - self.settings.session.idle_timeout.0).as_microsecond();
        let opened = (now - self.settings.session.max_lifetime.0).as_microsecond();
        let expired = (now - self.settings.tokens.keep_expired.0).as_microsecond();
        let audit_before = (now - self.settings.audit.retention.0).as_microsecond();
        let audit_kept = self.settings.audit.max_events;
        self.limits.prune(now);
        // Ended sessions go a part at a time, each part its own write, so that logins wait at
        // most for one part: 100,000 sessions ended in one write held the writer for 250 ms
        // (a server started after a night off).
        let mut sessions = 0;
        loop {
            let removed = self
                .store
                .write(move |conn| crate::store::sessions::purge(conn, idle, opened, PURGE_AT_ONCE))
                .await?;
            sessions += removed;
            if removed < PURGE_AT_ONCE {
                break;
            }
        }
        // Shared failures (several nodes) once they hold nothing back: an account's a day after
        // its last, an address's once its bucket has drained, however full it was.
        let rules = &self.settings.limits;
        let failures_before = (now - jiff::SignedDuration::from_hours(24)).as_microsecond();
        let drained_before = (now
            - rules
                .address_refill
                .0
                .saturating_mul(i32::try_from(rules.address_burst).unwrap_or(i32::MAX))
                .saturating_mul(2))
        .as_microsecond();
        let micros = now.as_microsecond();
        let tokens = self
            .store
            .write(move |conn| {
                let tokens = crate::store::tokens::purge(conn, expired, None)?;
                crate::store::audit::purge(conn, audit_before, audit_kept)?;
                crate::store::failures::prune(conn, micros, failures_before, drained_before)?;
                Ok(tokens)
            })
            .await?;
        Ok((sessions, tokens))
    }
}

pub(crate) fn from_micros(micros: i64) -> Timestamp {
    Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
}
