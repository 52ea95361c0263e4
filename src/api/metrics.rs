//! `GET /metrics` in the Prometheus text format, mounted only on the metrics listener
//! (`METRICS_BIND_ADDR`), never on the API listener, and so not in the OpenAPI document: the
//! numbers move with what accounts do, and public readers could learn which accounts exist.

use actix_web::{HttpResponse, web};

use crate::api::problem::ApiError;
use crate::context::Ctx;
use crate::services;

/// Every metric (see [`crate::metrics`]) in the text exposition format 0.0.4.
pub async fn get_metrics(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let text = services::metrics::render(&ctx).await?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// Mounts `GET /metrics`; every other path is a 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(get_metrics))
        .default_service(web::to(HttpResponse::NotFound));
}
