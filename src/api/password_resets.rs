//! `/api/v1/password-resets`: asking for a reset link by email, and setting a new password
//! with it. The request answers the same whether or not an account matches; the confirmation
//! logs nobody in.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;
use validator::Validate;

use crate::api::common::{Accepted, invalid_token};
use crate::api::edge::{Body, TextFields};
use crate::api::extract::Client;
use crate::api::problem::{ApiError, Problem};
use crate::api::rules;
use crate::context::Ctx;
use crate::services::password_reset::{self, ConfirmResetError, StartResetError};

/// A request for a reset link.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"login": "jbber"}))]
pub struct StartPasswordResetBody {
    /// Username or email address (case does not matter).
    #[schema(schema_with = rules::login)]
    #[validate(custom(function = rules::check_login))]
    pub login: String,
}

impl TextFields for StartPasswordResetBody {}

/// A new password, with the token of the reset link.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM", "new_password": "velvet compass harbor 19"}))]
pub struct ConfirmPasswordResetBody {
    /// The `token` parameter of the `reset-password` link.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub token: String,
    /// The new password (8–128 characters; refused like a registration's password when it
    /// contains the username, the email or the service's name, or is common or guessable).
    #[schema(schema_with = rules::new_password)]
    pub new_password: String,
}

impl TextFields for ConfirmPasswordResetBody {}

impl From<StartResetError> for ApiError {
    fn from(e: StartResetError) -> Self {
        match e {
            StartResetError::MissingLogin => ApiError::field("login", "required", "is required"),
            StartResetError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many password reset requests from your network. Try again later.",
            ),
            StartResetError::Failure(f) => f.into(),
        }
    }
}

impl From<ConfirmResetError> for ApiError {
    fn from(e: ConfirmResetError) -> Self {
        match e {
            ConfirmResetError::InvalidToken => invalid_token(),
            ConfirmResetError::Invalid(issues) => issues.into(),
            ConfirmResetError::Failure(f) => f.into(),
        }
    }
}

/// Asks for a password reset link by email.
///
/// Always answers 202 with the same body, in about the same time, whether or not an account
/// matches. When one does and its email address is verified, a `reset-password` link (single
/// use, 30 minutes by default) goes there; an unverified address instead gets an explanation and a
/// pointer to account recovery, never a link. At most 3 such emails per account per hour; further
/// requests still answer 202. Requests are limited per client IP.
#[utoipa::path(
    security(),
    tag = "password_resets",
    operation_id = "start_password_reset",
    request_body = StartPasswordResetBody,
    responses(
        (status = 202, description = "Accepted: if an account matches, an email is on its way.", body = Accepted),
        (status = 422, description = "The login is missing or empty (`validation_failed`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:validation_failed", "title": "Validation failed",
                "status": 422, "detail": "login: is required", "code": "validation_failed",
                "errors": [{"field": "login", "code": "required", "message": "is required"}]})),
        (status = 429, description = "Too many requests from this client IP (`rate_limited`, with `Retry-After`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:rate_limited", "title": "Too many requests",
                "status": 429, "detail": "Too many password reset requests from your network. Try again later.",
                "code": "rate_limited"})),
        (status = 400, description = "Unreadable JSON (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/password-resets")]
pub async fn start_password_reset(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<StartPasswordResetBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    password_reset::start(&ctx, &body.login, client).await?;
    Ok(HttpResponse::Accepted().json(Accepted::new()))
}

/// Sets a new password with the token of a reset link.
///
/// Every session and refresh token of the account is revoked and a notice is mailed.
/// Two-factor authentication and recovery codes are left as they are, and no tokens are given
/// back: log in afterwards, with the second factor if the account has one. A refused new
/// password (422) leaves the link usable.
#[utoipa::path(
    security(),
    tag = "password_resets",
    operation_id = "confirm_password_reset",
    request_body = ConfirmPasswordResetBody,
    responses(
        (status = 204, description = "The password is set; every session is revoked."),
        (status = 400, description = "Unknown, used or expired token (`invalid_token`), or unreadable JSON (`malformed_request`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_token", "title": "Invalid or expired link",
                "status": 400, "detail": "This link is invalid, already used or expired. Ask for a new one.",
                "code": "invalid_token"})),
        (status = 422, description = "A field is missing, or the new password is refused, with the reason (`validation_failed`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:validation_failed", "title": "Validation failed",
                "status": 422, "detail": "new_password: is one of the most common passwords found in data breaches; choose another.",
                "code": "validation_failed",
                "errors": [{"field": "new_password", "code": "breached", "message": "is one of the most common passwords found in data breaches; choose another"}]})),
    )
)]
#[post("/password-resets/confirm")]
pub async fn confirm_password_reset(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<ConfirmPasswordResetBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    password_reset::confirm(&ctx, &body.token, body.new_password, client).await?;
    Ok(HttpResponse::NoContent().finish())
}
