//! Cross-cutting HTTP concerns: the `X-Request-Id` header, the one log line per request, the
//! security headers of every response, CORS, and the problem document of errors that did not
//! come from a handler.

use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError as _, web};
use tracing_actix_web::RequestId;

use crate::api::problem::{ApiError, Code, PROBLEM_JSON};
use crate::config::Config;
use crate::context::Ctx;

/// The response header that carries the request id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request header that carries a recovery request's tracking token.
pub const X_TRACKING_TOKEN: HeaderName = HeaderName::from_static("x-tracking-token");

/// The request header that carries the client's device token.
pub const X_DEVICE_TOKEN: HeaderName = HeaderName::from_static("x-device-token");

/// How long browsers may cache a preflight answer, in seconds.
pub const CORS_MAX_AGE_SECS: usize = 3600;

/// The `Strict-Transport-Security` value sent when `PUBLIC_URL` is https.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The root span of every request (for `TracingLogger`): the fields of tracing-actix-web's
/// default span, except that the client address is the one the app believes
/// ([`crate::api::extract::client_ip_of`], with `TRUSTED_PROXIES`), not whatever
/// `X-Forwarded-For` claims.
#[derive(Debug)]
pub struct RootSpan;

impl tracing_actix_web::RootSpanBuilder for RootSpan {
    fn on_request_start(request: &ServiceRequest) -> tracing::Span {
        let trusted: &[std::net::IpAddr] = request
            .app_data::<web::Data<Ctx>>()
            .map(|c| c.config.trusted_proxies.as_slice())
            .unwrap_or(&[]);
        let client_ip = crate::api::extract::client_ip_of(request.request(), trusted)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".into());
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(crate::services::short_user_agent)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.client_ip = %client_ip,
            http.user_agent = %user_agent,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    /// Records the status and the error on the span only when the request failed: the
    /// "request finished" line already carries every status, and recording fields re-formats
    /// the span, a cost every successful request paid for nothing.
    fn on_request_end<B: MessageBody>(
        span: tracing::Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let failed = match outcome {
            Ok(res) => res.response().error().is_some(),
            Err(_) => true,
        };
        if failed {
            tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
        }
    }
}

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
            // Only a caught panic gets here: answer with the problem of its status. The request
            // is gone (a clone kept across the call would break routing), so the headers are
            // added when actix renders the error.
            let status = err.as_response_error().status_code();
            tracing::info!(
                http.method = %method,
                http.route = %route,
                http.status = status.as_u16(),
                latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request finished"
            );
            let mut error = actix_web::Error::from(ApiError::for_status(status));
            if let Some(id) = request_id
                && let Ok(value) = HeaderValue::from_str(&id.to_string())
            {
                error.add_response_mapper(move |mut res| {
                    res.headers_mut().insert(X_REQUEST_ID, value.clone());
                    res
                });
            }
            return Err(error);
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

/// Sets the security headers on every response, errors and documentation included:
/// `Cache-Control: no-store` (answers carry tokens and personal data), `X-Content-Type-Options:
/// nosniff`, and `Strict-Transport-Security` when `PUBLIC_URL` is https. They replace any value
/// a handler set.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let hsts = req
        .app_data::<web::Data<Ctx>>()
        .is_some_and(|ctx| ctx.config.public_url.scheme() == "https");
    match next.call(req).await {
        Ok(mut res) => {
            set_security_headers(res.headers_mut(), hsts);
            Ok(res)
        }
        Err(mut err) => {
            // A caught panic: the headers go on when actix renders it.
            err.add_response_mapper(move |mut res| {
                set_security_headers(res.headers_mut(), hsts);
                res
            });
            Err(err)
        }
    }
}

fn set_security_headers(headers: &mut HeaderMap, hsts: bool) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
}

/// CORS for browser frontends: only `CORS_ALLOWED_ORIGINS` (none when unset), every method
/// the OpenAPI document uses (PATCH too: a passkey's rename; a test preflights each), the
/// headers it reads, and the headers a frontend needs to see. Those origins, and
/// only those, get `Access-Control-Allow-Credentials: true` (with their own origin echoed,
/// never `*`), so their pages can use cookie sessions and send `X-CSRF-Token`. A request from
/// another origin is served without CORS headers (the browser then keeps the answer from the
/// page; same-origin pages such as Swagger UI keep working); a refused preflight is a 400.
pub fn cors(config: &Config) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            X_TRACKING_TOKEN,
            X_DEVICE_TOKEN,
            crate::api::session_cookies::X_CSRF_TOKEN,
        ])
        .supports_credentials()
        .expose_headers([header::RETRY_AFTER, header::WWW_AUTHENTICATE, X_REQUEST_ID])
        .max_age(CORS_MAX_AGE_SECS);
    for origin in &config.cors_allowed_origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Middleware, right outside [`cors`]: removes `Access-Control-Allow-Credentials` (and the
/// exposed headers) from answers without `Access-Control-Allow-Origin`, which actix-cors adds
/// to every answer, so that only the allowed origins ever see credentials allowed.
pub async fn credentials_for_allowed_origins_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    }
    Ok(res)
}

/// Middleware: answers any error response that did not come from [`ApiError`] (actix's own
/// 404, 413, 415, a refused CORS preflight, …) with the problem document of its status, keeping
/// the original's other headers (CORS, `Vary`). Errors raised as `Err` (a caught panic) are
/// rendered by [`request_id_and_log`].
pub async fn render_other_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let res = next.call(req).await?;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if (res.status().is_client_error() || res.status().is_server_error()) && !is_problem {
        let status = res.status();
        let error = if preflight && status == StatusCode::BAD_REQUEST {
            ApiError::new(
                status,
                Code::MalformedRequest,
                "CORS preflight refused: the origin, method or headers are not allowed.",
            )
        } else {
            ApiError::for_status(status)
        };
        let mut response = error.error_response();
        let own: Vec<header::HeaderName> = response.headers().keys().cloned().collect();
        for (name, value) in res.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH && !own.contains(name)
            {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        return Ok(res.into_response(response).map_into_right_body());
    }
    Ok(res.map_into_left_body())
}
