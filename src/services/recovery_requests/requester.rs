//! The requester's side: file a request, have lost tracking links mailed again, follow the
//! request with its tracking token, reply to support, withdraw, and (as the account's owner,
//! through the account's verified email) say whether the request was theirs.
//!
//! Nothing here tells whether a username or a contact address exists: a submission gets the
//! same answer either way, and a wrong id or tracking token is a plain 404.

use chrono::{DateTime, Utc};

use super::{
    AttachmentView, MailView, RequesterError, add_message, attachments_of, closes_at, mails_of,
    mask_email, message_body, move_status, ownership_link, request_event, seal, text_field, unseal,
};
use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{self, recovery_requests::RequestChanges};
use crate::domain::Account;
use crate::domain::{
    AccountId, EmailAddress, EventType, MessageId, MessageKind, NextStepHints, Ownership,
    RecoveryAction, RecoveryMessage, RecoveryRequest, RecoveryStatus, RequestId, TEXT_MAX_CHARS,
    limits,
};
use crate::mail::{OutgoingMail, human_duration, human_time};
use crate::security::tokens;
use crate::services::audit::Actor;
use crate::services::devices;
use crate::services::rate_limit::{self, Decision};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};

/// A new request as typed.
#[derive(Debug, Default)]
pub struct Submission {
    /// The account's username.
    pub username: Option<String>,
    /// Where the requester reads mail.
    pub contact_email: Option<String>,
    /// What happened.
    pub reason: Option<String>,
    /// "I never generated or have lost access to the recovery codes."
    pub recovery_codes_lost: Option<bool>,
    /// "I agree to follow the Code of Conduct."
    pub code_of_conduct_accepted: Option<bool>,
    /// "I understand that it may take a significant amount of time."
    pub processing_time_acknowledged: Option<bool>,
}

/// The answer to a submission, the same whether or not the username exists.
#[derive(Clone)]
pub struct Submitted {
    /// The request's id.
    pub id: RequestId,
    /// The tracking token, shown once.
    pub tracking_token: String,
    /// When.
    pub submitted_at: DateTime<Utc>,
}

impl std::fmt::Debug for Submitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitted").field("id", &self.id).finish()
    }
}

/// A message as the requester (or support) sees it.
#[derive(Debug, Clone)]
pub struct MessageView {
    /// Id.
    pub id: MessageId,
    /// Who wrote it.
    pub kind: MessageKind,
    /// The support user who wrote it.
    pub author_id: Option<AccountId>,
    /// Text.
    pub body: String,
    /// When.
    pub sent_at: DateTime<Utc>,
}

impl From<RecoveryMessage> for MessageView {
    fn from(m: RecoveryMessage) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            author_id: m.author_id,
            body: m.body,
            sent_at: m.created_at,
        }
    }
}

/// The request as its requester sees it: never internal notes.
#[derive(Debug, Clone)]
pub struct RequesterView {
    /// Id.
    pub id: RequestId,
    /// Status.
    pub status: RecoveryStatus,
    /// Filed at.
    pub submitted_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Messages between requester and support, oldest first.
    pub messages: Vec<MessageView>,
    /// 1 = next in line; `None` unless `submitted` or `in_review`.
    pub queue_position: Option<i64>,
    /// `submitted_at` plus the median time to a decision of recent decisions; `None` when the
    /// request is decided or too few requests were decided recently.
    pub estimated_decision_at: Option<DateTime<Utc>>,
    /// The mails about the request that the requester may know of, oldest first, with the
    /// address masked and without the server's answer.
    pub mails: Vec<MailView>,
    /// The documents the requester attached, oldest first.
    pub attachments: Vec<AttachmentView>,
    /// Support's reason, once the request is denied: the denial mail may never arrive.
    pub decision_reason: Option<String>,
    /// When the request is closed unless the requester answers (`needs_info` only).
    pub closes_at: Option<DateTime<Utc>>,
    /// What the requester can do now.
    pub next_step: String,
}

/// The mails the requester sees: those to the contact address, and the completion link
/// (whose status already tells that the account exists). Mails to the account's own address
/// (the ownership question, the pending notice) stay hidden: they would tell a stranger that
/// the username exists and hint at its address.
fn requester_mails(request: &RecoveryRequest, mails: Vec<MailView>) -> Vec<MailView> {
    mails
        .into_iter()
        .filter(|m| m.to == request.contact_email || m.kind == "recovery_link")
        .map(|m| MailView {
            to: mask_email(&m.to),
            last_error: None,
            ..m
        })
        .collect()
}

/// How far back the decisions behind the estimate go.
const ESTIMATE_WINDOW_DAYS: i64 = 30;
/// Fewer recent decisions than this give no estimate.
const ESTIMATE_MIN_DECISIONS: usize = 5;

/// `submitted_at` plus the median wait of the requests decided in the last 30 days (null with
/// fewer than five, and for a request no longer waiting for a decision).
fn estimated_decision_at(
    conn: &mut DbConnection,
    request: &RecoveryRequest,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Failure> {
    if !matches!(
        request.status,
        RecoveryStatus::Submitted | RecoveryStatus::InReview | RecoveryStatus::NeedsInfo
    ) {
        return Ok(None);
    }
    let since = now - chrono::Duration::days(ESTIMATE_WINDOW_DAYS);
    let times = repo::recovery_requests::decision_times_since(conn, since)?;
    Ok(median(&times).map(|m| request.submitted_at + m))
}

/// The median of sorted durations (the mean of the middle two for an even count); `None`
/// below [`ESTIMATE_MIN_DECISIONS`].
fn median(sorted: &[chrono::Duration]) -> Option<chrono::Duration> {
    let n = sorted.len();
    if n < ESTIMATE_MIN_DECISIONS {
        return None;
    }
    let mid = n / 2;
    if n % 2 == 1 {
        sorted.get(mid).copied()
    } else {
        let (a, b) = (sorted.get(mid - 1)?, sorted.get(mid)?);
        Some(*a + (*b - *a) / 2)
    }
}

struct ValidSubmission {
    username: String,
    contact_email: EmailAddress,
    reason: String,
}

fn validate(s: &Submission) -> Result<ValidSubmission, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let username = text_field(
        &mut issues,
        "username",
        s.username.as_deref(),
        1,
        limits::USERNAME_MAX_CHARS,
    );
    let contact_email = match s
        .contact_email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => {
            issues.push(FieldIssue::new("contact_email", "required", "is required"));
            None
        }
        Some(raw) => EmailAddress::parse(raw)
            .map_err(|e| issues.push(FieldIssue::new("contact_email", e.code(), e.to_string())))
            .ok(),
    };
    let reason = text_field(
        &mut issues,
        "reason",
        s.reason.as_deref(),
        limits::REASON_MIN_CHARS,
        TEXT_MAX_CHARS,
    );
    for (field, value) in [
        ("recovery_codes_lost", s.recovery_codes_lost),
        ("code_of_conduct_accepted", s.code_of_conduct_accepted),
        (
            "processing_time_acknowledged",
            s.processing_time_acknowledged,
        ),
    ] {
        match value {
            Some(true) => {}
            Some(false) => issues.push(FieldIssue::new(field, "must_be_true", "must be true")),
            None => issues.push(FieldIssue::new(field, "required", "is required")),
        }
    }
    match (username, contact_email, reason) {
        (Some(username), Some(contact_email), Some(reason)) if issues.is_empty() => {
            Ok(ValidSubmission {
                username,
                contact_email,
                reason,
            })
        }
        _ => Err(issues),
    }
}

/// Files a request. The answer is the same whether or not the username exists; support sees
/// which. A second open request for the same account is accepted and marked as a duplicate.
pub async fn submit(
    ctx: &Ctx,
    input: Submission,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<Submitted, RequesterError> {
    let valid = validate(&input).map_err(RequesterError::Invalid)?;
    let tracking = tokens::new_token();
    let tracking_sealed = seal(ctx, &tracking.value)?;
    let ownership = tokens::new_token();
    let ownership_sealed = seal(ctx, &ownership.value)?;
    let tracking_token = tracking.value.clone();
    unit_of_work::write(ctx, move |w| -> Result<Submitted, RequesterError> {
        // The IP's counter is checked first and taken last (see rate_limit); over the limit,
        // the error rolls back the request and its mails.
        limit_ip(w, "recovery-request", &client, rate_limit::Step::Check)?;
        let key = crate::domain::username_key(&valid.username);
        let account = repo::accounts::find_by_username_key(w.conn, &key)?;
        let account_id = account.as_ref().map(|a| a.id.clone());
        let duplicate_of = match &account_id {
            Some(a) => repo::recovery_requests::first_open_for_account(w.conn, a)?,
            None => None,
        };
        let verified_email = account
            .as_ref()
            .filter(|a| a.email_verified_at.is_some())
            .map(|a| a.email.clone());
        let submitted_device_id = match &account {
            Some(a) => devices::known(w.conn, &a.id, device_token.as_deref())?.map(|d| d.id),
            None => None,
        };
        let request = RecoveryRequest {
            id: RequestId::generate(),
            username: valid.username,
            account_id,
            contact_email: valid.contact_email.as_str().to_owned(),
            reason: valid.reason,
            status: RecoveryStatus::Submitted,
            tracking_token_hash: tracking.hash.clone(),
            tracking_token_sealed: tracking_sealed,
            ownership_token_hash: verified_email.as_ref().map(|_| ownership.hash.clone()),
            ownership_token_sealed: verified_email.as_ref().map(|_| ownership_sealed),
            ownership: Ownership::Unanswered,
            ownership_answered_at: None,
            duplicate_of,
            submitted_at: w.now,
            updated_at: w.now,
            decided_at: None,
            decided_by: None,
            decision_note: None,
            deliver_to: None,
            deliver_justification: None,
            completion_token_hash: None,
            link_due_at: None,
            link_sent_at: None,
            link_expires_at: None,
            completed_at: None,
            submitted_ip: client.ip.clone(),
            submitted_user_agent: client.user_agent.clone(),
            submitted_device_id,
            first_approval_by: None,
            first_approval_at: None,
            needs_info_since: None,
            reminded_at: None,
        };
        repo::recovery_requests::insert(w.conn, &request)?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestSubmitted,
                Actor::Anonymous,
                &client,
            )
            .details(serde_json::json!({
                "account_exists": account.is_some(),
                "known_device": request.submitted_device_id.is_some(),
                "duplicate_of": request.duplicate_of.as_ref().map(RequestId::as_str),
            })),
        )?;
        mail_tracking_link(w, &request, &tracking.value, false)?;
        if let (Some(account), Some(email)) = (&account, verified_email) {
            mail_ownership_question(w, &request, account, email, &ownership.value)?;
        }
        limit_ip(w, "recovery-request", &client, rate_limit::Step::Take)?;
        Ok(Submitted {
            id: request.id,
            tracking_token,
            submitted_at: w.now,
        })
    })
    .await
}

/// Mails the request's tracking link to its contact email (first time or again).
fn mail_tracking_link(
    w: &mut Work<'_>,
    request: &RecoveryRequest,
    token: &str,
    resent: bool,
) -> Result<(), Failure> {
    let link = w.ctx.mailer.link(
        "recovery/status",
        &[("id", request.id.as_str()), ("token", token)],
    );
    w.mail_about(
        &request.id,
        OutgoingMail {
            to: request.contact_email.clone(),
            template: "recovery_tracking",
            context: serde_json::json!({
                "username": request.username,
                "link": link,
                "resent": resent,
            }),
            carries_token: true,
        },
    )
}

/// The limit on calls from this client IP, checked or taken (`step`). Refuses past the limit.
fn limit_ip(
    w: &mut Work<'_>,
    what: &str,
    client: &ClientInfo,
    step: rate_limit::Step,
) -> Result<(), RequesterError> {
    let bucket = format!("{what}:ip:{}", client.ip.as_deref().unwrap_or("unknown"));
    let limit = w.ctx.config.rate_limits.recovery_request_per_ip;
    let metrics = w.ctx.metrics.clone();
    if let Decision::Limited { retry_after_secs } =
        rate_limit::step(w.conn, &metrics, &bucket, limit, w.now, step)?
    {
        return Err(RequesterError::RateLimited { retry_after_secs });
    }
    Ok(())
}

/// Asks the account's owner, at the verified address, whether the request is theirs (at most a
/// few such mails a day per account, so requests cannot be used to flood the owner).
fn mail_ownership_question(
    w: &mut Work<'_>,
    request: &RecoveryRequest,
    account: &Account,
    email: String,
    token: &str,
) -> Result<(), Failure> {
    let bucket = format!("ownership-mail:{}", account.id);
    let limit = w.ctx.config.rate_limits.ownership_emails;
    let metrics = w.ctx.metrics.clone();
    if let Decision::Limited { .. } = rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)? {
        return Ok(());
    }
    let context = serde_json::json!({
        "username": account.username,
        "at": human_time(w.now),
        "link": ownership_link(w.ctx, token),
        "auto_approve": w.ctx.config.recovery_auto_approve_after.map(human_duration),
    });
    w.mail_about(
        &request.id,
        OutgoingMail {
            to: email,
            template: "recovery_ownership",
            context,
            carries_token: true,
        },
    )
}

/// Mails the tracking links of the address's open requests again. Always accepted: the answer
/// says nothing about whether the address filed anything.
pub async fn resend_tracking_links(
    ctx: &Ctx,
    contact_email: Option<&str>,
    client: ClientInfo,
) -> Result<(), RequesterError> {
    let raw = contact_email
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| {
            RequesterError::Invalid(vec![FieldIssue::new(
                "contact_email",
                "required",
                "is required",
            )])
        })?;
    let email = EmailAddress::parse(raw).map_err(|e| {
        RequesterError::Invalid(vec![FieldIssue::new(
            "contact_email",
            e.code(),
            e.to_string(),
        )])
    })?;
    unit_of_work::write(ctx, move |w| -> Result<(), RequesterError> {
        limit_ip(w, "tracking-links", &client, rate_limit::Step::Take)?;
        // Past the per-address limit nothing is mailed, and the answer stays the same: the
        // caller learns nothing and cannot flood an arbitrary address.
        let bucket = tracking_links_bucket(w.ctx, &email);
        let limit = w.ctx.config.rate_limits.tracking_link_emails;
        let metrics = w.ctx.metrics.clone();
        if !rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)?.allowed() {
            return Ok(());
        }
        for request in repo::recovery_requests::open_for_contact(w.conn, email.as_str())? {
            let token = unseal(w.ctx, &request.tracking_token_sealed)?;
            mail_tracking_link(w, &request, &token, true)?;
        }
        Ok(())
    })
    .await
}

/// The bucket of tracking-link resends to one contact address: keyed by a keyed hash of the
/// normalised address, so the limits table never holds the address.
fn tracking_links_bucket(ctx: &Ctx, email: &EmailAddress) -> String {
    let key = ctx.config.data_encryption_key.expose();
    format!(
        "tracking-links:to:{}",
        tokens::keyed_hash(key, "rate-limit:tracking-links", email.as_str())
    )
}

/// The request with this id and tracking token, or a 404. The status view reads it with its
/// place in the queue instead ([`repo::recovery_requests::find_tracked_in_queue`]).
pub(super) fn tracked(
    conn: &mut DbConnection,
    id: &RequestId,
    token: &str,
) -> Result<RecoveryRequest, RequesterError> {
    // Inside a write, a concurrent change waits for this one (and this one reads its result).
    repo::recovery_requests::lock(conn, id)?;
    repo::recovery_requests::find_tracked(conn, id, &tokens::hash_token(token))?
        .ok_or(RequesterError::NotFound)
}

/// The request, for the holder of its tracking token.
pub async fn status(
    ctx: &Ctx,
    id: &RequestId,
    token: &str,
) -> Result<RequesterView, RequesterError> {
    let (id, token) = (id.clone(), token.to_owned());
    let now = ctx.clock.now();
    let config = ctx.config.clone();
    unit_of_work::read(ctx, move |conn| {
        let (request, waiting_ahead) =
            repo::recovery_requests::find_tracked_in_queue(conn, &id, &tokens::hash_token(&token))?
                .ok_or(RequesterError::NotFound)?;
        // The request's place in the queue, for a queued request.
        let queue_position = waiting_ahead.map(|ahead| ahead + 1);
        let estimated_decision_at = estimated_decision_at(conn, &request, now)?;
        let mails = requester_mails(&request, mails_of(conn, &request.id)?);
        let attachments = attachments_of(conn, &request.id)?;
        let messages = repo::recovery_requests::messages(conn, &request.id, false)?
            .into_iter()
            .map(MessageView::from)
            .collect();
        let closes_at = closes_at(&config, &request);
        let next_step = request.status.next_step(&NextStepHints {
            closes_at,
            attachments: config.recovery_attachments && request.status == RecoveryStatus::NeedsInfo,
        });
        let decision_reason = if request.status == RecoveryStatus::Denied {
            request.decision_note
        } else {
            None
        };
        Ok(RequesterView {
            id: request.id,
            status: request.status,
            submitted_at: request.submitted_at,
            updated_at: request.updated_at,
            messages,
            queue_position,
            estimated_decision_at,
            mails,
            attachments,
            decision_reason,
            closes_at,
            next_step,
        })
    })
    .await
}

/// Records the requester's reply; `needs_info` moves back to `in_review`.
pub async fn reply(
    ctx: &Ctx,
    id: &RequestId,
    token: &str,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, RequesterError> {
    let body = message_body(body).map_err(RequesterError::Invalid)?;
    let (id, token) = (id.clone(), token.to_owned());
    unit_of_work::write(ctx, move |w| -> Result<MessageView, RequesterError> {
        let request = tracked(w.conn, &id, &token)?;
        let to = request.status.apply(RecoveryAction::Reply)?;
        // Counted before the reply is stored, in the same transaction.
        let bucket = format!("recovery-reply:{}", request.id.as_str());
        let limit = w.ctx.config.rate_limits.recovery_replies;
        let metrics = w.ctx.metrics.clone();
        if let Decision::Limited { retry_after_secs } =
            rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)?
        {
            return Err(RequesterError::RateLimited { retry_after_secs });
        }
        move_status(w, &request, to, RequestChanges::default())?;
        let message = add_message(w, &request, MessageKind::Requester, None, body)?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestReplyReceived,
                Actor::Anonymous,
                &client,
            )
            .details(serde_json::json!({"from": request.status.as_str(), "to": to.as_str()})),
        )?;
        Ok(message)
    })
    .await
}

/// Withdraws the request.
pub async fn withdraw(
    ctx: &Ctx,
    id: &RequestId,
    token: &str,
    client: ClientInfo,
) -> Result<(), RequesterError> {
    let (id, token) = (id.clone(), token.to_owned());
    unit_of_work::write(ctx, move |w| -> Result<(), RequesterError> {
        let request = tracked(w.conn, &id, &token)?;
        let to = request.status.apply(RecoveryAction::Withdraw)?;
        move_status(
            w,
            &request,
            to,
            RequestChanges {
                completion_token_hash: Some(None),
                ..Default::default()
            },
        )?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestWithdrawn,
                Actor::Anonymous,
                &client,
            )
            .details(serde_json::json!({"from": request.status.as_str()})),
        )?;
        Ok(())
    })
    .await
}

/// The owner's answer through the ownership link: "it was me" proves ownership; "it was not
/// me" disputes it and, before completion, stops an approved request's link.
pub async fn answer_ownership(
    ctx: &Ctx,
    token: &str,
    confirm: bool,
    client: ClientInfo,
) -> Result<Ownership, RequesterError> {
    let hash = tokens::hash_token(token);
    unit_of_work::write(ctx, move |w| -> Result<Ownership, RequesterError> {
        let found = repo::recovery_requests::find_by_ownership_token(w.conn, &hash)?
            .ok_or(RequesterError::InvalidToken)?;
        // Lock, then read again: a concurrent change is decided on its result.
        repo::recovery_requests::lock(w.conn, &found.id)?;
        let request = repo::recovery_requests::find_by_ownership_token(w.conn, &hash)?
            .ok_or(RequesterError::InvalidToken)?;
        let from = request.status;
        if from.is_final() {
            return Err(RequesterError::InvalidToken);
        }
        let answer = if confirm {
            Ownership::Proven
        } else {
            Ownership::Disputed
        };
        let mut changes = RequestChanges {
            ownership: Some(answer),
            ownership_answered_at: Some(Some(w.now)),
            ..Default::default()
        };
        let mut to = from;
        if answer == Ownership::Disputed && from == RecoveryStatus::Approved {
            // "It was not me" stops the completion link, sent or held.
            to = from.apply(RecoveryAction::Dispute)?;
            changes.completion_token_hash = Some(None);
            changes.link_due_at = Some(None);
            changes.link_sent_at = Some(None);
            changes.link_expires_at = Some(None);
        }
        move_status(w, &request, to, changes)?;
        let event = if confirm {
            EventType::RecoveryRequestOwnershipProven
        } else {
            EventType::RecoveryRequestOwnershipDisputed
        };
        w.audit(
            request_event(&request, event, Actor::Anonymous, &client)
                .details(serde_json::json!({"from": from.as_str(), "to": to.as_str()})),
        )?;
        Ok(answer)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(v: &[i64]) -> Vec<chrono::Duration> {
        v.iter().map(|m| chrono::Duration::minutes(*m)).collect()
    }

    #[test]
    fn the_median_needs_five_decisions() {
        assert_eq!(median(&mins(&[1, 2, 3, 4])), None);
        assert_eq!(
            median(&mins(&[1, 2, 3, 4, 50])),
            Some(chrono::Duration::minutes(3))
        );
        assert_eq!(
            median(&mins(&[1, 2, 3, 5, 60, 70])),
            Some(chrono::Duration::minutes(4))
        );
    }
}
