//! The `recovery_request_attachments` table: evidence a requester uploads, stored encrypted
//! (the content under its own key, that key wrapped by the data key).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::recovery_request_attachments;
use crate::db::{DbConnection, on_backend};
use crate::domain::RequestId;

/// A stored attachment (its content encrypted with its own key, the key wrapped by the data
/// key).
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Id (UUID).
    pub id: String,
    /// The request.
    pub request_id: String,
    /// Sanitised filename.
    pub filename: String,
    /// `application/pdf`, `image/png` or `image/jpeg`.
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: i64,
    /// The file's key, sealed by the data key.
    pub wrapped_key: String,
    /// base64(nonce ‖ ciphertext ‖ tag).
    pub content: String,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

/// A stored attachment, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_request_attachments)]
struct AttachmentRow {
    id: String,
    request_id: String,
    filename: String,
    content_type: String,
    size: i64,
    wrapped_key: String,
    content: String,
    uploaded_at: NaiveDateTime,
}

/// An attachment without its content.
#[derive(Debug, Clone)]
pub struct AttachmentMeta {
    /// Id.
    pub id: String,
    /// Sanitised filename.
    pub filename: String,
    /// Media type.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// When.
    pub uploaded_at: DateTime<Utc>,
}

/// Stores an attachment.
pub fn insert_attachment(conn: &mut DbConnection, a: &Attachment) -> QueryResult<()> {
    diesel::insert_into(recovery_request_attachments::table)
        .values(AttachmentRow {
            id: a.id.clone(),
            request_id: a.request_id.clone(),
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            wrapped_key: a.wrapped_key.clone(),
            content: a.content.clone(),
            uploaded_at: naive(a.uploaded_at),
        })
        .execute(conn)
        .map(|_| ())
}

/// How many attachments the request has.
pub fn count_attachments(conn: &mut DbConnection, id: &RequestId) -> QueryResult<i64> {
    recovery_request_attachments::table
        .filter(recovery_request_attachments::request_id.eq(id.as_str()))
        .count()
        .get_result(conn)
}

/// The request's attachments without their content, oldest first. On the backend's own
/// connection ([`on_backend`]): the requester's status view runs it on every read.
pub fn attachments(conn: &mut DbConnection, id: &RequestId) -> QueryResult<Vec<AttachmentMeta>> {
    on_backend!(conn, |conn| {
        recovery_request_attachments::table
            .filter(recovery_request_attachments::request_id.eq(id.as_str()))
            .order((
                recovery_request_attachments::uploaded_at.asc(),
                recovery_request_attachments::id.asc(),
            ))
            .select((
                recovery_request_attachments::id,
                recovery_request_attachments::filename,
                recovery_request_attachments::content_type,
                recovery_request_attachments::size,
                recovery_request_attachments::uploaded_at,
            ))
            .load::<(String, String, String, i64, NaiveDateTime)>(conn)
            .map(|rows| {
                rows.into_iter()
                    .map(|(id, filename, content_type, size, at)| AttachmentMeta {
                        id,
                        filename,
                        content_type,
                        size,
                        uploaded_at: utc(at),
                    })
                    .collect()
            })
    })
}

/// One attachment of the request, with its content.
pub fn attachment(
    conn: &mut DbConnection,
    id: &RequestId,
    attachment_id: &str,
) -> QueryResult<Option<Attachment>> {
    recovery_request_attachments::table
        .find(attachment_id)
        .filter(recovery_request_attachments::request_id.eq(id.as_str()))
        .select(AttachmentRow::as_select())
        .get_result::<AttachmentRow>(conn)
        .optional()
        .map(|row| {
            row.map(|r| Attachment {
                id: r.id,
                request_id: r.request_id,
                filename: r.filename,
                content_type: r.content_type,
                size: r.size,
                wrapped_key: r.wrapped_key,
                content: r.content,
                uploaded_at: utc(r.uploaded_at),
            })
        })
}
