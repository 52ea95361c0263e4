//! Support's side: the queue, one request with the account's evidence, internal notes,
//! messages to the requester, approval and denial.
//!
//! Approval is shared with the auto-approval policy of [`super::due_work`]: with ownership
//! proven the completion link goes out at once ([`super::completion`]); otherwise it is held
//! for the waiting period and the account's verified email is told, with the link to stop it.

use chrono::{DateTime, Utc};

use super::completion::send_completion_link;
use super::{
    AttachmentView, Forbidden, MailView, SupportError, add_message, after, attachments_of,
    free_text, mails_of, message_body, move_status, optional_free_text, ownership_link,
    request_event, seal, unseal,
};
use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{self, Page, recovery_requests::RequestChanges};
use crate::domain::{
    Account, AccountId, DeliverTo, EventType, MessageKind, Ownership, RecoveryAction,
    RecoveryRequest, RecoveryStatus, RequestId, Role, username_key,
};
use crate::mail::{OutgoingMail, human_duration, human_time};
use crate::security::tokens::{self, NewToken};
use crate::services::audit::{self, Actor, EventView};
use crate::services::sessions::Principal;
use crate::services::two_factor;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};
use crate::services::{account_lock, email_change};

use super::MessageView;

/// Filters of the support queue, as typed (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only this status (one of the stored names; anything else is a field error).
    pub status: Option<String>,
    /// Only this username (as submitted).
    pub username: Option<String>,
}

/// A queue entry.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The request.
    pub request: RecoveryRequest,
    /// Whether an account has the username.
    pub account_exists: bool,
}

/// The support queue: filtered, oldest first.
pub async fn queue(
    ctx: &Ctx,
    filter: QueueFilter,
    page: Page,
) -> Result<(Vec<QueueItem>, i64), SupportError> {
    let status = match filter.status.as_deref() {
        None => None,
        Some(s) => Some(RecoveryStatus::parse(s).ok_or_else(|| {
            SupportError::Invalid(vec![FieldIssue::new(
                "status",
                "invalid",
                "is not a request status",
            )])
        })?),
    };
    unit_of_work::read(ctx, move |conn| {
        let (requests, total) =
            repo::recovery_requests::list(conn, status, filter.username.as_deref(), page)?;
        let items = requests
            .into_iter()
            .map(|request| QueueItem {
                account_exists: request.account_id.is_some(),
                request,
            })
            .collect();
        Ok((items, total))
    })
    .await
}

/// What support knows about the account behind a request.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// Whether an account has the username.
    pub account_exists: bool,
    /// Its id.
    pub account_id: Option<AccountId>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether its email is verified.
    pub email_verified: bool,
    /// Its last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Its two-factor state.
    pub two_factor: two_factor::TwoFactorStatus,
    /// The owner's answer through the account's email.
    pub ownership: Ownership,
    /// The account's other requests, oldest first.
    pub earlier_requests: Vec<RecoveryRequest>,
    /// The request came with the device token of a device the account knows.
    pub submitted_from_known_device: bool,
    /// Since when the account has known that device (null when it was forgotten since).
    pub known_device_first_seen_at: Option<DateTime<Utc>>,
    /// Email changes waiting for their confirmation link.
    pub pending_email_changes: Vec<email_change::PendingChange>,
    /// Address changes in the last `EVIDENCE_WINDOW_DAYS` days, newest first: a recent change
    /// is a signal when judging a request.
    pub email_changes: Vec<email_change::AddressChange>,
    /// Owner's locks in that window (and any still open), newest first.
    pub locks: Vec<account_lock::LockView>,
    /// The account's passkeys (support sees names, times and backup state, never keys).
    pub passkeys: Vec<crate::domain::Passkey>,
}

/// How far back the evidence page shows address changes and locks.
pub const EVIDENCE_WINDOW_DAYS: i64 = 90;

/// One request with everything support needs to decide.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The request.
    pub request: RecoveryRequest,
    /// The account's evidence.
    pub evidence: Evidence,
    /// Messages and internal notes, oldest first.
    pub messages: Vec<MessageView>,
    /// The request's audit events, newest first.
    pub timeline: Vec<EventView>,
    /// Approvals given so far (the first of two is recorded; a full approval counts them all).
    pub approvals: u8,
    /// Approvals it needs: 2 for an account with the `support` role (four eyes), else 1.
    pub approvals_needed: u8,
    /// Every mail about the request, with its full address, status and the mail server's
    /// last answer, oldest first.
    pub mails: Vec<MailView>,
    /// The documents the requester attached, oldest first.
    pub attachments: Vec<AttachmentView>,
}

/// Four eyes: how many approvals a request for this account needs.
fn approvals_needed(account: Option<&Account>) -> u8 {
    match account {
        Some(a) if a.role == Role::Support => 2,
        _ => 1,
    }
}

/// Refuses a support account acting on a request for its own account or username.
fn not_own(
    conn: &mut DbConnection,
    request: &RecoveryRequest,
    support: &AccountId,
) -> Result<(), SupportError> {
    let own = SupportError::Forbidden(Forbidden::OwnRequest);
    if request.account_id.as_ref() == Some(support) {
        return Err(own);
    }
    let Some(me) = repo::accounts::find(conn, support)? else {
        return Err(own);
    };
    if username_key(&request.username) == me.username_key {
        return Err(own);
    }
    Ok(())
}

/// The request, locked for the rest of the transaction, if `support` may act on it.
pub(super) fn actionable(
    conn: &mut DbConnection,
    id: &RequestId,
    support: &AccountId,
) -> Result<RecoveryRequest, SupportError> {
    repo::recovery_requests::lock(conn, id)?;
    let request = repo::recovery_requests::find(conn, id)?.ok_or(SupportError::NotFound)?;
    not_own(conn, &request, support)?;
    Ok(request)
}

fn load_detail(
    conn: &mut DbConnection,
    id: &RequestId,
    now: DateTime<Utc>,
) -> Result<Detail, SupportError> {
    let request = repo::recovery_requests::find(conn, id)?.ok_or(SupportError::NotFound)?;
    let mut evidence = Evidence {
        account_exists: false,
        account_id: None,
        created_at: None,
        email_verified: false,
        last_login_at: None,
        two_factor: Default::default(),
        ownership: request.ownership,
        earlier_requests: Vec::new(),
        submitted_from_known_device: request.submitted_device_id.is_some(),
        known_device_first_seen_at: None,
        pending_email_changes: Vec::new(),
        email_changes: Vec::new(),
        locks: Vec::new(),
        passkeys: Vec::new(),
    };
    if let Some(device_id) = &request.submitted_device_id {
        evidence.known_device_first_seen_at =
            repo::devices::find(conn, device_id)?.map(|d| d.first_seen_at);
    }
    let mut needed = 1;
    if let Some(account_id) = &request.account_id
        && let Some(account) = repo::accounts::find(conn, account_id)?
    {
        needed = approvals_needed(Some(&account));
        evidence.account_exists = true;
        evidence.account_id = Some(account_id.clone());
        evidence.created_at = Some(account.created_at);
        evidence.email_verified = account.email_verified_at.is_some();
        evidence.last_login_at = account.last_login_at;
        evidence.two_factor = two_factor::status(conn, &account.id)?;
        evidence.passkeys = repo::passkeys::list(conn, account_id)?;
        evidence.earlier_requests = repo::recovery_requests::for_account(conn, account_id)?
            .into_iter()
            .filter(|r| r.id != request.id)
            .collect();
        let since = now - chrono::Duration::days(EVIDENCE_WINDOW_DAYS);
        (evidence.pending_email_changes, evidence.email_changes) =
            email_change::evidence(conn, &account.id, now, since)?;
        evidence.locks = account_lock::recent(conn, &account.id, since)?;
    }
    let messages = repo::recovery_requests::messages(conn, &request.id, true)?
        .into_iter()
        .map(MessageView::from)
        .collect();
    let (timeline, _) = audit::list(
        conn,
        &repo::audit::AuditFilter {
            request_id: Some(request.id.as_str().to_owned()),
            ..Default::default()
        },
        Page {
            page: 1,
            per_page: 200,
        },
    )?;
    let approvals = match request.status {
        RecoveryStatus::Approved | RecoveryStatus::Completed => needed,
        _ => u8::from(request.first_approval_by.is_some()),
    };
    let mails = mails_of(conn, &request.id)?;
    let attachments = attachments_of(conn, &request.id)?;
    Ok(Detail {
        request,
        evidence,
        messages,
        timeline,
        approvals,
        approvals_needed: needed,
        mails,
        attachments,
    })
}

/// A request with its evidence, messages, notes and timeline (never to the support account
/// whose own username it names).
pub async fn detail(ctx: &Ctx, who: &Principal, id: &RequestId) -> Result<Detail, SupportError> {
    let (id, support) = (id.clone(), who.account_id.clone());
    let now = ctx.clock.now();
    unit_of_work::read(ctx, move |conn| {
        let detail = load_detail(conn, &id, now)?;
        not_own(conn, &detail.request, &support)?;
        Ok(detail)
    })
    .await
}

/// Adds an internal note (never shown to the requester); a submitted request moves to review.
pub async fn add_note(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, SupportError> {
    support_message(ctx, who, id, body, client, RecoveryAction::AddNote).await
}

/// Sends a message to the requester (emailed); the request waits for their answer.
pub async fn send_message(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, SupportError> {
    support_message(ctx, who, id, body, client, RecoveryAction::SendMessage).await
}

async fn support_message(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    body: Option<&str>,
    client: ClientInfo,
    action: RecoveryAction,
) -> Result<MessageView, SupportError> {
    let body = message_body(body).map_err(SupportError::Invalid)?;
    let (id, support) = (id.clone(), who.account_id.clone());
    unit_of_work::write(ctx, move |w| -> Result<MessageView, SupportError> {
        let request = actionable(w.conn, &id, &support)?;
        if request.status.is_final() && request.contact_email.is_empty() {
            // Erased at retention: nothing may bring free text back.
            return Err(crate::domain::InvalidTransition {
                from: request.status,
                action,
            }
            .into());
        }
        let to = request.status.apply(action)?;
        let to_requester = action == RecoveryAction::SendMessage;
        let changes = if to_requester {
            // A new question: the wait for the answer (reminder, abandonment) starts again.
            RequestChanges {
                needs_info_since: Some(Some(w.now)),
                reminded_at: Some(None),
                ..Default::default()
            }
        } else {
            RequestChanges::default()
        };
        move_status(w, &request, to, changes)?;
        let (kind, event) = if to_requester {
            (MessageKind::Support, EventType::RecoveryRequestMessageSent)
        } else {
            (MessageKind::Note, EventType::RecoveryRequestNoteAdded)
        };
        let author = support.clone();
        let message = add_message(w, &request, kind, Some(author), body.clone())?;
        w.audit(
            request_event(&request, event, Actor::Support(&support), &client)
                .details(serde_json::json!({"from": request.status.as_str(), "to": to.as_str()})),
        )?;
        if to_requester {
            let resend_link = w.ctx.mailer.link("recovery/lost-link", &[]);
            w.mail_about(
                &request.id,
                OutgoingMail {
                    to: request.contact_email.clone(),
                    template: "recovery_message",
                    context: serde_json::json!({
                        "username": request.username,
                        "message": body,
                        "resend_link": resend_link,
                    }),
                    carries_token: false,
                },
            )?;
        }
        Ok(message)
    })
    .await
}

/// An approval.
#[derive(Debug, Clone)]
pub struct Approval {
    /// A comment for the log.
    pub comment: Option<String>,
    /// Where the completion link goes.
    pub deliver_to: DeliverTo,
    /// Why the contact email (required with it).
    pub justification: Option<String>,
}

/// Approves a request. With ownership proven the completion link goes out now; otherwise it is
/// held for the waiting period and the account's verified email is told, with the link to stop
/// it.
pub async fn approve(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    mut approval: Approval,
    client: ClientInfo,
) -> Result<Detail, SupportError> {
    let mut issues = Vec::new();
    approval.comment = optional_free_text(&mut issues, "comment", approval.comment.as_deref());
    let justification = approval.justification.as_deref();
    approval.justification = optional_free_text(&mut issues, "justification", justification);
    if approval.deliver_to == DeliverTo::ContactEmail
        && approval.justification.is_none()
        && !issues.iter().any(|i| i.field == "justification")
    {
        issues.push(FieldIssue::new(
            "justification",
            "required",
            "is required when deliver_to is contact_email",
        ));
    }
    if !issues.is_empty() {
        return Err(SupportError::Invalid(issues));
    }
    let (id, support) = (id.clone(), who.account_id.clone());
    unit_of_work::write(ctx, move |w| -> Result<Detail, SupportError> {
        let request = actionable(w.conn, &id, &support)?;
        approve_in(w, &request, &approval, Actor::Support(&support), &client)?;
        load_detail(w.conn, &request.id, w.now)
    })
    .await
}

/// Approves `request` inside the caller's unit of work, by support or by the system. Answers
/// `false` when it only recorded the first of the two approvals a support account's request
/// needs (four eyes), or, for the system, when such a request is left to support.
pub(super) fn approve_in(
    w: &mut Work<'_>,
    request: &RecoveryRequest,
    approval: &Approval,
    actor: Actor<'_>,
    client: &ClientInfo,
) -> Result<bool, SupportError> {
    let to = request.status.apply(RecoveryAction::Approve)?;
    let account_id = request.account_id.as_ref().ok_or(SupportError::NoAccount)?;
    let account = repo::accounts::find(w.conn, account_id)?.ok_or(SupportError::NoAccount)?;
    if approval.deliver_to == DeliverTo::AccountEmail && account.email_verified_at.is_none() {
        return Err(SupportError::NoVerifiedEmail);
    }
    if approvals_needed(Some(&account)) == 2 {
        let Actor::Support(support) = actor else {
            // Staff accounts are never recovered by policy alone.
            return Ok(false);
        };
        match request.first_approval_by.as_deref() {
            None => {
                if !repo::recovery_requests::record_first_approval(
                    w.conn,
                    &request.id,
                    request.status,
                    support.as_str(),
                    w.now,
                )? {
                    return Err(Failure::Internal(anyhow::anyhow!(
                        "recovery request changed concurrently"
                    ))
                    .into());
                }
                w.audit(
                    request_event(
                        request,
                        EventType::RecoveryRequestFirstApproval,
                        actor,
                        client,
                    )
                    .details(serde_json::json!({"approvals": 1, "approvals_needed": 2})),
                )?;
                return Ok(false);
            }
            Some(first) if first == support.as_str() => {
                return Err(SupportError::Forbidden(Forbidden::SameApprover));
            }
            Some(_) => {}
        }
    }
    let proven = request.ownership == Ownership::Proven;
    let due = if proven {
        w.now
    } else {
        after(w.now, w.ctx.config.recovery_waiting_period)
    };
    let decided_by = match &actor {
        Actor::Support(id) => format!("support:{id}"),
        _ => "system".to_owned(),
    };
    move_status(
        w,
        request,
        to,
        RequestChanges {
            decided_at: Some(Some(w.now)),
            decided_by: Some(Some(decided_by)),
            decision_note: Some(approval.comment.clone()),
            deliver_to: Some(Some(approval.deliver_to)),
            deliver_justification: Some(approval.justification.clone()),
            completion_token_hash: Some(None),
            link_due_at: Some(Some(due)),
            link_sent_at: Some(None),
            link_expires_at: Some(None),
            first_approval_by: Some(None),
            first_approval_at: Some(None),
            ..Default::default()
        },
    )?;
    w.audit(
        request_event(request, EventType::RecoveryRequestApproved, actor, client).details(
            serde_json::json!({
                "from": request.status.as_str(),
                "deliver_to": approval.deliver_to.as_str(),
                "justification": approval.justification,
                "comment": approval.comment,
                "ownership": request.ownership.as_str(),
                "link_due_at": due,
                "first_approval_by": request.first_approval_by,
            }),
        ),
    )?;
    if proven {
        send_completion_link(w, &request.id)?;
    } else if account.email_verified_at.is_some() {
        // Tell the owner a recovery is under way, with the link to stop it.
        let token = match &request.ownership_token_sealed {
            Some(sealed) => unseal(w.ctx, sealed)?,
            None => {
                let fresh = tokens::new_token();
                set_ownership_token(w, &request.id, to, &fresh)?;
                fresh.value
            }
        };
        let context = serde_json::json!({
            "username": account.username,
            "link": ownership_link(w.ctx, &token),
            "waiting": human_duration(w.ctx.config.recovery_waiting_period),
            "due": human_time(due),
        });
        w.mail_about(
            &request.id,
            OutgoingMail {
                to: account.email.clone(),
                template: "recovery_pending",
                context,
                carries_token: true,
            },
        )?;
    }
    Ok(true)
}

/// Gives a request an ownership link (one filed while the account's email was unverified).
fn set_ownership_token(
    w: &mut Work<'_>,
    id: &RequestId,
    status: RecoveryStatus,
    token: &NewToken,
) -> Result<(), Failure> {
    let sealed = seal(w.ctx, &token.value)?;
    repo::recovery_requests::update(
        w.conn,
        id,
        status,
        w.now,
        RequestChanges {
            ownership_token_hash: Some(Some(token.hash.clone())),
            ownership_token_sealed: Some(Some(sealed)),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Denies a request; the requester is emailed the reason.
pub async fn deny(
    ctx: &Ctx,
    who: &Principal,
    id: &RequestId,
    reason: Option<&str>,
    client: ClientInfo,
) -> Result<Detail, SupportError> {
    let mut issues = Vec::new();
    let reason = free_text(&mut issues, "reason", reason);
    let reason = reason.ok_or(SupportError::Invalid(issues))?;
    let (id, support) = (id.clone(), who.account_id.clone());
    unit_of_work::write(ctx, move |w| -> Result<Detail, SupportError> {
        let request = actionable(w.conn, &id, &support)?;
        let to = request.status.apply(RecoveryAction::Deny)?;
        move_status(
            w,
            &request,
            to,
            RequestChanges {
                decided_at: Some(Some(w.now)),
                decided_by: Some(Some(format!("support:{support}"))),
                decision_note: Some(Some(reason.clone())),
                ..Default::default()
            },
        )?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestDenied,
                Actor::Support(&support),
                &client,
            )
            .details(serde_json::json!({"from": request.status.as_str(), "reason": reason})),
        )?;
        w.mail_about(
            &request.id,
            OutgoingMail {
                to: request.contact_email.clone(),
                template: "recovery_denied",
                context: serde_json::json!({"username": request.username, "reason": reason}),
                carries_token: false,
            },
        )?;
        load_detail(w.conn, &request.id, w.now)
    })
    .await
}
