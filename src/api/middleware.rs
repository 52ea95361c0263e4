//! Cross-cutting HTTP concerns: the `X-Request-Id` header and the one log line per request.

use std::time::Instant;

use actix_web::HttpMessage as _;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing_actix_web::RequestId;

use crate::api::problem::ApiError;

/// The response header that carries the request id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Adds `X-Request-Id` to every response and logs one line with the id (from the request span),
/// the route, the status and the time taken.
pub async fn request_id_and_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req.extensions().get::<RequestId>().copied();
    let method = req.method().clone();
    let route = req.match_pattern().unwrap_or_else(|| "(unmatched)".into());
    let mut res = match next.call(req).await {
        Ok(res) => res,
        Err(err) => {
            // Only a caught panic gets here: answer with the problem of its status.
            let status = err.as_response_error().status_code();
            tracing::info!(
                http.method = %method,
                http.route = %route,
                http.status = status.as_u16(),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request finished"
            );
            let error = ApiError::for_status(status);
            return Err(match request_id {
                Some(id) => error.with_request_id(id.to_string()),
                None => error,
            }
            .into());
        }
    };
    if let Some(id) = request_id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    tracing::info!(
        http.method = %method,
        http.route = %route,
        http.status = res.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request finished"
    );
    Ok(res)
}
