//! The GraphQL console at `/api/gql/console`: GraphiQL on the page's session, from files
//! vendored under `static/vendor/` (see its `update` script) and built into the binary gzipped.
//! Each is served under a name holding a hash of its content, cached for a year, gzipped to
//! browsers that accept it and unpacked for any other client.

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, http::header, web};

use super::{AppState, pages};

/// A vendored file, gzipped.
struct Vendored {
    name: &'static str,
    content_type: &'static str,
    gzipped: &'static [u8],
}

macro_rules! vendored {
    ($name:literal, $type:expr) => {
        Vendored {
            name: $name,
            content_type: $type,
            gzipped: include_bytes!(concat!("../../static/vendor/", $name, ".gz")),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// In the order the page loads them: React, then GraphiQL (which needs it), then the plugin.
static VENDORED: &[Vendored] = &[
    vendored!("react.production.min.js", JS),
    vendored!("react-dom.production.min.js", JS),
    vendored!("graphiql.min.js", JS),
    vendored!("plugin-explorer.umd.js", JS),
    vendored!("graphiql.min.css", CSS),
    vendored!("plugin-explorer.css", CSS),
];

/// The console's own policy: the page's, with `data:` fonts and images, which GraphiQL's
/// stylesheet holds inline (its typefaces and icons). Scripts stay `'self'` only.
const CSP: &str = "default-src 'self'; font-src 'self' data:; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    // In a scope, as `/static/{file}` (`pages::routes`): no regular expression for other paths.
    cfg.route("/api/gql/console", web::get().to(console))
        .service(web::scope("/api/gql/console/assets").route("/{file}", web::get().to(asset)));
}

/// `name` with the first 12 hex digits of its content's BLAKE3 digest before the extension:
/// `graphiql.min.3f2a9c0b1d4e.js`.
fn hashed(file: &Vendored) -> String {
    let digest = blake3::hash(file.gzipped).to_hex();
    let (stem, extension) = file.name.rsplit_once('.').unwrap_or((file.name, ""));
    format!("{stem}.{}.{extension}", &digest[..12])
}

/// Each vendored file's hashed name, worked out once.
fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| VENDORED.iter().map(hashed).collect())
}

/// The console's page: `static/console.html` with the vendored files' hashed names, and whether
/// the schema may be read (`graphql.introspection`).
fn page_text(introspection: bool) -> String {
    let template = include_str!("../../static/console.html");
    let mut links = String::new();
    let mut scripts = String::new();
    for (file, name) in VENDORED.iter().zip(names()) {
        let url = format!("/api/gql/console/assets/{name}");
        if file.content_type == CSS {
            links.push_str(&format!("  <link rel=\"stylesheet\" href=\"{url}\">\n"));
        } else {
            scripts.push_str(&format!("  <script defer src=\"{url}\"></script>\n"));
        }
    }
    template
        .replace("  <!-- vendored styles -->\n", &links)
        .replace("  <!-- vendored scripts -->\n", &scripts)
        .replace("{introspection}", if introspection { "on" } else { "off" })
}

async fn console(state: web::Data<AppState>) -> HttpResponse {
    if !state.console {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("the GraphQL console is turned off (graphql.console)\n");
    }
    static PAGES: OnceLock<[String; 2]> = OnceLock::new();
    let pages = PAGES.get_or_init(|| [page_text(false), page_text(true)]);
    let introspection = state.auth.settings().graphql.introspection;
    pages::page_with(pages[usize::from(introspection)].clone(), CSP)
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, unless its quality is 0).
fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A vendored file unpacked, for a client that does not take gzip (rare: every browser does).
fn unpacked(file: &Vendored) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(file.gzipped.len() * 4);
    flate2::read::GzDecoder::new(file.gzipped)
        .read_to_end(&mut out)
        .expect("a vendored file is valid gzip (tested)");
    out
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let Some(index) = names().iter().position(|name| *name == *file) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n");
    };
    let vendored = &VENDORED[index];
    let mut response = HttpResponse::Ok();
    response
        .content_type(vendored.content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // The name changes with the content: a year, never revalidated.
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::VARY, "Accept-Encoding"));
    if accepts_gzip(&req) {
        response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(vendored.gzipped)
    } else {
        response.body(unpacked(vendored))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn gzip_is_taken_unless_refused() {
        let takes = |value: &str| {
            accepts_gzip(
                &TestRequest::default()
                    .insert_header(("Accept-Encoding", value))
                    .to_http_request(),
            )
        };
        assert!(takes("gzip, deflate, br"));
        assert!(takes("br;q=1.0, GZIP;q=0.5"));
        assert!(takes("*"));
        assert!(!takes("gzip;q=0"));
        assert!(!takes("br, identity"));
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn every_vendored_file_unpacks_and_has_a_hashed_name() {
        for (file, name) in VENDORED.iter().zip(names()) {
            assert!(unpacked(file).len() > file.gzipped.len(), "{}", file.name);
            assert!(name.len() == file.name.len() + 13, "{name}");
        }
        let page = page_text(true);
        assert!(!page.contains("<!--"), "every placeholder filled");
        for name in names() {
            assert!(page.contains(&format!("/api/gql/console/assets/{name}")));
        }
    }
}
