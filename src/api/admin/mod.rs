//! The support API (role `support`; other accounts get 403): the queue of recovery requests,
//! one request with its evidence, notes, messages, approval, denial, and the audit log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::api::common::page_number;
use crate::api::edge::{Body, PathId, Query, TextFields};
use crate::api::extract::{Client, SupportUser};
use crate::api::problem::{ApiError, Code, Problem};
use crate::api::recovery_requests::{MessageBody, RecoveryStatusDto, invalid_transition};
use crate::api::rules;
use crate::context::Ctx;
use crate::domain::{DeliverTo, RequestId};
use crate::services::accounts;
use crate::services::audit::{self, AuditFilter};
use crate::services::recovery_requests::{
    self, Approval, Forbidden, QueueFilter, QueueItem, SupportError,
};

mod views;

pub use views::{
    AccountLock, AdminDetail, AdminMail, AdminMessage, AdminMessageKind, AdminRequest, AuditEvent,
    AuditPage, CodesEvidence, DeliverToDto, EarlierRequest, EmailAddressChange, EvidenceResponse,
    PasskeyEvidence, PendingEmailChange, QueuePage,
};
use views::{admin_detail, admin_request};

/// Queue filters and pagination.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// Only this status (`submitted`, `in_review`, `needs_info`, `approved`, `denied`,
    /// `withdrawn`, `completed`, `expired`).
    #[param(value_type = Option<RecoveryStatusDto>)]
    pub status: Option<String>,
    /// Only this username, as submitted, ignoring case.
    #[param(schema_with = rules::username_filter)]
    #[validate(custom(function = rules::check_username_filter))]
    pub username: Option<String>,
    /// Page number, from 1 (default 1).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::page)]
    pub page: Option<i128>,
    /// Items per page, 1 to 100 (default 50).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::per_page)]
    pub per_page: Option<i128>,
}

/// Audit log filters and pagination.
#[derive(Debug, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[validate(schema(function = audit_event_type, skip_on_field_errors = false))]
pub struct AuditQuery {
    /// Only this account's events (its id).
    #[param(schema_with = rules::id_filter)]
    #[validate(custom(function = rules::check_id_filter))]
    pub account: Option<String>,
    /// Only this recovery request's events (its id).
    #[param(schema_with = rules::id_filter)]
    #[validate(custom(function = rules::check_id_filter))]
    pub request: Option<String>,
    /// Only this event type, e.g. `recovery_request.approved`.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = rules::event_type_filter)]
    pub event_type: Option<String>,
    /// Page number, from 1 (default 1).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::page)]
    pub page: Option<i128>,
    /// Items per page, 1 to 100 (default 50).
    #[serde(default, deserialize_with = "page_number")]
    #[param(schema_with = crate::api::rules::per_page)]
    pub per_page: Option<i128>,
}

/// The event type filter, named `type` as the query names it (validator names a field-level
/// error after the Rust field).
fn audit_event_type(q: &AuditQuery) -> Result<(), validator::ValidationError> {
    match q.event_type.as_deref() {
        Some(t) => rules::check_event_type_filter(t).map_err(|e| {
            let message = e
                .message
                .clone()
                .map(|m| m.into_owned())
                .unwrap_or_default();
            rules::field_refusal("type", "too_long", message)
        }),
        None => Ok(()),
    }
}

fn empty_is_none(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An approval.
#[derive(Debug, Default, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"comment": "Ownership proven through the account email.", "deliver_to": "account_email"}))]
#[validate(schema(function = approve_justification, skip_on_field_errors = false))]
pub struct ApproveBody {
    /// A comment for the log, at most 5000 characters.
    #[serde(default)]
    #[schema(schema_with = rules::optional_free_text)]
    #[validate(custom(function = rules::check_optional_free_text))]
    pub comment: Option<String>,
    /// Where the completion link goes (default `account_email`).
    #[serde(default)]
    pub deliver_to: DeliverToDto,
    /// Why the contact email (required with `contact_email`), at most 5000 characters.
    #[serde(default)]
    #[schema(schema_with = rules::optional_free_text)]
    #[validate(custom(function = rules::check_optional_free_text))]
    pub justification: Option<String>,
}

/// A link to the contact email needs a justification.
fn approve_justification(b: &ApproveBody) -> Result<(), validator::ValidationError> {
    let blank = b
        .justification
        .as_deref()
        .is_none_or(|j| j.trim().is_empty());
    if matches!(b.deliver_to, DeliverToDto::ContactEmail) && blank {
        return Err(rules::field_refusal(
            "justification",
            "required",
            "is required when deliver_to is contact_email".to_owned(),
        ));
    }
    Ok(())
}

impl TextFields for ApproveBody {
    const FREE_TEXT: &'static [&'static str] = &["comment", "justification"];
}

/// A denial.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"reason": "We could not verify that you own this account."}))]
pub struct DenyBody {
    /// Emailed to the requester.
    #[schema(required = true, schema_with = rules::free_text)]
    #[serde(default)]
    #[validate(required(message = "is required"), custom(function = rules::check_free_text))]
    pub reason: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::not_found("No recovery request has this id.")
}

/// The request id of a path: anything that is not an id matches no request (a 404).
fn request_id(raw: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(raw).ok_or_else(not_found)
}

impl TextFields for DenyBody {
    const FREE_TEXT: &'static [&'static str] = &["reason"];
}

impl From<SupportError> for ApiError {
    fn from(e: SupportError) -> Self {
        match e {
            SupportError::Invalid(issues) => issues.into(),
            SupportError::NotFound => not_found(),
            SupportError::InvalidTransition(t) => invalid_transition(t),
            SupportError::NoAccount => ApiError::new(
                StatusCode::CONFLICT,
                Code::InvalidTransition,
                "No account has this username: there is nothing to recover.",
            ),
            SupportError::NoVerifiedEmail => ApiError::new(
                StatusCode::CONFLICT,
                Code::NoVerifiedEmail,
                "The account has no verified email address. Deliver to the contact email, with a justification.",
            ),
            SupportError::Forbidden(Forbidden::OwnRequest) => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "No support account may act on a request for its own username.",
            ),
            SupportError::Forbidden(Forbidden::SameApprover) => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                "This request needs its second approval from another support account.",
            ),
            SupportError::Failure(f) => f.into(),
        }
    }
}

/// The queue of recovery requests, oldest first, with each request's age.
///
/// The review queue for support staff, oldest first, optionally filtered by status or username,
/// paged. Each item has its age in seconds. Needs the `support` role.
#[utoipa::path(
    tag = "support",
    operation_id = "list_recovery_requests",
    security(("bearer" = [])),
    params(QueueQuery),
    responses(
        (status = 200, description = "A page of requests.", body = QueuePage),
        (status = 403, description = "Not a support account (`forbidden`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status, or page out of range.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/recovery-requests")]
pub async fn list_recovery_requests(
    ctx: web::Data<Ctx>,
    _support: SupportUser,
    query: Query<QueueQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.validated()?;
    let page = accounts::page(query.page, query.per_page)?;
    let filter = QueueFilter {
        status: empty_is_none(&query.status),
        username: empty_is_none(&query.username),
    };
    let (items, total) = recovery_requests::queue(&ctx, filter, page).await?;
    let now = ctx.clock.now();
    Ok(HttpResponse::Ok().json(QueuePage {
        items: items
            .into_iter()
            .map(|QueueItem { request, .. }| admin_request(request, now))
            .collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

/// One request: the request, the account's evidence, messages, internal notes and timeline.
///
/// Everything support needs to decide: the request, what the account shows (email verified,
/// two-factor, last logins), the messages, the internal notes and the timeline of audit events.
/// Needs the `support` role.
#[utoipa::path(
    tag = "support",
    operation_id = "get_recovery_request_detail",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "The request in full.", body = AdminDetail),
        (status = 404, description = "No such request.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account, or the request names the caller's own username (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/recovery-requests/{id}")]
pub async fn get_recovery_request_detail(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    id: PathId,
) -> Result<HttpResponse, ApiError> {
    let d = recovery_requests::detail(&ctx, &who, &request_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(admin_detail(d, ctx.clock.now())))
}

/// Adds an internal note, never shown to the requester (a submitted request moves to review).
///
/// Notes are for support only: never mailed, never shown on the tracking page. A `submitted`
/// request moves to `in_review`.
#[utoipa::path(
    tag = "support",
    operation_id = "add_recovery_request_note",
    security(("bearer" = [])),
    request_body = MessageBody,
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 201, description = "Added.", body = AdminMessage),
        (status = 404, description = "No such request.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account, or the request names the caller's own username (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/recovery-requests/{id}/notes")]
pub async fn add_recovery_request_note(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    Client(client): Client,
    id: PathId,
    body: Body<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let body = body.validated()?;
    let m = recovery_requests::add_note(&ctx, &who, &id, body.body.as_deref(), client).await?;
    Ok(HttpResponse::Created().json(AdminMessage::from(m)))
}

/// Sends a message to the requester (emailed); the request waits for their answer (`needs_info`).
///
/// The message is mailed to the requester's contact email and shown on the tracking page; the
/// request moves to `needs_info` until they reply.
#[utoipa::path(
    tag = "support",
    operation_id = "message_recovery_requester",
    security(("bearer" = [])),
    request_body = MessageBody,
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 201, description = "Sent.", body = AdminMessage),
        (status = 404, description = "No such request.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not possible in this status (`invalid_transition`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or too long.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account, or the request names the caller's own username (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/recovery-requests/{id}/messages")]
pub async fn message_recovery_requester(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    Client(client): Client,
    id: PathId,
    body: Body<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let body = body.validated()?;
    let m = recovery_requests::send_message(&ctx, &who, &id, body.body.as_deref(), client).await?;
    Ok(HttpResponse::Created().json(AdminMessage::from(m)))
}

/// Approves a request. With ownership proven the completion link is emailed now; otherwise it is
/// held for the waiting period and the account's verified email is told, with a link to stop it.
///
/// Moves the request to `approved`. The completion link goes to the account's verified email by
/// default; sending it to the request's contact email needs a `justification`. The owner can
/// still dispute the request until the link is used.
#[utoipa::path(
    tag = "support",
    operation_id = "approve_recovery_request",
    security(("bearer" = [])),
    request_body = ApproveBody,
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "Approved; or, for a request naming a support account, the first of its two approvals recorded (`approvals: 1, approvals_needed: 2`, status unchanged).", body = AdminDetail),
        (status = 404, description = "No such request.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition` (status, or no such account) or `no_verified_email`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A justification is required with `contact_email` (`required`); `comment` and `justification` hold at most 5000 characters each (`too_long`, with the field).", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account; the request names the caller's own username; or (four eyes) the caller already gave the first of the two approvals a support account's request needs (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/recovery-requests/{id}/approve")]
pub async fn approve_recovery_request(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    Client(client): Client,
    id: PathId,
    body: Body<ApproveBody>,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let b = body.validated()?;
    let approval = Approval {
        comment: b.comment,
        deliver_to: match b.deliver_to {
            DeliverToDto::AccountEmail => DeliverTo::AccountEmail,
            DeliverToDto::ContactEmail => DeliverTo::ContactEmail,
        },
        justification: b.justification,
    };
    let d = recovery_requests::approve(&ctx, &who, &id, approval, client).await?;
    Ok(HttpResponse::Ok().json(admin_detail(d, ctx.clock.now())))
}

/// Denies a request; the requester is emailed the reason.
///
/// Moves the request to `denied` (final); the reason is mailed to the requester's contact
/// email.
#[utoipa::path(
    tag = "support",
    operation_id = "deny_recovery_request",
    security(("bearer" = [])),
    request_body = DenyBody,
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "Denied.", body = AdminDetail),
        (status = 404, description = "No such request.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not possible in this status (`invalid_transition`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The reason is required.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account, or the request names the caller's own username (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/recovery-requests/{id}/deny")]
pub async fn deny_recovery_request(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    Client(client): Client,
    id: PathId,
    body: Body<DenyBody>,
) -> Result<HttpResponse, ApiError> {
    let id = request_id(&id)?;
    let body = body.validated()?;
    let d = recovery_requests::deny(&ctx, &who, &id, body.reason.as_deref(), client).await?;
    Ok(HttpResponse::Ok().json(admin_detail(d, ctx.clock.now())))
}

/// Every security event and support action, newest first; filter by account, request or type.
///
/// The complete audit log for support staff, paged and filterable by account id, recovery
/// request id and event type. Needs the `support` role.
#[utoipa::path(
    tag = "support",
    operation_id = "list_audit_events",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of events.", body = AuditPage),
        (status = 403, description = "Not a support account.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Page out of range.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/audit-events")]
pub async fn list_audit_events(
    ctx: web::Data<Ctx>,
    _support: SupportUser,
    query: Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.validated()?;
    let page = accounts::page(query.page, query.per_page)?;
    let filter = AuditFilter {
        account_id: empty_is_none(&query.account),
        request_id: empty_is_none(&query.request),
        event_type: empty_is_none(&query.event_type),
    };
    let (items, total) = audit::events(&ctx, filter, page).await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        items: items.into_iter().map(AuditEvent::from).collect(),
        page: page.page,
        per_page: page.per_page,
        total,
    }))
}

/// Downloads a document the requester attached; every download is audited
/// (`recovery_request.attachment_viewed`).
///
/// Served as a download (`Content-Disposition: attachment`) under
/// `Content-Security-Policy: sandbox` and `X-Content-Type-Options: nosniff`, so a hostile file
/// cannot run in the support tool's origin.
#[utoipa::path(
    tag = "support",
    operation_id = "download_recovery_request_attachment",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The request's id."),
        ("attachment_id" = String, Path, description = "The attachment's id."),
    ),
    responses(
        (status = 200, description = "The file, as `application/pdf`, `image/png` or `image/jpeg`.", content_type = "application/pdf",
            headers(
                ("Content-Disposition" = String, description = "`attachment; filename=\"…\"`"),
                ("Content-Security-Policy" = String, description = "`sandbox`"),
                ("X-Content-Type-Options" = String, description = "`nosniff`"),
            )),
        (status = 404, description = "No such request or attachment.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a support account, or the request names the caller's own username (`forbidden`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/recovery-requests/{id}/attachments/{attachment_id}")]
pub async fn download_recovery_request_attachment(
    ctx: web::Data<Ctx>,
    SupportUser(who): SupportUser,
    Client(client): Client,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_id, raw_attachment) = path.into_inner();
    let id = request_id(&raw_id)?;
    let attachment = RequestId::parse(&raw_attachment).ok_or_else(not_found)?;
    let file = recovery_requests::download_attachment(&ctx, &who, &id, attachment.as_str(), client)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}\"", file.filename),
        ))
        .insert_header(("Content-Security-Policy", "sandbox"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Cache-Control", "no-store"))
        .body(file.bytes))
}
