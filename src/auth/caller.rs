//! Who sent a request, and what they may do with the API.

use std::sync::Arc;

use jiff::SignedDuration;

use super::{ApiAccess, Error, Grants, Result, User, sessions::Session};

/// Who sent a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No cookie and no bearer token.
    Anonymous,
    /// A cookie that names no live session: ended, expired, or never issued.
    Expired,
    Session(Session),
    /// A request authenticated by its own `Authorization: Bearer` token, without a session.
    Bearer {
        user: User,
        token_name: String,
        /// The token's scopes and bounds; `None`: every scope, anywhere.
        grants: Option<Arc<Grants>>,
    },
    /// A right token (or a session opened with one) used from an address its `allowFrom` does
    /// not hold: why.
    Denied(String),
    /// A bearer token that does not log in.
    BadBearer,
    /// A bearer token from an address with too many failures: not even looked at. How long
    /// the address must wait.
    Throttled(SignedDuration),
}

impl Caller {
    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::Session(s) => Some(&s.user),
            Caller::Bearer { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The user, or the error that says why there is none.
    pub fn require_user(&self) -> Result<&User> {
        match self {
            Caller::Session(s) => Ok(&s.user),
            Caller::Bearer { user, .. } => Ok(user),
            Caller::Anonymous => Err(Error::AuthRequired),
            Caller::Expired => Err(Error::SessionExpired),
            Caller::BadBearer => Err(Error::AuthFailed),
            Caller::Throttled(wait) => Err(Error::TooManyRequests(*wait)),
            Caller::Denied(reason) => Err(Error::TokenDenied(reason.clone())),
        }
    }

    /// The scopes and bounds the caller acts under: a token's, or a session's copy of the token
    /// it was opened with; `None` for a password session (every scope) or no user.
    pub fn grants(&self) -> Option<&Grants> {
        match self {
            Caller::Session(s) => s.grants.as_deref(),
            Caller::Bearer { grants, .. } => grants.as_deref(),
            _ => None,
        }
    }

    /// The token the caller authenticated with, or the one its session was opened with.
    pub fn token_name(&self) -> Option<&str> {
        match self {
            Caller::Session(s) => s.token_name.as_deref(),
            Caller::Bearer { token_name, .. } => Some(token_name),
            _ => None,
        }
    }

    /// How much of the GraphQL API the caller may use.
    pub fn api_access(&self) -> ApiAccess {
        self.grants().map_or(ApiAccess::Full, |g| g.api())
    }

    /// The caller, refused when its token allows queries only (`read_api`): what every
    /// operation that changes something asks first.
    pub fn require_user_to_change(&self) -> Result<&User> {
        let user = self.require_user()?;
        if self.api_access() != ApiAccess::Full {
            return Err(Error::TokenDenied(format!(
                "the token `{}` has the scope read_api, which allows queries only; this needs                  the scope api",
                self.token_name().unwrap_or_default()
            )));
        }
        Ok(user)
    }

    /// An administrator who may change things ([`Caller::require_user_to_change`]).
    pub fn require_admin_to_change(&self) -> Result<&User> {
        self.require_admin()?;
        self.require_user_to_change()
    }

    pub fn require_admin(&self) -> Result<&User> {
        let user = self.require_user()?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(Error::AccessDenied("this needs an administrator"))
        }
    }
}
