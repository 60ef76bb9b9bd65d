//! `GET`/`HEAD /api/auth/verify`: the one question a reverse proxy asks per request.

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderName, HeaderValue},
    web,
};

use super::{
    AppState,
    gql::{bearer_token, client_address},
    session_cookie_value,
};
use crate::{auth::Caller, graphql::types::teams};

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
    let cookie = session_cookie_value(&req).filter(|_| rules.allow_sessions && bearer.is_none());
    let address = client_address(&req, &state.auth.settings().server.trusted_proxies);
    let caller = state.auth.caller(cookie, bearer.as_deref(), address).await;
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
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
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

fn denied() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"lodge\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
