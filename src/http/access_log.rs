//! `log.requests`: one line for each request, at the `access` target: method, path, status,
//! duration, and for GraphQL the operation and the caller's user. Never a query string, a
//! header or a body, which may hold secrets.

use std::time::Instant;

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
};

/// What a handler knows that the log line wants: left in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub operation: Option<String>,
    pub user: Option<String>,
}

pub async fn log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = crate::text::bounded(req.path(), 200);
    let response = next.call(req).await?;
    let note = response.response().extensions().get::<Note>().cloned();
    let note = note.unwrap_or_default();
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status = response.status().as_u16(),
        ms = format_args!("{:.1}", started.elapsed().as_secs_f64() * 1000.0).to_string(),
        operation = note.operation.as_deref(),
        user = note.user.as_deref(),
        "request"
    );
    Ok(response)
}
