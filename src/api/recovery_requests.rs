//! The requester's side of account-recovery requests: file one, follow it with the tracking
//! token, reply, withdraw, answer the ownership mail, and complete an approved recovery.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::common::{Accepted, invalid_token};
use crate::api::edge::{Body, PathId, TextFields, header_line};
use crate::api::extract::{Client, DeviceToken};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::rules;
use crate::context::Ctx;
use crate::domain::{MessageKind, Ownership, RecoveryStatus, RequestId};
use crate::services::recovery_requests::{
    self, AttachmentView, MailState, MailView, MessageView, RequesterError, RequesterView,
    Submission, Upload,
};

/// The `X-Tracking-Token` header: the request's tracking token (a missing one, or one with a
/// control character, is a 404, like a wrong one).
#[derive(Debug, Clone)]
pub struct TrackingToken(pub String);

impl FromRequest for TrackingToken {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = header_line(req, "x-tracking-token").map(str::to_owned);
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

/// A request's status, as stored and shown.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStatusDto {
    /// Filed, not yet looked at.
    Submitted,
    /// Support is looking at it.
    InReview,
    /// Support asked something.
    NeedsInfo,
    /// Approved: a completion link is (or will be) sent.
    Approved,
    /// Denied (final).
    Denied,
    /// Withdrawn (final).
    Withdrawn,
    /// Completed (final).
    Completed,
    /// The completion link expired.
    Expired,
    /// The requester did not answer support in time (final).
    Abandoned,
}

impl From<RecoveryStatus> for RecoveryStatusDto {
    fn from(s: RecoveryStatus) -> Self {
        match s {
            RecoveryStatus::Submitted => Self::Submitted,
            RecoveryStatus::InReview => Self::InReview,
            RecoveryStatus::NeedsInfo => Self::NeedsInfo,
            RecoveryStatus::Approved => Self::Approved,
            RecoveryStatus::Denied => Self::Denied,
            RecoveryStatus::Withdrawn => Self::Withdrawn,
            RecoveryStatus::Completed => Self::Completed,
            RecoveryStatus::Expired => Self::Expired,
            RecoveryStatus::Abandoned => Self::Abandoned,
        }
    }
}

/// The answer to a submission: the same whether or not the username exists.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b8f0c52-6a1e-4d3b-9f7c-2e4a1b0c9d8e", "status": "submitted",
    "tracking_token": "Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM",
    "submitted_at": "2026-11-23T10:00:00Z"
}))]
pub struct SubmittedResponse {
    /// The request's id.
    pub id: String,
    /// Always `submitted`.
    pub status: RecoveryStatusDto,
    /// Send as `X-Tracking-Token` to follow the request; shown once and mailed to the contact
    /// email.
    pub tracking_token: String,
    /// When.
    pub submitted_at: DateTime<Utc>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageFrom {
    /// The requester.
    Requester,
    /// Support staff.
    Support,
}

/// A message between requester and support.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"from": "support", "body": "Which packages did you publish last?", "sent_at": "2026-11-24T09:00:00Z"}))]
pub struct RequesterMessage {
    /// Who wrote it.
    pub from: MessageFrom,
    /// The text.
    pub body: String,
    /// When.
    pub sent_at: DateTime<Utc>,
}

impl From<MessageView> for RequesterMessage {
    fn from(m: MessageView) -> Self {
        Self {
            from: if m.kind == MessageKind::Support {
                MessageFrom::Support
            } else {
                MessageFrom::Requester
            },
            body: m.body,
            sent_at: m.sent_at,
        }
    }
}

/// Where a mail stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailStatusDto {
    /// Waiting for (another) delivery attempt.
    Queued,
    /// Accepted by the mail server.
    Sent,
    /// Refused for good by the mail server, or given up after too many attempts: everything
    /// it said is also on this page.
    Failed,
}

impl From<MailState> for MailStatusDto {
    fn from(s: MailState) -> Self {
        match s {
            MailState::Queued => Self::Queued,
            MailState::Sent => Self::Sent,
            MailState::Failed => Self::Failed,
        }
    }
}

/// A mail about the request, as the requester sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "recovery_tracking", "to": "j***@example.org",
    "queued_at": "2026-11-23T10:00:00Z", "sent_at": "2026-11-23T10:00:02Z", "status": "sent"}))]
pub struct RequesterMail {
    /// What the mail is: `recovery_tracking`, `recovery_message`, `recovery_reminder`,
    /// `recovery_denied`, `recovery_abandoned`, `recovery_link`, …
    pub kind: String,
    /// The recipient, masked.
    pub to: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// `queued`, `sent` or `failed`.
    pub status: MailStatusDto,
}

impl From<MailView> for RequesterMail {
    fn from(m: MailView) -> Self {
        Self {
            kind: m.kind,
            to: m.to,
            queued_at: m.queued_at,
            sent_at: m.sent_at,
            status: m.status.into(),
        }
    }
}

/// An attached document (never its content).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0d8a3c1e-7f52-4b0a-9c61-5e2f4a7b8c9d", "filename": "passport_scan.pdf",
    "content_type": "application/pdf", "size": 182734, "uploaded_at": "2026-11-24T10:00:00Z"}))]
pub struct AttachmentResponse {
    /// Id.
    pub id: String,
    /// The filename, sanitised (letters, digits, `.`, `-`, `_`).
    pub filename: String,
    /// `application/pdf`, `image/png` or `image/jpeg`, judged by the content.
    pub content_type: String,
    /// Bytes.
    #[schema(value_type = u32)]
    pub size: i64,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

impl From<AttachmentView> for AttachmentResponse {
    fn from(a: AttachmentView) -> Self {
        Self {
            id: a.id,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            uploaded_at: a.uploaded_at,
        }
    }
}

/// The multipart form of an upload (for the OpenAPI document; the handler streams it).
#[derive(Debug, ToSchema)]
#[expect(
    dead_code,
    reason = "describes the multipart body in the OpenAPI document only"
)]
pub struct AttachmentForm {
    /// The document: a PDF, PNG or JPEG of at most `RECOVERY_ATTACHMENT_MAX_BYTES` (5 MiB by
    /// default), with its filename and content type.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The request as its requester sees it (never support's internal notes).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b8f0c52-6a1e-4d3b-9f7c-2e4a1b0c9d8e", "status": "needs_info",
    "submitted_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-24T09:00:00Z",
    "messages": [{"from": "support", "body": "Which packages did you publish last?", "sent_at": "2026-11-24T09:00:00Z"}],
    "next_step": "Support needs more information from you: read their message below and reply here.",
    "queue_position": null, "estimated_decision_at": "2026-11-27T10:00:00Z",
    "mails": [{"kind": "recovery_tracking", "to": "j***@example.org", "queued_at": "2026-11-23T10:00:00Z",
        "sent_at": "2026-11-23T10:00:02Z", "status": "sent"}],
    "attachments": []
}))]
pub struct RequesterStatusResponse {
    /// The request's id.
    pub id: String,
    /// Where it stands.
    pub status: RecoveryStatusDto,
    /// Filed at.
    pub submitted_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Messages, oldest first.
    pub messages: Vec<RequesterMessage>,
    /// What happens next, for people.
    pub next_step: &'static str,
    /// The request's place in the queue (1 = next): the open requests in `submitted` or
    /// `in_review` filed before it, plus one; null in any other status.
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub queue_position: Option<i64>,
    /// `submitted_at` plus the median time to a decision of the requests decided in the last
    /// 30 days; null with fewer than five such decisions, and once this request is decided.
    pub estimated_decision_at: Option<DateTime<Utc>>,
    /// Every mail sent to the contact address about this request (and the completion link),
    /// oldest first, with the address masked: a failed mail never blocks the request, and
    /// everything it said can be read here.
    pub mails: Vec<RequesterMail>,
    /// The documents attached to the request, oldest first.
    pub attachments: Vec<AttachmentResponse>,
}

impl From<RequesterView> for RequesterStatusResponse {
    fn from(v: RequesterView) -> Self {
        Self {
            id: v.id.into_string(),
            status: v.status.into(),
            submitted_at: v.submitted_at,
            updated_at: v.updated_at,
            messages: v.messages.into_iter().map(RequesterMessage::from).collect(),
            next_step: v.status.next_step(),
            queue_position: v.queue_position,
            estimated_decision_at: v.estimated_decision_at,
            mails: v.mails.into_iter().map(RequesterMail::from).collect(),
            attachments: v
                .attachments
                .into_iter()
                .map(AttachmentResponse::from)
                .collect(),
        }
    }
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
    pub next_step: &'static str,
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
/// Sets the new password, removes TOTP and every recovery code, revokes every session, and
/// marks the request completed. The owner then logs in with the password alone and sets up
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
        next_step: RecoveryStatus::Completed.next_step(),
    }))
}

/// Reads the one `file` part of a multipart upload, refusing more than `max` bytes (the rest
/// of the body is read and dropped, up to a bound, so the client gets the 413).
async fn read_upload(
    req: &HttpRequest,
    payload: web::Payload,
    max: u64,
) -> Result<Upload, ApiError> {
    use futures_util::StreamExt as _;
    let malformed = |d: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::MalformedRequest,
            d.to_owned(),
        )
    };
    let is_multipart = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "Send the document as multipart/form-data with one `file` part.",
        ));
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    // Past this, the connection is not worth keeping: stop reading and answer.
    let drain_bound = max.saturating_mul(4);
    let mut form = actix_multipart::Multipart::new(req.headers(), payload);
    let mut upload: Option<Upload> = None;
    let mut seen = 0usize;
    let mut too_large = false;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|_| malformed("The multipart body could not be read."))?;
        let is_file = field.content_disposition().and_then(|d| d.get_name()) == Some("file");
        let keep = is_file && upload.is_none() && !too_large;
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|_| malformed("The multipart body could not be read."))?;
            seen = seen.saturating_add(chunk.len());
            if keep && !too_large {
                if bytes.len().saturating_add(chunk.len()) > max {
                    too_large = true;
                    bytes = Vec::new();
                } else {
                    bytes.extend_from_slice(&chunk);
                }
            }
            if seen > drain_bound {
                too_large = true;
                break;
            }
        }
        if keep && !too_large {
            upload = Some(Upload {
                filename: field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_owned),
                content_type: field.content_type().map(|m| m.essence_str().to_owned()),
                bytes,
            });
        }
        if seen > drain_bound {
            break;
        }
    }
    if too_large {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("An attachment may have at most {max} bytes."),
        ));
    }
    upload.ok_or_else(|| {
        vec![crate::services::FieldIssue::new(
            "file",
            "required",
            "a `file` part is required",
        )]
        .into()
    })
}

/// Attaches a document (PDF, PNG or JPEG) to a request that waits for the requester's answer.
///
/// Only while the request is `needs_info` and when the service accepts attachments
/// (`RECOVERY_ATTACHMENTS=on`); at most three per request and `RECOVERY_ATTACHMENT_MAX_BYTES`
/// (5 MiB by default) each. The type is judged by the bytes, and the declared type must agree.
/// The file is stored encrypted; only support can download it.
#[utoipa::path(
    tag = "recovery_requests",
    operation_id = "attach_to_recovery_request",
    security(("tracking_token" = [])),
    request_body(content = AttachmentForm, content_type = "multipart/form-data"),
    params(
        ("id" = String, Path, description = "The request's id."),
        ("X-Tracking-Token" = String, Header, description = "The request's tracking token."),
    ),
    responses(
        (status = 201, description = "Attached.", body = AttachmentResponse),
        (status = 400, description = "The multipart body could not be read (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Wrong id or token.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Attachments are off, the request does not wait for the requester's answer, or it already has three (`attachments_not_accepted`).", body = Problem, content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:attachments_not_accepted", "title": "Attachments not accepted",
                "status": 409, "detail": "Documents can be attached only while support waits for your answer.", "code": "attachments_not_accepted"})),
        (status = 413, description = "Larger than `RECOVERY_ATTACHMENT_MAX_BYTES` (`payload_too_large`).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not `multipart/form-data` (`unsupported_media_type`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No `file` part (`required`), not a PDF, PNG or JPEG (`unsupported_type`), or a declared type that is not the content's (`type_mismatch`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/recovery-requests/{id}/attachments")]
pub async fn attach_to_recovery_request(
    ctx: web::Data<Ctx>,
    req: HttpRequest,
    id: PathId,
    TrackingToken(token): TrackingToken,
    Client(client): Client,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let upload = read_upload(&req, payload, ctx.config.recovery_attachment_max_bytes).await?;
    let a = recovery_requests::attach(&ctx, &id, &token, upload, client).await?;
    Ok(HttpResponse::Created().json(AttachmentResponse::from(a)))
}
