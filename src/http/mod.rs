//! actix glue only: routes, the GraphQL handler, the session cookie.

pub mod access_log;
mod console;
mod forward_auth;
mod forwarded;
mod gql;
mod metrics;
mod pages;
mod revoke;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
    web,
};

use crate::{
    auth::{Auth, devices::DEVICE_COOKIE},
    config::IpNet,
    graphql::OperationCache,
};

/// Shared by every worker.
pub struct AppState {
    pub auth: Auth,
    /// The schema, and the operations validated against it.
    pub operations: OperationCache,
    /// `server.public_url` is https: the cookie is always `Secure`.
    pub secure_cookies: bool,
    /// The session cookie's name: [`HOST_SESSION_COOKIE`] behind an https `public_url`.
    pub session_cookie: &'static str,
    /// Lodge serves https itself.
    pub tls: bool,
    /// Whether `/api/gql/console` is served (`graphql.console`).
    pub console: bool,
    /// Whether each request gets a line in the log (`log.requests`).
    pub log_requests: bool,
}

#[cfg(test)]
pub(crate) use gql::into_variables;
pub(crate) use gql::{parse_request, take_variables};

/// CloudBeaver's name for the session cookie, served over plain http.
pub const SESSION_COOKIE: &str = "cb-session-id";
/// Its name when `server.public_url` is https: a `__Host-` cookie is taken by browsers only from
/// a secure origin, for the whole host and no other, so a neighbour (a subdomain, a page on
/// plain http) cannot set one that shadows it. The plain name is still read, for one release.
pub const HOST_SESSION_COOKIE: &str = "__Host-cb-session-id";

/// A request that carries two values for the session cookie: one may have been set by a
/// neighbour for a narrower path or a parent domain, and the order the browser sends them in
/// must not decide whose session this is.
#[derive(Debug)]
pub struct AmbiguousCookie(pub &'static str);

impl std::fmt::Display for AmbiguousCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request carries more than one {} cookie: send one (clear this site's cookies; \
             another site of the same domain may have set one)",
            self.0
        )
    }
}

/// The cookies Lodge reads, from one walk over the `Cookie` headers (actix's `cookie()` parses
/// every cookie of the request into a list first, 3 % of a session request's time; each walk
/// checks every byte of the headers).
struct SentCookies<'r> {
    /// The session cookie's value: the `__Host-` one when there is one, else the plain one; two
    /// of the name read are refused.
    session: Result<Option<&'r str>, AmbiguousCookie>,
    /// The first device cookie's value ([`crate::auth::devices::DEVICE_COOKIE`]).
    device: Option<&'r str>,
}

fn sent_cookies(req: &actix_web::HttpRequest) -> SentCookies<'_> {
    let (mut host, mut plain, mut device) = (None, None, None);
    let (mut hosts, mut plains) = (0, 0);
    for (name, value) in cookies(req) {
        if name == HOST_SESSION_COOKIE {
            hosts += 1;
            host = Some(value);
        } else if name == SESSION_COOKIE {
            plains += 1;
            plain = Some(value);
        } else if name == DEVICE_COOKIE && device.is_none() {
            device = Some(value);
        }
    }
    let session = match (hosts, plains) {
        (1, _) => Ok(host),
        (0, 0 | 1) => Ok(plain),
        (0, _) => Err(AmbiguousCookie(SESSION_COOKIE)),
        _ => Err(AmbiguousCookie(HOST_SESSION_COOKIE)),
    };
    SentCookies { session, device }
}

/// The session cookie's value, as [`SentCookies::session`].
fn session_cookie_value(req: &actix_web::HttpRequest) -> Result<Option<&str>, AmbiguousCookie> {
    sent_cookies(req).session
}

/// Whether the request carries the plain-named session cookie, which a `__Host-` one replaces.
fn has_plain_session_cookie(req: &actix_web::HttpRequest) -> bool {
    cookies(req).any(|(name, _)| name == SESSION_COOKIE)
}

/// Every cookie's name and value, in the order sent.
fn cookies(req: &actix_web::HttpRequest) -> impl Iterator<Item = (&str, &str)> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name, value.trim_matches('"')))
        })
}

/// `Strict-Transport-Security` for a year, unless the answer has its own: for a server that
/// serves https itself.
pub fn keep_to_https<B>(response: &mut actix_web::dev::ServiceResponse<B>) {
    let headers = response.headers_mut();
    if !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000"),
        );
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/gql")
            .route(web::post().to(gql::handle))
            .default_service(web::to(gql::method_not_allowed)),
    )
    .route("/healthz", web::get().to(healthz))
    .route("/readyz", web::get().to(readyz))
    .configure(pages::routes)
    .configure(console::routes)
    .configure(forward_auth::routes)
    .configure(metrics::routes)
    .configure(revoke::routes);
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
    match state.auth.check_writable(patience).await {
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

/// The connections open at once, counted to say when `server.max_connections` is reached, and
/// per client address: beyond `server.max_connections_per_address` a new connection from the
/// same address is closed at once, so that one client cannot hold every place
/// (`server.trusted_proxies` are exempt: every one of their clients comes through them).
#[derive(Clone)]
pub struct Connections(Arc<ConnectionCount>);

struct ConnectionCount {
    open: AtomicUsize,
    max: usize,
    full: AtomicBool,
    per_address: usize,
    exempt: Vec<IpNet>,
    ipv6_prefix: u8,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    /// When a closed connection was last logged, and how many were closed since.
    refused: Mutex<(Option<Instant>, u64)>,
}

/// One open connection, counted until it closes (actix drops it with the connection's data).
pub struct OpenConnection {
    count: Arc<ConnectionCount>,
    address: Option<IpAddr>,
}

impl Connections {
    /// `per_address` 0: no limit for an address; an IPv6 client is its network of
    /// `ipv6_prefix` bits, as in the login limits.
    pub fn new(max: usize, per_address: usize, exempt: Vec<IpNet>, ipv6_prefix: u8) -> Self {
        Self(Arc::new(ConnectionCount {
            open: AtomicUsize::new(0),
            max,
            full: AtomicBool::new(false),
            per_address,
            exempt,
            ipv6_prefix,
            by_address: Mutex::default(),
            refused: Mutex::default(),
        }))
    }

    /// Counts the connection `io` (actix's `on_connect`); closes it at once when its address
    /// holds `per_address` already.
    pub fn opened(&self, io: &dyn std::any::Any) -> OpenConnection {
        let count = &self.0;
        let open = count.open.fetch_add(1, Ordering::Relaxed) + 1;
        if open >= count.max && !count.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{open} connections open, the limit (server.max_connections = {}): new \
                 connections wait until others close",
                count.max
            );
        }
        let socket = tcp_of(io);
        let address = socket
            .and_then(|s| s.peer_addr().ok())
            .map(|a| a.ip())
            .filter(|ip| count.per_address > 0 && !count.exempt.iter().any(|n| n.contains(*ip)))
            .map(|ip| crate::auth::limits::address_key(ip, count.ipv6_prefix));
        let Some(ip) = address else {
            return OpenConnection {
                count: self.0.clone(),
                address: None,
            };
        };
        let held = {
            let mut by_address = count.by_address.lock().unwrap_or_else(|p| p.into_inner());
            let held = by_address.entry(ip).or_insert(0);
            *held += 1;
            *held
        };
        if held > count.per_address
            && let Some(socket) = socket
        {
            use std::os::fd::AsRawFd as _;
            // SAFETY: shutdown of the connection's own open socket; actix then reads its end
            // and drops the connection, which closes the descriptor.
            unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
            self.refused(ip);
        }
        OpenConnection {
            count: self.0.clone(),
            address: Some(ip),
        }
    }

    /// Logs a closed connection at most once a minute, with how many came since.
    fn refused(&self, ip: IpAddr) {
        let count = &self.0;
        let mut refused = count.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.1 += 1;
        if refused
            .0
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(60))
        {
            tracing::warn!(
                address = %ip,
                closed = refused.1,
                "a connection beyond server.max_connections_per_address = {} closed at once \
                 ({} closed since the last such line)",
                count.per_address,
                refused.1
            );
            *refused = (Some(Instant::now()), 0);
        }
    }
}

/// The TCP socket under actix's connection `io`: plain, or under rustls.
fn tcp_of(io: &dyn std::any::Any) -> Option<&actix_web::rt::net::TcpStream> {
    io.downcast_ref::<actix_web::rt::net::TcpStream>().or_else(|| {
        io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>>()
            .map(|tls| tls.get_ref().0)
    })
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let count = &self.count;
        let open = count.open.fetch_sub(1, Ordering::Relaxed) - 1;
        if open < count.max - count.max / 10 && count.full.swap(false, Ordering::Relaxed) {
            tracing::info!("{open} connections open: below server.max_connections again");
        }
        if let Some(ip) = self.address {
            let mut by_address = count.by_address.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = by_address.get_mut(&ip) {
                *held -= 1;
                if *held == 0 {
                    by_address.remove(&ip);
                }
            }
        }
    }
}

/// The body of an error that is not a GraphQL execution error: `{"errors": [{"message"}]}`.
pub(crate) fn json_error(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "errors": [{ "message": message }] }))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let req = TestRequest::default()
            .insert_header(("Cookie", "theme=dark; cb-session-id=abc123; x=1"))
            .to_http_request();
        assert_eq!(super::session_cookie_value(&req).unwrap(), Some("abc123"));
        let req = TestRequest::default()
            .insert_header(("Cookie", "cb-session-idx=no; other=cb-session-id"))
            .to_http_request();
        assert_eq!(super::session_cookie_value(&req).unwrap(), None);
        let req = TestRequest::default()
            .append_header(("Cookie", "a=1"))
            .append_header(("Cookie", "cb-session-id=\"q\""))
            .to_http_request();
        assert_eq!(super::session_cookie_value(&req).unwrap(), Some("q"));
    }

    #[test]
    fn two_session_cookies_of_one_name_are_refused_and_the_host_one_wins_over_the_plain() {
        let read = |cookies: &str| {
            let req = TestRequest::default()
                .insert_header(("Cookie", cookies))
                .to_http_request();
            super::session_cookie_value(&req)
                .map(|v| v.map(str::to_owned))
                .map_err(|e| e.0)
        };
        assert_eq!(
            read("cb-session-id=a; cb-session-id=b"),
            Err("cb-session-id")
        );
        assert_eq!(
            read("__Host-cb-session-id=a; x=1; __Host-cb-session-id=b"),
            Err("__Host-cb-session-id")
        );
        assert_eq!(
            read("cb-session-id=old; __Host-cb-session-id=new"),
            Ok(Some("new".into()))
        );
        assert_eq!(
            read("cb-session-id=x; cb-session-id=y; __Host-cb-session-id=new"),
            Ok(Some("new".into())),
            "plain ones are not read beside a __Host- one"
        );
    }
}
