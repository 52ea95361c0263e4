//! Operations: `/health/live`, `/health/ready` and `/metrics`.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::problem::{ApiError, Problem};
use crate::context::Ctx;
use crate::services;

/// The body of a health answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthStatus {
    /// `ok` for liveness, `ready` for readiness.
    pub status: &'static str,
}

/// Liveness: answers 200 while the process runs.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_liveness",
    responses((status = 200, description = "The process runs.", body = HealthStatus))
)]
#[get("/health/live")]
pub async fn get_liveness() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// Readiness: answers 200 when a write to the database commits, else a 503 problem.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_readiness",
    responses(
        (status = 200, description = "The database answers and commits writes.", body = HealthStatus,
            example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer or cannot commit a write.", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:service_unavailable",
                "title": "Service unavailable", "status": 503,
                "detail": "The service is temporarily unavailable. Try again shortly.",
                "code": "service_unavailable"})),
    )
)]
#[get("/health/ready")]
pub async fn get_readiness(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    services::health::check_ready(&ctx)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(HealthStatus { status: "ready" }))
}

/// Metrics in the Prometheus text format: requests per route pattern, method and status
/// (`account_recovery_http_requests_total`, `account_recovery_http_requests_duration_seconds`),
/// rate-limit refusals per limit (`account_recovery_rate_limit_hits_total`) and the outbox
/// backlog (`account_recovery_outbox_pending`, `account_recovery_outbox_oldest_pending_age_seconds`).
/// Meant for the operator's scraper: restrict it at the load balancer like `/health`.
#[utoipa::path(
    tag = "operations",
    operation_id = "get_metrics",
    responses(
        (status = 200, description = "Every metric, in the Prometheus text exposition format 0.0.4.",
            body = String, content_type = "text/plain; version=0.0.4",
            example = "# HELP account_recovery_outbox_pending Mails queued in the outbox and not delivered yet (read at scrape time).\n# TYPE account_recovery_outbox_pending gauge\naccount_recovery_outbox_pending 0\n"),
    )
)]
#[get("/metrics")]
pub async fn get_metrics(ctx: web::Data<Ctx>) -> Result<HttpResponse, ApiError> {
    let text = services::metrics::render(&ctx).await?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}
