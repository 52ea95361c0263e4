//! `/api/v1/account/email-changes` and `/api/v1/account-locks`: changing the account's email
//! address (with its confirmation link) and the owner's lock ("it wasn't me").

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::accounts::{AccountResponse, TokenBody};
use crate::api::common::invalid_token;
use crate::api::edge::{Body, TextFields};
use crate::api::extract::{Authenticated, Client};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::rules;
use crate::context::Ctx;
use crate::services::account_lock::{self, LockError};
use crate::services::email_change::{self, EmailChangeError};

/// An email change.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"password": "orbit lantern mosaic 42", "new_email": "jbber@new.example.com"}))]
pub struct EmailChangeBody {
    /// The account's password (asked again; counts in the re-authentication budget).
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
    /// The new address; a single-use confirmation link goes there.
    #[schema(schema_with = rules::email)]
    #[validate(custom(function = rules::check_email))]
    pub new_email: String,
}

impl TextFields for EmailChangeBody {}

/// A pending email change.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"pending_email": "jbber@new.example.com", "expires_at": "2026-12-03T10:00:00Z"}))]
pub struct PendingEmailResponse {
    /// The new address, waiting for its confirmation; the current address stays until then.
    pub pending_email: String,
    /// When the confirmation link stops working.
    pub expires_at: DateTime<Utc>,
}

/// The status of a lock.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LockStatus {
    /// The account is locked.
    Locked,
}

/// A lock.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "locked", "address_restored": true}))]
pub struct LockResponse {
    /// Always `locked`.
    pub status: LockStatus,
    /// The link came from an email-change notice and put the previous address back.
    pub address_restored: bool,
}

impl From<EmailChangeError> for ApiError {
    fn from(e: EmailChangeError) -> Self {
        match e {
            EmailChangeError::Invalid(issues) => issues.into(),
            EmailChangeError::InvalidPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::InvalidPassword,
                "The password is wrong.",
            ),
            EmailChangeError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                Code::EmailTaken,
                "Another account uses that email address.",
            ),
            EmailChangeError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many email changes or wrong passwords. Try again later.",
            ),
            EmailChangeError::InvalidToken => invalid_token(),
            EmailChangeError::Failure(f) => f.into(),
        }
    }
}

impl From<LockError> for ApiError {
    fn from(e: LockError) -> Self {
        match e {
            LockError::InvalidToken => invalid_token(),
            LockError::Failure(f) => f.into(),
        }
    }
}

/// Starts a change of the account's email address.
///
/// A single-use `confirm-email-change` link (valid `EMAIL_CHANGE_TTL`, 48 hours) goes to the new
/// address; the current address gets a notice (new address masked) with an "it wasn't me" lock
/// link, and stays the account's address for everything until the link is followed. A newer
/// request voids an older pending one.
#[utoipa::path(
    tag = "accounts",
    operation_id = "request_email_change",
    security(("bearer" = [])),
    request_body = EmailChangeBody,
    responses(
        (status = 202, description = "The confirmation link is on its way to the new address.", body = PendingEmailResponse),
        (status = 403, description = "The password is wrong (`invalid_password`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_password", "title": "Wrong password",
                "status": 403, "detail": "The password is wrong.", "code": "invalid_password"})),
        (status = 409, description = "Another account uses the address (`email_taken`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:email_taken", "title": "Email address taken",
                "status": 409, "detail": "Another account uses that email address.", "code": "email_taken"})),
        (status = 422, description = "A missing password, a malformed address, the current address (`unchanged`) or one that looks like another account's (`confusable`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many email changes on this account (`RATE_LIMIT_EMAIL_CHANGES`) or wrong passwords (`RATE_LIMIT_REAUTH`): `rate_limited` with `Retry-After`.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/email-changes")]
pub async fn request_email_change(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<EmailChangeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let pending = email_change::request(&ctx, &who, body.password, &body.new_email, client).await?;
    Ok(HttpResponse::Accepted().json(PendingEmailResponse {
        pending_email: pending.pending_email,
        expires_at: pending.expires_at,
    }))
}

/// Confirms an email change with the token of its `confirm-email-change` link.
///
/// The address switches (verified); every session is signed out except the caller's own when
/// the call carries an access token of the same account; the old address gets a notice whose
/// lock link also puts it back during `EMAIL_CHANGE_UNDO_PERIOD` (7 days).
#[utoipa::path(
    tag = "accounts",
    operation_id = "confirm_email_change",
    security((), ("bearer" = [])),
    request_body = TokenBody,
    responses(
        (status = 200, description = "The account with its new address, verified.", body = AccountResponse),
        (status = 400, description = "Unknown, used, voided or expired token (`invalid_token`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_token", "title": "Invalid or expired link",
                "status": 400, "detail": "This link is invalid, already used or expired. Ask for a new one.",
                "code": "invalid_token"})),
        (status = 409, description = "Another account took the address meanwhile (`email_taken`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The token field is missing, or the address now looks like another account's.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/email-changes/confirm")]
pub async fn confirm_email_change(
    ctx: web::Data<Ctx>,
    caller: Option<Authenticated>,
    Client(client): Client,
    body: Body<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let caller = caller.map(|Authenticated(who)| who);
    let account = email_change::confirm(&ctx, &body.token, caller, client).await?;
    Ok(HttpResponse::Ok().json(AccountResponse::from(account)))
}

/// Locks the account with the token of a `lock-account` link ("it wasn't me").
///
/// Every session, refresh token, mfa token, password-reset, email-change, login-confirmation
/// and recovery-completion link stops working at once; logins answer 403 `account_locked` after
/// a right password. A link from an email-change notice also puts the previous address back
/// (verified) during `EMAIL_CHANGE_UNDO_PERIOD`. A password reset through the verified address
/// (2FA kept) or a completed recovery request unlocks the account.
#[utoipa::path(
    tag = "accounts",
    operation_id = "lock_account",
    security(),
    request_body = TokenBody,
    responses(
        (status = 200, description = "The account is locked.", body = LockResponse),
        (status = 400, description = "Unknown, used or expired token (`invalid_token`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_token", "title": "Invalid or expired link",
                "status": 400, "detail": "This link is invalid, already used or expired. Ask for a new one.",
                "code": "invalid_token"})),
        (status = 422, description = "The token field is missing.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account-locks")]
pub async fn lock_account(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let locked = account_lock::lock(&ctx, &body.token, client).await?;
    Ok(HttpResponse::Ok().json(LockResponse {
        status: LockStatus::Locked,
        address_restored: locked.address_restored,
    }))
}
