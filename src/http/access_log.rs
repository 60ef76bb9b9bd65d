//! `log.requests`: one line for each request, at the `access` target: method, path, status,
//! duration, and for GraphQL the operation and the caller's user. Never a query string, a
//! header or a body, which may hold secrets.

use std::time::Instant;

use actix_web::{
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
};

/// What a handler knows that the log line wants: left in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct Note {
    pub operation: Option<String>,
    pub user: Option<String>,
}

/// A request being logged: what its line needs from before the answer.
pub struct Started {
    at: Instant,
    method: Method,
    path: String,
}

impl Started {
    pub fn of(req: &ServiceRequest) -> Self {
        Self {
            at: Instant::now(),
            method: req.method().clone(),
            path: crate::text::bounded(req.path(), 200),
        }
    }

    /// Logs the line of the request answered by `response`.
    pub fn answered<B>(self, response: &ServiceResponse<B>) {
        let extensions = response.response().extensions();
        let note = extensions.get::<Note>();
        tracing::info!(
            target: "access",
            method = %self.method,
            path = self.path,
            status = response.status().as_u16(),
            ms = format_args!("{:.1}", self.at.elapsed().as_secs_f64() * 1000.0).to_string(),
            operation = note.and_then(|n| n.operation.as_deref()),
            user = note.and_then(|n| n.user.as_deref()),
            "request"
        );
    }
}
