//! The end of an approved request: issuing and mailing its single-use completion link, and
//! completing the recovery with it (new password, two-factor removed, every session revoked).
//!
//! A link is live while the request is approved, the link was sent and has not expired, and
//! the owner has not disputed the request. Each approval issues a new token and a dispute
//! clears it, so a link is good only for the approval that issued it: completing requires, in
//! the one conditional UPDATE that decides, that the stored token hash is this token's.

use super::{RequesterError, after, ownership_link, unseal};
use crate::context::Ctx;
use crate::db::repo::{self, recovery_requests::RequestChanges};
use crate::domain::Account;
use crate::domain::{
    AccountId, DeliverTo, EventType, NewPassword, Ownership, RecoveryAction, RecoveryRequest,
    RecoveryStatus, RequestId,
};
use crate::mail::{OutgoingMail, human_duration, human_time};
use crate::security::tokens;
use crate::services::account_lock::{self, UnlockedBy};
use crate::services::accounts::{self, PasswordChange};
use crate::services::audit::{Actor, Event};
use crate::services::two_factor;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};

/// What a completed recovery answers.
#[derive(Debug, Clone)]
pub struct Completed {
    /// The recovered account's username.
    pub username: String,
}

/// Issues the single-use completion token and mails the link, if the request is approved and
/// its link not yet sent (the conditional update makes this safe across instances). The link
/// goes to the account's email, or to the contact email when support chose it.
pub(super) fn send_completion_link(w: &mut Work<'_>, id: &RequestId) -> Result<bool, Failure> {
    let Some(request) = repo::recovery_requests::find(w.conn, id)? else {
        return Ok(false);
    };
    if request.status != RecoveryStatus::Approved || request.link_sent_at.is_some() {
        return Ok(false);
    }
    let Some(account) = request
        .account_id
        .as_ref()
        .map(|a| repo::accounts::find(w.conn, a))
        .transpose()?
        .flatten()
    else {
        return Ok(false);
    };
    let token = tokens::new_token();
    let expires = after(w.now, w.ctx.config.recovery_completion_ttl);
    if !repo::recovery_requests::claim_link(w.conn, &request.id, &token.hash, w.now, expires)? {
        return Ok(false);
    }
    let deliver_to = request.deliver_to.unwrap_or(DeliverTo::AccountEmail);
    let to_contact = deliver_to == DeliverTo::ContactEmail;
    let to = if to_contact {
        request.contact_email.clone()
    } else {
        account.email.clone()
    };
    // The stop link goes only to the account's own address, never to the contact email.
    let stop = match (&request.ownership_token_sealed, to_contact) {
        (Some(sealed), false) => Some(ownership_link(w.ctx, &unseal(w.ctx, sealed)?)),
        _ => None,
    };
    let context = serde_json::json!({
        "username": account.username,
        "link": w.ctx.mailer.link("recovery/complete", &[("token", &token.value)]),
        "ttl": human_duration(w.ctx.config.recovery_completion_ttl),
        "stop_link": stop,
        "automatic": request.decided_by.as_deref() == Some("system"),
    });
    w.mail_about(
        &request.id,
        OutgoingMail {
            to,
            template: "recovery_link",
            context,
            carries_token: true,
        },
    )?;
    let client = ClientInfo::default();
    w.audit(
        Event::new(EventType::RecoveryRequestLinkSent, Actor::System, &client)
            .account(Some(&account.id))
            .request(&request.id)
            .details(serde_json::json!({
                "to": deliver_to.as_str(),
                "expires_at": expires,
            })),
    )?;
    Ok(true)
}

/// The request behind a live completion link, and its account.
fn live_link(
    request: Option<RecoveryRequest>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(RecoveryRequest, AccountId), RequesterError> {
    let request = request.ok_or(RequesterError::InvalidToken)?;
    let live = request.status == RecoveryStatus::Approved
        && request.link_sent_at.is_some()
        && request.link_expires_at.is_some_and(|t| t > now)
        && request.ownership != Ownership::Disputed;
    match (&request.account_id, live) {
        (Some(account_id), true) => {
            let account_id = account_id.clone();
            Ok((request, account_id))
        }
        _ => Err(RequesterError::InvalidToken),
    }
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
    // Look the link up first: the password is checked against the account's names and hashed
    // (slow) outside the write transaction.
    let lookup = hash.clone();
    let (request, account) = unit_of_work::read(
        ctx,
        move |conn| -> Result<(RecoveryRequest, Account), RequesterError> {
            let found = repo::recovery_requests::find_by_completion_token(conn, &lookup)?;
            let (request, account_id) = live_link(found, now)?;
            let account =
                repo::accounts::find(conn, &account_id)?.ok_or(RequesterError::InvalidToken)?;
            Ok((request, account))
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
    let username = account.username.clone();
    unit_of_work::write(ctx, move |w| -> Result<(), RequesterError> {
        let to = RecoveryStatus::Approved.apply(RecoveryAction::Complete)?;
        // Single use, and only for the link that was looked up: between the lookup and now the
        // request may have been disputed and approved again (a new link), or the link may have
        // expired. The row count of this update, conditional on this token's hash and a live
        // link, decides, also between racing requests.
        let done = repo::recovery_requests::update_with_live_link(
            w.conn,
            &request.id,
            &hash,
            w.now,
            RequestChanges {
                status: Some(to),
                completion_token_hash: Some(None),
                completed_at: Some(Some(w.now)),
                ..Default::default()
            },
        )?;
        if !done {
            return Err(RequesterError::InvalidToken);
        }
        // The account's row before its second factors (PostgreSQL): a passkey registration
        // or TOTP confirmation racing this one then sees them gone and starts 2FA afresh.
        repo::accounts::lock_for_update(w.conn, &account.id)?;
        two_factor::remove_all(w.conn, &account.id)?;
        let passkeys_removed = crate::services::passkeys::remove_all(w.conn, &account.id)?;
        accounts::set_password(
            w,
            &account,
            &password_hash,
            PasswordChange {
                keep_session: None,
                how: "reset through an approved account-recovery request",
                event: EventType::PasswordReset,
                actor: Actor::Account(&account.id),
                client: &client,
                request_id: Some(&request.id),
            },
        )?;
        w.audit(
            Event::new(
                EventType::RecoveryRequestCompleted,
                Actor::Account(&account.id),
                &client,
            )
            .account(Some(&account.id))
            .request(&request.id)
            .details(serde_json::json!({
                "two_factor_removed": true,
                "passkeys_removed": passkeys_removed,
            })),
        )?;
        let context = serde_json::json!({
            "username": account.username,
            "at": human_time(w.now),
            "security_link": w.ctx.mailer.link("account/security", &[]),
        });
        account_lock::notice(
            w,
            account_lock::NoticeTo::account(&account),
            &account.id,
            "recovery_completed",
            &client,
            context,
            None,
        )?;
        // A completed recovery request unlocks an account its owner locked.
        account_lock::unlock(w, &account, UnlockedBy::RecoveryRequest, &client)?;
        Ok(())
    })
    .await?;
    Ok(Completed { username })
}
