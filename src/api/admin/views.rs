//! What support reads: a request, its evidence, its thread, its timeline, the mails sent about
//! it, and the audit log, as the support API answers them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::recovery_requests::{
    AttachmentResponse, MailStatusDto, OwnershipDto, RecoveryStatusDto,
};
use crate::domain::{DeliverTo, MessageKind, RecoveryRequest, RequestId};
use crate::services::audit::EventView;
use crate::services::recovery_requests::{Detail, MailView, MessageView};

/// A request as support sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "5b8f0c52-6a1e-4d3b-9f7c-2e4a1b0c9d8e", "username": "jbber", "account_exists": true,
    "contact_email": "jb.new@example.org", "reason": "I lost my phone and my recovery codes.",
    "status": "in_review", "ownership": "proven", "duplicate_of": null,
    "submitted_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T11:00:00Z", "age_seconds": 3600,
    "decided_at": null, "decided_by": null, "decision_note": null, "deliver_to": null,
    "link_due_at": null, "link_sent_at": null, "link_expires_at": null, "completed_at": null,
    "submitted_ip": "203.0.113.7", "submitted_user_agent": "Mozilla/5.0"
}))]
pub struct AdminRequest {
    /// Id.
    pub id: String,
    /// The username as submitted.
    pub username: String,
    /// Whether an account has it.
    pub account_exists: bool,
    /// Where the requester reads mail.
    pub contact_email: String,
    /// The requester's account of what happened.
    pub reason: String,
    /// Where it stands.
    pub status: RecoveryStatusDto,
    /// The owner's answer through the account's email: `unanswered`, `proven` or `disputed`.
    pub ownership: OwnershipDto,
    /// The earlier open request for the same account, when this one is a duplicate.
    pub duplicate_of: Option<String>,
    /// Filed at.
    pub submitted_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Seconds since it was filed.
    #[schema(value_type = u32)]
    pub age_seconds: i64,
    /// When approved or denied.
    pub decided_at: Option<DateTime<Utc>>,
    /// `support:<id>` or `system`.
    pub decided_by: Option<String>,
    /// Approval comment or denial reason.
    pub decision_note: Option<String>,
    /// Where the completion link goes, once approved.
    pub deliver_to: Option<DeliverToDto>,
    /// When the completion link is due (after the waiting period when ownership is unproven).
    pub link_due_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub link_sent_at: Option<DateTime<Utc>>,
    /// When it expires.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// When the recovery was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// IP at submission.
    pub submitted_ip: Option<String>,
    /// User agent at submission.
    pub submitted_user_agent: Option<String>,
}

pub(super) fn admin_request(r: RecoveryRequest, now: DateTime<Utc>) -> AdminRequest {
    AdminRequest {
        account_exists: r.account_id.is_some(),
        age_seconds: (now - r.submitted_at).num_seconds().max(0),
        id: r.id.into_string(),
        username: r.username,
        contact_email: r.contact_email,
        reason: r.reason,
        status: r.status.into(),
        ownership: r.ownership.into(),
        duplicate_of: r.duplicate_of.map(RequestId::into_string),
        submitted_at: r.submitted_at,
        updated_at: r.updated_at,
        decided_at: r.decided_at,
        decided_by: r.decided_by,
        decision_note: r.decision_note,
        deliver_to: r.deliver_to.map(Into::into),
        link_due_at: r.link_due_at,
        link_sent_at: r.link_sent_at,
        link_expires_at: r.link_expires_at,
        completed_at: r.completed_at,
        submitted_ip: r.submitted_ip,
        submitted_user_agent: r.submitted_user_agent,
    }
}

/// A page of the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    /// Oldest first.
    pub items: Vec<AdminRequest>,
    /// This page.
    #[schema(value_type = u32)]
    pub page: i64,
    /// Page size.
    #[schema(value_type = u32)]
    pub per_page: i64,
    /// Requests in all pages.
    #[schema(value_type = u32)]
    pub total: i64,
}

/// Recovery codes in the evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodesEvidence {
    /// When the current set was generated (null: never).
    pub generated_at: Option<DateTime<Utc>>,
    /// Codes in it.
    pub total: u32,
    /// Unused codes.
    pub remaining: u32,
    /// When one was last used.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An earlier request of the same account.
#[derive(Debug, Serialize, ToSchema)]
pub struct EarlierRequest {
    /// Id.
    pub id: String,
    /// Its outcome or status.
    pub status: RecoveryStatusDto,
    /// Filed at.
    pub submitted_at: DateTime<Utc>,
    /// Decided at.
    pub decided_at: Option<DateTime<Utc>>,
}

/// What support knows about the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceResponse {
    /// Whether an account has the username.
    pub exists: bool,
    /// Its id.
    pub account_id: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether its email is verified.
    pub email_verified: bool,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Whether 2FA is on.
    pub two_factor_enabled: bool,
    /// Recovery codes.
    pub recovery_codes: CodesEvidence,
    /// `unanswered`, `proven` or `disputed`.
    pub ownership: OwnershipDto,
    /// The account's other requests and their outcomes.
    pub earlier_requests: Vec<EarlierRequest>,
    /// The earlier open request this one duplicates.
    pub duplicate_of: Option<String>,
    /// The request came with the `X-Device-Token` of a device the account knows (a browser or
    /// app it signed in from before): strong evidence that the requester is the owner.
    pub submitted_from_known_device: bool,
    /// Since when the account has known that device.
    pub known_device_first_seen_at: Option<DateTime<Utc>>,
    /// Email changes waiting for their confirmation link (the current address stays until
    /// then).
    pub pending_email_changes: Vec<PendingEmailChange>,
    /// Address changes in the last 90 days, newest first: an address changed shortly before a
    /// request is a signal.
    pub email_changes: Vec<EmailAddressChange>,
    /// The owner's locks in the last 90 days (and any still open), newest first.
    pub locks: Vec<AccountLock>,
    /// The account's passkeys (never key material).
    pub passkeys: Vec<PasskeyEvidence>,
}

/// An email change waiting for its confirmation.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingEmailChange {
    /// The new address.
    pub new_email: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When the confirmation link expires.
    pub expires_at: DateTime<Utc>,
}

/// A change of the account's address.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailAddressChange {
    /// The address before.
    pub old_email: String,
    /// The address after.
    pub new_email: String,
    /// `confirmed` (an email change) or `restored` (the owner's lock put the old one back).
    pub how: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// A lock of the account by its owner ("it wasn't me").
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountLock {
    /// When.
    pub locked_at: DateTime<Utc>,
    /// The notice whose link locked it (`email_changed`, `password_changed`, …).
    pub notice: String,
    /// The address the lock put back, if any.
    pub restored_email: Option<String>,
    /// From where the link was followed.
    pub ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// When it was unlocked (null: still locked).
    pub unlocked_at: Option<DateTime<Utc>>,
    /// `password_reset` or `recovery_request`.
    pub unlocked_by: Option<String>,
}

/// A passkey of the account, as support sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "YubiKey 5C", "created_at": "2026-10-01T10:00:00Z",
    "last_used_at": "2026-11-28T08:30:00Z", "backed_up": false}))]
pub struct PasskeyEvidence {
    /// The owner's name for it.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last finished a login.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Synced (backed up) as of its last use: it may live on other devices of the owner.
    pub backed_up: bool,
}

/// Who wrote a message or note.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminMessageKind {
    /// The requester.
    Requester,
    /// Support, to the requester.
    Support,
    /// An internal note (never shown to the requester).
    Note,
}

/// A message or internal note.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "1e2d3c4b-0000-4000-8000-000000000001", "kind": "note",
    "author_id": "9a8b7c6d-0000-4000-8000-000000000002", "body": "Ownership proven; approving.",
    "sent_at": "2026-11-23T11:00:00Z"}))]
pub struct AdminMessage {
    /// Id.
    pub id: String,
    /// `requester`, `support` or `note`.
    pub kind: AdminMessageKind,
    /// The support user who wrote it.
    pub author_id: Option<String>,
    /// The text.
    pub body: String,
    /// When.
    pub sent_at: DateTime<Utc>,
}

impl From<MessageView> for AdminMessage {
    fn from(m: MessageView) -> Self {
        Self {
            kind: match m.kind {
                MessageKind::Requester => AdminMessageKind::Requester,
                MessageKind::Support => AdminMessageKind::Support,
                MessageKind::Note => AdminMessageKind::Note,
            },
            id: m.id.into_string(),
            author_id: m.author_id.map(|a| a.into_string()),
            body: m.body,
            sent_at: m.sent_at,
        }
    }
}

/// An audit event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 42, "type": "recovery_request.approved", "actor": "support:9a8b7c6d-0000-4000-8000-000000000002",
    "account": "7f1c2a3e-0d4b-4e5f-8a9b-1c2d3e4f5a6b", "request": "5b8f0c52-6a1e-4d3b-9f7c-2e4a1b0c9d8e",
    "ip": "203.0.113.9", "user_agent": "support-tool/1.0", "at": "2026-11-23T11:00:00Z",
    "details": {"deliver_to": "account_email"}}))]
pub struct AuditEvent {
    /// Sequence number.
    pub id: i64,
    /// Dotted type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// `account:<id>`, `support:<id>`, `system` or `anonymous`.
    pub actor: String,
    /// The account concerned.
    pub account: Option<String>,
    /// The recovery request concerned.
    pub request: Option<String>,
    /// From which IP.
    pub ip: Option<String>,
    /// From which user agent.
    pub user_agent: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// Details.
    pub details: serde_json::Value,
}

impl From<EventView> for AuditEvent {
    fn from(e: EventView) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            actor: e.actor,
            account: e.account_id,
            request: e.request_id,
            ip: e.ip,
            user_agent: e.user_agent,
            at: e.at,
            details: e.details,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEvent>,
    /// This page.
    #[schema(value_type = u32)]
    pub page: i64,
    /// Page size.
    #[schema(value_type = u32)]
    pub per_page: i64,
    /// Events in all pages.
    #[schema(value_type = u32)]
    pub total: i64,
}

/// One request in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminDetail {
    /// The request.
    pub request: AdminRequest,
    /// The account's evidence.
    pub evidence: EvidenceResponse,
    /// Messages and internal notes, oldest first.
    pub messages: Vec<AdminMessage>,
    /// Its audit events, newest first.
    pub timeline: Vec<AuditEvent>,
    /// Approvals given so far: a request for a support account needs two, by different
    /// support accounts (four eyes); the first answers `approvals: 1` with the status unchanged.
    pub approvals: u8,
    /// 2 for a request naming an account with the `support` role, else 1.
    pub approvals_needed: u8,
    /// Every mail about the request, oldest first, with its full address, status and the
    /// mail server's last answer.
    pub mails: Vec<AdminMail>,
    /// The documents the requester attached, oldest first (download each through
    /// `/admin/recovery-requests/{id}/attachments/{attachment_id}`).
    pub attachments: Vec<AttachmentResponse>,
}

/// A mail about a request, as support sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "recovery_message", "to": "jb.new@example.org",
    "queued_at": "2026-11-24T09:00:00Z", "sent_at": null, "status": "failed", "attempts": 1,
    "last_answer": "permanent error (550): 5.1.1 mailbox unavailable"}))]
pub struct AdminMail {
    /// The template.
    pub kind: String,
    /// The recipient's full address.
    pub to: String,
    /// When it was queued.
    pub queued_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// `queued`, `sent` or `failed`.
    pub status: MailStatusDto,
    /// Failed attempts so far.
    pub attempts: i32,
    /// The mail server's last answer to a failed attempt (or the connection error).
    pub last_answer: Option<String>,
}

impl From<MailView> for AdminMail {
    fn from(m: MailView) -> Self {
        Self {
            kind: m.kind,
            to: m.to,
            queued_at: m.queued_at,
            sent_at: m.sent_at,
            status: m.status.into(),
            attempts: m.attempts,
            last_answer: m.last_error,
        }
    }
}

pub(super) fn admin_detail(d: Detail, now: DateTime<Utc>) -> AdminDetail {
    let e = d.evidence;
    let evidence = EvidenceResponse {
        exists: e.account_exists,
        submitted_from_known_device: e.submitted_from_known_device,
        known_device_first_seen_at: e.known_device_first_seen_at,
        account_id: e.account_id.map(|a| a.into_string()),
        created_at: e.created_at,
        email_verified: e.email_verified,
        last_login_at: e.last_login_at,
        two_factor_enabled: e.two_factor.enabled,
        passkeys: e
            .passkeys
            .into_iter()
            .map(|p| PasskeyEvidence {
                name: p.name.as_str().to_owned(),
                created_at: p.created_at,
                last_used_at: p.last_used_at,
                backed_up: p.backed_up,
            })
            .collect(),
        recovery_codes: CodesEvidence {
            generated_at: e.two_factor.generated_at,
            total: e.two_factor.total,
            remaining: e.two_factor.remaining,
            last_used_at: e.two_factor.last_used_at,
        },
        ownership: e.ownership.into(),
        earlier_requests: e
            .earlier_requests
            .into_iter()
            .map(|r| EarlierRequest {
                status: r.status.into(),
                id: r.id.into_string(),
                submitted_at: r.submitted_at,
                decided_at: r.decided_at,
            })
            .collect(),
        duplicate_of: d
            .request
            .duplicate_of
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        pending_email_changes: e
            .pending_email_changes
            .into_iter()
            .map(|p| PendingEmailChange {
                new_email: p.new_email,
                requested_at: p.requested_at,
                expires_at: p.expires_at,
            })
            .collect(),
        email_changes: e
            .email_changes
            .into_iter()
            .map(|c| EmailAddressChange {
                old_email: c.old_email,
                new_email: c.new_email,
                how: c.how,
                changed_at: c.changed_at,
            })
            .collect(),
        locks: e
            .locks
            .into_iter()
            .map(|l| AccountLock {
                locked_at: l.locked_at,
                notice: l.notice,
                restored_email: l.restored_email,
                ip: l.ip,
                user_agent: l.user_agent,
                unlocked_at: l.unlocked_at,
                unlocked_by: l.unlocked_by,
            })
            .collect(),
    };
    AdminDetail {
        request: admin_request(d.request, now),
        evidence,
        messages: d.messages.into_iter().map(AdminMessage::from).collect(),
        timeline: d.timeline.into_iter().map(AuditEvent::from).collect(),
        approvals: d.approvals,
        approvals_needed: d.approvals_needed,
        mails: d.mails.into_iter().map(AdminMail::from).collect(),
        attachments: d
            .attachments
            .into_iter()
            .map(AttachmentResponse::from)
            .collect(),
    }
}

/// Where the completion link goes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliverToDto {
    /// The account's verified email (default).
    #[default]
    AccountEmail,
    /// The request's contact email; needs a justification.
    ContactEmail,
}

impl From<DeliverTo> for DeliverToDto {
    fn from(d: DeliverTo) -> Self {
        match d {
            DeliverTo::AccountEmail => Self::AccountEmail,
            DeliverTo::ContactEmail => Self::ContactEmail,
        }
    }
}
