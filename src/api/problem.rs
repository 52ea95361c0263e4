//! The one problem+json renderer (RFC 9457) for every error the API answers.
//!
//! [`ApiError`] carries a status, a stable [`Code`] and a human detail. Service errors are
//! mapped to it in the API modules; extractor failures, unknown routes, wrong methods, oversized
//! bodies and panics are mapped here. A 5xx is logged once with its cause; the cause never
//! reaches the body.

use std::fmt;

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error as actix_error, web};
use serde::Serialize;
use utoipa::ToSchema;

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! codes {
    ($($variant:ident => $text:literal, $title:literal;)*) => {
        /// The stable, machine-readable error codes of API.md. Never rename one once shipped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Code { $(
            #[doc = $title]
            $variant,
        )* }

        impl Code {
            /// Every code, in the order of API.md.
            pub const ALL: &'static [Code] = &[$(Self::$variant,)*];

            /// The code as it appears in the `code` field.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }
            /// The short, fixed title for this code.
            pub fn title(self) -> &'static str {
                match self { $(Self::$variant => $title,)* }
            }
        }
    };
}

codes! {
    MalformedRequest => "malformed_request", "Malformed request";
    Unauthorized => "unauthorized", "Authentication required";
    Forbidden => "forbidden", "Forbidden";
    NotFound => "not_found", "Not found";
    MethodNotAllowed => "method_not_allowed", "Method not allowed";
    PayloadTooLarge => "payload_too_large", "Payload too large";
    UnsupportedMediaType => "unsupported_media_type", "Unsupported media type";
    ValidationFailed => "validation_failed", "Validation failed";
    RateLimited => "rate_limited", "Too many requests";
    InternalError => "internal_error", "Internal error";
    ServiceUnavailable => "service_unavailable", "Service unavailable";
    RequestTimeout => "request_timeout", "Request timeout";
    InvalidCredentials => "invalid_credentials", "Invalid credentials";
    InvalidTotpCode => "invalid_totp_code", "Invalid authenticator code";
    InvalidRecoveryCode => "invalid_recovery_code", "Invalid recovery code";
    RecoveryCodeAlreadyUsed => "recovery_code_already_used", "Recovery code has been previously used";
    RecoveryCodeSuperseded => "recovery_code_superseded", "Recovery code was replaced";
    MfaTokenInvalid => "mfa_token_invalid", "Second-factor step expired or invalid";
    InvalidWebauthnAssertion => "invalid_webauthn_assertion", "Passkey not accepted";
    InvalidWebauthnResponse => "invalid_webauthn_response", "Passkey registration not accepted";
    InvalidRefreshToken => "invalid_refresh_token", "Invalid refresh token";
    InvalidPassword => "invalid_password", "Wrong password";
    InvalidToken => "invalid_token", "Invalid or expired link";
    UsernameTaken => "username_taken", "Username taken";
    EmailTaken => "email_taken", "Email address taken";
    EmailAlreadyVerified => "email_already_verified", "Email address already verified";
    TwoFactorAlreadyEnabled => "two_factor_already_enabled", "Two-factor authentication already enabled";
    TwoFactorNotEnabled => "two_factor_not_enabled", "Two-factor authentication not enabled";
    InvalidTransition => "invalid_transition", "Invalid status change";
    NoVerifiedEmail => "no_verified_email", "No verified email address";
    CsrfFailed => "csrf_failed", "CSRF token missing or wrong";
    AccountLocked => "account_locked", "Account locked";
    AttachmentsNotAccepted => "attachments_not_accepted", "Attachments not accepted";
}

/// One failing field of a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"field": "password", "code": "too_short", "message": "must be at least 8 characters"}))]
pub struct FieldError {
    /// The JSON field at fault.
    pub field: String,
    /// A stable code: `required`, `too_short`, `too_long`, `invalid`, `must_be_true`; for
    /// passwords `contains_personal_info`, `contains_service_name`, `breached`, `blocklisted`,
    /// `weak`; `control_character` (a control character where none may be), `confusable` (looks
    /// like another account's username or email, or mixes scripts); …
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The RFC 9457 problem document every error answers with.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:account-recovery:problem:invalid_recovery_code",
    "title": "Invalid recovery code",
    "status": 401,
    "detail": "Invalid recovery code",
    "code": "invalid_recovery_code"
}))]
pub struct Problem {
    /// A URI naming the problem type: `urn:account-recovery:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for people.
    pub detail: String,
    /// The stable machine-readable code (API.md).
    pub code: Code,
    /// One entry per failing field (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// An error answer: status, code and detail, rendered as problem+json.
pub struct ApiError {
    status: StatusCode,
    code: Code,
    detail: String,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    allow: Option<String>,
    /// A 401 for a bearer token that was sent but refused (RFC 6750 `error="invalid_token"`).
    token_refused: bool,
    cause: Option<anyhow::Error>,
}

impl fmt::Debug for ApiError {
    // Deliberately without the detail of 5xx causes: logs get those once, through `log_cause`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status.as_u16())
            .field("code", &self.code.as_str())
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code.as_str())
    }
}

impl ApiError {
    /// An error with a status, a code and a detail sentence.
    pub fn new(status: StatusCode, code: Code, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_secs: None,
            allow: None,
            token_refused: false,
            cause: None,
        }
    }

    /// A 422 with one entry per failing field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "Some fields are not valid.".to_string(),
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::ValidationFailed,
                detail,
            )
        }
    }

    /// A 422 for one field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, code, message)])
    }

    /// A 500 whose cause is logged, never shown.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::InternalError,
                "Something went wrong on our side. Try again later.",
            )
        }
    }

    /// A 503: the database (or another dependency) does not answer or cannot take writes (a
    /// full disk, a read-only database). `Retry-After` says when to try again: such outages
    /// pass by themselves.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        Self {
            cause: Some(cause.into()),
            retry_after_secs: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Code::ServiceUnavailable,
                "The service is temporarily unavailable. Try again shortly.",
            )
        }
    }

    /// A 429 with its `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64, detail: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, Code::RateLimited, detail)
        }
    }

    /// A 401 `unauthorized`: no, bad, expired or revoked access token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            "A valid access token is required.",
        )
    }

    /// A 401 `unauthorized` for an access token that was sent and refused (malformed, expired,
    /// revoked): its `WWW-Authenticate` says `error="invalid_token"` (RFC 6750).
    pub fn invalid_access_token() -> Self {
        Self {
            token_refused: true,
            ..Self::unauthorized()
        }
    }

    /// A 403 `forbidden`: the account's role does not allow this.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            Code::Forbidden,
            "Your account is not allowed to do this.",
        )
    }

    /// A 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, detail)
    }

    /// A 405 with the `Allow` header.
    pub fn method_not_allowed(allow: String) -> Self {
        Self {
            detail: format!("This resource accepts: {allow}."),
            allow: Some(allow),
            ..Self::new(StatusCode::METHOD_NOT_ALLOWED, Code::MethodNotAllowed, "")
        }
    }

    /// The status of this answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The field errors of a 422 (for unit tests of the mappings).
    #[cfg(test)]
    pub fn field_errors_for_tests(&self) -> &[FieldError] {
        &self.errors
    }

    /// The code of this answer.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The generic problem for a bare status (used for errors actix raises itself).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::new(
                status,
                Code::MalformedRequest,
                "The request could not be read.",
            ),
            401 => Self::unauthorized(),
            403 => Self::forbidden(),
            404 => Self::not_found("There is nothing at this address."),
            405 => Self::new(
                status,
                Code::MethodNotAllowed,
                "This resource does not accept that method.",
            ),
            413 => Self::new(
                status,
                Code::PayloadTooLarge,
                "The request body is larger than 64 KiB.",
            ),
            415 => Self::new(
                status,
                Code::UnsupportedMediaType,
                "Send the body as application/json.",
            ),
            422 => Self::new(status, Code::ValidationFailed, "Some fields are not valid."),
            429 => Self::rate_limited(60, "Too many requests. Try again later."),
            503 => Self::unavailable(anyhow::anyhow!("service unavailable")),
            _ if status.is_client_error() => Self::new(
                status,
                Code::MalformedRequest,
                "The request could not be handled.",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::InternalError,
                "Something went wrong on our side. Try again later.",
            ),
        }
    }

    fn problem(&self) -> Problem {
        Problem {
            type_: format!("urn:account-recovery:problem:{}", self.code.as_str()),
            title: self.code.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            errors: (!self.errors.is_empty()).then(|| self.errors.clone()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => tracing::error!(
                    status = self.status.as_u16(),
                    code = self.code.as_str(),
                    error = format!("{cause:#}"),
                    "request failed"
                ),
                None => tracing::error!(
                    status = self.status.as_u16(),
                    code = self.code.as_str(),
                    "request failed"
                ),
            }
        }
        let mut builder = HttpResponse::build(self.status);
        builder.content_type(PROBLEM_JSON);
        if let Some(secs) = self.retry_after_secs {
            builder.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            builder.insert_header((header::ALLOW, value));
        }
        // Every 401 names the scheme that authenticates (RFC 6750 §3); a refused token says so.
        if self.status == StatusCode::UNAUTHORIZED {
            builder.insert_header((
                header::WWW_AUTHENTICATE,
                if self.token_refused {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                },
            ));
        }
        let body = serde_json::to_string(&self.problem())
            .unwrap_or_else(|_| r#"{"code":"internal_error","status":500}"#.to_string());
        builder.body(body)
    }
}

/// Maps a JSON body failure: over 64 KiB → 413, wrong content type → 415, a missing field →
/// 422 `required` (API.md), anything else that cannot be read into the body's shape → 400.
pub fn json_error(err: actix_error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        E::ContentType => ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        E::Deserialize(de) => deserialize_error(de),
        E::Payload(actix_error::PayloadError::Overflow) => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        _ => ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::MalformedRequest,
            "The request body could not be read.",
        ),
    };
    actix_web::Error::from(api)
}

/// A body that is JSON but not of the expected shape: a missing field is a 422 `required`,
/// anything else a 400 `malformed_request`.
pub fn deserialize_error(de: &serde_json::Error) -> ApiError {
    match missing_field(de) {
        Some(field) => ApiError::field(&field, "required", "is required"),
        None => ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::MalformedRequest,
            format!("The JSON body could not be read: {}", describe_serde(de)),
        ),
    }
}

/// serde reports a missing field as "missing field `name`"; that is a 422, not a 400.
fn missing_field(err: &serde_json::Error) -> Option<String> {
    if !err.is_data() {
        return None;
    }
    let text = err.to_string();
    let rest = text.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

/// serde's message without the echo of any client value (it never echoes values for the
/// errors we allow through, but a position is all a client needs).
fn describe_serde(err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!(
            "invalid JSON at line {} column {}",
            err.line(),
            err.column()
        ),
        _ => {
            let text = err.to_string();
            // "invalid type: integer `5`, expected a string at line 1 column 9": keep the shape.
            match text.split_once(" at line ") {
                Some((head, _)) => head.chars().take(200).collect(),
                None => text.chars().take(200).collect(),
            }
        }
    }
}

/// Maps a path parameter failure to a 404: a malformed id names no resource.
pub fn path_error(_err: actix_error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::not_found("There is nothing at this address.").into()
}

/// Maps a query string failure to a 400 `malformed_request`.
pub fn query_error(err: actix_error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        actix_error::QueryPayloadError::Deserialize(de) => {
            format!("The query string could not be read: {de}")
        }
        _ => "The query string could not be read.".to_string(),
    };
    ApiError::new(StatusCode::BAD_REQUEST, Code::MalformedRequest, detail).into()
}

/// The extractor configuration of every route: 64 KiB bodies, errors through this renderer.
pub fn configure_extractors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(json_error),
    )
    .app_data(web::PayloadConfig::default().limit(64 * 1024))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error));
}

impl From<crate::services::Failure> for ApiError {
    fn from(e: crate::services::Failure) -> Self {
        match e {
            crate::services::Failure::Unavailable(m) => {
                Self::unavailable(anyhow::anyhow!("database unavailable: {m}"))
            }
            crate::services::Failure::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<Vec<crate::services::FieldIssue>> for ApiError {
    fn from(issues: Vec<crate::services::FieldIssue>) -> Self {
        Self::validation(
            issues
                .into_iter()
                .map(|i| FieldError::new(i.field, i.code, i.message))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_field_is_recognised() {
        #[derive(serde::Deserialize)]
        #[expect(dead_code, reason = "only the error matters")]
        struct Body {
            login: String,
        }
        let err = serde_json::from_str::<Body>("{}").err().expect("must fail");
        assert_eq!(missing_field(&err).as_deref(), Some("login"));
        let err = serde_json::from_str::<Body>(r#"{"login": 5}"#)
            .err()
            .expect("must fail");
        assert_eq!(missing_field(&err), None);
    }

    #[test]
    fn every_code_has_a_distinct_text() {
        let codes = [
            Code::MalformedRequest,
            Code::InvalidRecoveryCode,
            Code::RecoveryCodeAlreadyUsed,
        ];
        for c in codes {
            assert_eq!(
                serde_json::to_value(c).expect("serialises"),
                serde_json::Value::String(c.as_str().into())
            );
        }
    }
}
