//! `Query`: login, session and user administration, on `Query` as CloudBeaver has them.

use juniper::{ID, graphql_object};

use super::{
    context::{Context, CookieChange},
    scalars::Credentials,
    types::*,
};
use crate::auth::{
    AuditFilter, Caller, Error, LoginOptions, NewPassword, Result, Role, UserFilter, UserId,
    audit::kind as audit_kinds, return_to,
};

pub struct Query;

#[graphql_object(context = Context)]
impl Query {
    /// Changes: opens a session (recorded in the audit log) and sets the `cb-session-id`
    /// cookie, ending the session this request came with; with `forceSessionsLogout`, ends the
    /// user's other sessions too. Provider `local` (`credentials: {user, password}`) or `token`
    /// (`credentials: {token}`). A query by CloudBeaver's API, though it changes things.
    async fn auth_login(
        ctx: &Context,
        provider: ID,
        configuration: Option<ID>,
        credentials: Option<Credentials>,
        link_user: Option<bool>,
        force_sessions_logout: Option<bool>,
    ) -> Result<AuthInfo> {
        let _ = (configuration, link_user);
        login(ctx, &provider, credentials, force_sessions_logout).await
    }

    /// Changes: ends this session on the server and clears its cookie.
    async fn auth_logout(
        ctx: &Context,
        provider: Option<ID>,
        configuration: Option<ID>,
    ) -> Result<Option<bool>> {
        let _ = (provider, configuration);
        logout(ctx).await?;
        Ok(Some(true))
    }

    /// Changes: as `authLogout` (ends this session), with the links an external provider
    /// would need (none here).
    async fn auth_logout_extended(
        ctx: &Context,
        provider: Option<ID>,
        configuration: Option<ID>,
    ) -> Result<LogoutInfo> {
        let _ = (provider, configuration);
        logout(ctx).await?;
        Ok(LogoutInfo {
            redirect_links: Vec::new(),
        })
    }

    /// The user of this session or bearer token; null without one.
    fn active_user(ctx: &Context) -> Option<UserInfo> {
        let logins = match &ctx.caller {
            Caller::Session(s) => vec![UserAuthToken::of_session(s)],
            Caller::Bearer { user, .. } => vec![UserAuthToken::new(user, "token", ctx.auth.now())],
            _ => return None,
        };
        Some(UserInfo {
            user: ctx.caller.user()?.clone(),
            logins,
        })
    }

    /// The login providers this server offers: `local` (a password) and `token` (an API token).
    fn auth_providers() -> Vec<AuthProviderInfo> {
        auth_providers()
    }

    /// Changes: the caller's own password; their other sessions end.
    async fn auth_change_local_password(
        ctx: &Context,
        old_password: String,
        new_password: String,
    ) -> Result<bool> {
        ctx.caller.require_user_to_change()?;
        ctx.auth
            .users()
            .change_own_password(&ctx.actor(), ctx.session(), &old_password, &new_password)
            .await?;
        Ok(true)
    }

    /// This request's session: when it was opened and last used, and how long it has left.
    /// Changes nothing.
    fn session_state(ctx: &Context) -> SessionInfo {
        let state = ctx.auth.sessions().session_state(&ctx.caller);
        SessionInfo {
            create_time: state.created_at.to_string(),
            last_access_time: state.last_seen_at.to_string(),
            locale: "en".into(),
            cache_expired: false,
            valid: state.valid,
            remaining_time: i32::try_from(state.remaining.as_millis()).unwrap_or(i32::MAX),
        }
    }

    /// The caller's API tokens, oldest first; never a secret.
    async fn token_api_list(ctx: &Context) -> Result<Vec<ApiTokenInfo>> {
        let user = ctx.require_user()?;
        let tokens = ctx.auth.tokens().list_tokens(user).await?;
        Ok(tokens.into_iter().map(ApiTokenInfo::from).collect())
    }

    /// The token rules of this server for the caller (Lodge's own, for the profile page).
    fn token_api_policy(ctx: &Context) -> Result<TokenApiPolicy> {
        let user = ctx.require_user()?;
        let rules = &ctx.auth.settings().tokens;
        Ok(TokenApiPolicy {
            admins_only: rules.admins_only,
            can_create: user.is_admin() || !rules.admins_only,
            max_per_user: i32::try_from(rules.max_per_user).unwrap_or(i32::MAX),
            allow_never: rules.allow_never,
            default_lifetime: rules.default_lifetime.into(),
        })
    }

    /// Where the login page may send the browser after login (Lodge's own): `returnTo` when it is
    /// a path on Lodge, on `server.public_url`, on the host the request came to when that is an
    /// IP address, `localhost` or one of `server.allowed_hosts`, or on one of
    /// `forward_auth.return_origins`;
    /// null otherwise, so a link cannot make Lodge an open redirect.
    fn auth_return_url(ctx: &Context, return_to: String) -> Option<String> {
        let settings = ctx.auth.settings();
        // The Host header is the client's word: trusted only where a rebinding name cannot be,
        // or when a trusted proxy says which name it served.
        let own_host = ctx
            .request
            .host
            .as_deref()
            .filter(|h| ctx.request.host_vouched || settings.server.is_allowed_host(h));
        return_to::allowed_return(
            &return_to,
            own_host,
            settings.server.public_url.origin(),
            &settings.forward_auth,
        )
    }

    /// The audit log, newest first (Lodge's own). Administrators only. `page.limit` defaults to
    /// 100 and is at most 1,000.
    async fn audit_log(
        ctx: &Context,
        page: Option<PageInput>,
        filter: Option<AuditFilterInput>,
    ) -> Result<Vec<AuditEvent>> {
        ctx.require_admin()?;
        let page = page.unwrap_or_default();
        let filter = filter.unwrap_or_default();
        if let Some(kind) = &filter.kind
            && !audit_kinds::ALL.contains(&kind.as_str())
        {
            return Err(Error::InvalidInput(format!(
                "unknown kind `{kind}`: use one of {}",
                audit_kinds::ALL.join(", ")
            )));
        }
        let events = ctx
            .auth
            .audit()
            .log(AuditFilter {
                user_id: filter.user_id,
                kind: filter.kind,
                since: filter.since,
                limit: page.limit,
                offset: page.offset,
            })
            .await?;
        Ok(events.into_iter().map(AuditEvent::from).collect())
    }

    /// Administrators only.
    async fn admin_user_info(ctx: &Context, user_id: ID) -> Result<AdminUserInfo> {
        ctx.require_admin()?;
        Ok(AdminUserInfo(ctx.auth.users().user(&user_id).await?))
    }

    /// Administrators only. `page.limit` defaults to 100 and is at most 1,000.
    async fn list_users(
        ctx: &Context,
        page: PageInput,
        filter: AdminUserFilterInput,
    ) -> Result<Vec<AdminUserInfo>> {
        ctx.require_admin()?;
        let users = ctx
            .auth
            .users()
            .list_users(UserFilter {
                id_contains: filter.user_id_mask,
                enabled: filter.enabled_state,
                limit: page.limit,
                offset: page.offset,
            })
            .await?;
        Ok(users.into_iter().map(AdminUserInfo).collect())
    }

    /// Administrators only. Changes: creates the user `userId`; `authRole` is `admin` or `user`
    /// (the default). The new user has no password until `setUserCredentials` gives one.
    async fn create_user(
        ctx: &Context,
        user_id: ID,
        enabled: bool,
        auth_role: Option<String>,
    ) -> Result<AdminUserInfo> {
        ctx.caller.require_admin_to_change()?;
        let user_id = UserId::parse(&user_id)?;
        let role = role_or_user(auth_role.as_deref())?;
        let user = ctx
            .auth
            .users()
            .create_user(&ctx.actor(), &user_id, role, enabled, None)
            .await?;
        Ok(AdminUserInfo(user))
    }

    /// Administrators only. Changes: deletes the user with all their tokens and sessions, for
    /// good.
    async fn delete_user(ctx: &Context, user_id: ID) -> Result<Option<bool>> {
        ctx.caller.require_admin_to_change()?;
        ctx.auth.users().delete_user(&ctx.actor(), &user_id).await?;
        Ok(Some(true))
    }

    /// Administrators only. Changes: provider `local` with `credentials: {password}` sets the
    /// user's password, ends their sessions and lifts a failed-login lock.
    async fn set_user_credentials(
        ctx: &Context,
        user_id: ID,
        provider_id: ID,
        credentials: Credentials,
    ) -> Result<Option<bool>> {
        ctx.caller.require_admin_to_change()?;
        if &*provider_id != "local" {
            return Err(Error::InvalidInput(format!(
                "provider `{}` keeps no credentials; use `local`",
                &*provider_id
            )));
        }
        let Some(password) = credentials.password else {
            return Err(Error::InvalidInput(
                "provider `local` needs credentials {password}".into(),
            ));
        };
        let accept_hash = ctx.auth.settings().password.accept_client_hash;
        let password = NewPassword::parse_credential(&password, accept_hash)?;
        ctx.auth
            .users()
            .set_password(&ctx.actor(), &user_id, password, None)
            .await?;
        Ok(Some(true))
    }

    /// Administrators only. Changes: disabling ends the user's sessions and stops their
    /// tokens at once; enabling lets them log in again.
    async fn enable_user(ctx: &Context, user_id: ID, enabled: bool) -> Result<Option<bool>> {
        ctx.caller.require_admin_to_change()?;
        ctx.auth
            .users()
            .enable_user(&ctx.actor(), &user_id, enabled)
            .await?;
        Ok(Some(true))
    }

    /// Administrators only (Lodge's own): the API tokens of the user `userId`, or of every user
    /// without it (at most 10,000), each user's oldest first, listed as their owners see them.
    /// Never a secret.
    async fn admin_token_list(ctx: &Context, user_id: Option<ID>) -> Result<Vec<AdminTokenInfo>> {
        ctx.require_admin()?;
        let tokens = match user_id {
            Some(user_id) => {
                let user = ctx.auth.users().user(&user_id).await?;
                let tokens = ctx.auth.tokens().list_tokens(&user).await?;
                tokens
                    .into_iter()
                    .map(|t| (user.user_id.clone(), t))
                    .collect()
            }
            None => ctx.auth.tokens().list_all_tokens().await?,
        };
        Ok(tokens.into_iter().map(AdminTokenInfo::from).collect())
    }

    /// Administrators only (Lodge's own): the live token behind a secret someone found (in a
    /// log, a repository, a chat), so that it can be revoked with `adminTokenDelete`; null when
    /// no live token has this secret. Changes nothing; recorded in the audit log
    /// (`token.lookup`), found or not.
    async fn admin_token_lookup(ctx: &Context, token: String) -> Result<Option<AdminTokenInfo>> {
        ctx.require_admin()?;
        let found = ctx.auth.tokens().lookup_token(&ctx.actor(), &token).await?;
        Ok(found.map(|(owner, token, previous)| AdminTokenInfo {
            owner,
            token,
            previous,
        }))
    }

    /// The caller's live sessions, the newest first (Lodge's own); `current` marks the one
    /// this request came with.
    async fn session_list(ctx: &Context) -> Result<Vec<UserSessionInfo>> {
        let user = ctx.require_user()?;
        let sessions = ctx
            .auth
            .session_list()
            .sessions_of(user, ctx.session())
            .await?;
        Ok(sessions.into_iter().map(UserSessionInfo::from).collect())
    }

    /// Administrators only (Lodge's own): the live sessions of the user `userId`, the newest
    /// first.
    async fn admin_session_list(ctx: &Context, user_id: ID) -> Result<Vec<UserSessionInfo>> {
        ctx.require_admin()?;
        let user = ctx.auth.users().user(&user_id).await?;
        let sessions = ctx
            .auth
            .session_list()
            .sessions_of(&user, ctx.session())
            .await?;
        Ok(sessions.into_iter().map(UserSessionInfo::from).collect())
    }

    /// Administrators only (Lodge's own). Changes: lifts the lock the failed-login limit holds
    /// on the user's account, so they can log in at once; true when it was locked. Recorded in
    /// the audit log (`user.unlock`).
    async fn admin_unlock_user(ctx: &Context, user_id: ID) -> Result<bool> {
        ctx.caller.require_admin_to_change()?;
        ctx.auth.users().unlock_user(&ctx.actor(), &user_id).await
    }

    /// Administrators only. Changes: makes the user an administrator (`admin`) or not (`user`,
    /// also when null); while not one, the tokens they made as one under `tokens.admins_only`
    /// are suspended.
    async fn set_user_auth_role(
        ctx: &Context,
        user_id: ID,
        auth_role: Option<String>,
    ) -> Result<Option<bool>> {
        ctx.caller.require_admin_to_change()?;
        let role = role_or_user(auth_role.as_deref())?;
        ctx.auth
            .users()
            .set_role(&ctx.actor(), &user_id, role)
            .await?;
        Ok(Some(true))
    }
}

/// `authLogin`: what the field does, shared by juniper's resolver and the direct path
/// ([`super::direct`]), so the two cannot differ.
pub(super) async fn login(
    ctx: &Context,
    provider: &str,
    credentials: Option<Credentials>,
    force_sessions_logout: Option<bool>,
) -> Result<AuthInfo> {
    ctx.count_login()?;
    let credentials = credentials.unwrap_or_default();
    let login = LoginOptions {
        address: ctx.request.address,
        user_agent: ctx.request.user_agent.as_deref(),
        replaces: ctx.session(),
        end_other_sessions: force_sessions_logout.unwrap_or(false),
        device: ctx.request.device_cookie.as_deref(),
    };
    let outcome = match provider {
        "local" => {
            let (Some(user), Some(password)) = (credentials.user, credentials.password) else {
                return Err(Error::InvalidInput(
                    "provider `local` needs credentials {user, password}".into(),
                ));
            };
            ctx.auth
                .logins()
                .login_local(&user, &password, login)
                .await?
        }
        "token" => {
            let Some(token) = credentials.token else {
                return Err(Error::InvalidInput(
                    "provider `token` needs credentials {token}".into(),
                ));
            };
            ctx.auth.logins().login_token(&token, login).await?
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "unknown auth provider `{other}`: use `local` or `token`"
            )));
        }
    };
    ctx.set_cookie(CookieChange::Set(outcome.cookie.expose()));
    if let Some(device) = outcome.device_cookie {
        ctx.set_device_cookie(device);
    }
    Ok(AuthInfo {
        redirect_link: None,
        auth_id: Some(outcome.auth_id),
        auth_status: AuthStatus::Success,
        user_tokens: Some(vec![UserAuthToken::of_session(&outcome.session)]),
    })
}

fn role_or_user(role: Option<&str>) -> Result<Role> {
    role.map_or(Ok(Role::User), Role::parse)
}

async fn logout(ctx: &Context) -> Result<()> {
    if let Caller::Session(session) = &ctx.caller {
        ctx.auth
            .sessions()
            .logout(session, ctx.request.address)
            .await?;
    }
    ctx.set_cookie(CookieChange::Clear);
    Ok(())
}
