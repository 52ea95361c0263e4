//! Password reset by email: asking for a link, and setting a new password with it.
//!
//! Asking must not reveal whether an account exists: known and unknown logins get the same
//! answer, and the answer waits only for work that is the same for both: one write
//! transaction with the client-IP counter, the lookup, a per-login mail counter, the audit
//! event and a reset job. The job makes the answer durable: once "202 Accepted" is sent, the
//! request is in the database, and a crash cannot lose it. A worker ([`run_worker`], on every
//! instance) takes each job in a transaction of its own and turns it into the token and its
//! mail (together), the explanation for an unverified address, or, for an unknown login, a
//! stand-in of the same shape that is rolled back; then the job is gone. Links go only to
//! verified addresses; an unverified one is told why no link came and where to ask for
//! recovery instead.
//! Confirming sets the password through [`accounts::set_password`] (every session revoked,
//! other reset links voided, audit event, notice) and never logs anyone in: it gives back no
//! tokens, so a reset is no way around two-factor authentication.
//!
//! This module must not log tokens, passwords or email addresses.

use chrono::{DateTime, Utc};
use diesel::Connection as _;
use sha2::{Digest as _, Sha256};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo;
use crate::db::repo::password_reset_jobs::ResetJob;
use crate::domain::{Account, AccountId, EmailToken, TokenPurpose};
use crate::domain::{EventType, Login, NewPassword};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_duration};
use crate::security::tokens;
use crate::services::account_lock::{self, UnlockedBy};
use crate::services::accounts::{self, PasswordChange};
use crate::services::audit::{Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure, FieldIssue};

/// The mail that carries a reset link.
const LINK_TEMPLATE: &str = "password_reset";
/// The mail for an account whose address is not verified: no link, a pointer to recovery.
const UNVERIFIED_TEMPLATE: &str = "password_reset_unverified";

/// Why a reset request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StartResetError {
    /// The login text is empty.
    #[error("login is required")]
    MissingLogin,
    /// Too many requests from this client IP (counted for known and unknown logins alike).
    #[error("too many password reset requests")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(StartResetError);

/// Why a reset could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmResetError {
    /// Unknown, used, voided or expired token.
    #[error("invalid token")]
    InvalidToken,
    /// The new password breaks the policy (the token stays usable).
    #[error("weak password")]
    Invalid(Vec<FieldIssue>),
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(ConfirmResetError);

/// What a reset request led to; recorded in the audit event, never shown to the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A link goes to the verified address.
    LinkSent,
    /// The address is unverified: the explanation goes there instead of a link.
    UnverifiedNotice,
    /// The account had its reset mails for the window: nothing is sent.
    Capped,
    /// No account has that login.
    UnknownLogin,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::LinkSent => "link_sent",
            Self::UnverifiedNotice => "unverified_notice",
            Self::Capped => "capped",
            Self::UnknownLogin => "unknown_login",
        }
    }
}

/// The mail step of a request, decided in the request's transaction and carried out by the
/// worker. Stored as the job's `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MailStep {
    /// Issue a token and mail the link.
    Link,
    /// Mail the explanation for an unverified address.
    Unverified,
    /// No account: the same work as `Link`, rolled back, so nothing is stored or sent.
    Rehearse,
    /// Over the mail cap (known or not): nothing.
    Nothing,
}

impl MailStep {
    fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Unverified => "unverified",
            Self::Rehearse => "rehearse",
            Self::Nothing => "nothing",
        }
    }

    fn parse(step: &str) -> Self {
        match step {
            "link" => Self::Link,
            "unverified" => Self::Unverified,
            "rehearse" => Self::Rehearse,
            _ => Self::Nothing,
        }
    }
}

/// Starts a password reset for a username or email. Answers `Ok` whether or not an account
/// matches; where one does, a link (verified address) or the reason there is none
/// (unverified address) is mailed, at most `RATE_LIMIT_PASSWORD_RESET_EMAILS` times per
/// window.
///
/// The answer must not depend on the account, so it waits only for the request's
/// transaction, which runs the same statements for every login (the lookup, the mail
/// counter, the audit event, the job and the IP counter). The token and its mail are written by the
/// worker, together, from the job: `Ok` means the request is recorded and will be carried
/// out, even if this process stops right after answering.
pub async fn start(ctx: &Ctx, login: &str, client: ClientInfo) -> Result<(), StartResetError> {
    let login = Login::parse(login).ok_or(StartResetError::MissingLogin)?;
    unit_of_work::write(ctx, move |w: &mut Work<'_>| decide(w, &login, &client)).await?;
    // Every answered request wakes the worker, whatever its job: the work a request leaves
    // behind is the same for known and unknown logins.
    ctx.reset_jobs.notify_one();
    Ok(())
}

/// The request's transaction: the same statements for known and unknown logins. Decides the
/// mail step, records the request and its job.
fn decide(w: &mut Work<'_>, login: &Login, client: &ClientInfo) -> Result<(), StartResetError> {
    let (ctx, now) = (w.ctx, w.now);
    let limits = &ctx.config.rate_limits;
    // The IP's counter is checked first and taken last (see rate_limit).
    let ip_bucket = format!(
        "password-reset-ip:{}",
        client.ip.as_deref().unwrap_or("unknown")
    );
    limit_ip(w, &ip_bucket, rate_limit::Step::Check)?;
    let account = repo::accounts::find_by_login(w.conn, login.as_str())?;
    // Unknown logins are counted too, under a keyed hash of the login text (never the text),
    // so that they also go quiet after the cap, like a known account would.
    let unknown_key = login_key(ctx, login);
    let mail_bucket = match &account {
        Some(a) => format!("password-reset-mail:{}", a.id),
        None => format!("password-reset-mail:login:{unknown_key}"),
    };
    let allowed = rate_limit::take(
        w.conn,
        &ctx.metrics,
        &mail_bucket,
        limits.password_reset_emails,
        now,
    )?
    .allowed();
    let account_id = account.as_ref().map(|a| a.id.clone());
    let (outcome, step) = match (&account, allowed) {
        (None, true) => (Outcome::UnknownLogin, MailStep::Rehearse),
        (None, false) => (Outcome::UnknownLogin, MailStep::Nothing),
        (Some(_), false) => (Outcome::Capped, MailStep::Nothing),
        (Some(a), true) if a.email_verified_at.is_some() => (Outcome::LinkSent, MailStep::Link),
        (Some(_), true) => (Outcome::UnverifiedNotice, MailStep::Unverified),
    };
    w.audit(
        Event::new(EventType::PasswordResetRequested, Actor::Anonymous, client)
            .account(account_id.as_ref())
            .details(serde_json::json!({"outcome": outcome.as_str()})),
    )?;
    // The job keeps only what the mail needs: the account, a keyed hash of the address the
    // request was decided on (of the login text when no account matched: same shape, never
    // the text), and the client details the mail reports. It is deleted once carried out.
    let email_key = match &account {
        Some(a) => address_key(ctx, &a.email),
        None => unknown_key,
    };
    repo::password_reset_jobs::insert(
        w.conn,
        &ResetJob {
            id: uuid::Uuid::new_v4().to_string(),
            step: step.as_str().to_owned(),
            account_id,
            email_key: Some(email_key),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            requested_at: now,
        },
    )?;
    // Taken last (see rate_limit): over the limit, the error rolls back everything above, so
    // nothing of the request stays and the account's mail counter is not spent.
    limit_ip(w, &ip_bucket, rate_limit::Step::Take)
}

/// The limit on reset requests from one IP (`ip_bucket`), checked or taken (`step`).
fn limit_ip(
    w: &mut Work<'_>,
    ip_bucket: &str,
    step: rate_limit::Step,
) -> Result<(), StartResetError> {
    let ctx = w.ctx;
    let limit = ctx.config.rate_limits.password_reset_per_ip;
    match rate_limit::step(w.conn, &ctx.metrics, ip_bucket, limit, w.now, step)? {
        Decision::Limited { retry_after_secs } => {
            Err(StartResetError::RateLimited { retry_after_secs })
        }
        Decision::Allowed => Ok(()),
    }
}

/// Jobs one call of [`run_due_jobs`] takes at most (it is called again at once when it took
/// that many).
const JOBS_PER_ROUND: usize = 256;

/// Jobs carried out in one transaction: a burst of requests costs the writer a few
/// transactions, not one each.
const JOBS_PER_TRANSACTION: i64 = 32;

/// Carries out waiting reset jobs, a batch per transaction (taken, done and deleted together,
/// so a job is done exactly once even with several instances at work, and a crash leaves the
/// batch for the next round); wakes the dispatcher after each batch. Returns how many it took.
pub async fn run_due_jobs(ctx: &Ctx) -> Result<usize, Failure> {
    let mut taken = 0;
    while taken < JOBS_PER_ROUND {
        let batch = unit_of_work::write(ctx, |w: &mut Work<'_>| -> Result<usize, Failure> {
            let jobs = repo::password_reset_jobs::take_oldest(w.conn, JOBS_PER_TRANSACTION)?;
            for job in &jobs {
                carry_out(w, job)?;
            }
            Ok(jobs.len())
        })
        .await?;
        if batch == 0 {
            break;
        }
        taken += batch;
        // Woken for every batch, mail or not (a rehearsal's mail is rolled back): the
        // dispatcher's work must not tell known logins from unknown ones.
        ctx.mailer.wake();
    }
    Ok(taken)
}

/// Runs [`run_due_jobs`] whenever a request wakes it, and twice a second in case a wake-up
/// was missed (another instance's requests, jobs left by a crash), until `stop` turns true.
pub async fn run_worker(ctx: Ctx, mut stop: tokio::sync::watch::Receiver<bool>) {
    let wake = ctx.reset_jobs.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        let busy = match run_due_jobs(&ctx).await {
            Ok(n) => n >= JOBS_PER_ROUND,
            Err(e) => {
                tracing::warn!(error = %e, "password-reset jobs could not be carried out");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// One job's work, in the worker's transaction. A job older than a link's lifetime is only
/// dropped: its link would be dead on arrival.
fn carry_out(w: &mut Work<'_>, job: &ResetJob) -> Result<(), Failure> {
    let (ctx, requested_at) = (w.ctx, job.requested_at);
    if requested_at + link_ttl(ctx) <= w.now {
        return Ok(());
    }
    let client = ClientInfo {
        ip: job.ip.clone(),
        user_agent: job.user_agent.clone(),
    };
    let step = MailStep::parse(&job.step);
    let account = match (&job.account_id, step) {
        (Some(id), MailStep::Link | MailStep::Unverified) => repo::accounts::find(w.conn, id)?,
        _ => None,
    };
    // The account as it is now: the mail goes out only if its address and that address's
    // state are still those the request was decided on.
    let same = |a: &Account, verified: bool| {
        job.email_key.as_deref() == Some(address_key(ctx, &a.email).as_str())
            && a.email_verified_at.is_some() == verified
    };
    match (step, account) {
        (MailStep::Link, Some(a)) if same(&a, true) => send_link(w, &a, &client, requested_at),
        (MailStep::Unverified, Some(a)) if same(&a, false) => {
            send_unverified_notice(w, &a, &client, requested_at)
        }
        (MailStep::Rehearse, _) => {
            // In a savepoint, rolled back: nothing of it stays.
            match w
                .conn
                .transaction(|conn| rehearse_link(ctx, conn, &client, requested_at))
            {
                Ok(()) | Err(StepEnd::RolledBack) => Ok(()),
                Err(StepEnd::Failed(e)) => Err(e),
            }
        }
        _ => Ok(()),
    }
}

/// How a rehearsal's savepoint ended other than by committing.
#[derive(Debug)]
enum StepEnd {
    /// It failed.
    Failed(Failure),
    /// It was a rehearsal, rolled back on purpose.
    RolledBack,
}

impl<E: Into<Failure>> From<E> for StepEnd {
    fn from(e: E) -> Self {
        Self::Failed(e.into())
    }
}

/// A keyed SHA-256 of an account's address as a request saw it: lets the worker tell that
/// the address is still the same without storing it.
fn address_key(ctx: &Ctx, email: &str) -> String {
    let mut hasher = Sha256::new_with_prefix(ctx.config.data_encryption_key.expose());
    hasher.update(b"\0password-reset-address\0");
    hasher.update(email.as_bytes());
    hex::encode(hasher.finalize())
}

/// A keyed SHA-256 of the normalised login: a stable rate-limit key that does not store the
/// text (which may be an email address) and cannot be reversed by hashing guesses.
fn login_key(ctx: &Ctx, login: &Login) -> String {
    let mut hasher = Sha256::new_with_prefix(ctx.config.data_encryption_key.expose());
    hasher.update(b"\0password-reset-login\0");
    hasher.update(login.as_str().as_bytes());
    hex::encode(hasher.finalize())
}

/// The reset link's lifetime.
fn link_ttl(ctx: &Ctx) -> chrono::Duration {
    chrono::Duration::from_std(ctx.config.reset_token_ttl).unwrap_or(chrono::Duration::hours(1))
}

/// The values of the link mail.
fn link_context(
    ctx: &Ctx,
    username: &str,
    token: &str,
    two_factor: bool,
    client: &ClientInfo,
) -> serde_json::Value {
    serde_json::json!({
        "username": username,
        "link": ctx.mailer.link("reset-password", &[("token", token)]),
        "ttl": human_duration(ctx.config.reset_token_ttl),
        "two_factor": two_factor,
        "ip": client.ip,
        "user_agent": client.user_agent,
    })
}

/// Issues a reset token (voiding older ones) and queues the link mail. The link lives from
/// the time it was asked for (`now`).
fn send_link(
    w: &mut Work<'_>,
    account: &Account,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let ctx = w.ctx;
    // A newer link voids the older ones: only the latest mail works.
    repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ResetPassword, now)?;
    let token = tokens::new_token();
    repo::email_tokens::insert(
        w.conn,
        &EmailToken {
            token_hash: token.hash.clone(),
            purpose: TokenPurpose::ResetPassword,
            account_id: account.id.clone(),
            email: account.email.clone(),
            created_at: now,
            expires_at: now + link_ttl(ctx),
            used_at: None,
            revoked_at: None,
        },
    )?;
    let two_factor = accounts::view(w.conn, account.clone())?.two_factor_enabled;
    w.mail(OutgoingMail {
        to: account.email.clone(),
        template: LINK_TEMPLATE,
        context: link_context(ctx, &account.username, &token.value, two_factor, client),
        carries_token: true,
    })
}

/// Queues the explanation for an unverified address: no token, a pointer to recovery.
fn send_unverified_notice(
    w: &mut Work<'_>,
    account: &Account,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    // No link may go to an unverified address, and none sent earlier may survive.
    repo::email_tokens::revoke_all(w.conn, &account.id, TokenPurpose::ResetPassword, now)?;
    let recovery_link = w.ctx.mailer.link("recovery", &[]);
    w.mail(OutgoingMail {
        to: account.email.clone(),
        template: UNVERIFIED_TEMPLATE,
        context: serde_json::json!({
            "username": account.username,
            "email": account.email,
            "recovery_link": recovery_link,
            "ip": client.ip,
            "user_agent": client.user_agent,
        }),
        carries_token: false,
    })
}

/// The link step for a login that matches no account: the same revocation, token, rendering,
/// sealing and outbox insert as [`send_link`], then the whole transaction is rolled back, so
/// nothing is stored and nothing is sent. It exists only so that the work after the answer is
/// the same for known and unknown logins. (The token row itself cannot be rehearsed: it must
/// reference an account.)
fn rehearse_link(
    ctx: &Ctx,
    conn: &mut DbConnection,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<(), StepEnd> {
    // An account id that cannot exist: the same indexed UPDATE, matching no row.
    repo::email_tokens::revoke_all(
        conn,
        &AccountId::from_stored(String::new()),
        TokenPurpose::ResetPassword,
        now,
    )?;
    let token = tokens::new_token();
    ctx.mailer.queue(
        conn,
        now,
        OutgoingMail {
            to: String::new(),
            template: LINK_TEMPLATE,
            context: link_context(ctx, "someone", &token.value, false, client),
            carries_token: true,
        },
    )?;
    Err(StepEnd::RolledBack)
}

/// Sets a new password with a reset link's token: checks the token and the password policy
/// first (a refusal leaves the token usable), then consumes the token and sets the password in
/// one transaction. Every session is revoked; no tokens are given back.
pub async fn confirm(
    ctx: &Ctx,
    token: &str,
    new_password: String,
    client: ClientInfo,
) -> Result<(), ConfirmResetError> {
    let hash = tokens::hash_token(token);
    let now = ctx.clock.now();
    let lookup = hash.clone();
    let account = unit_of_work::read(ctx, move |conn| -> Result<Option<Account>, Failure> {
        let Some(t) =
            repo::email_tokens::find_live(conn, &lookup, TokenPurpose::ResetPassword, now)?
        else {
            return Ok(None);
        };
        Ok(repo::accounts::find(conn, &t.account_id)?.filter(|a| a.email == t.email))
    })
    .await?
    .ok_or(ConfirmResetError::InvalidToken)?;
    let password = NewPassword::parse(&new_password, &[&account.username, &account.email])
        .map_err(|e| {
            ConfirmResetError::Invalid(vec![FieldIssue::new(
                "new_password",
                e.code(),
                e.to_string(),
            )])
        })?;
    let password_hash = ctx.passwords.hash(password.into_inner()).await?;
    // Hashing took a moment: the token must still be live now, and is spent only here.
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<(), ConfirmResetError> {
            let Some(t) =
                repo::email_tokens::consume(w.conn, &hash, TokenPurpose::ResetPassword, w.now)?
            else {
                return Err(ConfirmResetError::InvalidToken);
            };
            // The address the link went to must still be the account's.
            let account = repo::accounts::find(w.conn, &t.account_id)?
                .filter(|a| a.email == t.email)
                .ok_or(ConfirmResetError::InvalidToken)?;
            accounts::set_password(
                w,
                &account,
                &password_hash,
                PasswordChange {
                    keep_session: None,
                    how: "reset with an emailed link",
                    event: EventType::PasswordReset,
                    actor: Actor::Account(&account.id),
                    client: &client,
                    request_id: None,
                },
            )?;
            // A reset through the verified address unlocks an account its owner locked (2FA
            // stays as it was).
            if account.email_verified_at.is_some() {
                account_lock::unlock(w, &account, UnlockedBy::PasswordReset, &client)?;
            }
            Ok(())
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Templates;

    fn client() -> ClientInfo {
        ClientInfo {
            ip: Some("203.0.113.7".into()),
            user_agent: Some("<script>ua</script>".into()),
        }
    }

    #[test]
    fn the_link_mail_renders_its_link_and_escapes_values() {
        let r = Templates::new()
            .render(
                LINK_TEMPLATE,
                "PyPI-like",
                &serde_json::json!({
                    "username": "<b>jb</b>", "link": "https://f.test/reset-password?token=abc",
                    "ttl": "1 hour", "two_factor": true, "ip": "203.0.113.7", "user_agent": null,
                }),
            )
            .expect("renders");
        assert_eq!(r.subject, "Reset your PyPI-like password");
        assert!(r.text.contains("https://f.test/reset-password?token=abc"));
        assert!(r.text.contains("expires in 1 hour"));
        assert!(r.text.contains("Two-factor authentication stays on"));
        assert!(r.html.contains("&lt;b&gt;jb"));
        assert!(!r.html.contains("<b>jb</b>"));
    }

    #[test]
    fn the_unverified_mail_explains_and_points_to_recovery_without_a_token() {
        let c = client();
        let r = Templates::new()
            .render(
                UNVERIFIED_TEMPLATE,
                "PyPI-like",
                &serde_json::json!({
                    "username": "jb", "email": "jb@example.com",
                    "recovery_link": "https://f.test/recovery",
                    "ip": c.ip, "user_agent": c.user_agent,
                }),
            )
            .expect("renders");
        assert!(r.subject.contains("password reset request"));
        assert!(r.text.contains("never verified"));
        assert!(r.text.contains("https://f.test/recovery"));
        assert!(!r.text.contains("token"));
        assert!(!r.html.contains("<script>"));
    }

    #[test]
    fn outcomes_have_stable_names() {
        assert_eq!(Outcome::LinkSent.as_str(), "link_sent");
        assert_eq!(Outcome::UnverifiedNotice.as_str(), "unverified_notice");
        assert_eq!(Outcome::Capped.as_str(), "capped");
        assert_eq!(Outcome::UnknownLogin.as_str(), "unknown_login");
    }
}
