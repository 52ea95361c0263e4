//! Documents a requester attaches when support asks (`RECOVERY_ATTACHMENTS=on`), and their
//! download by support. Kinds and filenames are judged in [`crate::domain::attachment`]; each
//! file is sealed with its own key, wrapped by the data key
//! ([`crate::security::crypto::DataCipher::seal_file`]); retention deletes them with the rest
//! of the request's personal data.

use super::requester::tracked;
use super::support::actionable;
use super::{AttachmentView, RequesterError, SupportError, request_event};
use crate::context::Ctx;
use crate::db::repo;
use crate::domain::{EventType, RecoveryStatus, RequestId};
use crate::services::audit::Actor;
use crate::services::sessions::Principal;
use crate::services::unit_of_work;
use crate::services::{ClientInfo, Failure};

/// A document uploaded by the requester, as received.
pub struct Upload {
    /// The filename the client sent.
    pub filename: Option<String>,
    /// The content type the client declared for the part.
    pub content_type: Option<String>,
    /// The bytes (at most `RECOVERY_ATTACHMENT_MAX_BYTES`: the API refuses larger ones).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// Whether attachments are accepted at all (`RECOVERY_ATTACHMENTS=on`).
pub fn attachments_enabled(ctx: &Ctx) -> bool {
    ctx.config.recovery_attachments
}

/// Whether the holder of `token` may attach a document to the request now: attachments are
/// on, the token is the request's, the request waits for the requester's answer and has room
/// for one more. The API asks before it reads an upload's body, so a refused client cannot
/// make the server read megabytes first; [`attach`] checks again inside its transaction.
pub async fn may_attach(ctx: &Ctx, id: &RequestId, token: &str) -> Result<(), RequesterError> {
    if !attachments_enabled(ctx) {
        return Err(not_accepted_at_all());
    }
    let (id, token) = (id.clone(), token.to_owned());
    unit_of_work::read(ctx, move |conn| {
        let request = tracked(conn, &id, &token)?;
        room_for_one_more(conn, &request)
    })
    .await
}

fn not_accepted_at_all() -> RequesterError {
    RequesterError::AttachmentsNotAccepted("Attachments are not accepted by this service.")
}

/// The request waits for its requester's answer and has fewer than three attachments.
fn room_for_one_more(
    conn: &mut crate::db::DbConnection,
    request: &crate::domain::RecoveryRequest,
) -> Result<(), RequesterError> {
    if request.status != RecoveryStatus::NeedsInfo {
        return Err(RequesterError::AttachmentsNotAccepted(
            "Documents can be attached only while support waits for your answer.",
        ));
    }
    if repo::recovery_requests::count_attachments(conn, &request.id)?
        >= crate::domain::attachment::MAX_ATTACHMENTS_PER_REQUEST
    {
        return Err(RequesterError::AttachmentsNotAccepted(
            "This request already has the most attachments allowed (3).",
        ));
    }
    Ok(())
}

/// Attaches a document to a request that waits for the requester's answer: a PDF, PNG or
/// JPEG judged by its bytes, stored encrypted with a key of its own, at most three per
/// request.
pub async fn attach(
    ctx: &Ctx,
    id: &RequestId,
    token: &str,
    upload: Upload,
    client: ClientInfo,
) -> Result<AttachmentView, RequesterError> {
    if !attachments_enabled(ctx) {
        return Err(not_accepted_at_all());
    }
    let kind = crate::domain::attachment::AttachmentKind::judge(
        &upload.bytes,
        upload.content_type.as_deref(),
    );
    let filename = crate::domain::attachment::sanitize_filename(upload.filename.as_deref());
    let size = i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX);
    // Encrypted before the transaction: the database never sees the plaintext.
    let sealed = ctx
        .cipher
        .seal_file(&upload.bytes)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    drop(upload);
    let (id, token) = (id.clone(), token.to_owned());
    unit_of_work::write(ctx, move |w| -> Result<AttachmentView, RequesterError> {
        let request = tracked(w.conn, &id, &token)?;
        room_for_one_more(w.conn, &request)?;
        let kind = kind?;
        let row = repo::recovery_requests::Attachment {
            id: uuid::Uuid::new_v4().to_string(),
            request_id: request.id.as_str().to_owned(),
            filename,
            content_type: kind.mime().to_owned(),
            size,
            wrapped_key: sealed.wrapped_key,
            content: sealed.content,
            uploaded_at: w.now,
        };
        repo::recovery_requests::insert_attachment(w.conn, &row)?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestAttachmentUploaded,
                Actor::Anonymous,
                &client,
            )
            .details(serde_json::json!({
                "attachment": row.id,
                "content_type": row.content_type,
                "size": row.size,
            })),
        )?;
        Ok(AttachmentView {
            id: row.id,
            filename: row.filename,
            content_type: row.content_type,
            size: row.size,
            uploaded_at: w.now,
        })
    })
    .await
}

/// An attachment's content, for support to download.
pub struct Download {
    /// Sanitised filename.
    pub filename: String,
    /// Media type.
    pub content_type: String,
    /// The decrypted bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// An attachment of a request, decrypted for support; every download is audited
/// (`recovery_request.attachment_viewed`).
pub async fn download_attachment(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    attachment_id: &str,
    client: ClientInfo,
) -> Result<Download, SupportError> {
    let (id, support, attachment_id) =
        (id.clone(), who.account_id.clone(), attachment_id.to_owned());
    unit_of_work::write(ctx, move |w| -> Result<Download, SupportError> {
        let request = actionable(w.conn, &id, &support)?;
        let row = repo::recovery_requests::attachment(w.conn, &request.id, &attachment_id)?
            .ok_or(SupportError::NotFound)?;
        let bytes = w
            .ctx
            .cipher
            .open_file(&row.wrapped_key, &row.content)
            .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestAttachmentViewed,
                Actor::Support(&support),
                &client,
            )
            .details(serde_json::json!({"attachment": row.id})),
        )?;
        Ok(Download {
            filename: row.filename,
            content_type: row.content_type,
            bytes,
        })
    })
    .await
}
