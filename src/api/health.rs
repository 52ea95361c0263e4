//! Operations: `/health/live` and `/health/ready`. Metrics are served elsewhere: see
//! [`crate::api::metrics`].

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
///
/// For orchestrators: 200 while the process can answer HTTP, without touching the database. Not
/// under `/api/v1` and not rate limited.
#[utoipa::path(
    security(),
    tag = "operations",
    operation_id = "get_liveness",
    responses((status = 200, description = "The process runs.", body = HealthStatus))
)]
#[get("/health/live")]
pub async fn get_liveness() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus { status: "ok" })
}

/// Readiness: answers 200 when a write to the database commits, else a 503 problem.
///
/// For load balancers: 200 when a write transaction commits on the database, a 503 problem
/// (with `Retry-After`) when it does not. Not under `/api/v1`.
#[utoipa::path(
    security(),
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
