//! `/api/v1/sessions`: login, refresh, logout.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::edge::{Body, TextFields};
use crate::api::extract::{Authenticated, Client, DeviceToken};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::rules;
use crate::api::session_cookies::{self, OpensSession, SessionCookies, SessionTransport};
use crate::context::Ctx;
use crate::services::login::{
    self, ConfirmLoginError, Finished, LoginError, LoginOutcome, SecondStep,
};
use crate::services::sessions::{self, RefreshError, SessionTokens};

/// Password step of a login.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"login": "jbber", "password": "correct horse battery staple"}))]
pub struct LoginBody {
    /// Username or email address (case does not matter).
    #[schema(schema_with = rules::login)]
    #[validate(custom(function = rules::check_login))]
    pub login: String,
    /// The password.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
    /// `bearer` (default): the tokens come in the body. `cookie`: they come as `HttpOnly`
    /// cookies instead, for browsers that keep no token in JavaScript (applies when the
    /// login completes, here or at its second step, which names its own transport).
    #[schema(value_type = SessionTransport, required = false)]
    #[serde(default)]
    pub session_transport: Option<String>,
}

impl TextFields for LoginBody {}

/// A new refresh.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"refresh_token": "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c"}))]
pub struct RefreshBody {
    /// The refresh token of the last login or refresh. A cookie session sends `{}` instead:
    /// the refresh cookie carries it (with `X-CSRF-Token`).
    #[schema(schema_with = rules::refresh_token, required = false)]
    #[validate(custom(function = rules::check_token))]
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl TextFields for RefreshBody {}

/// `authenticated`: the session is open.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticatedStatus {
    /// The session is open.
    Authenticated,
}

/// `mfa_required`: finish with a second factor.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaRequiredStatus {
    /// A second factor is needed.
    MfaRequired,
}

/// A second-factor method.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// An authenticator-app code: POST /api/v1/sessions/totp.
    Totp,
    /// A passkey: POST /api/v1/sessions/webauthn/options, then POST /api/v1/sessions/webauthn.
    Webauthn,
    /// A recovery code: POST /api/v1/sessions/recovery-code.
    RecoveryCode,
}

impl MfaMethod {
    /// The method of a second factor (none for `SecondFactor::None`).
    fn of(factor: crate::domain::SecondFactor) -> Option<Self> {
        use crate::domain::SecondFactor;
        match factor {
            SecondFactor::Totp => Some(Self::Totp),
            SecondFactor::Webauthn => Some(Self::Webauthn),
            SecondFactor::RecoveryCode => Some(Self::RecoveryCode),
            SecondFactor::None => None,
        }
    }
}

/// An open session's tokens.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "authenticated",
    "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c"
}))]
pub struct AuthenticatedResponse {
    /// Always `authenticated`.
    pub status: AuthenticatedStatus,
    /// Send as `Authorization: Bearer <access_token>`. Absent in cookie mode
    /// (`session_transport: cookie`): the access cookie carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub access_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(value_type = u32)]
    pub expires_in: u64,
    /// Exchange at POST /api/v1/sessions/refresh for a new pair; single use. Absent in cookie
    /// mode: the refresh cookie carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub refresh_token: Option<String>,
    /// Cookie mode only: the session's CSRF token (also in the readable CSRF cookie). Send it
    /// as `X-CSRF-Token` on every cookie-authenticated call other than GET, refresh included.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    pub csrf_token: Option<String>,
    /// The session's CSRF token, kept for cookie mode.
    #[serde(skip)]
    session_csrf: String,
    /// After a recovery-code login: unused codes left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<u32>,
    /// After a recovery-code login: `true`, make a new set of recovery codes (a login with a
    /// recovery code is account recovery; `GET /api/v1/account` says so until a new set exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_should_regenerate: Option<bool>,
    /// Present when the request did not send a valid `X-Device-Token` for this account: this
    /// browser's or app's new device token. Keep it (like a long-lived cookie) and send it as
    /// `X-Device-Token` on every later call: a known device keeps its own failed-login budget
    /// and skips new-device confirmation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// `email_confirmation_required`: the login waits for the link mailed to the account.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailConfirmationStatus {
    /// Open the `confirm-login` link mailed to the account's address.
    EmailConfirmationRequired,
}

/// The second factor was right, but the device is new to the account: the login waits for the
/// single-use `confirm-login` link mailed to the verified address (`NEW_DEVICE_CONFIRMATION`),
/// which the frontend posts to `POST /api/v1/sessions/confirm`. A recovery code used here is
/// spent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "email_confirmation_required", "expires_in": 900,
    "recovery_codes_remaining": 7, "recovery_codes_should_regenerate": true}))]
pub struct EmailConfirmationResponse {
    /// Always `email_confirmation_required`.
    pub status: EmailConfirmationStatus,
    /// Seconds until the mailed link expires.
    #[schema(value_type = u32)]
    pub expires_in: u64,
    /// After a recovery code: unused codes left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<u32>,
    /// After a recovery code: make a new set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_should_regenerate: Option<bool>,
}

/// The answer of a second step, told apart by `status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "status", mapping(
    ("authenticated" = "#/components/schemas/AuthenticatedResponse"),
    ("email_confirmation_required" = "#/components/schemas/EmailConfirmationResponse"),
)))]
pub enum SecondStepResponse {
    /// The session is open.
    Authenticated(AuthenticatedResponse),
    /// The login waits for the emailed confirmation.
    EmailConfirmationRequired(EmailConfirmationResponse),
}

impl From<SecondStep> for SecondStepResponse {
    fn from(step: SecondStep) -> Self {
        let (remaining, regenerate) = (
            step.recovery_codes_remaining,
            step.recovery_codes_should_regenerate,
        );
        match step.finished {
            Finished::Authenticated(tokens) => Self::Authenticated(
                AuthenticatedResponse::new(tokens).with_recovery_codes(remaining, regenerate),
            ),
            Finished::EmailConfirmationRequired { expires_in } => {
                Self::EmailConfirmationRequired(EmailConfirmationResponse {
                    status: EmailConfirmationStatus::EmailConfirmationRequired,
                    expires_in,
                    recovery_codes_remaining: remaining,
                    recovery_codes_should_regenerate: regenerate,
                })
            }
        }
    }
}

impl AuthenticatedResponse {
    /// The answer for a session's tokens.
    pub fn new(t: SessionTokens) -> Self {
        Self {
            status: AuthenticatedStatus::Authenticated,
            access_token: Some(t.access_token),
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: Some(t.refresh_token),
            csrf_token: None,
            session_csrf: t.csrf_token,
            recovery_codes_remaining: None,
            recovery_codes_should_regenerate: None,
            device_token: t.device_token,
        }
    }

    /// Adds what a recovery-code login tells about the codes.
    pub fn with_recovery_codes(mut self, remaining: Option<u32>, regenerate: Option<bool>) -> Self {
        self.recovery_codes_remaining = remaining;
        self.recovery_codes_should_regenerate = regenerate;
        self
    }
}

impl OpensSession for AuthenticatedResponse {
    fn take_for_cookies(&mut self) -> Option<SessionCookies> {
        let access_token = self.access_token.take()?;
        let refresh_token = self.refresh_token.take()?;
        self.csrf_token = Some(self.session_csrf.clone());
        Some(SessionCookies {
            access_token,
            expires_in: self.expires_in,
            refresh_token,
            csrf_token: self.session_csrf.clone(),
        })
    }
}

impl OpensSession for SecondStepResponse {
    fn take_for_cookies(&mut self) -> Option<SessionCookies> {
        match self {
            Self::Authenticated(a) => a.take_for_cookies(),
            Self::EmailConfirmationRequired(_) => None,
        }
    }
}

impl OpensSession for LoginResponse {
    fn take_for_cookies(&mut self) -> Option<SessionCookies> {
        match self {
            Self::Authenticated(a) => a.take_for_cookies(),
            Self::MfaRequired(_) => None,
        }
    }
}

/// The password was right; a second factor is needed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "mfa_required",
    "mfa_token": "eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJtZmEifQ.c2lnbmF0dXJl",
    "methods": ["totp", "recovery_code"],
    "expires_in": 300
}))]
pub struct MfaRequiredResponse {
    /// Always `mfa_required`.
    pub status: MfaRequiredStatus,
    /// Single-use, short-lived; send with the second factor.
    pub mfa_token: String,
    /// The methods that finish the login: those the account has (`totp`, `webauthn`), then
    /// `recovery_code`.
    pub methods: Vec<MfaMethod>,
    /// Seconds until the mfa token expires.
    #[schema(value_type = u32)]
    pub expires_in: u64,
}

/// The answer of the password step, told apart by `status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "status", mapping(
    ("authenticated" = "#/components/schemas/AuthenticatedResponse"),
    ("mfa_required" = "#/components/schemas/MfaRequiredResponse"),
)))]
pub enum LoginResponse {
    /// No second factor on the account: the session is open.
    Authenticated(AuthenticatedResponse),
    /// Two-factor authentication is on.
    MfaRequired(MfaRequiredResponse),
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::InvalidCredentials,
                "The login or the password is wrong.",
            ),
            LoginError::AccountLocked => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::AccountLocked,
                "This account is locked by its owner. Reset the password through the account's email address, or ask for account recovery.",
            ),
            LoginError::MissingLogin => ApiError::field("login", "required", "is required"),
            LoginError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many failed logins. Try again later, or reset your password.",
            ),
            LoginError::Failure(f) => f.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::InvalidRefreshToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::InvalidRefreshToken,
                "The refresh token is unknown, used, expired or revoked. Log in again.",
            ),
            RefreshError::CsrfFailed => session_cookies::csrf_failed(),
            RefreshError::Failure(f) => f.into(),
        }
    }
}

/// Logs in with a username or email and a password.
///
/// An unknown login and a wrong password get the same answer, in the same time. With two-factor
/// authentication on, the answer is `mfa_required` with a 5-minute single-use mfa token.
/// With `"session_transport": "cookie"` an opened session's tokens come as `HttpOnly` cookies
/// (`Set-Cookie`) instead of in the body, which carries `csrf_token` instead.
#[utoipa::path(
    security(),
    tag = "sessions",
    operation_id = "create_session",
    request_body = LoginBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if any: failed logins from a known device count against that device only.")),
    responses(
        (status = 200, description = "Authenticated, or a second factor is required.", body = LoginResponse),
        (status = 401, description = "Unknown login or wrong password (`invalid_credentials`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_credentials", "title": "Invalid credentials",
                "status": 401, "detail": "The login or the password is wrong.", "code": "invalid_credentials"})),
        (status = 400, description = "Unreadable JSON (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or empty (`validation_failed`).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The password is right but the owner locked the account with the lock link of a security notice (`account_locked`); a password reset through the verified address or a completed recovery request unlocks it.", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:account_locked", "title": "Account locked", "status": 403,
                "detail": "This account is locked by its owner. Reset the password through the account's email address, or ask for account recovery.",
                "code": "account_locked"})),
        (status = 429, description = "Too many failed logins (`rate_limited`, with `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions")]
pub async fn create_session(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let transport = SessionTransport::from_field(body.session_transport.as_deref())?;
    let outcome = login::login(&ctx, &body.login, body.password, client, device).await?;
    let answer = match outcome {
        LoginOutcome::Authenticated(t) => {
            LoginResponse::Authenticated(AuthenticatedResponse::new(t))
        }
        LoginOutcome::MfaRequired {
            mfa_token,
            expires_in,
            methods,
        } => LoginResponse::MfaRequired(MfaRequiredResponse {
            status: MfaRequiredStatus::MfaRequired,
            mfa_token,
            methods: methods.into_iter().filter_map(MfaMethod::of).collect(),
            expires_in,
        }),
    };
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        answer,
    ))
}

/// Exchanges a refresh token for a new access and refresh token.
///
/// The old refresh token stops working. Presenting a refresh token that was already exchanged
/// revokes the whole session (someone else holds a copy), except within `REFRESH_REUSE_GRACE`
/// (10 s) of its exchange: two tabs refreshing at once both get a new pair on the same session
/// (a few pairs per exchanged token; past that, inside the grace, a 401 that revokes nothing).
///
/// A cookie session sends `{}` with `X-CSRF-Token`: the refresh cookie carries the token, and
/// the answer sets new cookies instead of carrying the tokens (403 `csrf_failed` without the
/// header).
#[utoipa::path(
    security(),
    tag = "sessions",
    operation_id = "refresh_session",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new token pair.", body = AuthenticatedResponse),
        (status = 401, description = "Unknown, used, expired or revoked (`invalid_refresh_token`).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_refresh_token", "title": "Invalid refresh token",
                "status": 401, "detail": "The refresh token is unknown, used, expired or revoked. Log in again.",
                "code": "invalid_refresh_token"})),
        (status = 400, description = "Unreadable JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The field is missing.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/refresh")]
pub async fn refresh_session(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    Client(client): Client,
    body: Body<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let (token, csrf, transport) =
        session_cookies::refresh_credential(&req, &ctx.config, body.refresh_token)?;
    let tokens = sessions::refresh(&ctx, &token, csrf, client).await?;
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        AuthenticatedResponse::new(tokens),
    ))
}

/// Logs out: the access token and its refresh token stop working.
///
/// Revokes the session of the access token: the access token and the session's refresh token
/// stop working at once. Other sessions stay open.
///
/// A cookie session sends `X-CSRF-Token`; the answer clears its cookies.
#[utoipa::path(
    tag = "sessions",
    operation_id = "delete_current_session",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out."),
        (status = 401, description = "No valid access token (`unauthorized`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/sessions/current")]
pub async fn delete_current_session(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    Authenticated(who): Authenticated,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    sessions::logout(&ctx, &who, client).await?;
    Ok(session_cookies::logged_out(&ctx.config, &req))
}

/// The token of a `confirm-login` link.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM"}))]
pub struct ConfirmSessionBody {
    /// The `token` parameter of the `{FRONTEND_URL}/confirm-login?token=…` link.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub token: String,
    /// `bearer` (default) or `cookie`: how the opened session's tokens travel.
    #[schema(value_type = SessionTransport, required = false)]
    #[serde(default)]
    pub session_transport: Option<String>,
}

impl TextFields for ConfirmSessionBody {}

impl From<ConfirmLoginError> for ApiError {
    fn from(e: ConfirmLoginError) -> Self {
        match e {
            ConfirmLoginError::InvalidToken => crate::api::common::invalid_token(),
            ConfirmLoginError::Failure(f) => f.into(),
        }
    }
}

/// Finishes a login that waited for its emailed confirmation (a recovery-code login from a
/// device the account did not know, under `NEW_DEVICE_CONFIRMATION`).
///
/// The link works once, for 15 minutes; the session opens for the client that posts it, which
/// gets a `device_token` unless it sent a valid `X-Device-Token` for the account.
#[utoipa::path(
    security(),
    tag = "sessions",
    operation_id = "confirm_session",
    request_body = ConfirmSessionBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if any.")),
    responses(
        (status = 200, description = "Authenticated.", body = AuthenticatedResponse),
        (status = 400, description = "The link's token is unknown, used or expired (`invalid_token`), or unreadable JSON (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The token is missing (`validation_failed`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/confirm")]
pub async fn confirm_session(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<ConfirmSessionBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let transport = SessionTransport::from_field(body.session_transport.as_deref())?;
    let tokens = login::confirm(&ctx, &body.token, client, device).await?;
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        AuthenticatedResponse::new(tokens),
    ))
}
