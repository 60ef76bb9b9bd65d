//! actix glue only: routes, the GraphQL handler, the session cookie.

mod forward_auth;
mod gql;
mod pages;

use actix_web::{HttpResponse, http::StatusCode, web};

use crate::{auth::Auth, graphql::OperationCache};

/// Shared by every worker.
pub struct AppState {
    pub auth: Auth,
    /// The schema, and the operations validated against it.
    pub operations: OperationCache,
    pub secure_cookies: bool,
    /// Whether `/api/gql/console` is served (`graphql.console`).
    pub console: bool,
}

pub(crate) use gql::parse_request;

pub const SESSION_COOKIE: &str = "cb-session-id";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/gql")
            .route(web::post().to(gql::handle))
            .default_service(web::to(gql::method_not_allowed)),
    )
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz))
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

/// Readiness: 200 when the database answers and takes writes, 503 when it does not.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let patience = std::time::Duration::from_secs(1);
    match state.auth.store().check_writable(patience).await {
        Ok(()) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Err(e) => {
            tracing::warn!("not ready: {e:#}");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Cache-Control", "no-store"))
                .content_type("text/plain; charset=utf-8")
                .body("the database is not writable now\n")
        }
    }
}

/// The body of an error that is not a GraphQL execution error: `{"errors": [{"message"}]}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "errors": [{ "message": message }] }))
}
