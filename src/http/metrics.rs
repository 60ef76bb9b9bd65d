//! `GET /metrics`: Prometheus' text format, for the addresses in `metrics.allow_from` only.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, forwarded::client_address};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let settings = state.auth.settings();
    let address = client_address(&req, &settings.server.trusted_proxies);
    let allowed = address.is_some_and(|ip| {
        settings
            .metrics
            .allow_from
            .iter()
            .any(|net| net.contains(ip))
    });
    if !allowed {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("metrics are answered only to the addresses in metrics.allow_from\n");
    }
    match state.auth.metrics_page().await {
        Ok(page) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .content_type(prometheus_client::encoding::prometheus_text::CONTENT_TYPE)
            .body(page),
        Err(e) => {
            tracing::warn!("cannot read the metrics' gauges: {e}");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("the database does not answer now\n")
        }
    }
}
