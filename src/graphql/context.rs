//! What every resolver gets: the product's rules and the already identified caller.

use std::sync::Mutex;

use juniper::{FieldError, IntoFieldError, ScalarValue, graphql_value};

use crate::auth::{Auth, Caller, Error, Result, User};

/// What the response must do with the session cookie.
#[derive(Debug, Clone)]
pub enum CookieChange {
    Set(String),
    Clear,
}

pub struct Context {
    pub auth: Auth,
    pub caller: Caller,
    /// The request's `Host`, the server's own origin as the browser sees it.
    pub host: Option<String>,
    cookie: Mutex<Option<CookieChange>>,
}

impl juniper::Context for Context {}

impl Context {
    pub fn new(auth: Auth, caller: Caller, host: Option<String>) -> Self {
        Self {
            auth,
            caller,
            host,
            cookie: Mutex::new(None),
        }
    }

    pub fn require_user(&self) -> Result<&User> {
        self.caller.require_user()
    }

    pub fn require_admin(&self) -> Result<&User> {
        self.caller.require_admin()
    }

    /// The id of the caller's session, when it came with one.
    pub fn session_id(&self) -> Option<i64> {
        match &self.caller {
            Caller::Session(s) => Some(s.id),
            _ => None,
        }
    }

    pub fn set_cookie(&self, change: CookieChange) {
        *self.cookie.lock().unwrap_or_else(|p| p.into_inner()) = Some(change);
    }

    pub fn take_cookie(&self) -> Option<CookieChange> {
        self.cookie.lock().unwrap_or_else(|p| p.into_inner()).take()
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
