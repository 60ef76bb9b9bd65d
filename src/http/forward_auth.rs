//! `GET`/`HEAD /api/auth/verify`: the one question a reverse proxy asks per request.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderName, HeaderValue},
    web,
};

use super::{AppState, forwarded::client_address, gql::bearer_token, session_cookie_value};
use crate::{auth::Caller, config::RequestHeaders, graphql::types::teams};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/auth/verify")
            .route(web::get().to(verify))
            .route(web::head().to(verify)),
    );
}

/// 200 with the user in headers, or 401. Looks the token or session up every time, so a
/// delete or a disable takes effect on the next request.
async fn verify(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let rules = &state.auth.settings().forward_auth;
    let bearer = bearer_token(&req);
    if bearer.is_some() && !rules.allow_tokens {
        return denied();
    }
    // Two session cookies: nobody can say whose session this is.
    let Ok(cookie) = session_cookie_value(&req) else {
        return denied();
    };
    let cookie = cookie.filter(|_| rules.allow_sessions && bearer.is_none());
    let address = client_address(&req, &state.auth.settings().server.trusted_proxies);
    let caller = state
        .auth
        .sessions()
        .caller(cookie, bearer.as_deref(), address)
        .await;
    let user = match &caller {
        // 401, not 429: nginx's auth_request turns anything but 2xx, 401 and 403 into a 500.
        Ok(Caller::Throttled(wait)) => {
            let mut response = denied();
            let wait = wait.as_secs().max(1);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&wait.to_string()).expect("digits"),
            );
            return response;
        }
        // Known, but not allowed from this address (allowFrom; recorded).
        Ok(Caller::Denied(_)) => return forbidden(),
        Ok(caller) => match caller.user() {
            Some(user) => user,
            None => return denied(),
        },
        Err(e) => {
            tracing::error!("forward auth cannot identify the caller: {e:#}");
            return HttpResponse::ServiceUnavailable()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
    };
    let caller = caller.as_ref().expect("an error answered above");
    if let Some(grants) = caller.grants() {
        let (method, host, path) = original_request(&req, rules.request_headers);
        if let Err(refused) = grants.check_proxy(method, host, path, rules.request_headers) {
            let token = caller.token_name().unwrap_or_default();
            state
                .auth
                .sessions()
                .token_denied(&user.user_id, token, address, &refused.0)
                .await;
            return forbidden();
        }
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let (Some(token), false) = (caller.token_name(), rules.token_header.0.is_empty()) {
        let name = HeaderName::from_bytes(rules.token_header.0.as_bytes())
            .expect("checked when configured");
        response.insert_header((
            name,
            HeaderValue::from_bytes(token.as_bytes()).expect("checked names"),
        ));
    }
    let values = [
        (&rules.user_header, user.user_id.clone()),
        (&rules.team_header, teams(user.role).join("|")),
        (&rules.full_name_header, user.display_name.clone()),
    ];
    for (name, value) in values {
        let name = HeaderName::from_bytes(name.0.as_bytes()).expect("checked when configured");
        // User ids and names may hold non-ASCII letters: sent as UTF-8 bytes.
        let value = HeaderValue::from_bytes(value.as_bytes()).expect("no control characters");
        response.insert_header((name, value));
    }
    response.finish()
}

/// The method, host and path of the request the proxy asks about, from the one header set
/// `forward_auth.request_headers` names: nginx's `auth_request` passes the client's own headers
/// on, so a header of the other set may be the client's and is never read.
fn original_request(
    req: &HttpRequest,
    set: RequestHeaders,
) -> (Option<&str>, Option<&str>, Option<&str>) {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    match set {
        RequestHeaders::None => (None, None, None),
        RequestHeaders::Forwarded => {
            let host = header("x-forwarded-host");
            let path = host.map(|_| header("x-forwarded-uri").unwrap_or("/"));
            (header("x-forwarded-method"), host, path)
        }
        RequestHeaders::Original => {
            let method = header("x-original-method");
            let Some(url) = header("x-original-url") else {
                return (method, None, None);
            };
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let (host, path) = match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, "/"),
            };
            (method, Some(host), Some(path))
        }
    }
}

/// 403: a right token, not allowed here (scope, method, service or address). nginx's
/// `auth_request` passes it on as it does 401.
fn forbidden() -> HttpResponse {
    HttpResponse::Forbidden()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn denied() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"lodge\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
