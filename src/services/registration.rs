//! Registration: new accounts (and support users from the command line), email verification
//! and its resend. The rules of a new account (username, email, password, look-alikes) are
//! checked here once for both ways in.

use crate::context::Ctx;
use crate::db::repo::{self, accounts::NewAccount};
use crate::db::write_transaction;
use crate::domain::{Account, AccountId, EmailToken, TokenPurpose};
use crate::domain::{EmailAddress, EventType, NewPassword, Role, TextKind, Username, text};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_duration};
use crate::security::tokens;
use crate::services::accounts::{AccountView, view};
use crate::services::audit::{self, Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::sessions::Principal;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Field errors.
    #[error("invalid fields")]
    Invalid(Vec<FieldIssue>),
    /// The username is taken (ignoring case).
    #[error("username taken")]
    UsernameTaken,
    /// The email is taken (ignoring case).
    #[error("email taken")]
    EmailTaken,
    /// Too many registrations from this client address.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a registration is allowed again.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(RegisterError);

/// What a registration needs.
#[derive(Debug)]
pub struct Registration {
    /// Username as typed.
    pub username: String,
    /// Email as typed.
    pub email: String,
    /// Password as typed.
    pub password: String,
}

fn validate_registration(
    input: &Registration,
) -> Result<(Username, EmailAddress, NewPassword), Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let username = Username::parse(&input.username)
        .map_err(|e| issues.push(FieldIssue::new("username", e.code(), e.to_string())))
        .ok();
    let email = EmailAddress::parse(&input.email)
        .map_err(|e| issues.push(FieldIssue::new("email", e.code(), e.to_string())))
        .ok();
    // The API refuses control characters at the edge; the command line comes through here.
    let password = if text::is_clean(&input.password, TextKind::Line) {
        NewPassword::parse(&input.password, &[&input.username, &input.email])
            .map_err(|e| issues.push(FieldIssue::new("password", e.code(), e.to_string())))
            .ok()
    } else {
        issues.push(control_character("password"));
        None
    };
    match (username, email, password) {
        (Some(u), Some(e), Some(p)) if issues.is_empty() => Ok((u, e, p)),
        _ => Err(issues),
    }
}

/// The field issue of a value with a control character (API.md, Conventions).
pub fn control_character(field: &'static str) -> FieldIssue {
    FieldIssue::new(
        field,
        "control_character",
        "must not contain control characters",
    )
}

/// The 422s of a username or email that looks like another account's (UTS #39 skeletons).
fn confusable_issues((username, email): (bool, bool)) -> Result<(), Vec<FieldIssue>> {
    let mut issues = Vec::new();
    if username {
        issues.push(FieldIssue::new(
            "username",
            "confusable",
            "looks too much like the username of another account; choose another",
        ));
    }
    if email {
        issues.push(FieldIssue::new(
            "email",
            "confusable",
            "looks too much like the address of another account",
        ));
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// Creates an account and sends the verification email.
pub async fn register(
    ctx: &Ctx,
    input: Registration,
    client: ClientInfo,
) -> Result<AccountView, RegisterError> {
    let (username, email, password) =
        validate_registration(&input).map_err(RegisterError::Invalid)?;
    // Refuse a busy address or a taken name before paying for a hash; the insert below
    // re-checks the name under the lock.
    let (key, mail) = (username.key(), email.as_str().to_owned());
    let (name_skeleton, mail_skeleton) = (username.skeleton(), email.skeleton());
    let ip_bucket = client.ip.as_ref().map(|ip| format!("registration-ip:{ip}"));
    let (limit, metrics, bucket) = (
        ctx.config.rate_limits.registration_per_ip,
        ctx.metrics.clone(),
        ip_bucket.clone(),
    );
    let now = ctx.clock.now();
    // Every attempt counts, taken or not (its own transaction, committed whatever the checks
    // say), so the 409s cannot be used to probe which names and addresses exist past the limit.
    if let Some(bucket) = bucket {
        let decision = unit_of_work::write(ctx, move |w: &mut Work<'_>| {
            rate_limit::take(w.conn, &metrics, &bucket, limit, w.now).map_err(Failure::from)
        })
        .await?;
        if let Decision::Limited { retry_after_secs } = decision {
            return Err(RegisterError::RateLimited { retry_after_secs });
        }
    }
    unit_of_work::read(ctx, move |conn| -> Result<_, RegisterError> {
        check_taken(repo::accounts::taken(conn, &key, &mail)?)?;
        check_held(conn, &mail, &mail_skeleton, now)?;
        confusable_issues(repo::accounts::confusable(
            conn,
            &name_skeleton,
            &mail_skeleton,
        )?)
        .map_err(RegisterError::Invalid)
    })
    .await?;
    let hash = ctx.passwords.hash(password.into_inner()).await?;
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<AccountView, RegisterError> {
            check_taken(repo::accounts::taken(
                w.conn,
                &username.key(),
                email.as_str(),
            )?)?;
            let (name_skeleton, mail_skeleton) = (username.skeleton(), email.skeleton());
            check_held(w.conn, email.as_str(), &mail_skeleton, w.now)?;
            confusable_issues(repo::accounts::confusable(
                w.conn,
                &name_skeleton,
                &mail_skeleton,
            )?)
            .map_err(RegisterError::Invalid)?;
            let id = AccountId::generate();
            repo::accounts::insert(
                w.conn,
                &NewAccount {
                    id: &id,
                    username: username.as_str(),
                    username_key: &username.key(),
                    email: email.as_str(),
                    email_verified_at: None,
                    password_hash: &hash,
                    role: Role::User,
                    created_at: w.now,
                    username_skeleton: &name_skeleton,
                    email_skeleton: &mail_skeleton,
                },
            )
            .map_err(taken_by_race)?;
            let row = repo::accounts::find(w.conn, &id)?
                .ok_or_else(|| Failure::Internal(anyhow::anyhow!("inserted account vanished")))?;
            w.audit(
                Event::new(EventType::AccountRegistered, Actor::Account(&id), &client)
                    .account(Some(&id))
                    .details(serde_json::json!({"username": row.username})),
            )?;
            send_verification(w, &row)?;
            Ok(view(w.conn, row)?)
        },
    )
    .await
}

/// Two registrations raced past the check: the unique index decided which field is taken, or
/// (the skeleton indexes) which one looks like the other's.
fn taken_by_race(e: diesel::result::Error) -> RegisterError {
    use diesel::result::{DatabaseErrorKind, Error};
    match &e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            let what = format!(
                "{} {}",
                info.message(),
                info.constraint_name().unwrap_or("")
            );
            if what.contains("skeleton") {
                let email = what.contains("email_skeleton");
                RegisterError::Invalid(confusable_issues((!email, email)).err().unwrap_or_default())
            } else if what.contains("email") {
                RegisterError::EmailTaken
            } else {
                RegisterError::UsernameTaken
            }
        }
        _ => e.into(),
    }
}

/// An address whose owner may still put it back on their account (the undo of an email
/// change, issue 17) is taken: a thief who moved it away must not register it to block the undo.
fn check_held(
    conn: &mut crate::db::DbConnection,
    email: &str,
    skeleton: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), RegisterError> {
    match repo::email_address_changes::in_use_by_other(conn, None, email, skeleton, now)? {
        (true, _) => Err(RegisterError::EmailTaken),
        (_, true) => Err(RegisterError::Invalid(
            confusable_issues((false, true)).err().unwrap_or_default(),
        )),
        _ => Ok(()),
    }
}

fn check_taken((username, email): (bool, bool)) -> Result<(), RegisterError> {
    if username {
        return Err(RegisterError::UsernameTaken);
    }
    if email {
        return Err(RegisterError::EmailTaken);
    }
    Ok(())
}

/// Issues a verification token (voiding older ones) and queues its mail, inside the caller's
/// unit of work.
fn send_verification(w: &mut Work<'_>, account: &Account) -> Result<(), Failure> {
    let now = w.now;
    repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::VerifyEmail, now)?;
    let token = tokens::new_token();
    let ttl = w.ctx.config.email_verification_ttl;
    repo::email_tokens::insert(
        w.conn,
        &EmailToken {
            token_hash: token.hash.clone(),
            purpose: TokenPurpose::VerifyEmail,
            account_id: account.id.clone(),
            email: account.email.clone(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            used_at: None,
            revoked_at: None,
        },
    )?;
    let link = w
        .ctx
        .mailer
        .link("verify-email", &[("token", &token.value)]);
    w.mail(OutgoingMail {
        to: account.email.clone(),
        template: "verify_email",
        context: serde_json::json!({
            "username": account.username,
            "email": account.email,
            "link": link,
            "ttl": human_duration(ttl),
        }),
        carries_token: true,
    })
}

/// Why an email verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// Unknown, used or expired token.
    #[error("invalid token")]
    InvalidToken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(VerifyEmailError);

/// Verifies the email with the link's token.
pub async fn verify_email(
    ctx: &Ctx,
    token: &str,
    client: ClientInfo,
) -> Result<AccountView, VerifyEmailError> {
    let hash = tokens::hash_token(token);
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<AccountView, VerifyEmailError> {
            let now = w.now;
            let Some(t) =
                repo::email_tokens::consume(w.conn, &hash, TokenPurpose::VerifyEmail, now)?
            else {
                return Err(VerifyEmailError::InvalidToken);
            };
            if repo::accounts::mark_email_verified(w.conn, &t.account_id, &t.email, now)? {
                w.audit(
                    Event::new(
                        EventType::AccountEmailVerified,
                        Actor::Account(&t.account_id),
                        &client,
                    )
                    .account(Some(&t.account_id)),
                )?;
            }
            let row = repo::accounts::find(w.conn, &t.account_id)?
                .ok_or(VerifyEmailError::InvalidToken)?;
            if row.email != t.email {
                // The address changed since the link was sent.
                return Err(VerifyEmailError::InvalidToken);
            }
            Ok(view(w.conn, row)?)
        },
    )
    .await
}

/// Why a new verification email was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// Already verified.
    #[error("email already verified")]
    AlreadyVerified,
    /// Too many in the last hour.
    #[error("too many verification emails")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(ResendError);

/// Sends a new verification email (at most 3 an hour by default).
pub async fn resend_verification(ctx: &Ctx, who: &Principal) -> Result<(), ResendError> {
    let account_id = who.account_id.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), ResendError> {
        let account = repo::accounts::find(w.conn, &account_id)?
            .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))?;
        if account.email_verified_at.is_some() {
            return Err(ResendError::AlreadyVerified);
        }
        let bucket = format!("verification-mail:{}", account.id);
        let (metrics, limit) = (
            w.ctx.metrics.clone(),
            w.ctx.config.rate_limits.verification_emails,
        );
        if let Decision::Limited { retry_after_secs } =
            rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)?
        {
            return Err(ResendError::RateLimited { retry_after_secs });
        }
        send_verification(w, &account)?;
        Ok(())
    })
    .await
}

/// Why a support user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateSupportUserError {
    /// Field errors.
    #[error("{}", .0.iter().map(|i| format!("{}: {}", i.field, i.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldIssue>),
    /// The username is taken.
    #[error("the username is already taken")]
    UsernameTaken,
    /// The email is taken.
    #[error("the email address is already taken")]
    EmailTaken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(CreateSupportUserError);

/// Creates an account with the `support` role and a verified email (the command line).
pub fn create_support_user(
    ctx: &Ctx,
    input: Registration,
) -> Result<AccountView, CreateSupportUserError> {
    let (username, email, password) =
        validate_registration(&input).map_err(CreateSupportUserError::Invalid)?;
    let hash = ctx.passwords.hash_blocking(password.expose())?;
    let now = ctx.clock.now();
    ctx.db.run_blocking(|conn| {
        write_transaction(
            conn,
            |conn| -> Result<AccountView, CreateSupportUserError> {
                match repo::accounts::taken(conn, &username.key(), email.as_str())? {
                    (true, _) => return Err(CreateSupportUserError::UsernameTaken),
                    (_, true) => return Err(CreateSupportUserError::EmailTaken),
                    _ => {}
                }
                let (name_skeleton, mail_skeleton) = (username.skeleton(), email.skeleton());
                confusable_issues(repo::accounts::confusable(
                    conn,
                    &name_skeleton,
                    &mail_skeleton,
                )?)
                .map_err(CreateSupportUserError::Invalid)?;
                let id = AccountId::generate();
                repo::accounts::insert(
                    conn,
                    &NewAccount {
                        id: &id,
                        username: username.as_str(),
                        username_key: &username.key(),
                        email: email.as_str(),
                        email_verified_at: Some(now),
                        password_hash: &hash,
                        role: Role::Support,
                        created_at: now,
                        username_skeleton: &name_skeleton,
                        email_skeleton: &mail_skeleton,
                    },
                )?;
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: EventType::AccountRegistered,
                        actor: Actor::System,
                        account_id: Some(&id),
                        request_id: None,
                        client: &ClientInfo::default(),
                        details: serde_json::json!({"role": "support", "via": "command line"}),
                    },
                )?;
                let row = repo::accounts::find(conn, &id)?.ok_or_else(|| {
                    Failure::Internal(anyhow::anyhow!("inserted account vanished"))
                })?;
                Ok(view(conn, row)?)
            },
        )
    })
}
