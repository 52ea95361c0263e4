//! The account itself: its view, the password change (and the one way every password is
//! set), its security events, and list paging. Registration lives in `registration`.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{self, Page};
use crate::domain::{
    Account, AccountId, EventType, NewPassword, RequestId, Role, SessionId, TokenPurpose, limits,
};
use crate::failure_conversions;
use crate::mail::human_time;
use crate::services::account_lock;
use crate::services::audit::{self, Actor, Event};
use crate::services::reauth;
use crate::services::sessions::{AccessClaims, AuthError, Principal};
use crate::services::two_factor;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};
use crate::services::{login, second_factor};

/// An account as its owner sees it.
#[derive(Debug, Clone)]
pub struct AccountView {
    /// Id.
    pub id: AccountId,
    /// Username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// `user` or `support`.
    pub role: Role,
    /// Whether two-factor authentication is on.
    pub two_factor_enabled: bool,
    /// Whether TOTP is confirmed.
    pub totp: bool,
    /// How many passkeys the account has.
    pub passkeys: u32,
    /// Unused recovery codes (when 2FA is on).
    pub recovery_codes_remaining: Option<u32>,
    /// A code of the current set was used to log in: make a new set.
    pub recovery_codes_should_regenerate: bool,
    /// When the password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// Created at.
    pub created_at: DateTime<Utc>,
}

impl AccountView {
    /// True at two or fewer recovery codes left (time to regenerate).
    pub fn recovery_codes_low(&self) -> bool {
        self.two_factor_enabled
            && self
                .recovery_codes_remaining
                .is_some_and(|n| n <= two_factor::LOW_CODES)
    }
}

/// The view of a stored account.
pub fn view(conn: &mut DbConnection, row: Account) -> Result<AccountView, Failure> {
    let second = two_factor::summary(conn, &row.id)?;
    Ok(view_of(row, second))
}

/// The view of a stored account with its second factors.
fn view_of(row: Account, second: two_factor::TwoFactorSummary) -> AccountView {
    AccountView {
        id: row.id,
        username: row.username,
        email: row.email,
        email_verified: row.email_verified_at.is_some(),
        role: row.role,
        two_factor_enabled: second.enabled,
        totp: second.totp,
        passkeys: second.passkeys,
        recovery_codes_remaining: second.enabled.then_some(second.remaining),
        recovery_codes_should_regenerate: second.should_regenerate,
        password_changed_at: row.password_changed_at,
        created_at: row.created_at,
    }
}

/// The account of an access token, authenticated in the same read: the token is checked
/// ([`AccessClaims`]), then one statement finds its live session with the account, and the
/// session is admitted as [`crate::services::sessions::authenticate`] would. `GET /account`
/// is what a frontend calls most; every other call authenticates first and reads after.
pub async fn get_own(ctx: &Ctx, bearer: &str) -> Result<(Principal, AccountView), AuthError> {
    let claims = AccessClaims::check(ctx, bearer)?;
    let (session_id, now) = (claims.session_id().clone(), claims.now());
    let found = unit_of_work::read_one(ctx, move |conn| -> Result<_, AuthError> {
        Ok(repo::accounts::find_by_session_with_counts(
            conn,
            &session_id,
            now,
        )?)
    })
    .await?;
    let (session, view) = match found {
        Some((session, row, counts)) => (
            Some(session),
            Some(view_of(row, two_factor::summary_of(counts))),
        ),
        None => (None, None),
    };
    let who = claims.admit(ctx, session).await?;
    Ok((who, view.ok_or(AuthError::Unauthorized)?))
}

/// Why a password change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password is wrong.
    #[error("invalid password")]
    InvalidPassword,
    /// The new password breaks the policy.
    #[error("weak password")]
    Invalid(Vec<FieldIssue>),
    /// Too many wrong current passwords (the re-authentication budget).
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(ChangePasswordError);

/// Changes the password: the current one is required; every other session is revoked and a
/// notice is mailed.
pub async fn change_password(
    ctx: &Ctx,
    who: &Principal,
    current: String,
    new: String,
    client: ClientInfo,
) -> Result<(), ChangePasswordError> {
    let id = who.account_id.clone();
    let account = unit_of_work::read(ctx, move |conn| {
        repo::accounts::find(conn, &id).map_err(Failure::from)
    })
    .await?
    .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))?;
    match reauth::password(ctx, &account.id, &account.password_hash, current, &client).await? {
        Ok(true) => {}
        Ok(false) => return Err(ChangePasswordError::InvalidPassword),
        Err(reauth::Limited { retry_after_secs }) => {
            return Err(ChangePasswordError::RateLimited { retry_after_secs });
        }
    }
    let password = NewPassword::parse(&new, &[&account.username, &account.email]).map_err(|e| {
        ChangePasswordError::Invalid(vec![FieldIssue::new(
            "new_password",
            e.code(),
            e.to_string(),
        )])
    })?;
    let hash = ctx.passwords.hash(password.into_inner()).await?;
    let keep = who.session_id.clone();
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<(), ChangePasswordError> {
            Ok(set_password(
                w,
                &account,
                &hash,
                PasswordChange {
                    keep_session: Some(&keep),
                    how: "changed from a signed-in session",
                    event: EventType::PasswordChanged,
                    actor: Actor::Account(&account.id),
                    client: &client,
                    request_id: None,
                },
            )?)
        },
    )
    .await
}

/// How a password is being set, for the notice and the audit log.
#[derive(Debug)]
pub struct PasswordChange<'a> {
    /// The session to keep (the one changing it), if any.
    pub keep_session: Option<&'a SessionId>,
    /// Words for the notice: "changed from a signed-in session", "reset by email", …
    pub how: &'a str,
    /// The audit event.
    pub event: EventType,
    /// Who did it.
    pub actor: Actor<'a>,
    /// From where.
    pub client: &'a ClientInfo,
    /// The recovery request, when a recovery completes.
    pub request_id: Option<&'a RequestId>,
}

/// Sets a new password hash inside the caller's transaction, with everything that must go
/// with it: other sessions revoked, pending reset and email-change links voided, an audit event
/// and the notice.
pub fn set_password(
    w: &mut Work<'_>,
    account: &Account,
    hash: &str,
    change: PasswordChange<'_>,
) -> Result<(), Failure> {
    let now = w.now;
    repo::accounts::set_password(w.conn, &account.id, hash, now)?;
    let revoked = repo::sessions::revoke_all(
        w.conn,
        &account.id,
        change.keep_session,
        now,
        "password_changed",
    )?;
    repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ResetPassword, now)?;
    repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ChangeEmail, now)?;
    // A login that got past the old password and waits for its second factor dies too.
    repo::two_factor::void_challenges(w.conn, &account.id, now)?;
    // The owner proved who they are: failures an attacker ran up against the account end.
    login::clear_failures(w.ctx, w.conn, &account.username, &account.email)?;
    second_factor::clear_budget(w.conn, &account.id)?;
    let mut event = Event::new(change.event, change.actor, change.client)
        .account(Some(&account.id))
        .details(serde_json::json!({"sessions_revoked": revoked}));
    event.request_id = change.request_id;
    w.audit(event)?;
    let two_factor = view(w.conn, account.clone())?.two_factor_enabled;
    let context = serde_json::json!({
        "username": account.username,
        "at": human_time(w.now),
        "how": change.how,
        "ip": change.client.ip,
        "user_agent": change.client.user_agent,
        "two_factor": two_factor,
        "reset_link": w.ctx.mailer.link("reset-password", &[]),
    });
    account_lock::notice(
        w,
        account_lock::NoticeTo::account(account),
        &account.id,
        "password_changed",
        change.client,
        context,
        None,
    )
}

/// A page of the caller's own security events, newest first, as the owner may see them
/// ([`audit::owner_view`]).
pub async fn events(
    ctx: &Ctx,
    who: &Principal,
    page: Page,
) -> Result<(Vec<audit::EventView>, i64), Failure> {
    let filter = repo::audit::AuditFilter {
        account_id: Some(who.account_id.to_string()),
        ..Default::default()
    };
    let (events, total) = unit_of_work::read(ctx, move |conn| {
        audit::list(conn, &filter, page).map_err(Failure::from)
    })
    .await?;
    // Support's internal text and whereabouts stay out of the owner's view (API.md).
    Ok((events.into_iter().map(audit::owner_view).collect(), total))
}

/// Page bounds of API.md: `page` from 1 (to the largest 32-bit number, as the document
/// states: far beyond the last page is simply empty), `per_page` 1 to 100 (default 50). Anything outside is refused with
/// the field named, never capped.
pub fn page(page: Option<i128>, per_page: Option<i128>) -> Result<Page, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let page = page.unwrap_or(i128::from(limits::PAGE_MIN));
    let per_page = per_page.unwrap_or(i128::from(limits::PER_PAGE_DEFAULT));
    if page < i128::from(limits::PAGE_MIN) {
        issues.push(FieldIssue::new("page", "too_small", "must be at least 1"));
    } else if page > i128::from(i32::MAX) {
        issues.push(FieldIssue::new(
            "page",
            "out_of_range",
            format!("must be at most {}", i32::MAX),
        ));
    }
    if !(i128::from(limits::PER_PAGE_MIN)..=i128::from(limits::PER_PAGE_MAX)).contains(&per_page) {
        issues.push(FieldIssue::new(
            "per_page",
            "out_of_range",
            "must be between 1 and 100",
        ));
    }
    match (i64::try_from(page), i64::try_from(per_page)) {
        (Ok(page), Ok(per_page)) if issues.is_empty() => Ok(Page { page, per_page }),
        _ => Err(issues),
    }
}
