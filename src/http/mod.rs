//! actix glue only: routes, the GraphQL handler, the session cookie.

mod forward_auth;
mod gql;
mod pages;

use std::sync::Arc;

use actix_web::{HttpResponse, http::StatusCode, web};

use crate::{auth::Auth, graphql::Schema};

/// Shared by every worker.
pub struct AppState {
    pub auth: Auth,
    pub schema: Arc<Schema>,
    pub secure_cookies: bool,
    /// Whether `/api/gql/console` is served (`graphql.console`).
    pub console: bool,
}

pub const SESSION_COOKIE: &str = "cb-session-id";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/gql")
            .route(web::post().to(gql::handle))
            .default_service(web::to(gql::method_not_allowed)),
    )
    .route("/healthz", web::get().to(healthz))
    .configure(pages::routes)
    .configure(forward_auth::routes);
}

/// Liveness: answers without touching the database.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

/// The body of an error that is not a GraphQL execution error: `{"errors": [{"message"}]}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "errors": [{ "message": message }] }))
}
