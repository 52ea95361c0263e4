//! `/api/v1/sessions`: login, refresh, logout.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::edge::{Body, TextFields};
use crate::api::extract::{Authenticated, Client, DeviceToken};
use crate::api::problem::{ApiError, Code, Problem};
use crate::context::Ctx;
use crate::services::login::{
    self, ConfirmLoginError, Finished, LoginError, LoginOutcome, SecondStep,
};
use crate::services::sessions::{self, RefreshError, SessionTokens};

/// Password step of a login.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"login": "jbber", "password": "correct horse battery staple"}))]
pub struct LoginBody {
    /// Username or email address (case does not matter).
    pub login: String,
    /// The password.
    pub password: String,
}

impl TextFields for LoginBody {}

/// A new refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c"}))]
pub struct RefreshBody {
    /// The refresh token of the last login or refresh.
    pub refresh_token: String,
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
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchange at POST /api/v1/sessions/refresh for a new pair; single use.
    pub refresh_token: String,
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
    pub expires_in: u64,
    /// After a recovery code: unused codes left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<u32>,
    /// After a recovery code: make a new set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_should_regenerate: Option<bool>,
}

/// The answer of a second step.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
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
            access_token: t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
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
    pub expires_in: u64,
}

/// The answer of the password step.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
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
            RefreshError::Failure(f) => f.into(),
        }
    }
}

/// Logs in with a username or email and a password.
///
/// An unknown login and a wrong password get the same answer, in the same time. With two-factor
/// authentication on, the answer is `mfa_required` with a 5-minute single-use mfa token.
#[utoipa::path(
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
    let body = body.into_inner();
    let outcome = login::login(&ctx, &body.login, body.password, client, device).await?;
    Ok(HttpResponse::Ok().json(match outcome {
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
    }))
}

/// Exchanges a refresh token for a new access and refresh token.
///
/// The old refresh token stops working. Presenting a refresh token that was already exchanged
/// revokes the whole session: someone else holds a copy.
#[utoipa::path(
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
    Client(client): Client,
    body: Body<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sessions::refresh(&ctx, &body.refresh_token, client).await?;
    Ok(HttpResponse::Ok().json(AuthenticatedResponse::new(tokens)))
}

/// Logs out: the access token and its refresh token stop working.
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
    Authenticated(who): Authenticated,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    sessions::logout(&ctx, &who, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The token of a `confirm-login` link.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM"}))]
pub struct ConfirmSessionBody {
    /// The `token` parameter of the `{FRONTEND_URL}/confirm-login?token=…` link.
    pub token: String,
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
    let tokens = login::confirm(&ctx, &body.into_inner().token, client, device).await?;
    Ok(HttpResponse::Ok().json(AuthenticatedResponse::new(tokens)))
}
