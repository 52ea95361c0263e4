//! Account-recovery requests: filed by an owner who lost every factor, reviewed by support,
//! completed with a single-use link.
//!
//! Every status change goes through the domain's transition table and is written with a
//! conditional UPDATE on the status it starts from, in one transaction with its audit event and
//! its mails. Background work (held links coming due, links expiring, the optional
//! auto-approval) runs in [`run_due_work`], which several instances may run at once.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::repo::recovery_requests::{MessageRow, QueueFilter, RequestChanges, RequestRow};
use crate::db::repo::{self, Page, accounts::AccountRow};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{
    EmailAddress, EventType, InvalidTransition, NewPassword, Ownership, RecoveryAction,
    RecoveryStatus,
};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_duration, human_time};
use crate::security::tokens::{self, NewToken};
use crate::services::accounts::{self, PasswordChange};
use crate::services::audit::{self, Actor, Event, EventView};
use crate::services::rate_limit::{self, Decision};
use crate::services::sessions::Principal;
use crate::services::two_factor;
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
    pub id: String,
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
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(SupportError);

fn text_field(
    issues: &mut Vec<FieldIssue>,
    field: &'static str,
    value: Option<&str>,
    min: usize,
    max: usize,
) -> Option<String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        issues.push(FieldIssue::new(field, "required", "is required"));
        return None;
    };
    let n = v.chars().count();
    if n < min {
        issues.push(FieldIssue::new(
            field,
            "too_short",
            format!("must be at least {min} characters"),
        ));
        return None;
    }
    if n > max {
        issues.push(FieldIssue::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
        return None;
    }
    Some(v.to_owned())
}

/// A message body: 1 to 5000 characters.
pub fn message_body(body: Option<&str>) -> Result<String, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    text_field(&mut issues, "body", body, 1, 5000).ok_or(issues)
}

struct ValidSubmission {
    username: String,
    contact_email: EmailAddress,
    reason: String,
}

fn validate(s: &Submission) -> Result<ValidSubmission, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let username = text_field(&mut issues, "username", s.username.as_deref(), 1, 50);
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
    let reason = text_field(&mut issues, "reason", s.reason.as_deref(), 10, 5000);
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

fn seal(ctx: &Ctx, value: &str) -> Result<String, Failure> {
    ctx.cipher
        .seal(value)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

fn unseal(ctx: &Ctx, sealed: &str) -> Result<String, Failure> {
    ctx.cipher
        .open(sealed)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

fn tracking_link(ctx: &Ctx, id: &str, token: &str) -> String {
    ctx.mailer
        .link("recovery/status", &[("id", id), ("token", token)])
}

fn ownership_link(ctx: &Ctx, token: &str) -> String {
    ctx.mailer.link("recovery/verify", &[("token", token)])
}

fn open_ttl(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(24))
}

/// Files a request. The answer is the same whether or not the username exists; support sees
/// which. A second open request for the same account is accepted and marked as a duplicate.
pub async fn submit(
    ctx: &Ctx,
    input: Submission,
    client: ClientInfo,
) -> Result<Submitted, RequesterError> {
    let valid = validate(&input).map_err(RequesterError::Invalid)?;
    let now = ctx.clock.now();
    let tracking = tokens::new_token();
    let tracking_sealed = seal(ctx, &tracking.value)?;
    let ownership = tokens::new_token();
    let ownership_sealed = seal(ctx, &ownership.value)?;
    let id = uuid::Uuid::new_v4().to_string();
    let ctx2 = ctx.clone();
    let (rid, tracking_value) = (id.clone(), tracking.value.clone());
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), RequesterError> {
                limit_ip(&ctx2, conn, "recovery-request", &client, now)?;
                let key = valid.username.to_ascii_lowercase();
                let account = repo::accounts::find_by_username_key(conn, &key)?;
                let duplicate_of = match &account {
                    Some(a) => repo::recovery_requests::first_open_for_account(conn, &a.id)?,
                    None => None,
                };
                let verified_email = account
                    .as_ref()
                    .filter(|a| a.email_verified_at.is_some())
                    .map(|a| a.email.clone());
                let row = RequestRow {
                    id: rid.clone(),
                    username: valid.username.clone(),
                    account_id: account.as_ref().map(|a| a.id.clone()),
                    contact_email: valid.contact_email.as_str().to_owned(),
                    reason: valid.reason.clone(),
                    status: RecoveryStatus::Submitted.as_str().to_owned(),
                    tracking_token_hash: tracking.hash.clone(),
                    tracking_token_sealed: tracking_sealed,
                    ownership_token_hash: verified_email.as_ref().map(|_| ownership.hash.clone()),
                    ownership_token_sealed: verified_email.as_ref().map(|_| ownership_sealed),
                    ownership: Ownership::Unanswered.as_str().to_owned(),
                    ownership_answered_at: None,
                    duplicate_of: duplicate_of.clone(),
                    submitted_at: repo::naive(now),
                    updated_at: repo::naive(now),
                    decided_at: None,
                    decided_by: None,
                    decision_note: None,
                    deliver_to: None,
                    completion_token_hash: None,
                    link_due_at: None,
                    link_sent_at: None,
                    link_expires_at: None,
                    completed_at: None,
                    submitted_ip: client.ip.clone(),
                    submitted_user_agent: client.user_agent.clone(),
                };
                repo::recovery_requests::insert(conn, &row)?;
                request_event(
                    conn,
                    now,
                    &row,
                    EventType::RecoveryRequestSubmitted,
                    Actor::Anonymous,
                    &client,
                    serde_json::json!({
                        "account_exists": account.is_some(),
                        "duplicate_of": duplicate_of,
                    }),
                )?;
                queue_tracking_mail(&ctx2, conn, &row, &tracking_value, false, now)?;
                if let (Some(account), Some(email)) = (&account, verified_email) {
                    send_ownership_mail(&ctx2, conn, account, &email, &ownership.value, now)?;
                }
                Ok(())
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(Submitted {
        id,
        tracking_token: tracking.value,
        submitted_at: now,
    })
}

/// Mails the request's tracking link to its contact email (first time or again).
fn queue_tracking_mail(
    ctx: &Ctx,
    conn: &mut DbConnection,
    row: &RequestRow,
    token: &str,
    resent: bool,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    ctx.mailer.queue(
        conn,
        now,
        OutgoingMail {
            to: row.contact_email.clone(),
            template: "recovery_tracking",
            context: serde_json::json!({
                "username": row.username,
                "link": tracking_link(ctx, &row.id, token),
                "resent": resent,
            }),
            carries_token: true,
        },
    )?;
    Ok(())
}

/// Counts a submission from this client IP, refusing past the limit.
fn limit_ip(
    ctx: &Ctx,
    conn: &mut DbConnection,
    what: &str,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<(), RequesterError> {
    let bucket = format!("{what}:ip:{}", client.ip.as_deref().unwrap_or("unknown"));
    let limit = ctx.config.rate_limits.recovery_request_per_ip;
    if let Decision::Limited { retry_after_secs } =
        rate_limit::take(conn, &ctx.metrics, &bucket, limit, now)?
    {
        return Err(RequesterError::RateLimited { retry_after_secs });
    }
    Ok(())
}

/// Asks the account's owner, at the verified address, whether the request is theirs (at most a
/// few such mails a day per account, so requests cannot be used to flood the owner).
fn send_ownership_mail(
    ctx: &Ctx,
    conn: &mut DbConnection,
    account: &AccountRow,
    email: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let bucket = format!("ownership-mail:{}", account.id);
    let limit = ctx.config.rate_limits.ownership_emails;
    if let Decision::Limited { .. } = rate_limit::take(conn, &ctx.metrics, &bucket, limit, now)? {
        return Ok(());
    }
    ctx.mailer.queue(
        conn,
        now,
        OutgoingMail {
            to: email.to_owned(),
            template: "recovery_ownership",
            context: serde_json::json!({
                "username": account.username,
                "at": human_time(now),
                "link": ownership_link(ctx, token),
                "auto_approve": ctx.config.recovery_auto_approve_after.map(human_duration),
            }),
            carries_token: true,
        },
    )?;
    Ok(())
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
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), RequesterError> {
                limit_ip(&ctx2, conn, "tracking-links", &client, now)?;
                for row in repo::recovery_requests::open_for_contact(conn, email.as_str())? {
                    let token = unseal(&ctx2, &row.tracking_token_sealed)?;
                    queue_tracking_mail(&ctx2, conn, &row, &token, true, now)?;
                }
                Ok(())
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(())
}

/// A message as the requester sees it.
#[derive(Debug, Clone)]
pub struct MessageView {
    /// Id.
    pub id: String,
    /// `requester`, `support` or `note`.
    pub kind: String,
    /// The support user who wrote it.
    pub author_id: Option<String>,
    /// Text.
    pub body: String,
    /// When.
    pub sent_at: DateTime<Utc>,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            author_id: m.author_id,
            body: m.body,
            sent_at: repo::utc(m.created_at),
        }
    }
}

/// The request as its requester sees it: never internal notes.
#[derive(Debug, Clone)]
pub struct RequesterView {
    /// Id.
    pub id: String,
    /// Status.
    pub status: RecoveryStatus,
    /// Filed at.
    pub submitted_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Messages between requester and support, oldest first.
    pub messages: Vec<MessageView>,
}

fn status_of(row: &RequestRow) -> Result<RecoveryStatus, Failure> {
    RecoveryStatus::parse(&row.status)
        .ok_or_else(|| Failure::Internal(anyhow::anyhow!("unknown stored status {}", row.status)))
}

fn tracked(conn: &mut DbConnection, id: &str, token: &str) -> Result<RequestRow, RequesterError> {
    repo::recovery_requests::find_tracked(conn, id, &tokens::hash_token(token))?
        .ok_or(RequesterError::NotFound)
}

fn requester_view(conn: &mut DbConnection, row: &RequestRow) -> Result<RequesterView, Failure> {
    let messages = repo::recovery_requests::messages(conn, &row.id, false)?
        .into_iter()
        .map(MessageView::from)
        .collect();
    Ok(RequesterView {
        id: row.id.clone(),
        status: status_of(row)?,
        submitted_at: repo::utc(row.submitted_at),
        updated_at: repo::utc(row.updated_at),
        messages,
    })
}

/// The request, for the holder of its tracking token.
pub async fn status(ctx: &Ctx, id: &str, token: &str) -> Result<RequesterView, RequesterError> {
    let (id, token) = (id.to_owned(), token.to_owned());
    ctx.db
        .run(move |conn| {
            let row = tracked(conn, &id, &token)?;
            Ok(requester_view(conn, &row)?)
        })
        .await
}

/// Records the requester's reply; `needs_info` moves back to `in_review`.
pub async fn reply(
    ctx: &Ctx,
    id: &str,
    token: &str,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, RequesterError> {
    let body = message_body(body).map_err(RequesterError::Invalid)?;
    let (id, token) = (id.to_owned(), token.to_owned());
    let now = ctx.clock.now();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<MessageView, RequesterError> {
                let row = tracked(conn, &id, &token)?;
                let from = status_of(&row)?;
                let to = from.apply(RecoveryAction::Reply)?;
                move_status(conn, &row, from, to, now, RequestChanges::default())?;
                let message = add_message(conn, &row.id, "requester", None, &body, now)?;
                request_event(
                    conn,
                    now,
                    &row,
                    EventType::RecoveryRequestReplyReceived,
                    Actor::Anonymous,
                    &client,
                    serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
                )?;
                Ok(message)
            })
        })
        .await
}

/// Withdraws the request.
pub async fn withdraw(
    ctx: &Ctx,
    id: &str,
    token: &str,
    client: ClientInfo,
) -> Result<(), RequesterError> {
    let (id, token) = (id.to_owned(), token.to_owned());
    let now = ctx.clock.now();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), RequesterError> {
                let row = tracked(conn, &id, &token)?;
                let from = status_of(&row)?;
                let to = from.apply(RecoveryAction::Withdraw)?;
                move_status(
                    conn,
                    &row,
                    from,
                    to,
                    now,
                    RequestChanges {
                        completion_token_hash: Some(None),
                        ..Default::default()
                    },
                )?;
                request_event(
                    conn,
                    now,
                    &row,
                    EventType::RecoveryRequestWithdrawn,
                    Actor::Anonymous,
                    &client,
                    serde_json::json!({"from": from.as_str()}),
                )?;
                Ok(())
            })
        })
        .await
}

/// Records an event about `row` (its account and itself) in the audit log.
fn request_event(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    row: &RequestRow,
    event_type: EventType,
    actor: Actor<'_>,
    client: &ClientInfo,
    details: serde_json::Value,
) -> Result<(), Failure> {
    audit::record(
        conn,
        now,
        Event {
            event_type,
            actor,
            account_id: row.account_id.as_deref(),
            request_id: Some(&row.id),
            client,
            details,
        },
    )?;
    Ok(())
}

/// Writes a status change conditionally on the status it starts from.
fn move_status(
    conn: &mut DbConnection,
    row: &RequestRow,
    from: RecoveryStatus,
    to: RecoveryStatus,
    now: DateTime<Utc>,
    mut changes: RequestChanges,
) -> Result<(), Failure> {
    changes.status = Some(to.as_str().to_owned());
    if !repo::recovery_requests::update(conn, &row.id, from.as_str(), repo::naive(now), changes)? {
        return Err(Failure::Internal(anyhow::anyhow!(
            "recovery request changed concurrently"
        )));
    }
    Ok(())
}

fn add_message(
    conn: &mut DbConnection,
    request_id: &str,
    kind: &str,
    author: Option<&str>,
    body: &str,
    now: DateTime<Utc>,
) -> Result<MessageView, Failure> {
    let row = MessageRow {
        id: uuid::Uuid::new_v4().to_string(),
        request_id: request_id.to_owned(),
        kind: kind.to_owned(),
        author_id: author.map(str::to_owned),
        body: body.to_owned(),
        created_at: repo::naive(now),
    };
    repo::recovery_requests::insert_message(conn, &row)?;
    Ok(row.into())
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
    let now = ctx.clock.now();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<Ownership, RequesterError> {
                let row = repo::recovery_requests::find_by_ownership_token(conn, &hash)?
                    .ok_or(RequesterError::InvalidToken)?;
                let status = status_of(&row)?;
                if status.is_final() {
                    return Err(RequesterError::InvalidToken);
                }
                let answer = if confirm {
                    Ownership::Proven
                } else {
                    Ownership::Disputed
                };
                let mut changes = RequestChanges {
                    ownership: Some(answer.as_str().to_owned()),
                    ownership_answered_at: Some(Some(repo::naive(now))),
                    ..Default::default()
                };
                let mut to = status;
                if answer == Ownership::Disputed && status == RecoveryStatus::Approved {
                    to = status.apply(RecoveryAction::Dispute)?;
                    changes.completion_token_hash = Some(None);
                    changes.link_due_at = Some(None);
                    changes.link_sent_at = Some(None);
                    changes.link_expires_at = Some(None);
                }
                changes.status = Some(to.as_str().to_owned());
                if !repo::recovery_requests::update(
                    conn,
                    &row.id,
                    status.as_str(),
                    repo::naive(now),
                    changes,
                )? {
                    return Err(
                        Failure::Internal(anyhow::anyhow!("request changed concurrently")).into(),
                    );
                }
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: if confirm {
                            EventType::RecoveryRequestOwnershipProven
                        } else {
                            EventType::RecoveryRequestOwnershipDisputed
                        },
                        actor: Actor::Anonymous,
                        account_id: row.account_id.as_deref(),
                        request_id: Some(&row.id),
                        client: &client,
                        details: serde_json::json!({"from": status.as_str(), "to": to.as_str()}),
                    },
                )?;
                Ok(answer)
            })
        })
        .await
}

/// What a completed recovery answers.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The recovered account's username.
    pub username: String,
}

/// Completes an approved request with its single-use link: sets the new password, removes TOTP
/// and every recovery code, revokes every session, marks the request completed and tells the
/// account. A refused password leaves the link usable.
pub async fn complete(
    ctx: &Ctx,
    token: &str,
    new_password: Option<&str>,
    client: ClientInfo,
) -> Result<Completed, RequesterError> {
    let raw = new_password.unwrap_or_default().to_owned();
    if raw.is_empty() {
        return Err(RequesterError::Invalid(vec![FieldIssue::new(
            "new_password",
            "required",
            "is required",
        )]));
    }
    let hash = tokens::hash_token(token);
    let now = ctx.clock.now();
    let lookup = hash.clone();
    let (row, account) = ctx
        .db
        .run(
            move |conn| -> Result<(RequestRow, AccountRow), RequesterError> {
                let row = repo::recovery_requests::find_by_completion_token(conn, &lookup)?
                    .ok_or(RequesterError::InvalidToken)?;
                let live = row.status == RecoveryStatus::Approved.as_str()
                    && row.link_sent_at.is_some()
                    && row.link_expires_at.is_some_and(|t| repo::utc(t) > now)
                    && row.ownership != Ownership::Disputed.as_str();
                if !live {
                    return Err(RequesterError::InvalidToken);
                }
                let account_id = row.account_id.clone().ok_or(RequesterError::InvalidToken)?;
                let account =
                    repo::accounts::find(conn, &account_id)?.ok_or(RequesterError::InvalidToken)?;
                Ok((row, account))
            },
        )
        .await?;
    let password = NewPassword::parse(&raw, &[&account.username, &account.email]).map_err(|e| {
        RequesterError::Invalid(vec![FieldIssue::new(
            "new_password",
            e.code(),
            e.to_string(),
        )])
    })?;
    let password_hash = ctx.passwords.hash(password.into_inner()).await?;
    let ctx2 = ctx.clone();
    let username = account.username.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), RequesterError> {
                let from = status_of(&row)?;
                let to = from.apply(RecoveryAction::Complete)?;
                // Single use: the row count of this conditional update decides a race.
                let done = repo::recovery_requests::update(
                    conn,
                    &row.id,
                    from.as_str(),
                    repo::naive(now),
                    RequestChanges {
                        status: Some(to.as_str().to_owned()),
                        completion_token_hash: Some(None),
                        completed_at: Some(Some(repo::naive(now))),
                        ..Default::default()
                    },
                )?;
                let still_ours = row.completion_token_hash.as_deref() == Some(hash.as_str());
                if !done || !still_ours {
                    return Err(RequesterError::InvalidToken);
                }
                two_factor::remove_all(conn, &account.id)?;
                accounts::set_password(
                    &ctx2,
                    conn,
                    &account,
                    &password_hash,
                    PasswordChange {
                        keep_session: None,
                        how: "reset through an approved account-recovery request",
                        event: EventType::PasswordReset,
                        actor: Actor::Account(&account.id),
                        client: &client,
                        request_id: Some(&row.id),
                    },
                    now,
                )?;
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: EventType::RecoveryRequestCompleted,
                        actor: Actor::Account(&account.id),
                        account_id: Some(&account.id),
                        request_id: Some(&row.id),
                        client: &client,
                        details: serde_json::json!({"two_factor_removed": true}),
                    },
                )?;
                ctx2.mailer.queue(
                    conn,
                    now,
                    OutgoingMail {
                        to: account.email.clone(),
                        template: "recovery_completed",
                        context: serde_json::json!({
                            "username": account.username,
                            "at": human_time(now),
                            "security_link": ctx2.mailer.link("account/security", &[]),
                        }),
                        carries_token: false,
                    },
                )?;
                Ok(())
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(Completed { username })
}

// ----- Support side -------------------------------------------------------------------------

/// A queue entry.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The request.
    pub request: RequestRow,
    /// Whether an account has the username.
    pub account_exists: bool,
}

/// The support queue: filtered, oldest first.
pub async fn queue(
    ctx: &Ctx,
    filter: QueueFilter,
    page: Page,
) -> Result<(Vec<QueueItem>, i64), SupportError> {
    if let Some(s) = &filter.status
        && RecoveryStatus::parse(s).is_none()
    {
        return Err(SupportError::Invalid(vec![FieldIssue::new(
            "status",
            "invalid",
            "is not a request status",
        )]));
    }
    ctx.db
        .run(move |conn| {
            let (rows, total) = repo::recovery_requests::list(conn, &filter, page)?;
            let items = rows
                .into_iter()
                .map(|r| QueueItem {
                    account_exists: r.account_id.is_some(),
                    request: r,
                })
                .collect();
            Ok((items, total))
        })
        .await
}

/// What support knows about the account behind a request.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Whether an account has the username.
    pub account_exists: bool,
    /// Its id.
    pub account_id: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// Whether its email is verified.
    pub email_verified: bool,
    /// Its last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Its two-factor state.
    pub two_factor: two_factor::TwoFactorStatus,
    /// The owner's answer through the account's email.
    pub ownership: String,
    /// The account's other requests, oldest first.
    pub earlier_requests: Vec<RequestRow>,
}

/// One request with everything support needs to decide.
#[derive(Debug, Clone)]
pub struct Detail {
    /// The request.
    pub request: RequestRow,
    /// The account's evidence.
    pub evidence: Evidence,
    /// Messages and internal notes, oldest first.
    pub messages: Vec<MessageView>,
    /// The request's audit events, newest first.
    pub timeline: Vec<EventView>,
}

fn load_detail(conn: &mut DbConnection, id: &str) -> Result<Detail, SupportError> {
    let request = repo::recovery_requests::find(conn, id)?.ok_or(SupportError::NotFound)?;
    let mut evidence = Evidence {
        ownership: request.ownership.clone(),
        ..Default::default()
    };
    if let Some(account_id) = &request.account_id
        && let Some(account) = repo::accounts::find(conn, account_id)?
    {
        evidence.account_exists = true;
        evidence.account_id = Some(account.id.clone());
        evidence.created_at = Some(repo::utc(account.created_at));
        evidence.email_verified = account.email_verified_at.is_some();
        evidence.last_login_at = account.last_login_at.map(repo::utc);
        evidence.two_factor = two_factor::status(conn, &account.id)?;
        evidence.earlier_requests = repo::recovery_requests::for_account(conn, &account.id)?
            .into_iter()
            .filter(|r| r.id != request.id)
            .collect();
    }
    let messages = repo::recovery_requests::messages(conn, &request.id, true)?
        .into_iter()
        .map(MessageView::from)
        .collect();
    let (timeline, _) = audit::list(
        conn,
        &repo::audit::AuditFilter {
            request_id: Some(request.id.clone()),
            ..Default::default()
        },
        Page {
            page: 1,
            per_page: 200,
        },
    )?;
    Ok(Detail {
        request,
        evidence,
        messages,
        timeline,
    })
}

/// A request with its evidence, messages, notes and timeline.
pub async fn detail(ctx: &Ctx, id: &str) -> Result<Detail, SupportError> {
    let id = id.to_owned();
    ctx.db.run(move |conn| load_detail(conn, &id)).await
}

/// Adds an internal note (never shown to the requester); a submitted request moves to review.
pub async fn add_note(
    ctx: &Ctx,
    who: &Principal,
    id: &str,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, SupportError> {
    support_message(ctx, who, id, body, client, RecoveryAction::AddNote).await
}

/// Sends a message to the requester (emailed); the request waits for their answer.
pub async fn send_message(
    ctx: &Ctx,
    who: &Principal,
    id: &str,
    body: Option<&str>,
    client: ClientInfo,
) -> Result<MessageView, SupportError> {
    support_message(ctx, who, id, body, client, RecoveryAction::SendMessage).await
}

async fn support_message(
    ctx: &Ctx,
    who: &Principal,
    id: &str,
    body: Option<&str>,
    client: ClientInfo,
    action: RecoveryAction,
) -> Result<MessageView, SupportError> {
    let body = message_body(body).map_err(SupportError::Invalid)?;
    let (id, support) = (id.to_owned(), who.account_id.clone());
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let message = ctx
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<MessageView, SupportError> {
                let row =
                    repo::recovery_requests::find(conn, &id)?.ok_or(SupportError::NotFound)?;
                let from = status_of(&row)?;
                let to = from.apply(action)?;
                move_status(conn, &row, from, to, now, RequestChanges::default())?;
                let (kind, event) = match action {
                    RecoveryAction::SendMessage => {
                        ("support", EventType::RecoveryRequestMessageSent)
                    }
                    _ => ("note", EventType::RecoveryRequestNoteAdded),
                };
                let message = add_message(conn, &row.id, kind, Some(&support), &body, now)?;
                request_event(
                    conn,
                    now,
                    &row,
                    event,
                    Actor::Support(&support),
                    &client,
                    serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
                )?;
                if action == RecoveryAction::SendMessage {
                    ctx2.mailer.queue(
                        conn,
                        now,
                        OutgoingMail {
                            to: row.contact_email.clone(),
                            template: "recovery_message",
                            context: serde_json::json!({
                                "username": row.username,
                                "message": body,
                                "resend_link": ctx2.mailer.link("recovery/lost-link", &[]),
                            }),
                            carries_token: false,
                        },
                    )?;
                }
                Ok(message)
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(message)
}

/// Where the completion link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverTo {
    /// The account's verified email (the default).
    AccountEmail,
    /// The contact email of the request (support must justify it).
    ContactEmail,
}

impl DeliverTo {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccountEmail => "account_email",
            Self::ContactEmail => "contact_email",
        }
    }

    /// The value [`DeliverTo::as_str`] stored, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AccountEmail, Self::ContactEmail]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
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
    id: &str,
    approval: Approval,
    client: ClientInfo,
) -> Result<Detail, SupportError> {
    let justification = approval
        .justification
        .as_deref()
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .map(str::to_owned);
    if approval.deliver_to == DeliverTo::ContactEmail && justification.is_none() {
        return Err(SupportError::Invalid(vec![FieldIssue::new(
            "justification",
            "required",
            "is required when deliver_to is contact_email",
        )]));
    }
    let (id, support) = (id.to_owned(), who.account_id.clone());
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let detail = ctx
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<Detail, SupportError> {
                let row =
                    repo::recovery_requests::find(conn, &id)?.ok_or(SupportError::NotFound)?;
                let actor = Actor::Support(&support);
                approve_in(
                    &ctx2,
                    conn,
                    &row,
                    &approval,
                    justification.as_deref(),
                    actor,
                    &client,
                    now,
                )?;
                load_detail(conn, &row.id)
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(detail)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one approval, by support or by the system"
)]
fn approve_in(
    ctx: &Ctx,
    conn: &mut DbConnection,
    row: &RequestRow,
    approval: &Approval,
    justification: Option<&str>,
    actor: Actor<'_>,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<(), SupportError> {
    let from = status_of(row)?;
    let to = from.apply(RecoveryAction::Approve)?;
    let account_id = row.account_id.as_deref().ok_or(SupportError::NoAccount)?;
    let account = repo::accounts::find(conn, account_id)?.ok_or(SupportError::NoAccount)?;
    if approval.deliver_to == DeliverTo::AccountEmail && account.email_verified_at.is_none() {
        return Err(SupportError::NoVerifiedEmail);
    }
    let proven = row.ownership == Ownership::Proven.as_str();
    let due = if proven {
        now
    } else {
        now + open_ttl(ctx.config.recovery_waiting_period)
    };
    let deliver = match justification {
        Some(j) => format!("{}: {j}", approval.deliver_to.as_str()),
        None => approval.deliver_to.as_str().to_owned(),
    };
    let decided_by = match &actor {
        Actor::Support(id) => format!("support:{id}"),
        _ => "system".to_owned(),
    };
    move_status(
        conn,
        row,
        from,
        to,
        now,
        RequestChanges {
            decided_at: Some(Some(repo::naive(now))),
            decided_by: Some(Some(decided_by)),
            decision_note: Some(approval.comment.clone()),
            deliver_to: Some(Some(deliver)),
            completion_token_hash: Some(None),
            link_due_at: Some(Some(repo::naive(due))),
            link_sent_at: Some(None),
            link_expires_at: Some(None),
            ..Default::default()
        },
    )?;
    audit::record(
        conn,
        now,
        Event {
            event_type: EventType::RecoveryRequestApproved,
            actor,
            account_id: Some(&account.id),
            request_id: Some(&row.id),
            client,
            details: serde_json::json!({
                "from": from.as_str(),
                "deliver_to": approval.deliver_to.as_str(),
                "justification": justification,
                "comment": approval.comment,
                "ownership": row.ownership,
                "link_due_at": due,
            }),
        },
    )?;
    if proven {
        send_completion_link(ctx, conn, &row.id, now)?;
    } else if account.email_verified_at.is_some() {
        // Tell the owner a recovery is under way, with the link to stop it.
        let token = match &row.ownership_token_sealed {
            Some(sealed) => unseal(ctx, sealed)?,
            None => {
                let fresh = tokens::new_token();
                set_ownership_token(ctx, conn, &row.id, to, &fresh, now)?;
                fresh.value
            }
        };
        ctx.mailer.queue(
            conn,
            now,
            OutgoingMail {
                to: account.email.clone(),
                template: "recovery_pending",
                context: serde_json::json!({
                    "username": account.username,
                    "link": ownership_link(ctx, &token),
                    "waiting": human_duration(ctx.config.recovery_waiting_period),
                    "due": human_time(due),
                }),
                carries_token: true,
            },
        )?;
    }
    Ok(())
}

fn set_ownership_token(
    ctx: &Ctx,
    conn: &mut DbConnection,
    id: &str,
    status: RecoveryStatus,
    token: &NewToken,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    repo::recovery_requests::update(
        conn,
        id,
        status.as_str(),
        repo::naive(now),
        RequestChanges {
            ownership_token_hash: Some(Some(token.hash.clone())),
            ownership_token_sealed: Some(Some(seal(ctx, &token.value)?)),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Issues the single-use completion token and mails the link, if the request is approved and
/// its link not yet sent (the conditional update makes this safe across instances).
fn send_completion_link(
    ctx: &Ctx,
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<bool, Failure> {
    let Some(row) = repo::recovery_requests::find(conn, id)? else {
        return Ok(false);
    };
    if row.status != RecoveryStatus::Approved.as_str() || row.link_sent_at.is_some() {
        return Ok(false);
    }
    let Some(account) = row
        .account_id
        .as_deref()
        .map(|a| repo::accounts::find(conn, a))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    let token = tokens::new_token();
    let expires = now + open_ttl(ctx.config.recovery_completion_ttl);
    let claimed = diesel_claim_link(conn, &row, &token.hash, now, expires)?;
    if !claimed {
        return Ok(false);
    }
    let to_contact = row
        .deliver_to
        .as_deref()
        .is_some_and(|d| d.starts_with("contact_email"));
    let to = if to_contact {
        row.contact_email.clone()
    } else {
        account.email.clone()
    };
    let stop = match (&row.ownership_token_sealed, to_contact) {
        (Some(sealed), false) => Some(ownership_link(ctx, &unseal(ctx, sealed)?)),
        _ => None,
    };
    ctx.mailer.queue(
        conn,
        now,
        OutgoingMail {
            to,
            template: "recovery_link",
            context: serde_json::json!({
                "username": account.username,
                "link": ctx.mailer.link("recovery/complete", &[("token", &token.value)]),
                "ttl": human_duration(ctx.config.recovery_completion_ttl),
                "stop_link": stop,
                "automatic": row.decided_by.as_deref() == Some("system"),
            }),
            carries_token: true,
        },
    )?;
    audit::record(
        conn,
        now,
        Event {
            event_type: EventType::RecoveryRequestLinkSent,
            actor: Actor::System,
            account_id: Some(&account.id),
            request_id: Some(&row.id),
            client: &ClientInfo::default(),
            details: serde_json::json!({
                "to": if to_contact { "contact_email" } else { "account_email" },
                "expires_at": expires,
            }),
        },
    )?;
    Ok(true)
}

fn diesel_claim_link(
    conn: &mut DbConnection,
    row: &RequestRow,
    hash: &str,
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> Result<bool, Failure> {
    if row.link_sent_at.is_some() {
        return Ok(false);
    }
    Ok(repo::recovery_requests::claim_link(
        conn,
        &row.id,
        hash,
        repo::naive(now),
        repo::naive(expires),
    )?)
}

/// Denies a request; the requester is emailed the reason.
pub async fn deny(
    ctx: &Ctx,
    who: &Principal,
    id: &str,
    reason: Option<&str>,
    client: ClientInfo,
) -> Result<Detail, SupportError> {
    let mut issues = Vec::new();
    let reason = text_field(&mut issues, "reason", reason, 1, 5000);
    let reason = reason.ok_or(SupportError::Invalid(issues))?;
    let (id, support) = (id.to_owned(), who.account_id.clone());
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let detail = ctx
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<Detail, SupportError> {
                let row =
                    repo::recovery_requests::find(conn, &id)?.ok_or(SupportError::NotFound)?;
                let from = status_of(&row)?;
                let to = from.apply(RecoveryAction::Deny)?;
                move_status(
                    conn,
                    &row,
                    from,
                    to,
                    now,
                    RequestChanges {
                        decided_at: Some(Some(repo::naive(now))),
                        decided_by: Some(Some(format!("support:{support}"))),
                        decision_note: Some(Some(reason.clone())),
                        ..Default::default()
                    },
                )?;
                request_event(
                    conn,
                    now,
                    &row,
                    EventType::RecoveryRequestDenied,
                    Actor::Support(&support),
                    &client,
                    serde_json::json!({"from": from.as_str(), "reason": reason}),
                )?;
                ctx2.mailer.queue(
                    conn,
                    now,
                    OutgoingMail {
                        to: row.contact_email.clone(),
                        template: "recovery_denied",
                        context: serde_json::json!({"username": row.username, "reason": reason}),
                        carries_token: false,
                    },
                )?;
                load_detail(conn, &row.id)
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(detail)
}

/// A page of the audit log.
pub async fn audit_events(
    ctx: &Ctx,
    filter: repo::audit::AuditFilter,
    page: Page,
) -> Result<(Vec<EventView>, i64), Failure> {
    ctx.db
        .run(move |conn| audit::list(conn, &filter, page).map_err(Failure::from))
        .await
}

// ----- Background work ----------------------------------------------------------------------

/// Sends held completion links that came due, expires unused ones, and applies the optional
/// auto-approval policy. Safe to run on several instances at once.
pub async fn run_due_work(ctx: &Ctx) -> Result<usize, Failure> {
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let done = ctx
        .db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<usize, Failure> {
                let mut done = 0;
                if let Some(after) = ctx2.config.recovery_auto_approve_after {
                    let before = repo::naive(now - open_ttl(after));
                    for row in repo::recovery_requests::auto_approvable(conn, before)? {
                        let approval = Approval {
                            comment: Some(
                                "approved by policy: ownership proven by the account's email"
                                    .into(),
                            ),
                            deliver_to: DeliverTo::AccountEmail,
                            justification: None,
                        };
                        match approve_in(
                            &ctx2,
                            conn,
                            &row,
                            &approval,
                            None,
                            Actor::System,
                            &ClientInfo::default(),
                            now,
                        ) {
                            Ok(()) => done += 1,
                            Err(SupportError::Failure(f)) => return Err(f),
                            Err(_) => {}
                        }
                    }
                }
                for row in repo::recovery_requests::links_due(conn, repo::naive(now))? {
                    if send_completion_link(&ctx2, conn, &row.id, now)? {
                        done += 1;
                    }
                }
                for row in repo::recovery_requests::links_expired(conn, repo::naive(now))? {
                    let from = status_of(&row)?;
                    let Ok(to) = from.apply(RecoveryAction::Expire) else {
                        continue;
                    };
                    if repo::recovery_requests::update(
                        conn,
                        &row.id,
                        from.as_str(),
                        repo::naive(now),
                        RequestChanges {
                            status: Some(to.as_str().to_owned()),
                            completion_token_hash: Some(None),
                            ..Default::default()
                        },
                    )? {
                        request_event(
                            conn,
                            now,
                            &row,
                            EventType::RecoveryRequestExpired,
                            Actor::System,
                            &ClientInfo::default(),
                            serde_json::json!({}),
                        )?;
                        done += 1;
                    }
                }
                Ok(done)
            })
        })
        .await?;
    if done > 0 {
        ctx.mailer.wake();
    }
    Ok(done)
}
