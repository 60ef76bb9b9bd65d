//! `Mutation`: API tokens and sessions.

use jiff::{SignedDuration, Timestamp};
use juniper::{ID, graphql_object};

use super::{
    context::Context,
    types::{ApiFullTokenInfo, TokenLifetime},
};
use crate::auth::{Ender, Error, Expiry, Grants, Result, TokenName};

pub struct Mutation;

#[graphql_object(context = Context)]
impl Mutation {
    /// Creates an API token for the caller and returns its secret, shown this once. Give
    /// `lifetime` or `expiresAt` (in the future), or neither for the server's default lifetime.
    /// Lodge's own, all optional: `scopes` (`api`, `read_api`, `proxy`, `read_proxy`; by
    /// default `api` and `proxy`), `services` (host patterns with an optional path prefix that
    /// forward auth lets it reach: `grafana.example.com`, `*.internal.example.com`,
    /// `ci.example.com/api/`; by default any) and `allowFrom` (addresses or CIDR ranges it may
    /// be used from; by default any).
    async fn token_api_create(
        ctx: &Context,
        token_name: String,
        expires_at: Option<Timestamp>,
        lifetime: Option<TokenLifetime>,
        scopes: Option<Vec<String>>,
        services: Option<Vec<String>>,
        allow_from: Option<Vec<String>>,
    ) -> Result<ApiFullTokenInfo> {
        let user = ctx.caller.require_user_to_change()?;
        let name = TokenName::parse(&token_name)?;
        let expiry = expiry_of(expires_at, lifetime)?;
        let grants = Grants::from_request(
            scopes.as_deref(),
            services.as_deref(),
            allow_from.as_deref(),
        )?;
        let created = ctx
            .auth
            .tokens()
            .create_token(&ctx.actor(), user, &name, expiry, grants)
            .await?;
        Ok(ApiFullTokenInfo {
            token_name: created.token.name,
            token: created.secret.expose().to_owned(),
            create_time: created.token.created_at,
            expire_time: created.token.expires_at,
        })
    }

    /// A new secret for the caller's token (Lodge's own), shown this once: the same name, scopes
    /// and bounds, an expiry by the rules of `tokenApiCreate`. The previous secret keeps working
    /// for `graceSeconds` (default 0, at most `tokens.max_rotation_grace`), then is refused like
    /// a deleted one, and the sessions opened with it end. Rotating again during a grace ends
    /// that grace at once. Not counted toward the quota.
    async fn token_api_rotate(
        ctx: &Context,
        token_name: String,
        lifetime: Option<TokenLifetime>,
        expires_at: Option<Timestamp>,
        grace_seconds: Option<i32>,
    ) -> Result<ApiFullTokenInfo> {
        let user = ctx.caller.require_user_to_change()?;
        let expiry = expiry_of(expires_at, lifetime)?;
        let grace = SignedDuration::from_secs(i64::from(grace_seconds.unwrap_or(0)));
        let rotated = ctx
            .auth
            .tokens()
            .rotate_token(&ctx.actor(), user, &token_name, expiry, grace)
            .await?;
        Ok(ApiFullTokenInfo {
            token_name: rotated.token.name,
            token: rotated.secret.expose().to_owned(),
            create_time: rotated.token.created_at,
            expire_time: rotated.token.expires_at,
        })
    }

    /// Deletes the caller's token by name: it stops working at once, and the sessions opened
    /// with it end (unless `tokens.end_sessions_on_delete` is off).
    async fn token_api_delete(ctx: &Context, token_name: String) -> Result<bool> {
        let user = ctx.caller.require_user_to_change()?;
        ctx.auth
            .tokens()
            .delete_token(&ctx.actor(), user, &token_name)
            .await?;
        Ok(true)
    }

    /// Administrators only (Lodge's own): revokes any user's token by name, as the owner's
    /// `tokenApiDelete` does: it stops working at once, and the sessions it opened end when
    /// `tokens.end_sessions_on_delete` says so. Recorded with the administrator who did it.
    async fn admin_token_delete(ctx: &Context, user_id: ID, token_name: String) -> Result<bool> {
        ctx.caller.require_admin_to_change()?;
        let user = ctx.auth.users().user(&user_id).await?;
        ctx.auth
            .tokens()
            .delete_token(&ctx.actor(), &user, &token_name)
            .await?;
        Ok(true)
    }

    /// Ends one of the caller's sessions by its `UserSessionInfo.id` (Lodge's own); false when
    /// the caller has no live session with this id. Ending the current one logs this browser
    /// out.
    async fn session_end(ctx: &Context, id: ID) -> Result<bool> {
        let user = ctx.caller.require_user_to_change()?;
        ctx.auth
            .session_list()
            .end_session(&ctx.actor(), Ender::Owner(user), &id)
            .await
    }

    /// Ends all of the caller's sessions but the current one (all of them for a request with
    /// a Bearer token) and gives how many ended (Lodge's own).
    async fn session_end_others(ctx: &Context) -> Result<i32> {
        let user = ctx.caller.require_user_to_change()?;
        let ended = ctx
            .auth
            .session_list()
            .end_other_sessions(&ctx.actor(), user, ctx.session())
            .await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Administrators only (Lodge's own): ends any user's session by its id; false when no
    /// live session has it. Recorded with the administrator who did it.
    async fn admin_session_end(ctx: &Context, id: ID) -> Result<bool> {
        ctx.caller.require_admin_to_change()?;
        ctx.auth
            .session_list()
            .end_session(&ctx.actor(), Ender::Administrator, &id)
            .await
    }
}

/// A token's expiry as asked for: `lifetime` or `expiresAt`, or neither for the default.
fn expiry_of(expires_at: Option<Timestamp>, lifetime: Option<TokenLifetime>) -> Result<Expiry> {
    match (expires_at, lifetime) {
        (Some(_), Some(_)) => Err(Error::InvalidInput(
            "give lifetime or expiresAt, not both".into(),
        )),
        (Some(at), None) => Ok(Expiry::At(at)),
        (None, Some(lifetime)) => Ok(Expiry::Lifetime(lifetime.into())),
        (None, None) => Ok(Expiry::Default),
    }
}
