//! The profile page and the scripts of Lodge's own pages: static files built into the binary.

use actix_web::{HttpResponse, http::header, web};

/// No inline script or style, nothing from elsewhere, never inside a frame.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// A script of the pages.
macro_rules! script {
    ($name:literal) => {
        Asset {
            path: $name,
            content_type: "text/javascript; charset=utf-8",
            body: include_str!(concat!("../../static/", $name)),
        }
    };
}

static ASSETS: &[Asset] = &[
    script!("app.js"),
    script!("audit.js"),
    script!("common.js"),
    script!("console.js"),
    script!("console-guard.js"),
    script!("sessions.js"),
    script!("ui.js"),
    script!("users.js"),
    Asset {
        path: "lodge.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/lodge.css"),
    },
    Asset {
        path: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../static/favicon.svg"),
    },
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    // A pattern's route inside a scope of a fixed prefix: requests elsewhere never run its
    // regular expression (the two asset routes' cost a forward-auth check 8 % of its
    // instructions when they were routes of their own).
    cfg.route("/", web::get().to(profile))
        .service(web::scope("/static").route("/{file}", web::get().to(asset)));
}

/// A page of Lodge's own with `csp` as its Content-Security-Policy.
pub(super) fn page_with(
    body: impl actix_web::body::MessageBody + 'static,
    csp: &str,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn profile() -> HttpResponse {
    page_with(include_str!("../../static/index.html"), CSP)
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.path == file.as_str()) {
        Some(asset) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(asset.body),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n"),
    }
}
