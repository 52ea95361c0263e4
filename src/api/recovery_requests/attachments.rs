//! Documents a requester attaches while support waits for their answer: the multipart upload,
//! read with a bound, handed to the service that judges and encrypts it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use utoipa::ToSchema;

use super::{AttachmentResponse, TrackingToken, request_id};
use crate::api::edge::PathId;
use crate::api::extract::Client;
use crate::api::problem::{ApiError, Code, Problem};
use crate::context::Ctx;
use crate::services::recovery_requests::{self, Upload};

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

/// What a multipart form adds around the file (boundaries, part headers) that a declared
/// `Content-Length` may carry beyond `RECOVERY_ATTACHMENT_MAX_BYTES`.
const FORM_OVERHEAD_BYTES: u64 = 16 * 1024;

/// The body's declared length, when the client sent one that parses.
fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn too_large_error(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::PayloadTooLarge,
        format!("An attachment may have at most {max} bytes."),
    )
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
    let limit = max;
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
        return Err(too_large_error(limit));
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
    let max = ctx.config.recovery_attachment_max_bytes;
    // Refuse before reading the body: a wrong token, attachments off, a request that does not
    // wait for an answer, or a declared length past the limit (plus room for the form's
    // headers) costs the server no upload.
    recovery_requests::may_attach(&ctx, &id, &token).await?;
    if declared_length(&req).is_some_and(|n| n > max.saturating_add(FORM_OVERHEAD_BYTES)) {
        return Err(too_large_error(max));
    }
    let upload = read_upload(&req, payload, max).await?;
    let a = recovery_requests::attach(&ctx, &id, &token, upload, client).await?;
    Ok(HttpResponse::Created().json(AttachmentResponse::from(a)))
}
