//! Changing the account's email address: a request (the password asked again, in the
//! re-authentication budget) sends a single-use `confirm-email-change` link to the new address
//! and a notice with a lock link to the current one; confirming switches the address
//! (verified), signs out every other session and tells the old address, whose lock link then
//! also puts it back for `EMAIL_CHANGE_UNDO_PERIOD`.
//!
//! Until the link is followed the current address stays the account's address for everything
//! (login, reset, ownership mail): the pending address lives only in the link's token row
//! (`email_tokens`, purpose `change_email`, hashed), and a newer request voids an older one.
//! Requests are limited per account (`RATE_LIMIT_EMAIL_CHANGES`). The new address must not be
//! another account's, look like another account's (the registration rule), or be held for
//! another account's undo.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{self, email_address_changes::EmailAddressChange};
use crate::domain::{Account, AccountId, EmailAddress, EmailToken, EventType, TokenPurpose};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_duration};
use crate::security::tokens;
use crate::services::account_lock::{self, Restore};
use crate::services::accounts::{AccountView, view};
use crate::services::audit::{Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::reauth;
use crate::services::sessions::Principal;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};

/// Why an email change was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailChangeError {
    /// Field errors (the new address is malformed, the same, or looks like another account's).
    #[error("invalid fields")]
    Invalid(Vec<FieldIssue>),
    /// The password is wrong.
    #[error("invalid password")]
    InvalidPassword,
    /// Another account has the address.
    #[error("email taken")]
    EmailTaken,
    /// Too many requests or wrong passwords.
    #[error("rate limited")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Unknown, used or expired confirmation link.
    #[error("invalid token")]
    InvalidToken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(EmailChangeError);

/// A pending change.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The new address, waiting for its confirmation.
    pub pending_email: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// An address as a notice shows it to someone who may not own it: `j***@example.test`.
pub fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

fn bucket(account_id: &AccountId) -> String {
    format!("email-change:{account_id}")
}

/// Refuses an address that is taken, looks like another account's, or is held for another
/// account's undo.
fn check_free(
    conn: &mut DbConnection,
    account_id: &AccountId,
    email: &EmailAddress,
    now: DateTime<Utc>,
) -> Result<(), EmailChangeError> {
    let (taken, alike) = repo::email_address_changes::in_use_by_other(
        conn,
        Some(account_id),
        email.as_str(),
        &email.skeleton(),
        now,
    )?;
    if taken {
        return Err(EmailChangeError::EmailTaken);
    }
    if alike {
        return Err(EmailChangeError::Invalid(vec![FieldIssue::new(
            "new_email",
            "confusable",
            "looks too much like the address of another account",
        )]));
    }
    Ok(())
}

/// Starts an email change: checks the password, then mails the confirmation link to the new
/// address and a notice (new address masked, with a lock link) to the current one.
pub async fn request(
    ctx: &Ctx,
    who: &Principal,
    password: String,
    new_email: &str,
    client: ClientInfo,
) -> Result<Pending, EmailChangeError> {
    // A blank password is a wrong one (403, in the re-authentication budget), as in every other
    // re-authentication: the field rule says a wrong password is never a 422.
    let mut issues = Vec::new();
    let email = EmailAddress::parse(new_email)
        .map_err(|e| issues.push(FieldIssue::new("new_email", e.code(), e.to_string())))
        .ok();
    let email = match email {
        Some(e) if issues.is_empty() => e,
        _ => return Err(EmailChangeError::Invalid(issues)),
    };
    let id = who.account_id.clone();
    // Every request counts against the account's budget before any work, so a burst cannot
    // send more mail than the limit allows.
    let account = unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Account, EmailChangeError> {
            let metrics = w.ctx.metrics.clone();
            let limit = w.ctx.config.rate_limits.email_changes;
            if let Decision::Limited { retry_after_secs } =
                rate_limit::take(w.conn, &metrics, &bucket(&id), limit, w.now)?
            {
                return Err(EmailChangeError::RateLimited { retry_after_secs });
            }
            Ok(repo::accounts::find(w.conn, &id)?
                .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))?)
        },
    )
    .await?;
    match reauth::password(ctx, &account.id, &account.password_hash, password, &client).await? {
        Ok(true) => {}
        Ok(false) => return Err(EmailChangeError::InvalidPassword),
        Err(reauth::Limited { retry_after_secs }) => {
            return Err(EmailChangeError::RateLimited { retry_after_secs });
        }
    }
    if email.as_str() == account.email {
        return Err(EmailChangeError::Invalid(vec![FieldIssue::new(
            "new_email",
            "unchanged",
            "is already the account's address",
        )]));
    }
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Pending, EmailChangeError> {
            // Requests of one account queue here (the row lock on PostgreSQL), so exactly one
            // pending change survives a burst.
            repo::account_locks::hold_account(w.conn, &account.id)?;
            check_free(w.conn, &account.id, &email, w.now)?;
            let now = w.now;
            // A newer request voids an older pending one.
            repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ChangeEmail, now)?;
            let ttl = w.ctx.config.email_change_ttl;
            let expires_at = w.now + chrono::Duration::from_std(ttl).unwrap_or_default();
            let token = tokens::new_token();
            repo::email_tokens::insert(
                w.conn,
                &EmailToken {
                    token_hash: token.hash.clone(),
                    purpose: TokenPurpose::ChangeEmail,
                    account_id: account.id.clone(),
                    email: email.as_str().to_owned(),
                    created_at: now,
                    expires_at,
                    used_at: None,
                    revoked_at: None,
                },
            )?;
            w.audit(
                Event::new(
                    EventType::AccountEmailChangeRequested,
                    Actor::Account(&account.id),
                    &client,
                )
                .account(Some(&account.id))
                .details(serde_json::json!({"new_email": masked(email.as_str())})),
            )?;
            let link = w
                .ctx
                .mailer
                .link("confirm-email-change", &[("token", &token.value)]);
            w.mail(OutgoingMail {
                to: email.as_str().to_owned(),
                template: "email_change_confirm",
                context: serde_json::json!({
                    "username": account.username,
                    "email": email.as_str(),
                    "link": link,
                    "ttl": human_duration(ttl),
                }),
                carries_token: true,
            })?;
            account_lock::notice(
                w,
                account_lock::NoticeTo::account(&account),
                &account.id,
                "email_change_requested",
                &client,
                serde_json::json!({
                    "username": account.username,
                    "new_email": masked(email.as_str()),
                    "ttl": human_duration(ttl),
                }),
                None,
            )?;
            Ok(Pending {
                pending_email: email.as_str().to_owned(),
                expires_at,
            })
        },
    )
    .await
}

/// Confirms an email change with the link's token: the address switches (verified), every
/// session but `keep` (the caller's own, when signed in to the same account) is revoked, reset
/// links to the old address die, and the old address gets a notice whose lock link also puts
/// it back during `EMAIL_CHANGE_UNDO_PERIOD`. A refusal leaves the link usable.
pub async fn confirm(
    ctx: &Ctx,
    token: &str,
    caller: Option<Principal>,
    client: ClientInfo,
) -> Result<AccountView, EmailChangeError> {
    let hash = tokens::hash_token(token);
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<AccountView, EmailChangeError> {
            let now = w.now;
            let Some(pending) =
                repo::email_tokens::find_live(w.conn, &hash, TokenPurpose::ChangeEmail, now)?
            else {
                return Err(EmailChangeError::InvalidToken);
            };
            // A confirmation and a lock (or another confirmation) of one account queue here.
            repo::account_locks::hold_account(w.conn, &pending.account_id)?;
            let Some(pending) =
                repo::email_tokens::find_live(w.conn, &hash, TokenPurpose::ChangeEmail, now)?
            else {
                return Err(EmailChangeError::InvalidToken);
            };
            let account = repo::accounts::find(w.conn, &pending.account_id)?
                .ok_or(EmailChangeError::InvalidToken)?;
            let email =
                EmailAddress::parse(&pending.email).map_err(|_| EmailChangeError::InvalidToken)?;
            check_free(w.conn, &account.id, &email, w.now)?;
            if repo::email_tokens::consume(w.conn, &hash, TokenPurpose::ChangeEmail, now)?.is_none()
            {
                return Err(EmailChangeError::InvalidToken);
            }
            let switched = repo::email_address_changes::set_address(
                w.conn,
                &account.id,
                &account.email,
                email.as_str(),
                &email.skeleton(),
                now,
            )
            .map_err(taken_by_race)?;
            if !switched {
                return Err(EmailChangeError::InvalidToken);
            }
            repo::email_address_changes::insert(
                w.conn,
                &EmailAddressChange {
                    id: uuid::Uuid::new_v4().to_string(),
                    account_id: account.id.clone(),
                    old_email: account.email.clone(),
                    new_email: email.as_str().to_owned(),
                    how: "confirmed".into(),
                    changed_at: now,
                },
            )?;
            let keep = caller
                .filter(|c| c.account_id == account.id)
                .map(|c| c.session_id);
            let revoked = repo::sessions::revoke_all(
                w.conn,
                &account.id,
                keep.as_ref(),
                now,
                "email_changed",
            )?;
            // Links that went to the old address stop working.
            repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ResetPassword, now)?;
            w.audit(
                Event::new(
                    EventType::AccountEmailChanged,
                    Actor::Account(&account.id),
                    &client,
                )
                .account(Some(&account.id))
                .details(serde_json::json!({
                    "how": "confirmed",
                    "old_email": masked(&account.email),
                    "new_email": masked(email.as_str()),
                    "sessions_revoked": revoked,
                })),
            )?;
            let undo = w.ctx.config.email_change_undo_period;
            let until = w.now + chrono::Duration::from_std(undo).unwrap_or_default();
            // Only an address the owner proved to hold may come back (and it comes back
            // verified); a never-verified old address gets no notice, hence no link, at all.
            let old_verified = account.email_verified_at.is_some();
            account_lock::notice(
                w,
                account_lock::NoticeTo::account(&account),
                &account.id,
                "email_changed",
                &client,
                serde_json::json!({
                    "username": account.username,
                    "new_email": masked(email.as_str()),
                    "undo": account_lock::lifetime(undo),
                }),
                old_verified.then(|| Restore {
                    email: account.email.clone(),
                    until,
                }),
            )?;
            let row =
                repo::accounts::find(w.conn, &account.id)?.ok_or(EmailChangeError::InvalidToken)?;
            Ok(view(w.conn, row)?)
        },
    )
    .await
}

/// A registration took the address between the check and the switch: the unique indexes
/// decided.
fn taken_by_race(e: diesel::result::Error) -> EmailChangeError {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => EmailChangeError::EmailTaken,
        other => other.into(),
    }
}

/// A pending change as support sees it.
#[derive(Debug, Clone)]
pub struct PendingChange {
    /// The new address.
    pub new_email: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When the link expires.
    pub expires_at: DateTime<Utc>,
}

/// An address change as support sees it.
#[derive(Debug, Clone)]
pub struct AddressChange {
    /// The address before.
    pub old_email: String,
    /// The address after.
    pub new_email: String,
    /// `confirmed` or `restored`.
    pub how: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// The account's pending email changes and its address changes since `since` (newest first),
/// for support's evidence page.
pub fn evidence(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<(Vec<PendingChange>, Vec<AddressChange>), Failure> {
    let pending = repo::email_tokens::live_of(conn, account_id, TokenPurpose::ChangeEmail, now)?
        .into_iter()
        .map(|t| PendingChange {
            new_email: t.email,
            requested_at: t.created_at,
            expires_at: t.expires_at,
        })
        .collect();
    let changes = repo::email_address_changes::since(conn, account_id, since)?
        .into_iter()
        .map(|c| AddressChange {
            old_email: c.old_email,
            new_email: c.new_email,
            how: c.how,
            changed_at: c.changed_at,
        })
        .collect();
    Ok((pending, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_address_keeps_the_first_letter_and_the_domain() {
        assert_eq!(masked("jbber@example.com"), "j***@example.com");
        assert_eq!(masked("é@example.com"), "é***@example.com");
        assert_eq!(masked("nonsense"), "***");
    }

    #[test]
    fn lifetimes_read_in_days_from_three_days() {
        use std::time::Duration;
        assert_eq!(
            account_lock::lifetime(Duration::from_secs(7 * 86_400)),
            "7 days"
        );
        assert_eq!(
            account_lock::lifetime(Duration::from_secs(48 * 3600)),
            "48 hours"
        );
        assert_eq!(account_lock::lifetime(Duration::from_secs(3600)), "1 hour");
    }

    #[test]
    fn the_new_mails_render() {
        let t = crate::mail::Templates::new();
        let common = serde_json::json!({
            "username": "<b>jb</b>", "email": "jb@new.example", "link": "https://f.test/x?token=t",
            "ttl": "48 hours", "new_email": "j***@new.example", "at": "2026-12-01 10:00 UTC",
            "ip": "203.0.113.7", "user_agent": "Firefox", "lock_link": "https://f.test/lock-account?token=l",
            "lock_ttl": "168 hours", "undo": "168 hours", "restored": true,
            "reset_link": "https://f.test/reset-password", "recovery_link": "https://f.test/recovery",
            "how": "a password reset",
        });
        for name in [
            "email_change_confirm",
            "email_change_requested",
            "email_changed",
            "account_locked",
            "account_unlocked",
        ] {
            let r = t.render(name, "PyPI-like", &common).expect(name);
            assert!(!r.subject.is_empty(), "{name}");
            assert!(r.html.contains("&lt;b&gt;jb"), "{name}");
        }
        let r = t.render("email_changed", "s", &common).expect("renders");
        assert!(r.text.contains("https://f.test/lock-account?token=l"));
    }
}
