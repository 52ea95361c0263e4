//! What the requester reads: a request's status, its thread, the mails sent about it and its
//! attachments, as the API answers them (never support's internal notes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{MessageKind, RecoveryStatus};
use crate::services::recovery_requests::{
    AttachmentView, MailState, MailView, MessageView, RequesterView,
};

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

/// The request as its requester sees it (never support's internal notes).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b8f0c52-6a1e-4d3b-9f7c-2e4a1b0c9d8e", "status": "needs_info",
    "submitted_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-24T09:00:00Z",
    "messages": [{"from": "support", "body": "Which packages did you publish last?", "sent_at": "2026-11-24T09:00:00Z"}],
    "next_step": "Support needs more information from you: read their message below and reply here. Without an answer, the request is closed on 2026-12-24 09:00 UTC.",
    "decision_reason": null, "closes_at": "2026-12-24T09:00:00Z",
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
    /// What the requester can do now, for people: in `needs_info` it names the time the
    /// request closes without an answer, and whether documents may be attached.
    pub next_step: String,
    /// Support's reason for the denial (status `denied` only; null otherwise). The denial
    /// mail says the same, but may never arrive.
    #[schema(example = "We could not confirm that the account is yours.")]
    pub decision_reason: Option<String>,
    /// When the request is closed as `abandoned` unless the requester answers (status
    /// `needs_info` only; null otherwise).
    pub closes_at: Option<DateTime<Utc>>,
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
            next_step: v.next_step,
            decision_reason: v.decision_reason,
            closes_at: v.closes_at,
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
