//! GraphQL output and input types, shaped as CloudBeaver names them, wrapping domain types.

use std::borrow::Cow;

use jiff::Timestamp;
use juniper::{GraphQLEnum, GraphQLInputObject, GraphQLObject, ID, graphql_object};

mod tokens;

pub use tokens::{AdminTokenInfo, ApiFullTokenInfo, ApiTokenInfo};

use super::{context::Context, scalars::Json};
use crate::{
    auth::{self, Role, Session, SessionSummary, User},
    config::Lifetime,
};

#[derive(Debug, Clone, Copy, GraphQLEnum)]
pub enum AuthStatus {
    Success,
    InProgress,
    #[graphql(name = "ERROR")]
    Failed,
}

/// How a client must encode a credential before sending it.
#[derive(Debug, Clone, Copy, GraphQLEnum)]
pub enum AuthCredentialEncryption {
    #[graphql(name = "none")]
    None,
    #[graphql(name = "plain")]
    Plain,
    /// The upper-case hex MD5 of the value.
    #[graphql(name = "hash")]
    Hash,
}

/// How long a new API token lives; `NEVER` may be refused by the server's configuration.
#[derive(Debug, Clone, Copy, GraphQLEnum)]
pub enum TokenLifetime {
    Day,
    Week,
    /// One calendar month: from 31 January, the last day of February.
    Month,
    Year,
    Never,
}

impl From<TokenLifetime> for Lifetime {
    fn from(l: TokenLifetime) -> Self {
        match l {
            TokenLifetime::Day => Lifetime::Day,
            TokenLifetime::Week => Lifetime::Week,
            TokenLifetime::Month => Lifetime::Month,
            TokenLifetime::Year => Lifetime::Year,
            TokenLifetime::Never => Lifetime::Never,
        }
    }
}

impl From<Lifetime> for TokenLifetime {
    fn from(l: Lifetime) -> Self {
        match l {
            Lifetime::Day => TokenLifetime::Day,
            Lifetime::Week => TokenLifetime::Week,
            Lifetime::Month => TokenLifetime::Month,
            Lifetime::Year => TokenLifetime::Year,
            Lifetime::Never => TokenLifetime::Never,
        }
    }
}

/// The token rules of this server, as they apply to the caller.
#[derive(Debug, GraphQLObject)]
pub struct TokenApiPolicy {
    /// Only administrators may create tokens.
    pub admins_only: bool,
    /// Whether the caller may create tokens.
    pub can_create: bool,
    /// Tokens a user may hold at once; expired ones do not count.
    pub max_per_user: i32,
    /// Whether `NEVER` may be chosen.
    pub allow_never: bool,
    /// The lifetime of a token created with neither `lifetime` nor `expiresAt`.
    pub default_lifetime: TokenLifetime,
}

#[derive(Debug, Clone, Copy, GraphQLEnum)]
pub enum AdminSubjectType {
    #[graphql(name = "user")]
    User,
    #[graphql(name = "team")]
    Team,
}

#[derive(Debug, Default, GraphQLInputObject)]
pub struct PageInput {
    pub limit: Option<i32>,
    pub offset: Option<i32>,
}

#[derive(Debug, Default, GraphQLInputObject)]
pub struct AdminUserFilterInput {
    /// Part of the user id, in any case.
    pub user_id_mask: Option<String>,
    pub enabled_state: Option<bool>,
}

#[derive(Debug, Clone, GraphQLObject)]
pub struct ObjectOrigin {
    #[graphql(name = "type")]
    pub kind: ID,
    pub sub_type: Option<ID>,
    pub display_name: String,
    pub icon: Option<String>,
    pub configuration: Option<Json>,
}

impl ObjectOrigin {
    fn provider(provider: &str) -> Self {
        Self {
            kind: ID::new(provider),
            sub_type: None,
            display_name: provider_label(provider).into(),
            icon: None,
            configuration: None,
        }
    }
}

fn provider_label(provider: &str) -> &'static str {
    match provider {
        "token" => "API token",
        _ => "Local",
    }
}

/// One login of the current session.
#[derive(Debug, Clone, GraphQLObject)]
pub struct UserAuthToken {
    pub auth_provider: ID,
    pub auth_configuration: Option<ID>,
    pub login_time: Timestamp,
    pub user_id: String,
    pub display_name: String,
    pub message: Option<String>,
    pub origin: ObjectOrigin,
}

impl UserAuthToken {
    pub fn new(user: &User, provider: &str, login_time: Timestamp) -> Self {
        Self {
            auth_provider: ID::new(provider),
            auth_configuration: None,
            login_time,
            user_id: user.user_id.clone(),
            display_name: user.display_name.clone(),
            message: None,
            origin: ObjectOrigin::provider(provider),
        }
    }

    pub fn of_session(session: &Session) -> Self {
        Self::new(&session.user, &session.provider, session.created_at)
    }
}

#[derive(Debug, GraphQLObject)]
pub struct AuthInfo {
    pub redirect_link: Option<String>,
    pub auth_id: Option<String>,
    pub auth_status: AuthStatus,
    pub user_tokens: Option<Vec<UserAuthToken>>,
}

#[derive(Debug, GraphQLObject)]
pub struct LogoutInfo {
    pub redirect_links: Vec<String>,
}

#[derive(Debug, GraphQLObject)]
pub struct UserTeamInfo {
    pub team_id: String,
    pub team_name: String,
    pub team_role: Option<String>,
}

/// CloudBeaver's default teams: every user is in `user`, administrators in `admin` too.
pub fn teams(role: Role) -> &'static [&'static str] {
    match role {
        Role::Admin => &["admin", "user"],
        Role::User => &["user"],
    }
}

/// The user of the current session.
pub struct UserInfo {
    pub user: User,
    pub logins: Vec<UserAuthToken>,
}

#[graphql_object(context = Context)]
impl UserInfo {
    fn user_id(&self) -> ID {
        ID::new(&self.user.user_id)
    }

    fn display_name(&self) -> Option<&str> {
        Some(&self.user.display_name)
    }

    /// `admin` or `user`.
    fn auth_role(&self) -> Option<ID> {
        Some(ID::new(self.user.role.as_str()))
    }

    /// The logins of this session.
    fn auth_tokens(&self) -> &[UserAuthToken] {
        &self.logins
    }

    fn linked_auth_providers(&self) -> Vec<String> {
        linked_providers(&self.user)
    }

    fn meta_parameters(&self) -> Json {
        Json::default()
    }

    fn configuration_parameters(&self) -> Json {
        Json::default()
    }

    fn teams(&self) -> Vec<UserTeamInfo> {
        teams(self.user.role)
            .iter()
            .map(|team| UserTeamInfo {
                team_id: (*team).into(),
                team_name: team_name(team).into(),
                team_role: None,
            })
            .collect()
    }

    fn is_anonymous(&self) -> bool {
        false
    }
}

fn team_name(team: &str) -> &'static str {
    if team == "admin" { "Admin" } else { "User" }
}

fn linked_providers(user: &User) -> Vec<String> {
    let mut providers = Vec::new();
    if user.has_password {
        providers.push("local".to_owned());
    }
    providers.push("token".to_owned());
    providers
}

#[derive(Debug, GraphQLObject)]
pub struct SessionInfo {
    pub create_time: String,
    pub last_access_time: String,
    pub locale: String,
    pub cache_expired: bool,
    pub valid: bool,
    /// Milliseconds until the session ends if no request comes.
    pub remaining_time: i32,
}

#[derive(Debug, GraphQLObject)]
pub struct AuthCredentialInfo {
    pub id: ID,
    pub display_name: String,
    pub description: Option<String>,
    pub admin: bool,
    pub user: bool,
    pub identifying: bool,
    pub possible_values: Option<Vec<Option<String>>>,
    pub encryption: Option<AuthCredentialEncryption>,
}

#[derive(Debug, GraphQLObject)]
pub struct AuthProviderCredentialsProfile {
    pub id: Option<String>,
    pub label: Option<String>,
    pub description: Option<String>,
    pub credential_parameters: Vec<AuthCredentialInfo>,
}

#[derive(Debug, GraphQLObject)]
pub struct AuthProviderConfiguration {
    pub id: ID,
    pub display_name: String,
    pub disabled: bool,
    pub auth_role_provided: Option<bool>,
    #[graphql(name = "iconURL")]
    pub icon_url: Option<String>,
    pub description: Option<String>,
    pub sign_in_link: Option<String>,
    pub sign_out_link: Option<String>,
    pub metadata_link: Option<String>,
    pub acs_link: Option<String>,
    pub entity_id_link: Option<String>,
}

#[derive(Debug, GraphQLObject)]
pub struct AuthProviderInfo {
    pub id: ID,
    pub label: String,
    pub icon: Option<ID>,
    pub description: Option<String>,
    pub default_provider: bool,
    pub trusted: bool,
    pub private: bool,
    pub auth_hidden: bool,
    pub support_provisioning: bool,
    pub configurable: bool,
    pub federated: bool,
    pub configurations: Option<Vec<AuthProviderConfiguration>>,
    pub template_configuration: AuthProviderConfiguration,
    pub credential_profiles: Vec<AuthProviderCredentialsProfile>,
    pub required_features: Vec<String>,
    pub required: bool,
}

fn credential(
    id: &str,
    label: &str,
    identifying: bool,
    encryption: AuthCredentialEncryption,
) -> AuthCredentialInfo {
    AuthCredentialInfo {
        id: ID::new(id),
        display_name: label.into(),
        description: None,
        admin: true,
        user: true,
        identifying,
        possible_values: None,
        encryption: Some(encryption),
    }
}

/// The two providers: `local` (user and password) and `token` (an API token).
pub fn auth_providers() -> Vec<AuthProviderInfo> {
    let provider = |id: &str, label: &str, description: &str, default, params| AuthProviderInfo {
        id: ID::new(id),
        label: label.into(),
        icon: None,
        description: Some(description.into()),
        default_provider: default,
        trusted: false,
        private: false,
        auth_hidden: false,
        support_provisioning: false,
        configurable: false,
        federated: false,
        configurations: None,
        template_configuration: AuthProviderConfiguration {
            id: ID::new(id),
            display_name: label.into(),
            disabled: false,
            auth_role_provided: Some(false),
            icon_url: None,
            description: Some(description.into()),
            sign_in_link: None,
            sign_out_link: None,
            metadata_link: None,
            acs_link: None,
            entity_id_link: None,
        },
        credential_profiles: vec![AuthProviderCredentialsProfile {
            id: None,
            label: None,
            description: None,
            credential_parameters: params,
        }],
        required_features: Vec::new(),
        required: false,
    };
    vec![
        provider(
            "local",
            "Local",
            "A user id and a password",
            true,
            vec![
                credential("user", "User name", true, AuthCredentialEncryption::Plain),
                credential(
                    "password",
                    "User password",
                    false,
                    AuthCredentialEncryption::Hash,
                ),
            ],
        ),
        provider(
            "token",
            "API token",
            "An API token created on the profile page or with tokenApiCreate",
            false,
            vec![credential(
                "token",
                "API token",
                false,
                AuthCredentialEncryption::Plain,
            )],
        ),
    ]
}

#[derive(Debug, GraphQLObject)]
pub struct AdminConnectionGrantInfo {
    #[graphql(deprecated = "use dataSourceId instead")]
    pub connection_id: ID,
    pub data_source_id: ID,
    pub subject_id: ID,
    pub subject_type: AdminSubjectType,
}

/// A user as administrators see it.
pub struct AdminUserInfo(pub User);

#[graphql_object(context = Context)]
impl AdminUserInfo {
    fn user_id(&self) -> ID {
        ID::new(&self.0.user_id)
    }

    fn meta_parameters(&self) -> Json {
        Json::default()
    }

    fn configuration_parameters(&self) -> Json {
        Json::default()
    }

    fn granted_teams(&self) -> Vec<ID> {
        teams(self.0.role).iter().map(|t| ID::new(*t)).collect()
    }

    /// Lodge holds no database connections: always empty.
    fn granted_connections(&self) -> Vec<AdminConnectionGrantInfo> {
        Vec::new()
    }

    fn origins(&self) -> Vec<ObjectOrigin> {
        vec![ObjectOrigin::provider("local")]
    }

    fn linked_auth_providers(&self) -> Vec<String> {
        linked_providers(&self.0)
    }

    fn enabled(&self) -> bool {
        self.0.enabled
    }

    /// `admin` or `user`.
    fn auth_role(&self) -> Option<&str> {
        Some(self.0.role.as_str())
    }

    /// Whether the failed-login limit holds the account locked now (Lodge's own); an
    /// administrator's `adminUnlockUser` or a password reset lifts it.
    async fn locked(&self, ctx: &Context) -> crate::auth::Result<bool> {
        ctx.auth.users().is_locked(&self.0).await
    }

    /// The user's last login, by password or token (Lodge's own); recorded at most once a
    /// minute, null when none was recorded.
    async fn last_login_time(&self, ctx: &Context) -> crate::auth::Result<Option<Timestamp>> {
        ctx.auth.last_login(&self.0).await
    }

    /// The user's live sessions (Lodge's own).
    async fn session_count(&self, ctx: &Context) -> crate::auth::Result<i32> {
        let count = ctx.auth.session_list().session_count(&self.0).await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// API tokens that can log in now: what counts toward `tokens.max_per_user` (Lodge's own).
    async fn token_count(&self, ctx: &Context) -> crate::auth::Result<i32> {
        let count = ctx.auth.tokens().live_token_count(&self.0).await?;
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }
}

/// A live session as its owner or an administrator sees it (Lodge's own; CloudBeaver's
/// `SessionInfo` is what `sessionState` answers). Never its cookie or anything of its secret.
#[derive(Debug, GraphQLObject)]
pub struct UserSessionInfo {
    /// Opaque: what `sessionEnd` and `adminSessionEnd` take.
    pub id: ID,
    /// Whether this is the session of the request that asked.
    pub current: bool,
    /// `local` (a password) or `token`.
    pub provider: String,
    /// The API token it was opened with, while that token exists.
    pub token_name: Option<String>,
    /// The client address at login, as `server.trusted_proxies` resolves it.
    pub address: Option<String>,
    /// The client's `User-Agent` at login, cut to 200 characters.
    pub user_agent: Option<String>,
    pub create_time: Timestamp,
    /// Recorded at most once a minute.
    pub last_seen_time: Timestamp,
}

impl From<SessionSummary> for UserSessionInfo {
    fn from(s: SessionSummary) -> Self {
        Self {
            id: ID::new(s.id),
            current: s.current,
            provider: s.provider,
            token_name: s.token_name,
            address: s.address,
            user_agent: s.user_agent,
            create_time: s.created_at,
            last_seen_time: s.last_seen_at,
        }
    }
}

#[derive(Debug, Default, GraphQLInputObject)]
#[graphql(name = "AuditFilter")]
pub struct AuditFilterInput {
    pub user_id: Option<String>,
    /// One of `login`, `logout`, `token.create`, `token.delete`, `token.rotate`,
    /// `token.lookup`, `token.denied`, `token.leaked`, `user.create`, `user.update`,
    /// `user.delete`, `user.locked`, `user.unlock`, `password.change`, `session.end`.
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
}

/// One event of the audit log. No secret, digest or password is ever recorded.
#[derive(Debug, GraphQLObject)]
pub struct AuditEvent {
    pub time: Timestamp,
    pub kind: String,
    pub success: bool,
    pub user_id: Option<String>,
    /// `local`, `token` or `bearer`, for logins.
    pub provider: Option<String>,
    pub token_name: Option<String>,
    /// The client's address.
    pub address: Option<String>,
    pub detail: Option<String>,
}

impl From<auth::AuditEvent> for AuditEvent {
    fn from(r: auth::AuditEvent) -> Self {
        Self {
            time: r.time,
            kind: r.kind.into_owned(),
            success: r.success,
            user_id: r.user_id,
            provider: r.provider.map(Cow::into_owned),
            token_name: r.token_name,
            address: r.address,
            detail: r.detail,
        }
    }
}
