//! The requester's side of account-recovery requests: file one, follow it with the tracking
//! token, reply, withdraw, answer the ownership mail, and complete an approved recovery. What it
//! answers is in [`views`]; uploads are in [`attachments`].

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::common::{Accepted, invalid_token};
use crate::api::edge::{Body, PathId, TextFields, header_line};
use crate::api::extract::{Client, DeviceToken};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::rules;
use crate::context::Ctx;
use crate::domain::{NextStepHints, Ownership, RecoveryStatus, RequestId};
use crate::services::recovery_requests::{self, RequesterError, Submission};

pub mod attachments;
mod views;

pub use views::{
    AttachmentResponse, MailStatusDto, MessageFrom, RecoveryStatusDto, RequesterMail,
    RequesterMessage, RequesterStatusResponse, SubmittedResponse,
};

/// The `X-Tracking-Token` header: the request's tracking token (a missing one, or one with a
/// control character, is a 404, like a wrong one).
#[derive(Debug, Clone)]
pub struct TrackingToken(pub String);

impl FromRequest for TrackingToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = header_line(req, "x-tracking-token")
            .filter(|t| t.len() <= crate::domain::limits::TOKEN_MAX_CHARS)
            .map(str::to_owned);
        Box::pin(async move { token.map(Self).ok_or_else(not_found) })
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("No recovery request matches this id and tracking token.")
}

/// The request id of a path: anything that is not an id matches no request (a 404).
fn request_id(raw: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(raw).ok_or_else(not_found)
}

/// A new recovery request. Every field is required; the three statements must be `true`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({
    "username": "jbber", "contact_email": "jb.new@example.org",
    "reason": "I lost my phone with the authenticator app and never saved my recovery codes.",
    "recovery_codes_lost": true, "code_of_conduct_accepted": true, "processing_time_acknowledged": true
}))]
pub struct SubmitBody {
    /// The account's username.
    #[schema(required = true, schema_with = rules::request_username)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_request_username))]
    pub username: Option<String>,
    /// Where we can reach you (the tracking link goes there).
    #[schema(required = true, schema_with = rules::contact_email)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_contact_email))]
    pub contact_email: Option<String>,
    /// What happened, 10 to 5000 characters.
    #[schema(required = true, schema_with = rules::reason)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_reason))]
    pub reason: Option<String>,
    /// "I never generated or have lost access to the recovery codes."
    #[schema(required = true, schema_with = rules::must_be_true)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_true))]
    pub recovery_codes_lost: Option<bool>,
    /// "I agree to follow the Code of Conduct."
    #[schema(required = true, schema_with = rules::must_be_true)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_true))]
    pub code_of_conduct_accepted: Option<bool>,
    /// "I understand that it may take a significant amount of time."
    #[schema(required = true, schema_with = rules::must_be_true)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_true))]
    pub processing_time_acknowledged: Option<bool>,
}

impl TextFields for SubmitBody {
    const FREE_TEXT: &'static [&'static str] = &["reason"];
}

/// A message body.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"body": "My last release was mypkg 2.3.1 on 2026-10-02."}))]
pub struct MessageBody {
    /// 1 to 5000 characters.
    #[schema(required = true, schema_with = rules::free_text)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_free_text))]
    pub body: Option<String>,
}

impl TextFields for MessageBody {
    const FREE_TEXT: &'static [&'static str] = &["body"];
}

/// Asking for lost tracking links.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"contact_email": "jb.new@example.org"}))]
pub struct TrackingLinksBody {
    /// The contact email the requests were filed with.
    #[schema(required = true, schema_with = rules::contact_email)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_contact_email))]
    pub contact_email: Option<String>,
}

impl TextFields for TrackingLinksBody {}

/// The owner's answer to the ownership mail.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM", "confirm": false}))]
pub struct OwnershipBody {
    /// The `token` of the `recovery/verify` link.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub token: String,
    /// `true`: it was me; `false`: it was not me.
    pub confirm: bool,
}

impl TextFields for OwnershipBody {}

/// The owner's answer as recorded.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnershipDto {
    /// No answer yet.
    Unanswered,
    /// It was me.
    Proven,
    /// It was not me.
    Disputed,
}

impl From<Ownership> for OwnershipDto {
    fn from(o: Ownership) -> Self {
        match o {
            Ownership::Unanswered => Self::Unanswered,
            Ownership::Proven => Self::Proven,
            Ownership::Disputed => Self::Disputed,
        }
    }
}

/// The recorded answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"ownership": "proven"}))]
pub struct OwnershipResponse {
    /// `proven` or `disputed`.
    pub ownership: OwnershipDto,
}

/// Completing a recovery.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM", "new_password": "velvet compass harbor 19"}))]
pub struct CompleteBody {
    /// The `token` of the `recovery/complete` link.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub token: String,
    /// The new password (policy applies).
    #[schema(required = true, schema_with = rules::new_password)]
    #[serde(default)]
    pub new_password: Option<String>,
}

impl TextFields for CompleteBody {}

/// A completed recovery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "completed", "username": "jbber",
    "next_step": "Log in with your new password and set up two-factor authentication again."}))]
pub struct CompletedResponse {
    /// Always `completed`.
    pub status: RecoveryStatusDto,
    /// The recovered account.
    pub username: String,
    /// What to do now.
    pub next_step: String,
}

impl From<RequesterError> for ApiError {
    fn from(e: RequesterError) -> Self {
        match e {
            RequesterError::Invalid(issues) => issues.into(),
            RequesterError::RateLimited { retry_after_secs } => {
                ApiError::rate_limited(retry_after_secs, "Too many requests. Try again later.")
            }
            RequesterError::NotFound => not_found(),
            RequesterError::InvalidTransition(t) => invalid_transition(t),
            RequesterError::InvalidToken => invalid_token(),
            RequesterError::AttachmentsNotAccepted(why) => {
                ApiError::new(StatusCode::CONFLICT, Code::AttachmentsNotAccepted, why)
            }
            RequesterError::Attachment(e) => vec![crate::services::FieldIssue::new(
                "file",
                match e {
                    crate::domain::attachment::AttachmentError::UnsupportedContent => {
                        "unsupported_type"
                    }
                    crate::domain::attachment::AttachmentError::DeclaredTypeMismatch => {
                        "type_mismatch"
                    }
                    crate::domain::attachment::AttachmentError::Empty => "required",
                },
                e.to_string(),
            )]
            .into(),
            RequesterError::Failure(f) => f.into(),
        }
    }
}

/// The 409 of a status change the table does not allow.
pub fn invalid_transition(t: crate::domain::InvalidTransition) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        Code::InvalidTransition,
        format!("This cannot be done to a request that is {}.", t.from),
    )
}

/// Files an account-recovery request for someone who lost every factor.
///
/// The answer is the same 202 whether or not the username exists. The tracking link goes to
/// the contact email; when the account has a verified email, an ownership mail goes there too.
#[utoipa::path(
    security(),
    tag = "recovery_requests",
    operation_id = "submit_recovery_request",
    request_body = SubmitBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if the browser has one: support sees whether the request came from a device the account knows, and auto-approval requires it.")),
    responses(
        (status = 202, description = "Filed.", body = SubmittedResponse),
        (status = 422, description = "Field errors, one per field (`required`, `too_short`, `must_be_true`, …).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:validation_failed", "title": "Validation failed",
                "status": 422, "detail": "code_of_conduct_accepted: must be true", "code": "validation_failed",
                "errors": [{"field": "code_of_conduct_accepted", "code": "must_be_true", "message": "must be true"}]})),
        (status = 429, description = "Too many submissions from this network (`rate_limited`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/recovery-requests")]
pub async fn submit_recovery_request(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<SubmitBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.validated()?;
    let done = recovery_requests::submit(
        &ctx,
        Submission {
            username: b.username,
            contact_email: b.contact_email,
            reason: b.reason,
            recovery_codes_lost: b.recovery_codes_lost,
            code_of_conduct_accepted: b.code_of_conduct_accepted,
            processing_time_acknowledged: b.processing_time_acknowledged,
        },
        client,
        device,
    )
    .await?;
    Ok(HttpResponse::Accepted().json(SubmittedResponse {
        id: done.id.into_string(),
        status: RecoveryStatusDto::Submitted,
        tracking_token: done.tracking_token,
        submitted_at: done.submitted_at,
    }))
}

/// Mails the tracking links of the open requests filed with this contact email again.
/// Always 202: the answer says nothing about whether there are any.
///
/// For requesters who lost the tracking mail. The answer is the same 202 whether or not any
/// request matches, so it tells nobody whether an address filed one.
#[utoipa::path(
    security(),
    tag = "recovery_requests",
    operation_id = "resend_tracking_links",
    request_body = TrackingLinksBody,
    responses(
        (status = 202, description = "Accepted; also past the per-address limit (3 mails per address per hour by default), when nothing is mailed.", body = Accepted),
        (status = 422, description = "The address is missing or malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this network (`rate_limited`, with `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/recovery-requests/tracking-links")]
pub async fn resend_tracking_links(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<TrackingLinksBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    recovery_requests::resend_tracking_links(&ctx, body.contact_email.as_deref(), client).await?;
    Ok(HttpResponse::Accepted().json(Accepted::new()))
}

/// The request's status, messages and next step, for the holder of its tracking token.
///
/// Authenticated by the request's tracking token in `X-Tracking-Token` (from the submission
/// answer or the tracking mail). A wrong id or token is the same 404.
#[utoipa::path(
    security(("tracking_token" = [])),
    tag = "recovery_requests",
    operation_id = "get_recovery_request",
    params(
        ("id" = String, Path, description = "The request's id."),
        ("X-Tracking-Token" = String, Header, description = "The request's tracking token: the `tracking_token` security scheme, listed as a parameter too for clients that do not apply security schemes."),
    ),
    responses(
        (status = 200, description = "The request.", body = RequesterStatusResponse),
        (status = 404, description = "Wrong id or token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/recovery-requests/{id}")]
pub async fn get_recovery_request(
    ctx: web::Data<Ctx>,
    id: PathId,
    TrackingToken(token): TrackingToken,
) -> Result<HttpResponse, ApiError> {
    let view = recovery_requests::status(&ctx, &request_id(&id)?, &token).await?;
    Ok(HttpResponse::Ok().json(RequesterStatusResponse::from(view)))
}

/// A reply to support; a request waiting for information goes back to review.
///
/// Authenticated by the tracking token. The reply is shown to support; a request in
/// `needs_info` goes back to `in_review`. Replies are limited per request per day.
#[utoipa::path(
    security(("tracking_token" = [])),
    tag = "recovery_requests",
    operation_id = "reply_to_recovery_request",
    request_body = MessageBody,
    params(
        ("id" = String, Path, description = "The request's id."),
        ("X-Tracking-Token" = String, Header, description = "The request's tracking token: the `tracking_token` security scheme, listed as a parameter too for clients that do not apply security schemes."),
    ),
    responses(
        (status = 201, description = "Recorded.", body = RequesterMessage),
        (status = 404, description = "Wrong id or token.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The request is closed (`invalid_transition`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty (`required`) or longer than 5000 characters (`too_long`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many replies to this request (20 per day by default; `rate_limited`, with `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/recovery-requests/{id}/messages")]
pub async fn reply_to_recovery_request(
    ctx: web::Data<Ctx>,
    id: PathId,
    TrackingToken(token): TrackingToken,
    Client(client): Client,
    body: Body<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let body = body.validated()?;
    let m = recovery_requests::reply(&ctx, &id, &token, body.body.as_deref(), client).await?;
    Ok(HttpResponse::Created().json(RequesterMessage::from(m)))
}

/// Withdraws the request.
///
/// The requester closes their own request (`withdrawn`, final). Authenticated by the tracking
/// token; a request already closed is a 409 `invalid_transition`.
#[utoipa::path(
    security(("tracking_token" = [])),
    tag = "recovery_requests",
    operation_id = "withdraw_recovery_request",
    params(
        ("id" = String, Path, description = "The request's id."),
        ("X-Tracking-Token" = String, Header, description = "The request's tracking token: the `tracking_token` security scheme, listed as a parameter too for clients that do not apply security schemes."),
    ),
    responses(
        (status = 204, description = "Withdrawn."),
        (status = 404, description = "Wrong id or token.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already closed (`invalid_transition`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/recovery-requests/{id}")]
pub async fn withdraw_recovery_request(
    ctx: web::Data<Ctx>,
    id: PathId,
    TrackingToken(token): TrackingToken,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    recovery_requests::withdraw(&ctx, &request_id(&id)?, &token, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The account owner's answer to the ownership mail: "it was me" or "it was not me".
///
/// "It was not me" stops an approved request's completion link and sends it back to review.
#[utoipa::path(
    security(),
    tag = "recovery_requests",
    operation_id = "answer_recovery_ownership",
    request_body = OwnershipBody,
    responses(
        (status = 200, description = "Recorded.", body = OwnershipResponse),
        (status = 400, description = "Unknown token, or the request is closed (`invalid_token`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/recovery-requests/verify-email")]
pub async fn answer_recovery_ownership(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<OwnershipBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let o = recovery_requests::answer_ownership(&ctx, &body.token, body.confirm, client).await?;
    Ok(HttpResponse::Ok().json(OwnershipResponse {
        ownership: o.into(),
    }))
}

/// Completes an approved recovery with the single-use link.
///
/// Sets the new password, removes every second factor (TOTP, every passkey) and every recovery
/// code, revokes every session, and marks the request completed. The owner then logs in with the password alone and sets up
/// two-factor authentication again.
#[utoipa::path(
    security(),
    tag = "recovery_requests",
    operation_id = "complete_account_recovery",
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Recovered.", body = CompletedResponse),
        (status = 400, description = "Unknown, used, expired or stopped link (`invalid_token`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is refused, with the reason (the link stays usable).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account-recovery/complete")]
pub async fn complete_account_recovery(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    body: Body<CompleteBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let done = recovery_requests::complete(&ctx, &body.token, body.new_password.as_deref(), client)
        .await?;
    Ok(HttpResponse::Ok().json(CompletedResponse {
        status: RecoveryStatusDto::Completed,
        username: done.username,
        next_step: RecoveryStatus::Completed.next_step(&NextStepHints::default()),
    }))
}
