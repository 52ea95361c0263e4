//! `/api/v1/accounts` and `/api/v1/account`: registration, email verification, the account,
//! its password, sessions and security events.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::common::{Accepted, PageQuery, invalid_token};
use crate::api::edge::{Body, PathId, Query, TextFields};
use crate::api::extract::{AccessToken, Authenticated, Client};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::rules;
use crate::context::Ctx;
use crate::services::accounts::{self, AccountView, ChangePasswordError};
use crate::services::audit::EventView;
use crate::services::registration::{
    self, RegisterError, Registration, ResendError, VerifyEmailError,
};
use crate::services::sessions::{self, RevokeError};

/// A new account.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"username": "jbber", "email": "jbber@example.com", "password": "orbit lantern mosaic 42"}))]
#[validate(schema(function = register_password, skip_on_field_errors = false))]
pub struct RegisterBody {
    /// 3–50 letters, digits, `-`, `_` or `.`; unique ignoring case.
    #[schema(schema_with = rules::username)]
    #[validate(custom(function = rules::check_username))]
    pub username: String,
    /// Unique ignoring case; a verification email is sent there.
    #[schema(schema_with = rules::email)]
    #[validate(custom(function = rules::check_email))]
    pub email: String,
    /// 8–128 characters; refused (each with its field-error code) when it contains the username,
    /// the email or the service's name, is a common breached password, is on the operator's
    /// list, or is otherwise easy to guess.
    #[schema(schema_with = rules::new_password)]
    pub password: String,
}

impl TextFields for RegisterBody {}

/// The password of a registration must not contain its username or email.
fn register_password(b: &RegisterBody) -> Result<(), validator::ValidationError> {
    rules::check_new_password("password", &b.password, &[&b.username, &b.email])
}

/// A token from an email link.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM"}))]
pub struct TokenBody {
    /// The `token` parameter of the link.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub token: String,
}

impl TextFields for TokenBody {}

/// A password change.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"current_password": "orbit lantern mosaic 42", "new_password": "velvet compass harbor 19"}))]
pub struct ChangePasswordBody {
    /// The password in use now.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub current_password: String,
    /// The new password (policy applies).
    #[schema(schema_with = rules::new_password)]
    pub new_password: String,
}

impl TextFields for ChangePasswordBody {}

/// An account's role.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleDto {
    /// An account holder.
    User,
    /// Support staff.
    Support,
}

/// The account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "7f1c2a3e-0d4b-4e5f-8a9b-1c2d3e4f5a6b", "username": "jbber", "email": "jbber@example.com",
    "email_verified": true, "role": "user", "two_factor_enabled": true,
    "two_factor_methods": ["totp", "webauthn"], "passkeys": 1,
    "recovery_codes_remaining": 6, "recovery_codes_low": false,
    "recovery_codes_should_regenerate": false,
    "password_changed_at": "2026-11-20T10:00:00Z", "created_at": "2026-01-05T09:30:00Z"
}))]
pub struct AccountResponse {
    /// Id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Whether the email address is verified.
    pub email_verified: bool,
    /// `user` or `support`.
    pub role: RoleDto,
    /// Whether two-factor authentication is on (TOTP or at least one passkey).
    pub two_factor_enabled: bool,
    /// The second factors the account has: `totp`, `webauthn` (empty without 2FA; recovery
    /// codes come with either).
    pub two_factor_methods: Vec<crate::api::sessions::MfaMethod>,
    /// How many passkeys the account has (listed at GET /api/v1/account/passkeys).
    pub passkeys: u32,
    /// Unused recovery codes (null without 2FA).
    pub recovery_codes_remaining: Option<u32>,
    /// True at two or fewer recovery codes left: regenerate them.
    pub recovery_codes_low: bool,
    /// True after a login with a recovery code, until a new set is made: a recovery-code login
    /// is account recovery, and the rest of that set should be replaced.
    pub recovery_codes_should_regenerate: bool,
    /// When the password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<AccountView> for AccountResponse {
    fn from(a: AccountView) -> Self {
        let low = a.recovery_codes_low();
        Self {
            id: a.id.into_string(),
            username: a.username,
            email: a.email,
            email_verified: a.email_verified,
            role: match a.role {
                crate::domain::Role::User => RoleDto::User,
                crate::domain::Role::Support => RoleDto::Support,
            },
            two_factor_enabled: a.two_factor_enabled,
            two_factor_methods: [
                (a.totp, crate::api::sessions::MfaMethod::Totp),
                (a.passkeys > 0, crate::api::sessions::MfaMethod::Webauthn),
            ]
            .into_iter()
            .filter_map(|(has, m)| has.then_some(m))
            .collect(),
            passkeys: a.passkeys,
            recovery_codes_remaining: a.recovery_codes_remaining,
            recovery_codes_low: low,
            recovery_codes_should_regenerate: a.recovery_codes_should_regenerate,
            password_changed_at: a.password_changed_at,
            created_at: a.created_at,
        }
    }
}

/// How a session was opened.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorDto {
    /// Password only.
    None,
    /// Password and authenticator code.
    Totp,
    /// Password and recovery code.
    RecoveryCode,
    /// Password and passkey.
    Webauthn,
}

impl From<crate::domain::SecondFactor> for SecondFactorDto {
    fn from(f: crate::domain::SecondFactor) -> Self {
        match f {
            crate::domain::SecondFactor::None => Self::None,
            crate::domain::SecondFactor::Totp => Self::Totp,
            crate::domain::SecondFactor::RecoveryCode => Self::RecoveryCode,
            crate::domain::SecondFactor::Webauthn => Self::Webauthn,
        }
    }
}

/// A live session.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0b5e3c1a-9f8d-4c7b-a6e5-d4c3b2a1f0e9", "created_at": "2026-11-23T08:00:00Z",
    "last_used_at": "2026-11-23T09:12:00Z", "ip": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "current": true, "second_factor": "totp"
}))]
pub struct SessionResponse {
    /// Id (revoke with DELETE /api/v1/account/sessions/{id}).
    pub id: String,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Last used at (updated at most once a minute).
    pub last_used_at: DateTime<Utc>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// True for the session of this access token.
    pub current: bool,
    /// How it was opened.
    pub second_factor: SecondFactorDto,
}

/// The account's live sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first.
    pub items: Vec<SessionResponse>,
}

/// A security event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "type": "session.login_succeeded", "at": "2026-11-23T08:00:00Z",
    "ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "details": {"second_factor": "totp"}
}))]
pub struct SecurityEvent {
    /// Sequence number.
    pub id: i64,
    /// Dotted type, e.g. `session.login_failed`, `password.changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When.
    pub at: DateTime<Utc>,
    /// From which IP.
    pub ip: Option<String>,
    /// From which browser or app.
    pub user_agent: Option<String>,
    /// Type-specific details.
    pub details: serde_json::Value,
}

impl From<EventView> for SecurityEvent {
    fn from(r: EventView) -> Self {
        Self {
            id: r.id,
            event_type: r.event_type,
            at: r.at,
            ip: r.ip,
            user_agent: r.user_agent,
            details: r.details,
        }
    }
}

/// A page of security events.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventPage {
    /// Newest first.
    pub items: Vec<SecurityEvent>,
    /// This page (from 1).
    #[schema(value_type = u32)]
    pub page: i64,
    /// Page size.
    #[schema(value_type = u32)]
    pub per_page: i64,
    /// Events in all pages.
    #[schema(value_type = u32)]
    pub total: i64,
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::Invalid(issues) => issues.into(),
            RegisterError::UsernameTaken => ApiError::new(
                StatusCode::CONFLICT,
                Code::UsernameTaken,
                "That username is taken.",
            ),
            RegisterError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                Code::EmailTaken,
                "An account with that email address exists. Log in, or reset your password.",
            ),
            RegisterError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many accounts were registered from this address. Try again later.",
            ),
            RegisterError::Failure(f) => f.into(),
        }
    }
}

impl From<VerifyEmailError> for ApiError {
    fn from(e: VerifyEmailError) -> Self {
        match e {
            VerifyEmailError::InvalidToken => invalid_token(),
            VerifyEmailError::Failure(f) => f.into(),
        }
    }
}

impl From<ResendError> for ApiError {
    fn from(e: ResendError) -> Self {
        match e {
            ResendError::AlreadyVerified => ApiError::new(
                StatusCode::CONFLICT,
                Code::EmailAlreadyVerified,
                "Your email address is already verified.",
            ),
            ResendError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many verification emails were sent. Try again later.",
            ),
            ResendError::Failure(f) => f.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(e: ChangePasswordError) -> Self {
        match e {
            ChangePasswordError::InvalidPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::InvalidPassword,
                "The current password is wrong.",
            ),
            ChangePasswordError::Invalid(issues) => issues.into(),
            ChangePasswordError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many wrong passwords. Try again later.",
            ),
            ChangePasswordError::Failure(f) => f.into(),
        }
    }
}

impl From<RevokeError> for ApiError {
    fn from(e: RevokeError) -> Self {
        match e {
            RevokeError::NotFound => ApiError::not_found("No live session of yours has that id."),
            RevokeError::Failure(f) => f.into(),
        }
    }
}

/// Creates an account and sends a verification email.
///
/// The username and the email must be free (ignoring case and look-alikes) and the password
/// must follow the policy; every field error is listed in one 422. The account can log in at
/// once; a verification link goes to the email address.
#[utoipa::path(
    security(),
    tag = "accounts",
    operation_id = "register_account",
    request_body = RegisterBody,
    responses(
        (status = 201, description = "Created; a verification email is on its way.", body = AccountResponse),
        (status = 409, description = "`username_taken` or `email_taken` (ignoring case).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:username_taken", "title": "Username taken",
                "status": 409, "detail": "That username is taken.", "code": "username_taken"})),
        (status = 422, description = "Field errors, including why a password is refused.", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:validation_failed", "title": "Validation failed",
                "status": 422, "detail": "password: is one of the most common passwords found in data breaches; choose another.",
                "code": "validation_failed",
                "errors": [{"field": "password", "code": "breached", "message": "is one of the most common passwords found in data breaches; choose another"}]})),
        (status = 429, description = "Too many registrations from this client address (`RATE_LIMIT_REGISTRATION_PER_IP`); `Retry-After` says when to try again.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait.")),
            example = json!({"type": "urn:account-recovery:problem:rate_limited", "title": "Too many requests",
                "status": 429, "detail": "Too many accounts were registered from this address. Try again later.",
                "code": "rate_limited"})),
        (status = 400, description = "Unreadable JSON.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/accounts")]
pub async fn register_account(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let account = registration::register(
        &ctx,
        Registration {
            username: body.username,
            email: body.email,
            password: body.password,
        },
        client,
    )
    .await?;
    Ok(HttpResponse::Created().json(AccountResponse::from(account)))
}

/// Verifies the email address with the token of the verification link.
///
/// Posts the `token` parameter of the `{FRONTEND_URL}/verify-email?token=…` link. The link
/// works once and expires; an unknown, used or expired token is a 400 `invalid_token`.
#[utoipa::path(
    security(),
    tag = "accounts",
    operation_id = "verify_account_email",
    request_body = TokenBody,
    responses(
        (status = 200, description = "Verified.", body = AccountResponse),
        (status = 400, description = "Unknown, used or expired token (`invalid_token`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_token", "title": "Invalid or expired link",
                "status": 400, "detail": "This link is invalid, already used or expired. Ask for a new one.",
                "code": "invalid_token"})),
        (status = 422, description = "The token field is missing.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/accounts/verify-email")]
pub async fn verify_account_email(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let account = registration::verify_email(&ctx, &body.token, client).await?;
    Ok(HttpResponse::Ok().json(AccountResponse::from(account)))
}

/// Sends a new verification email (at most 3 an hour).
///
/// Sends a fresh link to the account's address and invalidates none of the earlier ones until
/// they expire. At most 3 mails an hour per account; the 429 says when to try again.
#[utoipa::path(
    tag = "accounts",
    operation_id = "resend_verification_email",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A new verification email is on its way.", body = Accepted),
        (status = 409, description = "Already verified (`email_already_verified`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many verification emails (`rate_limited`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/email-verification")]
pub async fn resend_verification_email(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    registration::resend_verification(&ctx, &who).await?;
    Ok(HttpResponse::Accepted().json(Accepted::new()))
}

/// The caller's account.
///
/// Answers the account of the access token: identity, whether the email is verified, the role,
/// whether two-factor authentication is on and how many recovery codes remain. A frontend reads
/// it after login and after each security change.
#[utoipa::path(
    tag = "accounts",
    operation_id = "get_account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account.", body = AccountResponse),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account")]
pub async fn get_account(
    ctx: web::Data<Ctx>,
    AccessToken(credential): AccessToken,
) -> Result<HttpResponse, ApiError> {
    let (who, account) = accounts::get_own(&ctx, &credential.token).await?;
    credential.check_csrf(&ctx, &who.session_id)?;
    Ok(HttpResponse::Ok().json(AccountResponse::from(account)))
}

/// Changes the password. Every other session is revoked and a notice is mailed.
///
/// Needs the current password (which counts against the re-authentication budget when wrong).
/// The new one must follow the password policy. The calling session stays open; every other
/// session is revoked, and a notice goes to the account's address.
#[utoipa::path(
    tag = "accounts",
    operation_id = "change_password",
    security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed."),
        (status = 403, description = "The current password is wrong (`invalid_password`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_password", "title": "Wrong password",
                "status": 403, "detail": "The current password is wrong.", "code": "invalid_password"})),
        (status = 422, description = "The new password is refused, with the reason.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords or confirmation codes on this account (`rate_limited`, `Retry-After`): the re-authentication budget, `RATE_LIMIT_REAUTH`.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[put("/account/password")]
pub async fn change_password(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    accounts::change_password(&ctx, &who, body.current_password, body.new_password, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's live sessions.
///
/// Each live session with when and from where it was opened and how (password only, TOTP or
/// recovery code); `current` marks the session of this access token.
#[utoipa::path(
    tag = "accounts",
    operation_id = "list_sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Newest first.", body = SessionList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account/sessions")]
pub async fn list_sessions(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = sessions::list(&ctx, &who)
        .await?
        .into_iter()
        .map(|s| SessionResponse {
            id: s.id.into_string(),
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
            current: s.current,
            second_factor: s.second_factor.into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SessionList { items }))
}

/// Revokes one of the caller's sessions: its tokens stop working at once.
///
/// Its access token and refresh token stop working on the next request. Revoking the current
/// session is a logout. An id that is not one of the caller's live sessions is a 404, whoever
/// owns it.
#[utoipa::path(
    tag = "accounts",
    operation_id = "revoke_session",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "No live session of yours has that id.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/account/sessions/{id}")]
pub async fn revoke_session(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    sessions::revoke(&ctx, &who, &id, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's own security events, newest first.
///
/// Logins, failed logins, password and two-factor changes and recovery steps on the caller's
/// account, for a "security activity" page. Support's internal notes and whereabouts are never
/// shown. Paged with `page` and `per_page`.
#[utoipa::path(
    tag = "accounts",
    operation_id = "list_account_events",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of events.", body = SecurityEventPage),
        (status = 422, description = "`page` or `per_page` out of range.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account/events")]
pub async fn list_account_events(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    query: Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = accounts::page(query.page, query.per_page)?;
    let (rows, total) = accounts::events(&ctx, &who, page).await?;
    Ok(HttpResponse::Ok().json(SecurityEventPage {
        items: rows.into_iter().map(SecurityEvent::from).collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}
