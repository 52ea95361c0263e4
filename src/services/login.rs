//! Logging in: the password step, and the second step with a TOTP code or a recovery code.
//!
//! The password step answers a session, or, for an account with two-factor authentication, an
//! mfa token that the second step redeems. Every way of logging in ends in
//! [`sessions::open_session`]; the checks of the second factor live in `second_factor`.

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo;
use crate::domain::{
    Account, EmailToken, EventType, Login, MfaChallenge, SecondFactor, TokenPurpose, device,
};
use crate::failure_conversions;
use crate::mail::human_time;
use crate::security::tokens;
use crate::services::account_lock;
use crate::services::audit::{Actor, Event};
use crate::services::devices;
use crate::services::rate_limit::{self, Decision};
use crate::services::second_factor::{self, CodeRefusal, Proof, SecondFactorError};
use crate::services::sessions::{self, SessionTokens};
use crate::services::two_factor::{self, LOW_CODES};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// What a correct password leads to.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// A session was opened.
    Authenticated(SessionTokens),
    /// The account has two-factor authentication: finish with a second factor.
    MfaRequired {
        /// The short-lived, single-use mfa token.
        mfa_token: String,
        /// Seconds until it expires.
        expires_in: u64,
        /// The second factors the account has (recovery codes always last).
        methods: Vec<SecondFactor>,
    },
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown login or wrong password: the same answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password was right but the owner locked the account.
    #[error("account locked")]
    AccountLocked,
    /// The login text is empty.
    #[error("login is required")]
    MissingLogin,
    /// Too many failures.
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(LoginError);

/// Password step of a login. Unknown logins and wrong passwords do the same work (a dummy
/// verification) and give the same answer.
///
/// Attempts are limited per normalised login text and per client IP, both counted in the
/// database *before* the password is verified, in the statement that decides whether it may be
/// verified at all: a burst of parallel guesses gets at most the limit's worth of verifications
/// and 429s for the rest, and a limited attempt costs no argon2 work and says nothing about
/// whether its password was right. A right password gives its units back.
pub async fn login(
    ctx: &Ctx,
    login: &str,
    password: String,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<LoginOutcome, LoginError> {
    let login = Login::parse(login).ok_or(LoginError::MissingLogin)?;
    let buckets = LoginBuckets::new(ctx, &login, &client);
    let limits = ctx.config.rate_limits;
    let lookup = login.as_str().to_owned();
    let presented = device_token.clone();
    let (account, bucket) =
        unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<_, LoginError> {
            let account = repo::accounts::find_by_login(w.conn, &lookup)?;
            // Failures from a device the account knows count against that device only; all
            // others against the login text, whether or not an account has it (the answer never
            // tells which logins exist). An attacker's failures from unknown devices so never
            // lock the owner's known device out.
            let bucket = match &account {
                Some(a) => match devices::known(w.conn, &a.id, presented.as_deref())? {
                    Some(device) => format!("login-device:{}", device.id),
                    None => buckets.login.clone(),
                },
                None => buckets.login.clone(),
            };
            let metrics = w.ctx.metrics.clone();
            if let Decision::Limited { retry_after_secs } =
                rate_limit::take(w.conn, &metrics, &bucket, limits.login_per_account, w.now)?
            {
                return Ok(Err(retry_after_secs));
            }
            if let Some(ip) = &buckets.ip
                && let Decision::Limited { retry_after_secs } =
                    rate_limit::take(w.conn, &metrics, ip, limits.login_per_ip, w.now)?
            {
                // Not this attempt's turn after all: give the login's unit back.
                rate_limit::refund(w.conn, &bucket, limits.login_per_account)?;
                return Ok(Err(retry_after_secs));
            }
            Ok(Ok((account, (bucket, buckets.ip))))
        })
        .await?
        .map_err(|retry_after_secs| {
            tracing::info!("login refused: too many failed attempts");
            LoginError::RateLimited { retry_after_secs }
        })?;
    let ok = ctx
        .passwords
        .verify(password, account.as_ref().map(|a| a.password_hash.clone()))
        .await?;
    let (login_bucket, ip_bucket) = bucket;
    match account {
        Some(account) if ok => {
            unit_of_work::write(
                ctx,
                move |w: &mut Work<'_>| -> Result<Result<_, LoginError>, LoginError> {
                    // A locked account opens nothing, even for the right password; the attempt
                    // stays counted like a failure. The refusal is the unit's answer, not its
                    // failure: the unit commits, so the audit event stays for support to see.
                    if account_lock::is_locked(w.conn, &account.id)? {
                        w.audit(
                            Event::new(EventType::SessionLoginFailed, Actor::Anonymous, &client)
                                .account(Some(&account.id))
                                .details(serde_json::json!({"reason": "account_locked"})),
                        )?;
                        return Ok(Err(LoginError::AccountLocked));
                    }
                    // The right password ends the count of this device's (or login text's)
                    // failures and gives the IP its unit back; the IP's earlier failures stay, or
                    // one known account would reset the budget of an IP that guesses at others.
                    rate_limit::reset(w.conn, &login_bucket)?;
                    if let Some(ip) = &ip_bucket {
                        rate_limit::refund(w.conn, ip, limits.login_per_ip)?;
                    }
                    let totp = two_factor::totp_confirmed(w.conn, &account.id)?;
                    let passkeys = two_factor::passkey_count(w.conn, &account.id)? > 0;
                    if totp || passkeys {
                        let (mfa_token, expires_in) =
                            second_factor::start_challenge(w, &account.id)?;
                        let methods = [
                            (totp, SecondFactor::Totp),
                            (passkeys, SecondFactor::Webauthn),
                            (true, SecondFactor::RecoveryCode),
                        ]
                        .into_iter()
                        .filter_map(|(has, f)| has.then_some(f))
                        .collect();
                        return Ok(Ok(LoginOutcome::MfaRequired {
                            mfa_token,
                            expires_in,
                            methods,
                        }));
                    }
                    sessions::open_session(
                        w,
                        &account,
                        SecondFactor::None,
                        &client,
                        device_token.as_deref(),
                    )
                    .map(|s| Ok(LoginOutcome::Authenticated(s)))
                    .map_err(LoginError::from)
                },
            )
            .await?
        }
        account => {
            let account_id = account.map(|a| a.id);
            unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
                w.audit(
                    Event::new(EventType::SessionLoginFailed, Actor::Anonymous, &client)
                        .account(account_id.as_ref())
                        .details(serde_json::json!({"reason": "invalid_credentials"})),
                )
            })
            .await?;
            Err(LoginError::InvalidCredentials)
        }
    }
}

/// The rate-limit buckets of a login attempt.
#[derive(Debug, Clone)]
struct LoginBuckets {
    /// Per normalised login text, whether or not an account has it. The text is stored only as
    /// a keyed hash: people type passwords into the login field.
    login: String,
    /// Per client IP, when it is known.
    ip: Option<String>,
}

impl LoginBuckets {
    fn new(ctx: &Ctx, login: &Login, client: &ClientInfo) -> Self {
        Self {
            login: login_text_bucket(ctx, login),
            ip: client.ip.as_ref().map(|ip| format!("login-ip:{ip}")),
        }
    }
}

fn login_text_bucket(ctx: &Ctx, login: &Login) -> String {
    let key = ctx.config.data_encryption_key.expose();
    format!(
        "login:{}",
        tokens::keyed_hash(key, "rate-limit:login", login.as_str())
    )
}

/// Forgets the failed logins counted against an account's login texts (its username and its
/// email address): a completed password reset or recovery ends a lockout that an attacker's
/// guesses caused. Runs inside the caller's transaction.
pub fn clear_failures(
    ctx: &Ctx,
    conn: &mut DbConnection,
    username: &str,
    email: &str,
) -> Result<(), Failure> {
    for text in [username, email] {
        if let Some(login) = Login::parse(text) {
            rate_limit::reset(conn, &login_text_bucket(ctx, &login))?;
        }
    }
    Ok(())
}

/// How a second step ended.
#[derive(Debug, Clone)]
pub enum Finished {
    /// A session was opened.
    Authenticated(SessionTokens),
    /// The device is new to the account: the login waits for the link mailed to the verified
    /// address (`NEW_DEVICE_CONFIRMATION`), which expires in this many seconds.
    EmailConfirmationRequired {
        /// Seconds until the link expires.
        expires_in: u64,
    },
}

/// What a finished second step answers.
#[derive(Debug, Clone)]
pub struct SecondStep {
    /// A session, or a wait for the emailed confirmation.
    pub finished: Finished,
    /// After a recovery code: how many are left.
    pub recovery_codes_remaining: Option<u32>,
    /// After a recovery code: the owner should make a new set (always, until they do).
    pub recovery_codes_should_regenerate: Option<bool>,
}

/// Finishes a login with an authenticator code.
pub async fn login_with_totp(
    ctx: &Ctx,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<SecondStep, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    let challenge = second_factor::challenge_of(ctx, mfa_token).await?;
    let proof = second_factor::check_totp(ctx, &challenge.account_id, code, &client).await?;
    finish_login(ctx, challenge, proof, client, device_token).await
}

/// Finishes a login with a recovery code.
pub async fn login_with_recovery_code(
    ctx: &Ctx,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<SecondStep, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    let challenge = second_factor::challenge_of(ctx, mfa_token).await?;
    let proof =
        second_factor::check_recovery_code(ctx, &challenge.account_id, code, &client).await?;
    finish_login(ctx, challenge, proof, client, device_token).await
}

/// How long a `confirm-login` link lives.
const CONFIRMATION_TTL_MINUTES: i64 = 15;

/// Spends the proof, consumes the challenge and opens the session (or, from a device the
/// account does not know, mails a confirmation link instead), all in one transaction; a
/// recovery code is consumed only if the step completes.
pub(crate) async fn finish_login(
    ctx: &Ctx,
    challenge: MfaChallenge,
    proof: Proof,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<SecondStep, SecondFactorError> {
    let account_id = challenge.account_id.clone();
    let outcome = unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Result<SecondStep, CodeRefusal>, SecondFactorError> {
            if !repo::two_factor::consume_challenge(w.conn, &challenge.id, w.now)? {
                return Err(SecondFactorError::MfaTokenInvalid);
            }
            if let Err(refusal) =
                second_factor::spend(w.conn, &challenge.account_id, &proof, &client, w.now)?
            {
                return Ok(Err(refusal));
            }
            let account = repo::accounts::find(w.conn, &challenge.account_id)?
                .ok_or(SecondFactorError::MfaTokenInvalid)?;
            let factor = proof.factor();
            let with_code = matches!(proof, Proof::RecoveryCode(_));
            let confirm = w.ctx.config.new_device_confirmation.applies(with_code)
                && account.email_verified_at.is_some()
                && devices::known(w.conn, &account.id, device_token.as_deref())?.is_none();
            let finished = if confirm {
                Finished::EmailConfirmationRequired {
                    expires_in: mail_confirmation(w, &account, factor, &client)?,
                }
            } else {
                Finished::Authenticated(sessions::open_session(
                    w,
                    &account,
                    factor,
                    &client,
                    device_token.as_deref(),
                )?)
            };
            let codes = if with_code {
                let s = two_factor::status(w.conn, &account.id)?;
                w.audit(
                    Event::new(
                        EventType::RecoveryCodeUsed,
                        Actor::Account(&account.id),
                        &client,
                    )
                    .account(Some(&account.id))
                    .details(serde_json::json!({"remaining": s.remaining})),
                )?;
                two_factor::notify(
                    w,
                    &account,
                    "recovery_code_used",
                    &client,
                    serde_json::json!({
                        "remaining": s.remaining,
                        "low": s.remaining <= LOW_CODES,
                    }),
                )?;
                Some((s.remaining, s.should_regenerate()))
            } else {
                None
            };
            Ok(Ok(SecondStep {
                finished,
                recovery_codes_remaining: codes.map(|(remaining, _)| remaining),
                recovery_codes_should_regenerate: codes.map(|(_, regenerate)| regenerate),
            }))
        },
    )
    .await?;
    match outcome {
        Ok(step) => Ok(step),
        Err(refusal) => {
            // Another request spent the same code first.
            second_factor::record_failure(ctx, &account_id).await?;
            Err(SecondFactorError::Refused(refusal))
        }
    }
}

/// Mails the single-use `confirm-login` link of a login from a new device to the account's
/// verified address, naming the device and where it signed in from; answers its lifetime in
/// seconds.
fn mail_confirmation(
    w: &mut Work<'_>,
    account: &Account,
    factor: SecondFactor,
    client: &ClientInfo,
) -> Result<u64, Failure> {
    let token = tokens::new_token();
    let ttl = chrono::Duration::minutes(CONFIRMATION_TTL_MINUTES);
    repo::email_tokens::insert(
        w.conn,
        &EmailToken {
            token_hash: token.hash,
            purpose: TokenPurpose::ConfirmLogin(factor),
            account_id: account.id.clone(),
            email: account.email.clone(),
            created_at: w.now,
            expires_at: w.now + ttl,
            used_at: None,
            revoked_at: None,
        },
    )?;
    let context = serde_json::json!({
        "username": account.username,
        "at": human_time(w.now),
        "factor": match factor {
            SecondFactor::Totp => "your authenticator app",
            SecondFactor::Webauthn => "a passkey",
            _ => "a recovery code",
        },
        "device": device::label(client.user_agent.as_deref()),
        "ip": client.ip,
        "ttl": "15 minutes",
        "link": w.ctx.mailer.link("confirm-login", &[("token", &token.value)]),
    });
    account_lock::notice(
        w,
        account_lock::NoticeTo::account(account),
        &account.id,
        "confirm_login",
        client,
        context,
        None,
    )?;
    Ok(u64::try_from(ttl.num_seconds()).unwrap_or(900))
}

/// Why a confirmation link did not finish a login.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmLoginError {
    /// Unknown, used or expired.
    #[error("invalid token")]
    InvalidToken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(ConfirmLoginError);

/// Finishes a login that waited for its emailed confirmation: the link's token is consumed
/// (once, whoever races) and the session opens for the client that presents it.
pub async fn confirm(
    ctx: &Ctx,
    token: &str,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<SessionTokens, ConfirmLoginError> {
    let hash = tokens::hash_token(token);
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<_, ConfirmLoginError> {
            let now = w.now;
            let mut found = None;
            for factor in [
                SecondFactor::RecoveryCode,
                SecondFactor::Totp,
                SecondFactor::Webauthn,
            ] {
                let purpose = TokenPurpose::ConfirmLogin(factor);
                if let Some(row) = repo::email_tokens::consume(w.conn, &hash, purpose, now)? {
                    found = Some((row, factor));
                    break;
                }
            }
            let (row, factor) = found.ok_or(ConfirmLoginError::InvalidToken)?;
            let account = repo::accounts::find(w.conn, &row.account_id)?
                .ok_or(ConfirmLoginError::InvalidToken)?;
            Ok(sessions::open_session(
                w,
                &account,
                factor,
                &client,
                device_token.as_deref(),
            )?)
        },
    )
    .await
}
