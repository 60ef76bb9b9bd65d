//! `POST /api/gql`: the only way an operation runs; GET never does.

use std::net::IpAddr;

use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieAge},
    http::{ConnectionType, StatusCode, header},
    web,
};
use futures_util::StreamExt as _;
use juniper::{InputValue, Variables, http::GraphQLRequest};

use super::{
    AppState, SESSION_COOKIE, access_log,
    forwarded::{self, Seen},
    has_plain_session_cookie, json_error, sent_cookies,
};
use crate::{
    auth::{
        ApiAccess, Auth, Caller, Error,
        devices::{DEVICE_COOKIE, DEVICE_TRUST},
    },
    config::ServerSettings,
    graphql::{self, Context, CookieChange, RequestInfo},
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
    let started = std::time::Instant::now();
    let server = &state.auth.settings().server;
    let seen = forwarded::seen(&req, &server.trusted_proxies, state.tls);
    if let Err(why) = same_site(&req, server, &seen) {
        return json_error(StatusCode::FORBIDDEN, &why);
    }
    let secure_cookies = state.secure_cookies || seen.https;
    if !is_json(&req) {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON: send Content-Type: application/json",
        );
    }
    let body_timeout = state.auth.settings().server.body_timeout.0.unsigned_abs();
    let body = match tokio::time::timeout(body_timeout, read_body(&req, payload)).await {
        Ok(Ok(body)) => body,
        Ok(Err(response)) => return response,
        Err(_) => {
            let mut response = json_error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} s (server.body_timeout)",
                    body_timeout.as_secs_f64()
                ),
            );
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            return response;
        }
    };
    let mut request = match parse_request(&body) {
        Ok(request) => request,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
    };

    let sent = sent_cookies(&req);
    let cookie = match sent.session {
        Ok(cookie) => cookie,
        Err(ambiguous) => return json_error(StatusCode::BAD_REQUEST, &ambiguous.to_string()),
    };
    let bearer = bearer_token(&req);
    let settings = state.auth.settings();
    let request_info = RequestInfo {
        host: seen.host,
        host_vouched: seen.vouched,
        address: forwarded::client_address(&req, &settings.server.trusted_proxies),
        device_cookie: sent.device.map(str::to_owned),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let caller = match state
        .auth
        .sessions()
        .caller(cookie, bearer.as_deref(), request_info.address)
        .await
    {
        Ok(caller) => caller,
        // The database cannot be reached (or is locked): said as any operation says it.
        Err(e @ Error::Unavailable(_)) => {
            return HttpResponse::Ok()
                .insert_header(("Cache-Control", "no-store"))
                .json(serde_json::json!({
                    "data": null,
                    "errors": [{ "message": e.to_string(), "extensions": { "webErrorCode": e.code() } }]
                }));
        }
        Err(e) => {
            tracing::error!("cannot identify the caller: {:#}", anyhow::Error::new(e));
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    if let Some(reason) = api_refusal(&state.auth, &caller, request_info.address).await {
        let message = Error::TokenDenied(reason).to_string();
        return HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(serde_json::json!({
                "data": null,
                "errors": [{ "message": message, "extensions": { "webErrorCode": "accessDenied" } }]
            }));
    }
    let dead_cookie = matches!(caller, Caller::Expired);
    let note = state.log_requests.then(|| access_log::Note {
        operation: graphql::document::operation_label(
            &request.query,
            request.operation_name.as_deref(),
        ),
        user: caller.user().map(|u| u.user_id.clone()),
    });
    let ctx = Context::new(state.auth.clone(), caller, request_info);

    let variables = take_variables(&mut request);
    let validated = state
        .operations
        .get(&request.query, request.operation_name.as_deref());
    let mut label = "other";
    let result = match validated {
        Ok(Ok(prepared)) => {
            label = prepared.label();
            prepared.execute(&variables, &ctx).await
        }
        Ok(Err(e)) => e.into(),
        Err(graphql::ValidatorPanicked) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "the document could not be validated: check the types of its variables",
            );
        }
    };

    let mut builder = HttpResponse::Ok();
    builder.insert_header(("Cache-Control", "no-store"));
    // Behind an https public_url the cookie is the `__Host-` one; a plain one the browser still
    // holds from before goes whenever the session cookie changes.
    let name = state.session_cookie;
    let change = ctx.take_cookie();
    let changed = change.is_some() || dead_cookie;
    match change {
        Some(CookieChange::Set(value)) => {
            builder.cookie(session_cookie(name, value, secure_cookies));
        }
        Some(CookieChange::Clear) => {
            builder.cookie(removal_cookie(name, secure_cookies));
        }
        None if dead_cookie => {
            builder.cookie(removal_cookie(name, secure_cookies));
        }
        None => {}
    }
    if name != SESSION_COOKIE && changed && has_plain_session_cookie(&req) {
        builder.cookie(removal_cookie(SESSION_COOKIE, secure_cookies));
    }
    if let Some(device) = ctx.take_device_cookie() {
        builder.cookie(device_cookie(device, secure_cookies));
    }
    let mut answer = builder.json(result);
    state.auth.metrics().request(label, started.elapsed());
    if let Some(note) = note {
        answer.extensions_mut().insert(note);
    }
    answer
}

/// Why a request may not use the API at all: its token (or the one its session was opened with)
/// was used from outside its `allowFrom` (already recorded), or has neither `api` nor
/// `read_api` (recorded here).
async fn api_refusal(auth: &Auth, caller: &Caller, address: Option<IpAddr>) -> Option<String> {
    if let Caller::Denied(reason) = caller {
        return Some(reason.clone());
    }
    if caller.api_access() != ApiAccess::None {
        return None;
    }
    let token = caller.token_name().unwrap_or_default();
    let reason =
        format!("the token `{token}` has no api or read_api scope: it is for forward auth only");
    let user = caller
        .user()
        .map(|u| u.user_id.as_str())
        .unwrap_or_default();
    auth.sessions()
        .token_denied(user, token, address, &reason)
        .await;
    Some(reason)
}

/// Refuses what a browser marks as coming from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is neither `server.public_url` nor the origin the client used (`seen`) when
/// browsers may use that host: a name a trusted proxy vouched for, or one allowed by
/// [`ServerSettings::is_allowed_host`] (a page served from a rebinding DNS name is refused).
/// Scripts send neither header. A refused origin is logged with what to set.
fn same_site(req: &HttpRequest, server: &ServerSettings, seen: &Seen) -> Result<(), String> {
    let headers = req.headers();
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return Err("cross-site requests are refused".into());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    if server.public_url.origin() == Some(origin.as_str()) {
        return Ok(());
    }
    let own = seen.host.as_deref().unwrap_or_default();
    let authority = origin
        .split_once("://")
        .filter(|(scheme, _)| match seen.vouched {
            // Behind a proxy that says how it was reached, the scheme must be that one too.
            true => *scheme == if seen.https { "https" } else { "http" },
            false => *scheme == "http" || *scheme == "https",
        })
        .map(|(_, authority)| authority)
        .filter(|authority| own.eq_ignore_ascii_case(authority));
    let refusal = match authority {
        Some(own) if seen.vouched || server.is_allowed_host(own) => return Ok(()),
        Some(_) => format!(
            "requests from origin {origin} are refused: browsers may use this server by IP \
             address, localhost, server.public_url or server.allowed_hosts"
        ),
        None => format!("requests from origin {origin} are refused"),
    };
    tracing::warn!(
        origin,
        host = own,
        "refused a browser's request from origin {origin}: if that is where people reach Lodge, \
         set server.public_url = \"{origin}\" (or list its host in server.allowed_hosts); \
         behind a reverse proxy, add the proxy to server.trusted_proxies and have it send \
         X-Forwarded-Proto and X-Forwarded-Host"
    );
    Err(refusal)
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

/// A body as a single GraphQL request, or why it is not one.
pub(crate) fn parse_request(body: &[u8]) -> Result<GraphQLRequest, String> {
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

/// The request's variables, moved out of it: what `GraphQLRequest::variables` gives, without
/// copying each value.
pub(crate) fn take_variables(request: &mut GraphQLRequest) -> Variables {
    into_variables(request.variables.take())
}

/// A request's `variables` member as juniper's variables: an object's fields, none otherwise.
pub(crate) fn into_variables(value: Option<InputValue>) -> Variables {
    match value {
        Some(InputValue::Object(fields)) => fields
            .into_iter()
            .map(|(name, value)| (name.item, value.item))
            .collect(),
        _ => Variables::new(),
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

fn session_cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .finish()
}

/// The cookie that trusts this browser for the account it logged in to (`auth::devices`): sent
/// back only to the API, kept as long as the trust lasts.
fn device_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(DEVICE_COOKIE, value)
        .path("/api/gql")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(CookieAge::seconds(DEVICE_TRUST.as_secs()))
        .finish()
}

fn removal_cookie(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut cookie = session_cookie(name, String::new(), secure);
    cookie.set_max_age(CookieAge::ZERO);
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_taken_are_those_juniper_gives() {
        for body in [
            r#"{"query": "q"}"#,
            r#"{"query": "q", "variables": null}"#,
            r#"{"query": "q", "variables": {}}"#,
            r#"{"query": "q", "variables": {"a": 1, "b": {"c": [1, "x", null]}, "a": 2}}"#,
        ] {
            let mut request = parse_request(body.as_bytes()).unwrap();
            let given = request.variables();
            assert_eq!(take_variables(&mut request), given, "{body}");
        }
    }
}
