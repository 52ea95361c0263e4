//! Checking a second factor: a TOTP code or a recovery code against an account, the mfa
//! challenge a login waits on, the failure budget they share, and spending a code that matched.
//!
//! Second-factor attempts of an account (TOTP and recovery codes together, a reused code
//! included) share one budget counted in the database before the code is checked; past it every
//! attempt is refused with a 429, right or wrong, and a security event is written. A code that
//! matches gives its unit back, so only failures spend the budget. A check proves a code without spending
//! it; the use case that acts on the proof spends it inside its own transaction ([`spend`]), so
//! a code is consumed only if that action completes, and exactly once under concurrent use.
//!
//! This module decides nothing about sessions or enrollment: `login` and `two_factor` call it.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo;
use crate::domain::{AccountId, ChallengeId, MfaChallenge, TotpCredential};
use crate::domain::{EventType, RecoveryCodeInput, RecoveryCodeInputError, SecondFactor};
use crate::failure_conversions;
use crate::security::jwt::TokenType;
use crate::security::password::verify_with;
use crate::security::totp::TotpSecret;
use crate::services::audit::{Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// Why a second-factor code was refused: each has its own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRefusal {
    /// A wrong or replayed authenticator code.
    InvalidTotp {
        /// The code was right but already used in its time step.
        replayed: bool,
    },
    /// Not a recovery code of the account.
    InvalidRecoveryCode {
        /// The input was six digits: an authenticator code in the wrong field.
        looks_like_totp: bool,
    },
    /// The recovery code was used before.
    AlreadyUsed {
        /// When.
        used_at: Option<DateTime<Utc>>,
    },
    /// The recovery code belonged to a set replaced on this date.
    Superseded {
        /// When the set was replaced.
        replaced_at: DateTime<Utc>,
    },
    /// A passkey's assertion was refused (wrong origin or RP, another challenge, a bad
    /// signature, a credential the account does not have, a counter that did not move on).
    /// One answer for all: the details are for the audit log.
    InvalidPasskey,
}

/// Why a second factor was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    /// The mfa token is unknown, used or expired.
    #[error("mfa token invalid")]
    MfaTokenInvalid,
    /// The code was refused.
    #[error("code refused")]
    Refused(CodeRefusal),
    /// The code field is empty.
    #[error("code is required")]
    MissingCode,
    /// Too many failed attempts.
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(SecondFactorError);

/// A second factor that matched, not yet spent.
#[derive(Debug, Clone)]
pub enum Proof {
    /// A TOTP code of this step.
    Totp(i64),
    /// This unused recovery code.
    RecoveryCode(String),
    /// A passkey assertion that verified; spending it records the new counter.
    Passkey(PasskeyProof),
}

/// A verified passkey assertion, not yet recorded.
#[derive(Debug, Clone)]
pub struct PasskeyProof {
    /// The passkey.
    pub id: crate::domain::PasskeyId,
    /// Its new signature counter.
    pub sign_count: u32,
    /// Backup eligible, as the authenticator says now.
    pub backup_eligible: bool,
    /// Backed up, as the authenticator says now.
    pub backed_up: bool,
    /// The updated stored credential.
    pub credential: String,
}

impl Proof {
    /// The factor the proof is of.
    pub fn factor(&self) -> SecondFactor {
        match self {
            Self::Totp(_) => SecondFactor::Totp,
            Self::RecoveryCode(_) => SecondFactor::RecoveryCode,
            Self::Passkey(_) => SecondFactor::Webauthn,
        }
    }
}

/// Spends a proof inside the caller's transaction: the TOTP step advances, or the recovery code
/// is consumed, or the passkey's counter moves forward; the row count decides a race.
/// `Ok(Err(..))` when another request won (or a passkey's counter did not move forward).
pub fn spend(
    conn: &mut DbConnection,
    account_id: &AccountId,
    proof: &Proof,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<Result<(), CodeRefusal>, Failure> {
    let won = match proof {
        Proof::Totp(step) => repo::two_factor::use_totp_step(conn, account_id, *step)?,
        Proof::RecoveryCode(code_id) => repo::two_factor::consume_code(
            conn,
            code_id,
            now,
            client.ip.as_deref(),
            client.user_agent.as_deref(),
        )?,
        Proof::Passkey(p) => repo::passkeys::record_use(
            conn,
            &repo::passkeys::PasskeyUse {
                id: &p.id,
                sign_count: p.sign_count,
                backup_eligible: p.backup_eligible,
                backed_up: p.backed_up,
                credential: &p.credential,
            },
            now,
        )?,
    };
    Ok(match (won, proof) {
        (true, _) => Ok(()),
        (false, Proof::Passkey(_)) => Err(CodeRefusal::InvalidPasskey),
        (false, Proof::Totp(_)) => Err(CodeRefusal::InvalidTotp { replayed: true }),
        (false, Proof::RecoveryCode(_)) => Err(CodeRefusal::AlreadyUsed { used_at: None }),
    })
}

fn budget_bucket(account_id: &AccountId) -> String {
    format!("second-factor:{account_id}")
}

/// Counts one failed second-factor attempt that was not counted before it was checked (a code
/// that matched but lost the race to spend it).
pub async fn record_failure(ctx: &Ctx, account_id: &AccountId) -> Result<(), Failure> {
    let bucket = budget_bucket(account_id);
    let limit = ctx.config.rate_limits.second_factor;
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
        rate_limit::hit(w.conn, &bucket, limit, w.now)?;
        Ok(())
    })
    .await
}

/// Takes one attempt from the account's budget before a code is checked; refuses (and says so
/// in the audit log) once it is spent.
pub(crate) async fn take_budget(
    ctx: &Ctx,
    account_id: &AccountId,
    client: &ClientInfo,
) -> Result<(), SecondFactorError> {
    let bucket = budget_bucket(account_id);
    let limit = ctx.config.rate_limits.second_factor;
    let id = account_id.to_owned();
    let client = client.clone();
    let decision = unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<_, Failure> {
        let metrics = w.ctx.metrics.clone();
        let decision = rate_limit::take(w.conn, &metrics, &bucket, limit, w.now)?;
        if let Decision::Limited { retry_after_secs } = decision {
            w.audit(
                Event::new(
                    EventType::SecondFactorRateLimited,
                    Actor::Anonymous,
                    &client,
                )
                .account(Some(&id))
                .details(serde_json::json!({ "retry_after_secs": retry_after_secs })),
            )?;
        }
        Ok(decision)
    })
    .await?;
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after_secs } => {
            Err(SecondFactorError::RateLimited { retry_after_secs })
        }
    }
}

/// Forgets the account's failed second-factor attempts (inside the caller's transaction).
pub fn clear_budget(conn: &mut DbConnection, account_id: &AccountId) -> Result<(), Failure> {
    Ok(rate_limit::reset(conn, &budget_bucket(account_id))?)
}

/// Gives back the unit a matching code took from the budget.
pub(crate) async fn refund_budget(ctx: &Ctx, account_id: &AccountId) -> Result<(), Failure> {
    let bucket = budget_bucket(account_id);
    let limit = ctx.config.rate_limits.second_factor;
    unit_of_work::write(ctx, move |w: &mut Work<'_>| {
        rate_limit::refund(w.conn, &bucket, limit).map_err(Failure::from)
    })
    .await
}

/// Checks a code (TOTP when it is six digits, a recovery code otherwise) against the account,
/// with one argon2 verification at most; counts a failure. The proof is spent later, in the
/// transaction that acts on it.
pub async fn verify_code(
    ctx: &Ctx,
    account_id: &AccountId,
    code: &str,
    client: &ClientInfo,
) -> Result<Proof, SecondFactorError> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
        check_totp(ctx, account_id, &digits, client).await
    } else {
        check_recovery_code(ctx, account_id, code, client).await
    }
}

/// Opens the account's stored TOTP secret.
pub fn open_secret(ctx: &Ctx, row: &TotpCredential) -> Result<TotpSecret, Failure> {
    let b32 = ctx
        .cipher
        .open(&row.secret_sealed)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    TotpSecret::from_base32(&b32).map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

/// Checks an authenticator code against the account's confirmed TOTP secret.
pub async fn check_totp(
    ctx: &Ctx,
    account_id: &AccountId,
    code: &str,
    client: &ClientInfo,
) -> Result<Proof, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    take_budget(ctx, account_id, client).await?;
    let id = account_id.to_owned();
    let row = unit_of_work::read(ctx, move |conn| {
        repo::two_factor::find_totp(conn, &id).map_err(Failure::from)
    })
    .await?
    .filter(|t| t.confirmed_at.is_some());
    let now = ctx.clock.now();
    let matched = match &row {
        Some(row) => open_secret(ctx, row)?
            .check(code, now.timestamp())
            .map(|step| (step, row.last_used_step)),
        None => None,
    };
    let replayed = match matched {
        Some((step, last)) if last.is_none_or(|l| l < step) => {
            refund_budget(ctx, account_id).await?;
            return Ok(Proof::Totp(step));
        }
        Some(_) => true,
        None => false,
    };
    Err(SecondFactorError::Refused(CodeRefusal::InvalidTotp {
        replayed,
    }))
}

/// Checks a recovery code against the account's sets, current and superseded.
pub async fn check_recovery_code(
    ctx: &Ctx,
    account_id: &AccountId,
    code: &str,
    client: &ClientInfo,
) -> Result<Proof, SecondFactorError> {
    let parsed = match RecoveryCodeInput::parse(code) {
        Err(RecoveryCodeInputError::Empty) => return Err(SecondFactorError::MissingCode),
        other => other,
    };
    take_budget(ctx, account_id, client).await?;
    let found = match &parsed {
        Ok(input) => {
            let (id, lookup) = (account_id.to_owned(), input.lookup().to_owned());
            unit_of_work::read(ctx, move |conn| {
                repo::two_factor::find_code(conn, &id, &lookup).map_err(Failure::from)
            })
            .await?
        }
        Err(_) => None,
    };
    // Exactly one argon2 verification whatever the input: against the selected row's hash, or
    // against the dummy hash when nothing was selected.
    let secret = parsed
        .as_ref()
        .map(|p| p.secret().to_owned())
        .unwrap_or_default();
    let hash = found.as_ref().map(|(c, _)| c.code_hash.clone());
    let matches = ctx
        .passwords
        .run(move || hash.is_some_and(|h| verify_with(&secret, &h)))
        .await?;
    if found.is_none() {
        let _ = ctx.passwords.verify(code.to_owned(), None).await?;
    }
    let refusal = match (parsed, found, matches) {
        (Ok(_), Some((code_row, set)), true) => {
            if let Some(replaced) = set.superseded_at {
                CodeRefusal::Superseded {
                    replaced_at: replaced,
                }
            } else if let Some(used) = code_row.used_at {
                CodeRefusal::AlreadyUsed {
                    used_at: Some(used),
                }
            } else {
                refund_budget(ctx, account_id).await?;
                return Ok(Proof::RecoveryCode(code_row.id));
            }
        }
        (Err(RecoveryCodeInputError::LooksLikeTotp), _, _) => CodeRefusal::InvalidRecoveryCode {
            looks_like_totp: true,
        },
        _ => CodeRefusal::InvalidRecoveryCode {
            looks_like_totp: false,
        },
    };
    Err(SecondFactorError::Refused(refusal))
}

/// Issues the mfa challenge of a login whose password was right (inside its transaction):
/// answers the mfa token and its lifetime in seconds.
pub fn start_challenge(w: &mut Work<'_>, account_id: &AccountId) -> Result<(String, u64), Failure> {
    let id = ChallengeId::generate();
    let ttl = w.ctx.config.mfa_token_ttl;
    repo::two_factor::insert_challenge(
        w.conn,
        &MfaChallenge {
            id: id.clone(),
            account_id: account_id.clone(),
            created_at: w.now,
            expires_at: w.now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            used_at: None,
        },
    )?;
    let token = w
        .ctx
        .jwt
        .issue(TokenType::Mfa, account_id.as_str(), id.as_str(), w.now, ttl)?;
    Ok((token, ttl.as_secs()))
}

/// The live challenge an mfa token names.
pub async fn challenge_of(ctx: &Ctx, mfa_token: &str) -> Result<MfaChallenge, SecondFactorError> {
    let now = ctx.clock.now();
    let claims = ctx
        .jwt
        .verify(mfa_token, TokenType::Mfa, now)
        .map_err(|_| SecondFactorError::MfaTokenInvalid)?;
    let id = ChallengeId::parse(&claims.sid).ok_or(SecondFactorError::MfaTokenInvalid)?;
    unit_of_work::read(ctx, move |conn| {
        repo::two_factor::find_live_challenge(conn, &id, now).map_err(Failure::from)
    })
    .await?
    .ok_or(SecondFactorError::MfaTokenInvalid)
}
