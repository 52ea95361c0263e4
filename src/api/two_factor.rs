//! Two-factor authentication: TOTP enrollment and removal, recovery codes, and the second step
//! of a login (`/sessions/totp`, `/sessions/recovery-code`).

use actix_web::http::StatusCode;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::edge::{Body, TextFields};
use crate::api::extract::{Authenticated, Client, DeviceToken};
use crate::api::problem::{ApiError, Code, FieldError, Problem};
use crate::api::rules;
use crate::api::session_cookies::{self, SessionTransport};
use crate::api::sessions::SecondStepResponse;
use crate::context::Ctx;
use crate::services::login;
use crate::services::second_factor::{CodeRefusal, SecondFactorError};
use crate::services::two_factor::{self, NewCodes, TwoFactorError};

/// A password confirmation.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"password": "orbit lantern mosaic 42"}))]
pub struct PasswordBody {
    /// The account's password.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
}

impl TextFields for PasswordBody {}

/// A code from the authenticator app.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"code": "492039"}))]
pub struct CodeBody {
    /// Six digits.
    #[schema(schema_with = rules::second_factor_code)]
    #[validate(custom(function = rules::check_second_factor_code))]
    pub code: String,
}

impl TextFields for CodeBody {}

/// Turning 2FA off.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"password": "orbit lantern mosaic 42", "code": "k3vq-9x2m-hh4t-a7pe-w0cd"}))]
pub struct DisableBody {
    /// The account's password.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
    /// A current authenticator code, or an unused recovery code (which this consumes).
    #[schema(schema_with = rules::second_factor_code)]
    #[validate(custom(function = rules::check_second_factor_code))]
    pub code: String,
}

impl TextFields for DisableBody {}

/// The second step of a login.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"mfa_token": "eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJtZmEifQ.c2lnbmF0dXJl", "code": "k3vq-9x2m-hh4t-a7pe-w0cd"}))]
pub struct SecondStepBody {
    /// The `mfa_token` of the password step.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub mfa_token: String,
    /// The authenticator code (`/sessions/totp`) or a recovery code (`/sessions/recovery-code`;
    /// case, dashes and spaces do not matter).
    #[schema(schema_with = rules::second_factor_code)]
    #[validate(custom(function = rules::check_second_factor_code))]
    pub code: String,
    /// `bearer` (default) or `cookie`: how the opened session's tokens travel.
    #[schema(value_type = SessionTransport, required = false)]
    #[serde(default)]
    pub session_transport: Option<String>,
}

impl TextFields for SecondStepBody {}

/// A pending enrollment: add it to the authenticator app, then confirm a first code.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    "otpauth_uri": "otpauth://totp/account-recovery:jbber?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=account-recovery"
}))]
pub struct EnrollmentResponse {
    /// The base32 secret (160 bits), for manual entry.
    pub secret: String,
    /// For a QR code: SHA-1, 6 digits, 30-second steps.
    pub otpauth_uri: String,
}

/// A new set of recovery codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "recovery_codes": ["k3vq-9x2m-hh4t-a7pe-w0cd", "p8sd-3kq1-mz0v-r7tb-x2hn"],
    "generated_at": "2026-11-23T10:00:00Z"
}))]
pub struct RecoveryCodesResponse {
    /// Each logs in once. Save them now: they are never shown again.
    pub recovery_codes: Vec<String>,
    /// When the set was generated.
    pub generated_at: DateTime<Utc>,
}

impl From<NewCodes> for RecoveryCodesResponse {
    fn from(c: NewCodes) -> Self {
        Self {
            recovery_codes: c.codes,
            generated_at: c.generated_at,
        }
    }
}

/// Where and when a recovery code was used.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsedCodeResponse {
    /// When.
    pub used_at: DateTime<Utc>,
    /// From which IP.
    pub ip: Option<String>,
    /// From which browser or app.
    pub user_agent: Option<String>,
}

/// The state of the recovery codes (never the codes).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "total": 8, "remaining": 6, "generated_at": "2026-11-01T10:00:00Z",
    "last_used_at": "2026-11-20T08:15:00Z",
    "used": [{"used_at": "2026-11-12T18:02:00Z", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"},
             {"used_at": "2026-11-20T08:15:00Z", "ip": "198.51.100.4", "user_agent": "Mozilla/5.0"}]
}))]
pub struct RecoveryCodesStatus {
    /// Codes in the current set.
    pub total: u32,
    /// Unused codes.
    pub remaining: u32,
    /// When the current set was generated.
    pub generated_at: Option<DateTime<Utc>>,
    /// When a code was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Each used code: when and from where.
    pub used: Vec<UsedCodeResponse>,
}

pub(crate) fn refusal_code(r: &CodeRefusal) -> Code {
    match r {
        CodeRefusal::InvalidTotp { .. } => Code::InvalidTotpCode,
        CodeRefusal::InvalidRecoveryCode { .. } => Code::InvalidRecoveryCode,
        CodeRefusal::AlreadyUsed { .. } => Code::RecoveryCodeAlreadyUsed,
        CodeRefusal::Superseded { .. } => Code::RecoveryCodeSuperseded,
        CodeRefusal::InvalidPasskey => Code::InvalidWebauthnAssertion,
    }
}

pub(crate) fn refusal_detail(r: &CodeRefusal) -> String {
    match r {
        CodeRefusal::InvalidTotp { replayed: false } => {
            "Invalid authenticator code. Check that your device's clock is right.".into()
        }
        CodeRefusal::InvalidTotp { replayed: true } => {
            "This authenticator code was already used. Wait for the next one.".into()
        }
        CodeRefusal::InvalidRecoveryCode {
            looks_like_totp: false,
        } => "Invalid recovery code".into(),
        CodeRefusal::InvalidRecoveryCode {
            looks_like_totp: true,
        } => "Invalid recovery code. Six digits look like an authenticator-app code: use the \
              authenticator step instead, or enter one of your saved recovery codes \
              (like k3vq-9x2m-hh4t-a7pe-w0cd)."
            .into(),
        CodeRefusal::AlreadyUsed { used_at } => match used_at {
            Some(at) => format!(
                "Recovery code has been previously used (on {}). Each code works once.",
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "Recovery code has been previously used".into(),
        },
        CodeRefusal::Superseded { replaced_at } => format!(
            "This recovery code belonged to a set that was replaced on {}. Codes from an older \
             set stop working when new ones are generated: use a code from the newest set.",
            replaced_at.format("%Y-%m-%d")
        ),
        CodeRefusal::InvalidPasskey => "The passkey's answer was not accepted. Try again with \
             a passkey registered to this account, or use another second factor."
            .into(),
    }
}

impl From<SecondFactorError> for ApiError {
    fn from(e: SecondFactorError) -> Self {
        match e {
            SecondFactorError::MfaTokenInvalid => ApiError::new(
                StatusCode::UNAUTHORIZED,
                Code::MfaTokenInvalid,
                "The login step expired or was already finished. Log in again with your password.",
            ),
            SecondFactorError::Refused(r) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                refusal_code(&r),
                refusal_detail(&r),
            ),
            SecondFactorError::MissingCode => ApiError::field("code", "required", "is required"),
            SecondFactorError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many failed attempts. Wait before trying again, or file a recovery request.",
            ),
            SecondFactorError::Failure(f) => f.into(),
        }
    }
}

impl From<TwoFactorError> for ApiError {
    fn from(e: TwoFactorError) -> Self {
        match e {
            TwoFactorError::InvalidPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::InvalidPassword,
                "The password is wrong.",
            ),
            TwoFactorError::AlreadyEnabled => ApiError::new(
                StatusCode::CONFLICT,
                Code::TwoFactorAlreadyEnabled,
                "Two-factor authentication is already on.",
            ),
            TwoFactorError::NotEnabled => ApiError::new(
                StatusCode::CONFLICT,
                Code::TwoFactorNotEnabled,
                "Two-factor authentication is not on (or no enrollment is pending).",
            ),
            // An authenticated call: a field error, so frontends keep the user signed in.
            TwoFactorError::InvalidCode(r) => ApiError::validation(vec![FieldError::new(
                "code",
                refusal_code(&r).as_str(),
                refusal_detail(&r),
            )]),
            TwoFactorError::MissingCode => ApiError::field("code", "required", "is required"),
            TwoFactorError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many failed attempts. Wait before trying again.",
            ),
            TwoFactorError::Failure(f) => f.into(),
        }
    }
}

fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

/// Starts TOTP enrollment. 2FA turns on only when a first code is confirmed.
///
/// Needs the account's password. Answers a new secret and its `otpauth://` URI (for a QR code);
/// nothing changes on the account until `POST /api/v1/account/totp/confirm` proves the app
/// holds the secret. Starting again replaces a pending enrollment.
#[utoipa::path(
    tag = "two_factor",
    operation_id = "start_totp_enrollment",
    security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        (status = 201, description = "Enrollment pending: add the secret to the app, then confirm.", body = EnrollmentResponse),
        (status = 403, description = "Wrong password (`invalid_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already on (`two_factor_already_enabled`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords or confirmation codes on this account (`rate_limited`, `Retry-After`): the re-authentication budget, `RATE_LIMIT_REAUTH`.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/totp")]
pub async fn start_totp_enrollment(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let e = two_factor::enroll(&ctx, &who, body.validated()?.password, client).await?;
    Ok(HttpResponse::Created()
        .insert_header(no_store())
        .json(EnrollmentResponse {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
        }))
}

/// Confirms TOTP enrollment with a first code; a first set of recovery codes is shown once.
///
/// TOTP is a second factor from now. When it is the account's first second factor, 2FA turns
/// on and the answer carries the first set of recovery codes, shown once. When passkeys already
/// keep 2FA on, the account's codes stay as they are and `recovery_codes` is empty. A wrong
/// code counts against the re-authentication budget and is a 422 naming the field `code`.
#[utoipa::path(
    tag = "two_factor",
    operation_id = "confirm_totp_enrollment",
    security(("bearer" = [])),
    request_body = CodeBody,
    responses(
        (status = 200, description = "TOTP is on; save these recovery codes now (empty when passkeys already kept 2FA on).", body = RecoveryCodesResponse),
        (status = 422, description = "The code does not match (field `code`, code `invalid_totp_code`), or is missing.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No enrollment pending (`two_factor_not_enabled`) or TOTP already confirmed (`two_factor_already_enabled`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords or confirmation codes on this account (`rate_limited`, `Retry-After`): the re-authentication budget, `RATE_LIMIT_REAUTH`.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/totp/confirm")]
pub async fn confirm_totp_enrollment(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let codes = two_factor::confirm(&ctx, &who, &body.code, client).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(RecoveryCodesResponse::from(codes)))
}

/// Removes TOTP with the password and a current TOTP code or an unused recovery code.
///
/// When TOTP was the account's last second factor, 2FA goes off and every recovery code is
/// removed. While passkeys remain, 2FA stays on and the recovery codes are kept (only TOTP
/// goes). This is how an owner who logged in with a recovery code moves to a new phone:
/// disable, then enrol again. A POST, since many clients drop the body of a DELETE.
#[utoipa::path(
    tag = "two_factor",
    operation_id = "disable_two_factor",
    security(("bearer" = [])),
    request_body = DisableBody,
    responses(
        (status = 204, description = "TOTP is removed; without passkeys 2FA is off and its codes are gone, with passkeys 2FA stays on with its codes."),
        (status = 403, description = "Wrong password (`invalid_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "TOTP is not on (`two_factor_not_enabled`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The code was refused (field `code` with `invalid_totp_code`, `invalid_recovery_code`, `recovery_code_already_used` or `recovery_code_superseded`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed second-factor attempts, or wrong passwords (the re-authentication budget, `RATE_LIMIT_REAUTH`); `rate_limited` with `Retry-After`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/totp/disable")]
pub async fn disable_two_factor(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<DisableBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    two_factor::disable(&ctx, &who, body.password, &body.code, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How many recovery codes remain, when the set was made, and where used codes were used.
///
/// Never shows the codes themselves: they are shown once, when made. Lists how many are unused,
/// whether the set is low, and when and from where each used code was used.
#[utoipa::path(
    tag = "two_factor",
    operation_id = "get_recovery_codes_status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Never the codes themselves.", body = RecoveryCodesStatus),
        (status = 409, description = "2FA is not on (`two_factor_not_enabled`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account/recovery-codes")]
pub async fn get_recovery_codes_status(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let s = two_factor::recovery_codes(&ctx, &who).await?;
    Ok(HttpResponse::Ok().json(RecoveryCodesStatus {
        total: s.total,
        remaining: s.remaining,
        generated_at: s.generated_at,
        last_used_at: s.last_used_at,
        used: s
            .used
            .into_iter()
            .map(|u| UsedCodeResponse {
                used_at: u.used_at,
                ip: u.ip,
                user_agent: u.user_agent,
            })
            .collect(),
    }))
}

/// Generates a new set of recovery codes (shown once); every older code stops working.
///
/// Needs the account's password. The answer shows the new codes once; store them offline. Every
/// code of every older set stops working at once.
#[utoipa::path(
    tag = "two_factor",
    operation_id = "regenerate_recovery_codes",
    security(("bearer" = [])),
    request_body = PasswordBody,
    responses(
        (status = 201, description = "The new set, shown this once (`Cache-Control: no-store`).", body = RecoveryCodesResponse),
        (status = 403, description = "Wrong password (`invalid_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "2FA is not on (`two_factor_not_enabled`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords or confirmation codes on this account (`rate_limited`, `Retry-After`): the re-authentication budget, `RATE_LIMIT_REAUTH`.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/recovery-codes")]
pub async fn regenerate_recovery_codes(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let codes = two_factor::regenerate(&ctx, &who, body.validated()?.password, client).await?;
    Ok(HttpResponse::Created()
        .insert_header(no_store())
        .json(RecoveryCodesResponse::from(codes)))
}

/// Finishes a login with an authenticator code (one step of drift either way; each code once).
///
/// Second step of a login with two-factor authentication: the `mfa_token` of `POST
/// /api/v1/sessions` and a six-digit code. The mfa token is single use and lives 5 minutes;
/// failed codes count against the account's second-factor budget.
#[utoipa::path(
    security(),
    tag = "sessions",
    operation_id = "create_session_with_totp",
    request_body = SecondStepBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if any.")),
    responses(
        (status = 200, description = "Authenticated (with a `device_token` for a new device), or, under `NEW_DEVICE_CONFIRMATION=all` from a device the account does not know, `email_confirmation_required`.", body = SecondStepResponse),
        (status = 401, description = "`invalid_totp_code`, or `mfa_token_invalid` (unknown, used or expired).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_totp_code", "title": "Invalid authenticator code",
                "status": 401, "detail": "Invalid authenticator code. Check that your device's clock is right.",
                "code": "invalid_totp_code"})),
        (status = 422, description = "The code is empty.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed second-factor attempts (`rate_limited`, `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/totp")]
pub async fn create_session_with_totp(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<SecondStepBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let transport = SessionTransport::from_field(body.session_transport.as_deref())?;
    let step = login::login_with_totp(&ctx, &body.mfa_token, &body.code, client, device).await?;
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        SecondStepResponse::from(step),
    ))
}

/// Finishes a login with a recovery code; the answer says how many codes remain.
///
/// Three distinct refusals: `invalid_recovery_code` ("Invalid recovery code"; six digits get a
/// hint that they look like an authenticator code), `recovery_code_already_used` ("Recovery code
/// has been previously used") and `recovery_code_superseded` (the code belonged to a set
/// replaced on the date in `detail`).
#[utoipa::path(
    security(),
    tag = "sessions",
    operation_id = "create_session_with_recovery_code",
    request_body = SecondStepBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if any.")),
    responses(
        (status = 200, description = "Authenticated, with `recovery_codes_remaining` and `recovery_codes_should_regenerate: true` (make a new set); or, from a device the account does not know (no valid `X-Device-Token`) on an account with a verified email, `email_confirmation_required`: the code is spent and the login waits for the `confirm-login` link mailed to the account (`NEW_DEVICE_CONFIRMATION`).", body = SecondStepResponse,
            example = json!({"status": "authenticated", "access_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
                "token_type": "Bearer", "expires_in": 900,
                "refresh_token": "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c", "recovery_codes_remaining": 7,
                "recovery_codes_should_regenerate": true})),
        (status = 401, description = "`invalid_recovery_code`, `recovery_code_already_used`, `recovery_code_superseded` or `mfa_token_invalid`.", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:recovery_code_superseded", "title": "Recovery code was replaced",
                "status": 401, "detail": "This recovery code belonged to a set that was replaced on 2026-11-20. Codes from an older set stop working when new ones are generated: use a code from the newest set.",
                "code": "recovery_code_superseded"})),
        (status = 422, description = "The code is empty.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed second-factor attempts (`rate_limited`, `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/recovery-code")]
pub async fn create_session_with_recovery_code(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<SecondStepBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let transport = SessionTransport::from_field(body.session_transport.as_deref())?;
    let step =
        login::login_with_recovery_code(&ctx, &body.mfa_token, &body.code, client, device).await?;
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        SecondStepResponse::from(step),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_the_details_of_api_md() {
        assert_eq!(
            refusal_detail(&CodeRefusal::InvalidRecoveryCode {
                looks_like_totp: false
            }),
            "Invalid recovery code"
        );
        assert_eq!(
            refusal_detail(&CodeRefusal::AlreadyUsed { used_at: None }),
            "Recovery code has been previously used"
        );
    }

    #[test]
    fn cache_control_is_no_store() {
        assert_eq!(no_store().to_string(), "no-store");
    }
}
