//! `POST /api/tokens/revoke`: anyone who finds a Lodge token (a secret scanner, a person) reports
//! it, and a live one is revoked at once. The answer says nothing of what was found.

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use serde::Deserialize;

use super::{AppState, forwarded::client_address, json_error};
use crate::auth::Error;

/// Tokens one report may hold.
const MAX_TOKENS: usize = 100;
/// The largest report accepted: 100 tokens of 55 characters, with room for spaces.
const MAX_BODY: usize = 16 * 1024;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/tokens/revoke")
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(web::post().to(revoke)),
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    tokens: Vec<String>,
}

/// 202 `{"received": N}` for any well-formed report, whether or not a token in it was live.
async fn revoke(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return json_error(
            StatusCode::BAD_REQUEST,
            "send Content-Type: application/json with {\"tokens\": [\"lodge_...\", ...]}",
        );
    }
    let report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("the body must be {{\"tokens\": [\"lodge_...\", ...]}}: {e}"),
            );
        }
    };
    if report.tokens.len() > MAX_TOKENS {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("at most {MAX_TOKENS} tokens a report; send the rest in another"),
        );
    }
    let address = client_address(&req, &state.auth.settings().server.trusted_proxies);
    match state
        .auth
        .tokens()
        .revoke_leaked(&report.tokens, address)
        .await
    {
        Ok(_) => HttpResponse::Accepted()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "received": report.tokens.len() })),
        Err(Error::TooManyRequests(wait)) => {
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "too many reports from this address (limits.revoke_per_minute): try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(wait.as_secs().max(1)),
            );
            response
        }
        Err(e) => {
            tracing::error!("cannot revoke reported tokens: {e:#}");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the report could not be taken now: send it again",
            )
        }
    }
}
