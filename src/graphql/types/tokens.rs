//! API tokens as the API lists them: the owner's view, an administrator's, and a new one's
//! secret shown once. Never a stored secret or digest.

use jiff::Timestamp;
use juniper::{GraphQLObject, ID, graphql_object};

use crate::{
    auth::{Grants, Token},
    graphql::context::Context,
};

/// Any user's API token as an administrator sees it (Lodge's own): never its secret or digest.
pub struct AdminTokenInfo {
    pub owner: String,
    pub token: Token,
    /// Found by the secret before its last rotation (`adminTokenLookup`).
    pub previous: bool,
}

/// Any user's API token as an administrator sees it (Lodge's own): never its secret or digest.
#[graphql_object(context = Context)]
impl AdminTokenInfo {
    /// The owner.
    fn user_id(&self) -> ID {
        ID::new(&self.owner)
    }

    fn token_name(&self) -> &str {
        &self.token.name
    }

    fn create_time(&self) -> Timestamp {
        self.token.created_at
    }

    /// Null for a token that never expires; in the past for an expired one, still listed.
    fn expire_time(&self) -> Option<Timestamp> {
        self.token.expires_at
    }

    /// Recorded at most once a minute.
    fn last_used_time(&self) -> Option<Timestamp> {
        self.token.last_used_at
    }

    /// The client address of that use, as `server.trusted_proxies` resolves it.
    fn last_used_address(&self) -> Option<String> {
        self.token
            .last_used_address
            .as_ref()
            .map(ToString::to_string)
    }

    /// What it may do: `api`, `read_api`, `proxy`, `read_proxy`.
    fn scopes(&self) -> Vec<String> {
        with_grants(&self.token, Grants::scopes)
    }

    /// The services forward auth lets it reach; empty: any.
    fn services(&self) -> Vec<String> {
        with_grants(&self.token, Grants::services)
    }

    /// The addresses it may be used from; empty: any.
    fn allow_from(&self) -> Vec<String> {
        with_grants(&self.token, Grants::allow_from)
    }

    /// For `adminTokenLookup`: whether the secret looked up is the one before the token's last
    /// rotation, still working in its grace (`graceExpireTime`); false in lists.
    fn previous_secret(&self) -> bool {
        self.previous
    }

    /// When the secret before its last rotation stops working; null when there is none or its
    /// grace is over.
    fn grace_expire_time(&self, ctx: &Context) -> Option<Timestamp> {
        self.token.grace_until.filter(|at| *at > ctx.auth.now())
    }
}

impl From<(String, Token)> for AdminTokenInfo {
    fn from((owner, token): (String, Token)) -> Self {
        Self {
            owner,
            token,
            previous: false,
        }
    }
}

/// One list of a token's grants, computed only when asked for: an unscoped token's are `api`
/// and `proxy`, any service, any address.
fn with_grants(token: &Token, list: fn(&Grants) -> Vec<String>) -> Vec<String> {
    static EVERYTHING: std::sync::LazyLock<Grants> = std::sync::LazyLock::new(Grants::everything);
    list(token.grants.as_deref().unwrap_or(&EVERYTHING))
}

/// An API token as listed: never its secret.
pub struct ApiTokenInfo(pub Token);

/// An API token as listed: never its secret.
#[graphql_object(context = Context, name = "APITokenInfo")]
impl ApiTokenInfo {
    fn token_name(&self) -> &str {
        &self.0.name
    }

    fn create_time(&self) -> Timestamp {
        self.0.created_at
    }

    /// Null for a token that never expires; in the past for an expired one, still listed.
    fn expire_time(&self) -> Option<Timestamp> {
        self.0.expires_at
    }

    /// Recorded at most once a minute.
    fn last_used_time(&self) -> Option<Timestamp> {
        self.0.last_used_at
    }

    /// The client address of that use (Lodge's own), as `server.trusted_proxies` resolves it.
    fn last_used_address(&self) -> Option<String> {
        self.0.last_used_address.as_ref().map(ToString::to_string)
    }

    /// What it may do (Lodge's own): `api`, `read_api`, `proxy`, `read_proxy`.
    fn scopes(&self) -> Vec<String> {
        with_grants(&self.0, Grants::scopes)
    }

    /// The services forward auth lets it reach (Lodge's own); empty: any.
    fn services(&self) -> Vec<String> {
        with_grants(&self.0, Grants::services)
    }

    /// The addresses it may be used from (Lodge's own); empty: any.
    fn allow_from(&self) -> Vec<String> {
        with_grants(&self.0, Grants::allow_from)
    }

    /// Whether it expires within `tokens.warn_before` (Lodge's own); false once expired.
    fn expires_soon(&self, ctx: &Context) -> bool {
        ctx.auth.tokens().expires_soon(&self.0)
    }

    /// When the secret before its last rotation stops working (Lodge's own); null when there
    /// is none or its grace is over.
    fn grace_expire_time(&self, ctx: &Context) -> Option<Timestamp> {
        self.0.grace_until.filter(|at| *at > ctx.auth.now())
    }
}

impl From<Token> for ApiTokenInfo {
    fn from(token: Token) -> Self {
        Self(token)
    }
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, GraphQLObject)]
#[graphql(name = "APIFullTokenInfo")]
pub struct ApiFullTokenInfo {
    pub token_name: String,
    /// The secret. It is not stored and cannot be shown again.
    pub token: String,
    pub create_time: Timestamp,
    pub expire_time: Option<Timestamp>,
}
