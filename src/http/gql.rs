//! `POST /api/gql`: the only way an operation runs; GET never does.

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieAge},
    http::{StatusCode, header},
    web,
};
use futures_util::StreamExt as _;
use juniper::{
    InputValue, ValidatedOperation,
    http::{GraphQLRequest, GraphQLResponse},
};

use super::{AppState, SESSION_COOKIE, json_error};
use crate::{
    auth::Caller,
    graphql::{Context, CookieChange},
};

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

pub async fn method_not_allowed() -> HttpResponse {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "use POST with a JSON body {\"query\", \"variables\", \"operationName\"}",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    response
}

pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !is_json(&req) {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON: send Content-Type: application/json",
        );
    }
    let body = match read_body(&req, payload).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match parse_request(&body) {
        Ok(request) => request,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
    };

    let cookie = req.cookie(SESSION_COOKIE);
    let bearer = bearer_token(&req);
    let caller = match state
        .auth
        .caller(cookie.as_ref().map(|c| c.value()), bearer.as_deref())
        .await
    {
        Ok(caller) => caller,
        Err(e) => {
            tracing::error!("cannot identify the caller: {:#}", anyhow::Error::new(e));
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let dead_cookie = matches!(caller, Caller::Expired);
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let ctx = Context::new(state.auth.clone(), caller, host);

    let variables = request.variables();
    let result = match ValidatedOperation::new(
        &request.query,
        request.operation_name.as_deref(),
        &state.schema,
    ) {
        Ok(operation) => operation.execute(&variables, &ctx).await,
        Err(e) => Err(e),
    };
    let response = GraphQLResponse::from_result(result);

    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    match ctx.take_cookie() {
        Some(CookieChange::Set(value)) => {
            builder.cookie(session_cookie(value, state.secure_cookies));
        }
        Some(CookieChange::Clear) => {
            builder.cookie(removal_cookie(state.secure_cookies));
        }
        None if dead_cookie => {
            builder.cookie(removal_cookie(state.secure_cookies));
        }
        None => {}
    }
    builder.json(response)
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<Vec<u8>, HttpResponse> {
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is larger than {} KiB", MAX_BODY / 1024),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(MAX_BODY));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            json_error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_request(body: &[u8]) -> Result<GraphQLRequest, String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err("batched requests are not accepted: send one operation per request".into());
    }
    let request: GraphQLRequest = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not a GraphQL request {{\"query\", \"variables\", \"operationName\"}}: {e}"
        )
    })?;
    match &request.variables {
        None | Some(InputValue::Null) | Some(InputValue::Object(_)) => Ok(request),
        Some(_) => Err("`variables` must be a JSON object".into()),
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub(super) fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = session_cookie(String::new(), secure);
    cookie.set_max_age(CookieAge::ZERO);
    cookie
}
