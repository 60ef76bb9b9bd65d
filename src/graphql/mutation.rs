//! `Mutation`: API tokens.

use jiff::Timestamp;
use juniper::{ID, graphql_object};

use super::{
    context::Context,
    types::{ApiFullTokenInfo, TokenLifetime},
};
use crate::auth::{Error, Expiry, Result, TokenName};

pub struct Mutation;

#[graphql_object(context = Context)]
impl Mutation {
    /// Creates an API token for the caller and returns its secret, shown this once. Give
    /// `lifetime` or `expiresAt` (in the future), or neither for the server's default lifetime.
    async fn token_api_create(
        ctx: &Context,
        token_name: String,
        expires_at: Option<Timestamp>,
        lifetime: Option<TokenLifetime>,
    ) -> Result<ApiFullTokenInfo> {
        let user = ctx.require_user()?;
        let name = TokenName::parse(&token_name)?;
        let expiry = match (expires_at, lifetime) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidInput(
                    "give lifetime or expiresAt, not both".into(),
                ));
            }
            (Some(at), None) => Expiry::At(at),
            (None, Some(lifetime)) => Expiry::Lifetime(lifetime.into()),
            (None, None) => Expiry::Default,
        };
        let created = ctx
            .auth
            .create_token(&ctx.actor(), user, &name, expiry)
            .await?;
        Ok(ApiFullTokenInfo {
            token_name: created.token.name,
            token: created.secret.expose().to_owned(),
            create_time: created.token.created_at,
            expire_time: created.token.expires_at,
        })
    }

    /// Deletes the caller's token by name; it stops working at once.
    async fn token_api_delete(ctx: &Context, token_name: String) -> Result<bool> {
        let user = ctx.require_user()?;
        ctx.auth
            .delete_token(&ctx.actor(), user, &token_name)
            .await?;
        Ok(true)
    }

    /// Administrators only (Lodge's own): revokes any user's token by name, as the owner's
    /// `tokenApiDelete` does: it stops working at once, and the sessions it opened end when
    /// `tokens.end_sessions_on_delete` says so. Recorded with the administrator who did it.
    async fn admin_token_delete(ctx: &Context, user_id: ID, token_name: String) -> Result<bool> {
        ctx.require_admin()?;
        let user = ctx.auth.user(&user_id).await?;
        ctx.auth
            .delete_token(&ctx.actor(), &user, &token_name)
            .await?;
        Ok(true)
    }
}
