//! Account-recovery requests: the way back in for an owner who lost every factor (password
//! aside, no TOTP and no recovery code). The requester files a request and follows it with a
//! tracking token; support reviews it, asks questions, and approves or denies; an approval
//! sends a single-use completion link (held for a waiting period unless the account's own
//! email proved ownership) that sets a new password and removes two-factor authentication.
//!
//! The statuses and the only moves between them live in the domain
//! ([`crate::domain::RecoveryStatus::apply`]); every status change here goes through that table
//! and is written with a conditional UPDATE on the status it starts from, in one unit of work
//! ([`unit_of_work::write`]) with its audit event and its mails.
//!
//! The use case is split by who acts:
//! - [`requester`]: submit, resend tracking links, status, reply, withdraw, answer ownership;
//! - [`support`]: the queue, one request with its evidence, notes, messages, approve, deny;
//! - [`attachments`]: documents the requester attaches and support downloads;
//! - [`completion`]: issuing and mailing the completion link, and completing with it;
//! - [`due_work`]: background work (held links coming due, expiry, auto-approval, reminders
//!   and abandonment), which several instances may run at once;
//! - [`retention`]: erasing personal data past `RECOVERY_DATA_RETENTION`.
//!
//! This module holds what they share: the error enums, field checks, token sealing, links and
//! the status-change and message helpers.

pub mod attachments;
pub mod completion;
pub mod due_work;
pub mod requester;
pub mod retention;
pub mod support;

pub use attachments::{
    Download, Upload, attach, attachments_enabled, download_attachment, may_attach,
};
pub use completion::{Completed, complete};
pub use due_work::run_due_work;
pub use requester::{
    MessageView, RequesterView, Submission, Submitted, answer_ownership, reply,
    resend_tracking_links, status, submit, withdraw,
};
pub use support::{
    Approval, Detail, Evidence, QueueFilter, QueueItem, add_note, approve, deny, detail, queue,
    send_message,
};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::context::Ctx;
use crate::db::repo::{self, recovery_requests::RequestChanges};
use crate::domain::{
    AccountId, EventType, InvalidTransition, MessageId, MessageKind, RecoveryMessage,
    RecoveryRequest, RecoveryStatus, RequestId, TEXT_MAX_CHARS, text,
};
use crate::failure_conversions;
use crate::services::audit::{Actor, Event};
use crate::services::unit_of_work::Work;
use crate::services::{ClientInfo, Failure, FieldIssue};

#[cfg(doc)]
use crate::services::unit_of_work;

/// Why a requester-side call failed.
#[derive(Debug, thiserror::Error)]
pub enum RequesterError {
    /// Field errors.
    #[error("invalid fields")]
    Invalid(Vec<FieldIssue>),
    /// Too many submissions from this address.
    #[error("too many requests")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Wrong id or token (a 404: it tells nothing).
    #[error("not found")]
    NotFound,
    /// The request's status does not allow this.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// An email-link token that is unknown, used or expired.
    #[error("invalid token")]
    InvalidToken,
    /// Attachments are off, the request does not wait for the requester, or it has all it
    /// may have.
    #[error("{0}")]
    AttachmentsNotAccepted(&'static str),
    /// The file is not an accepted document.
    #[error(transparent)]
    Attachment(#[from] crate::domain::attachment::AttachmentError),
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(RequesterError);

/// Why a support action failed.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// Field errors.
    #[error("invalid fields")]
    Invalid(Vec<FieldIssue>),
    /// No such request.
    #[error("not found")]
    NotFound,
    /// The request's status does not allow this.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// No account has the requested username: nothing to approve.
    #[error("no account has this username")]
    NoAccount,
    /// The link was to go to the account's email, which is not verified.
    #[error("the account has no verified email address")]
    NoVerifiedEmail,
    /// A support account acting on a request for its own username, or giving the second of
    /// two approvals after giving the first.
    #[error("{0}")]
    Forbidden(Forbidden),
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(SupportError);

/// Why a support account may not act on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    /// The request names the support account's own username.
    #[error("the request is for the support account's own username")]
    OwnRequest,
    /// Four eyes: the second approval must come from another support account.
    #[error("the second approval must come from another support account")]
    SameApprover,
}

/// A required text of `min` to `max` characters (trimmed), or the issue it has
/// ([`text::bounded`], which the request validators call too).
fn text_field(
    issues: &mut Vec<FieldIssue>,
    field: &'static str,
    value: Option<&str>,
    min: usize,
    max: usize,
) -> Option<String> {
    text::bounded(value, min, max)
        .map_err(|e| issues.push(FieldIssue::new(field, e.code(), e.to_string())))
        .ok()
        .map(str::to_owned)
}

/// A required free text of 1 to [`TEXT_MAX_CHARS`] characters (trimmed).
fn free_text(
    issues: &mut Vec<FieldIssue>,
    field: &'static str,
    value: Option<&str>,
) -> Option<String> {
    text_field(issues, field, value, 1, TEXT_MAX_CHARS)
}

/// An optional free text: absent or blank is `None`, else at most [`TEXT_MAX_CHARS`]
/// characters (trimmed).
fn optional_free_text(
    issues: &mut Vec<FieldIssue>,
    field: &'static str,
    value: Option<&str>,
) -> Option<String> {
    let v = value.map(str::trim).filter(|v| !v.is_empty())?;
    free_text(issues, field, Some(v))
}

/// A message body (a requester reply, a support message or note): 1 to [`TEXT_MAX_CHARS`]
/// characters.
pub fn message_body(body: Option<&str>) -> Result<String, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    free_text(&mut issues, "body", body).ok_or(issues)
}

/// Encrypts a token with the data key, to mail the same link again later.
fn seal(ctx: &Ctx, value: &str) -> Result<String, Failure> {
    ctx.cipher
        .seal(value)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

/// Decrypts a token sealed by [`seal`].
fn unseal(ctx: &Ctx, sealed: &str) -> Result<String, Failure> {
    ctx.cipher
        .open(sealed)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

/// The "it was me / it was not me" link of the ownership and pending mails.
fn ownership_link(ctx: &Ctx, token: &str) -> String {
    ctx.mailer.link("recovery/verify", &[("token", token)])
}

/// A configured period as a chrono duration (a day if it does not fit).
fn open_ttl(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(24))
}

/// When `request`, waiting for its requester's answer, is closed as `abandoned` if none comes.
fn closes_at(config: &Config, request: &RecoveryRequest) -> Option<DateTime<Utc>> {
    let since = request.needs_info_since?;
    (request.status == RecoveryStatus::NeedsInfo)
        .then(|| since + open_ttl(config.recovery_needs_info_close_after))
}

/// An audit event about `request` (its account and itself).
fn request_event<'a>(
    request: &'a RecoveryRequest,
    event_type: EventType,
    actor: Actor<'a>,
    client: &'a ClientInfo,
) -> Event<'a> {
    Event::new(event_type, actor, client)
        .account(request.account_id.as_ref())
        .request(&request.id)
}

/// Writes a status change conditionally on the status it starts from; a request that moved
/// meanwhile is a failure (the transaction rolls back).
fn move_status(
    w: &mut Work<'_>,
    request: &RecoveryRequest,
    to: RecoveryStatus,
    mut changes: RequestChanges,
) -> Result<(), Failure> {
    if request.status.is_final() {
        // Only a note reaches a final request (the transition table), and it leaves the row
        // as it is: a final request's `updated_at` stays the time it closed, which retention
        // counts from, so notes cannot postpone the erasure of its personal data.
        debug_assert_eq!(to, request.status);
        return Ok(());
    }
    changes.status = Some(to);
    if !repo::recovery_requests::update(w.conn, &request.id, request.status, w.now, changes)? {
        return Err(Failure::Internal(anyhow::anyhow!(
            "recovery request changed concurrently"
        )));
    }
    Ok(())
}

/// Stores a message or note on `request`.
fn add_message(
    w: &mut Work<'_>,
    request: &RecoveryRequest,
    kind: MessageKind,
    author: Option<AccountId>,
    body: String,
) -> Result<MessageView, Failure> {
    let message = RecoveryMessage {
        id: MessageId::generate(),
        request_id: request.id.clone(),
        kind,
        author_id: author,
        body,
        created_at: w.now,
    };
    repo::recovery_requests::insert_message(w.conn, &message)?;
    Ok(message.into())
}

/// Where a mail about a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    /// Waiting for (another) delivery attempt.
    Queued,
    /// Accepted by the mail server.
    Sent,
    /// Refused for good, or given up after too many attempts or too long.
    Failed,
}

impl MailState {
    /// As shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

/// A mail about a request. The requester sees it with the address masked and without the
/// server's answer; support sees everything.
#[derive(Debug, Clone)]
pub struct MailView {
    /// The template: `recovery_tracking`, `recovery_message`, …
    pub kind: String,
    /// The recipient's full address.
    pub to: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When the server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Queued, sent or failed.
    pub status: MailState,
    /// Failed attempts.
    pub attempts: i32,
    /// The mail server's last answer (or the connection error).
    pub last_error: Option<String>,
}

impl From<repo::outbox::MailStatusRow> for MailView {
    fn from(r: repo::outbox::MailStatusRow) -> Self {
        let status = if r.sent_at.is_some() {
            MailState::Sent
        } else if r.failed_at.is_some() {
            MailState::Failed
        } else {
            MailState::Queued
        };
        Self {
            kind: r.kind,
            to: r.recipient,
            queued_at: r.created_at,
            sent_at: r.sent_at,
            status,
            attempts: r.attempts,
            last_error: r.last_error,
        }
    }
}

/// The mails about a request, oldest first (one indexed read).
fn mails_of(conn: &mut crate::db::DbConnection, id: &RequestId) -> Result<Vec<MailView>, Failure> {
    Ok(repo::outbox::for_request(conn, id.as_str())?
        .into_iter()
        .map(MailView::from)
        .collect())
}

/// An address as the requester sees it: the first character of the local part, `***`, and
/// the domain (`j***@example.test`).
pub fn mask_email(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// An attachment as listed (never its content).
#[derive(Debug, Clone)]
pub struct AttachmentView {
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

impl From<repo::recovery_requests::AttachmentMeta> for AttachmentView {
    fn from(m: repo::recovery_requests::AttachmentMeta) -> Self {
        Self {
            id: m.id,
            filename: m.filename,
            content_type: m.content_type,
            size: m.size,
            uploaded_at: m.uploaded_at,
        }
    }
}

/// The request's attachments, oldest first.
fn attachments_of(
    conn: &mut crate::db::DbConnection,
    id: &RequestId,
) -> Result<Vec<AttachmentView>, Failure> {
    Ok(repo::recovery_requests::attachments(conn, id)?
        .into_iter()
        .map(AttachmentView::from)
        .collect())
}

/// `now` plus a configured period.
fn after(now: DateTime<Utc>, period: std::time::Duration) -> DateTime<Utc> {
    now + open_ttl(period)
}
