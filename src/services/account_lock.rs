//! The owner's lock ("it wasn't me"): every security notice carries a single-use
//! `lock-account` link; following it locks the account at once, and a link from an
//! email-change notice also puts the previous address back.
//!
//! This module owns the links (issued inside the unit of work that queues the notice, stored
//! only as SHA-256 hashes, never logged), the lock itself (every session, refresh, mfa, reset,
//! email-change, login-confirmation and recovery-completion token dies in the same
//! transaction), the check logins make, and the unlock that a password reset through the
//! verified address or a completed recovery request performs. It must not decide anything
//! about passwords or second factors: a lock keeps 2FA as it is, so a thief who also reads the
//! owner's mail cannot remove it.
//!
//! It uses no other use case (`accounts`, `two_factor`, `login`, `email_change`, … use it).

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{
    self, account_locks::AccountLock, account_locks::LockLink,
    email_address_changes::EmailAddressChange, recovery_requests::RequestChanges,
};
use crate::domain::{
    Account, AccountId, EmailAddress, EventType, Ownership, RecoveryAction, RecoveryStatus,
};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_duration, human_time};
use crate::security::tokens;
use crate::services::audit::{Actor, Event};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// How a notice's lock link may also undo an email change.
#[derive(Debug, Clone)]
pub struct Restore {
    /// The address to put back.
    pub email: String,
    /// Until when (`EMAIL_CHANGE_UNDO_PERIOD` after the change).
    pub until: DateTime<Utc>,
}

/// A lifetime as a notice reads it: whole days from three days up ("7 days"), else as
/// [`human_duration`] says it ("48 hours").
pub fn lifetime(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3 * 86_400 && secs.is_multiple_of(86_400) {
        format!("{} days", secs / 86_400)
    } else {
        human_duration(d)
    }
}

fn after(now: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(7))
}

/// Issues a single-use lock link for the notice `notice` (its mail template) inside the
/// caller's unit of work, and returns the link (`{FRONTEND_URL}/lock-account?token=…`).
pub fn issue_link(
    w: &mut Work<'_>,
    account_id: &AccountId,
    notice: &str,
    restore: Option<Restore>,
) -> Result<String, Failure> {
    let token = tokens::new_token();
    let (restore_email, restore_skeleton, restore_until) = match restore {
        Some(r) => {
            let skeleton = EmailAddress::parse(&r.email)
                .map(|e| e.skeleton())
                .unwrap_or_else(|_| r.email.clone());
            (Some(r.email), Some(skeleton), Some(r.until))
        }
        None => (None, None, None),
    };
    repo::account_locks::insert_link(
        w.conn,
        &LockLink {
            token_hash: token.hash,
            account_id: account_id.to_owned(),
            notice: notice.to_owned(),
            created_at: w.now,
            expires_at: after(w.now, w.ctx.config.lock_link_ttl),
            used_at: None,
            restore_email,
            restore_skeleton,
            restore_until,
        },
    )?;
    Ok(w.ctx
        .mailer
        .link("lock-account", &[("token", &token.value)]))
}

/// Where a security notice goes: an address of the account, and whether the account proved
/// it holds that address (followed a link sent there).
#[derive(Debug, Clone, Copy)]
pub struct NoticeTo<'a> {
    /// The address.
    pub email: &'a str,
    /// Whether it was verified (for the old address of an email change: before the change).
    pub verified: bool,
}

impl<'a> NoticeTo<'a> {
    /// The account's current address, verified or not.
    pub fn account(account: &'a Account) -> Self {
        Self {
            email: &account.email,
            verified: account.email_verified_at.is_some(),
        }
    }
}

/// Queues a security notice to `to` with its lock link (`lock_link`, `lock_ttl`, and `at`,
/// `ip`, `user_agent` when the caller did not set them) inside the caller's unit of work. The
/// mail carries a token, so it is sealed at rest and wiped once delivered.
///
/// An address that was never verified gets no notice at all (as PyPI sends its security
/// notices only to verified addresses): nobody proved it is the owner's, so a stranger at a
/// mistyped address must neither lock the account nor learn the owner's IP and device, and
/// must never be handed an undo that puts that address back.
pub fn notice(
    w: &mut Work<'_>,
    to: NoticeTo<'_>,
    account_id: &AccountId,
    template: &'static str,
    client: &ClientInfo,
    mut context: serde_json::Value,
    restore: Option<Restore>,
) -> Result<(), Failure> {
    if !to.verified {
        tracing::info!(
            account.id = %account_id,
            notice = template,
            "security notice not sent: the address was never verified"
        );
        return Ok(());
    }
    let link = issue_link(w, account_id, template, restore)?;
    let ttl = lifetime(w.ctx.config.lock_link_ttl);
    if let Some(map) = context.as_object_mut() {
        map.insert("lock_link".into(), link.into());
        map.insert("lock_ttl".into(), ttl.into());
        map.entry("at").or_insert_with(|| human_time(w.now).into());
        map.entry("ip").or_insert_with(|| client.ip.clone().into());
        map.entry("user_agent")
            .or_insert_with(|| client.user_agent.clone().into());
    }
    w.mail(OutgoingMail {
        to: to.email.to_owned(),
        template,
        context,
        carries_token: true,
    })
}

/// Whether the account is locked, for a login about to open a session or an mfa challenge in
/// the caller's transaction. It first takes the account's row, as a lock does, so a lock
/// committing at the same moment is either seen here or kills what this login opens.
pub fn is_locked(conn: &mut DbConnection, account_id: &AccountId) -> Result<bool, Failure> {
    repo::account_locks::hold_account(conn, account_id)?;
    Ok(repo::account_locks::is_locked(conn, account_id)?)
}

/// Why a lock link was refused.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Unknown, used or expired link.
    #[error("invalid token")]
    InvalidToken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(LockError);

/// What a lock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The previous address was put back.
    pub address_restored: bool,
}

/// Locks the account of a lock link: consumes the link, kills every token of the account, puts
/// the previous address back when the link allows it, records `account.locked` and mails the
/// verified address. A second link of an already locked account kills again (and restores)
/// but records and mails nothing new.
pub async fn lock(ctx: &Ctx, token: &str, client: ClientInfo) -> Result<Locked, LockError> {
    let hash = tokens::hash_token(token);
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<Locked, LockError> {
        let now = w.now;
        let Some(link) = repo::account_locks::consume_link(w.conn, &hash, now)? else {
            return Err(LockError::InvalidToken);
        };
        // Two links of one account followed at once queue here (the row lock on PostgreSQL).
        if !repo::account_locks::hold_account(w.conn, &link.account_id)? {
            return Err(LockError::InvalidToken);
        }
        let mut account =
            repo::accounts::find(w.conn, &link.account_id)?.ok_or(LockError::InvalidToken)?;
        let restored = restore_address(w, &account, &link, &client)?;
        if restored.is_some() {
            account =
                repo::accounts::find(w.conn, &link.account_id)?.ok_or(LockError::InvalidToken)?;
            // The notice was issued when the address changed.
            rejudge_open_requests(w, &account.id, link.created_at, &client)?;
        }
        let killed = kill_tokens(w, &account.id, &client)?;
        if repo::account_locks::open_lock(w.conn, &account.id)?.is_some() {
            return Ok(Locked {
                address_restored: restored.is_some(),
            });
        }
        repo::account_locks::insert_lock(
            w.conn,
            &AccountLock {
                id: uuid::Uuid::new_v4().to_string(),
                account_id: account.id.clone(),
                notice: link.notice.clone(),
                locked_at: now,
                restored_email: restored.clone(),
                ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                unlocked_at: None,
                unlocked_by: None,
            },
        )?;
        w.audit(
            Event::new(
                EventType::AccountLocked,
                Actor::Account(&account.id),
                &client,
            )
            .account(Some(&account.id))
            .details(serde_json::json!({
                "notice": link.notice,
                "address_restored": restored.is_some(),
                "sessions_revoked": killed,
            })),
        )?;
        if account.email_verified_at.is_some() {
            w.mail(OutgoingMail {
                to: account.email.clone(),
                template: "account_locked",
                context: serde_json::json!({
                    "username": account.username,
                    "at": human_time(w.now),
                    "ip": client.ip,
                    "user_agent": client.user_agent,
                    "restored": restored.is_some(),
                    "reset_link": w.ctx.mailer.link("reset-password", &[]),
                    "recovery_link": w.ctx.mailer.link("recovery", &[]),
                }),
                carries_token: false,
            })?;
        }
        Ok(Locked {
            address_restored: restored.is_some(),
        })
    })
    .await
}

/// Puts the link's address back (verified) when it may: the undo period runs, the account has
/// another address now, and no other account took it meanwhile. Returns the address put back.
/// Only a notice to a verified old address carries a restore ([`notice`]), so this never makes
/// an address verified that was not verified before the change.
fn restore_address(
    w: &mut Work<'_>,
    account: &Account,
    link: &LockLink,
    client: &ClientInfo,
) -> Result<Option<String>, Failure> {
    let now = w.now;
    let (Some(email), Some(until)) = (&link.restore_email, link.restore_until) else {
        return Ok(None);
    };
    if until <= now || &account.email == email {
        return Ok(None);
    }
    let skeleton = link.restore_skeleton.clone().unwrap_or_default();
    let (taken, alike) = repo::email_address_changes::in_use_by_other(
        w.conn,
        Some(&account.id),
        email,
        &skeleton,
        now,
    )?;
    if taken || alike {
        tracing::warn!(account.id = %account.id, "a lock could not put the previous address back: another account has it");
        return Ok(None);
    }
    if !repo::email_address_changes::set_address(
        w.conn,
        &account.id,
        &account.email,
        email,
        &skeleton,
        now,
    )? {
        return Ok(None);
    }
    repo::email_address_changes::insert(
        w.conn,
        &EmailAddressChange {
            id: uuid::Uuid::new_v4().to_string(),
            account_id: account.id.clone(),
            old_email: account.email.clone(),
            new_email: email.clone(),
            how: "restored".into(),
            changed_at: now,
        },
    )?;
    repo::account_locks::end_restores(w.conn, &account.id, now)?;
    w.audit(
        Event::new(
            EventType::AccountEmailChanged,
            Actor::Account(&account.id),
            client,
        )
        .account(Some(&account.id))
        .details(serde_json::json!({"how": "restored by the owner's lock"})),
    )?;
    Ok(Some(email.clone()))
}

/// Kills every token of the account at once: sessions (and with them their refresh tokens),
/// mfa challenges, every email link (reset, email change, login confirmation, verification)
/// and recovery-completion links (sent or held). Returns the number of sessions revoked.
fn kill_tokens(
    w: &mut Work<'_>,
    account_id: &AccountId,
    client: &ClientInfo,
) -> Result<usize, Failure> {
    let now = w.now;
    let revoked = repo::sessions::revoke_all(w.conn, account_id, None, now, "account_locked")?;
    repo::two_factor::void_challenges(w.conn, account_id, now)?;
    repo::email_tokens::revoke_every(w.conn, account_id, now)?;
    stop_approved_requests(w, account_id, client)?;
    Ok(revoked)
}

/// The owner's lock is an "it was not me" to every approved recovery request of the account:
/// like a disputed ownership mail, it moves each back to review and stops its completion link,
/// sent or still held for the waiting period (a held link would otherwise go out after the
/// lock, and completing it would unlock the account). Support may approve again.
fn stop_approved_requests(
    w: &mut Work<'_>,
    account_id: &AccountId,
    client: &ClientInfo,
) -> Result<(), Failure> {
    for request in repo::recovery_requests::for_account(w.conn, account_id)? {
        if request.status != RecoveryStatus::Approved {
            continue;
        }
        let Ok(to) = request.status.apply(RecoveryAction::Dispute) else {
            continue;
        };
        let changes = RequestChanges {
            status: Some(to),
            ownership: Some(Ownership::Disputed),
            ownership_answered_at: Some(Some(w.now)),
            completion_token_hash: Some(None),
            link_due_at: Some(None),
            link_sent_at: Some(None),
            link_expires_at: Some(None),
            ..Default::default()
        };
        if repo::recovery_requests::update(w.conn, &request.id, request.status, w.now, changes)? {
            w.audit(
                Event::new(
                    EventType::RecoveryRequestOwnershipDisputed,
                    Actor::Account(account_id),
                    client,
                )
                .account(Some(account_id))
                .request(&request.id)
                .details(serde_json::json!({
                    "from": request.status.as_str(),
                    "to": to.as_str(),
                    "by": "account_lock",
                })),
            )?;
        }
    }
    Ok(())
}

/// A lock that puts the previous address back is the owner's "it wasn't me" to what was proven
/// through the address it replaced. Every open request (submitted, in review, needs info) whose
/// ownership mail went to that address (filed since `changed_at`) or that was answered since
/// then loses that answer: "it was me" becomes disputed, "it was not me" unanswered (the thief
/// may have disputed the owner's own request). A request filed since the change also loses its
/// ownership link, which lies in the thief's mailbox; an approval then mails a fresh one to the
/// restored address. Each change is on the request's timeline (`by: account_lock`).
fn rejudge_open_requests(
    w: &mut Work<'_>,
    account_id: &AccountId,
    changed_at: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<(), Failure> {
    for request in repo::recovery_requests::for_account(w.conn, account_id)? {
        if !matches!(
            request.status,
            RecoveryStatus::Submitted | RecoveryStatus::InReview | RecoveryStatus::NeedsInfo
        ) {
            continue;
        }
        let filed_since = request.submitted_at >= changed_at;
        let answered_since = request
            .ownership_answered_at
            .is_some_and(|at| at >= changed_at);
        if !filed_since && !answered_since {
            continue;
        }
        let ownership = match request.ownership {
            Ownership::Proven if answered_since => Ownership::Disputed,
            Ownership::Disputed if answered_since => Ownership::Unanswered,
            other => other,
        };
        let mut changes = RequestChanges {
            ownership: Some(ownership),
            ownership_answered_at: Some((ownership == Ownership::Disputed).then_some(w.now)),
            ..Default::default()
        };
        if filed_since {
            changes.ownership_token_hash = Some(None);
            changes.ownership_token_sealed = Some(None);
        }
        if repo::recovery_requests::update(w.conn, &request.id, request.status, w.now, changes)? {
            w.audit(
                Event::new(
                    EventType::RecoveryRequestOwnershipDisputed,
                    Actor::Account(account_id),
                    client,
                )
                .account(Some(account_id))
                .request(&request.id)
                .details(serde_json::json!({
                    "by": "account_lock",
                    "ownership_from": request.ownership.as_str(),
                    "ownership_to": ownership.as_str(),
                    "ownership_link_voided": filed_since,
                    "why": "answered or mailed through the address the owner's lock replaced",
                })),
            )?;
        }
    }
    Ok(())
}

/// How an account was unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockedBy {
    /// A password reset through the verified address.
    PasswordReset,
    /// A completed recovery request.
    RecoveryRequest,
}

impl UnlockedBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::RecoveryRequest => "recovery_request",
        }
    }
}

/// Unlocks the account if it is locked, inside the caller's unit of work: records
/// `account.unlocked` and mails the verified address. Returns whether it was locked.
pub fn unlock(
    w: &mut Work<'_>,
    account: &Account,
    by: UnlockedBy,
    client: &ClientInfo,
) -> Result<bool, Failure> {
    if !repo::account_locks::unlock(w.conn, &account.id, by.as_str(), w.now)? {
        return Ok(false);
    }
    w.audit(
        Event::new(
            EventType::AccountUnlocked,
            Actor::Account(&account.id),
            client,
        )
        .account(Some(&account.id))
        .details(serde_json::json!({"by": by.as_str()})),
    )?;
    if account.email_verified_at.is_some() {
        w.mail(OutgoingMail {
            to: account.email.clone(),
            template: "account_unlocked",
            context: serde_json::json!({
                "username": account.username,
                "at": human_time(w.now),
                "ip": client.ip,
                "user_agent": client.user_agent,
                "how": match by {
                    UnlockedBy::PasswordReset => "a password reset through this address",
                    UnlockedBy::RecoveryRequest => "a completed account-recovery request",
                },
            }),
            carries_token: false,
        })?;
    }
    Ok(true)
}

/// A lock as support sees it.
#[derive(Debug, Clone)]
pub struct LockView {
    /// When the account was locked.
    pub locked_at: DateTime<Utc>,
    /// The notice whose link locked it.
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

/// The account's locks since `since` (and any still open), newest first, for support's
/// evidence page.
pub fn recent(
    conn: &mut DbConnection,
    account_id: &AccountId,
    since: DateTime<Utc>,
) -> Result<Vec<LockView>, Failure> {
    Ok(repo::account_locks::since(conn, account_id, since)?
        .into_iter()
        .map(|l| LockView {
            locked_at: l.locked_at,
            notice: l.notice,
            restored_email: l.restored_email,
            ip: l.ip,
            user_agent: l.user_agent,
            unlocked_at: l.unlocked_at,
            unlocked_by: l.unlocked_by,
        })
        .collect())
}
