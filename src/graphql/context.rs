//! What every resolver gets: the product's rules and the already identified caller.

use std::{
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use juniper::{FieldError, IntoFieldError, ScalarValue, graphql_value};

use crate::auth::{Actor, Auth, Caller, Error, Result, SessionKey, User};

/// What the response must do with the session cookie.
#[derive(Debug, Clone)]
pub enum CookieChange {
    Set(String),
    Clear,
}

pub struct Context {
    pub auth: Auth,
    pub caller: Caller,
    /// Where the request came from, as the HTTP layer established it.
    pub request: RequestInfo,
    cookie: Mutex<Option<CookieChange>>,
    /// A device cookie to set: a password login trusted this browser for its account.
    device_cookie: Mutex<Option<String>>,
    logins: AtomicUsize,
}

/// What the HTTP layer knows of a request.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The host the client used: the request's `Host`, or a trusted proxy's word.
    pub host: Option<String>,
    /// Whether `host` is a trusted proxy's word (`X-Forwarded-Host`, `Forwarded: host=`).
    pub host_vouched: bool,
    /// The client's address: the peer, or what a trusted proxy says.
    pub address: Option<IpAddr>,
    /// The request's `User-Agent` when it is visible ASCII, for a login's session list.
    pub user_agent: Option<String>,
    /// The browser's device cookie (`auth::devices`), if it sent one.
    pub device_cookie: Option<String>,
}

impl juniper::Context for Context {}

impl Context {
    pub fn new(auth: Auth, caller: Caller, request: RequestInfo) -> Self {
        Self {
            auth,
            caller,
            request,
            cookie: Mutex::new(None),
            device_cookie: Mutex::new(None),
            logins: AtomicUsize::new(0),
        }
    }

    /// Counts an `authLogin` field; one request may hold `graphql.max_logins_per_request`.
    pub fn count_login(&self) -> Result<()> {
        let max = self.auth.settings().graphql.max_logins_per_request;
        if self.logins.fetch_add(1, Ordering::SeqCst) >= max {
            return Err(Error::TooManyLogins(max));
        }
        Ok(())
    }

    pub fn require_user(&self) -> Result<&User> {
        self.caller.require_user()
    }

    pub fn require_admin(&self) -> Result<&User> {
        self.caller.require_admin()
    }

    /// The caller as the audit log records it.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.caller.user().cloned(),
            address: self.request.address,
        }
    }

    /// The caller's session and its user, when it came with one: what a new login replaces.
    pub fn session(&self) -> Option<SessionKey> {
        match &self.caller {
            Caller::Session(s) => Some(SessionKey {
                id: s.id,
                secret_digest: s.secret_digest,
                user: s.user.id,
            }),
            _ => None,
        }
    }

    pub fn set_cookie(&self, change: CookieChange) {
        *self.cookie.lock().unwrap_or_else(|p| p.into_inner()) = Some(change);
    }

    pub fn take_cookie(&self) -> Option<CookieChange> {
        self.cookie.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn set_device_cookie(&self, value: String) {
        *self.device_cookie.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    pub fn take_device_cookie(&self) -> Option<String> {
        self.device_cookie
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl<S: ScalarValue> IntoFieldError<S> for Error {
    fn into_field_error(self) -> FieldError<S> {
        if let Error::Internal(cause) = &self {
            tracing::error!("internal error: {cause:#}");
        }
        let code = self.code();
        FieldError::new(self, graphql_value!({ "webErrorCode": code }))
    }
}
