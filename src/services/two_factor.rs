//! Two-factor authentication: TOTP enrollment and removal, recovery codes (status and
//! regeneration), and the second step of a login with either factor.
//!
//! Failed second-factor attempts of an account (TOTP and recovery codes together, a reused code
//! included) share one budget counted in the database; past it every attempt is refused with a
//! 429, right or wrong, and a security event is written.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::repo::two_factor::{ChallengeRow, CodeRow, CodeSetRow, TotpRow};
use crate::db::repo::{self, accounts::AccountRow};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{
    EventType, GeneratedCode, RecoveryCodeInput, RecoveryCodeInputError, SecondFactor,
};
use crate::failure_conversions;
use crate::mail::{OutgoingMail, human_time};
use crate::security::jwt::TokenType;
use crate::security::password::verify_with;
use crate::security::tokens::random_bytes;
use crate::security::totp::TotpSecret;
use crate::services::audit::{self, Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::sessions::{Principal, SessionTokens, open_session};
use crate::services::{ClientInfo, Failure};

/// Recovery codes left at which the owner is urged to regenerate.
pub const LOW_CODES: u32 = 2;

/// A used recovery code: when and from where (never the code).
#[derive(Debug, Clone)]
pub struct UsedCode {
    /// When.
    pub used_at: DateTime<Utc>,
    /// From which IP.
    pub ip: Option<String>,
    /// From which user agent.
    pub user_agent: Option<String>,
}

/// The account's two-factor state.
#[derive(Debug, Clone, Default)]
pub struct TwoFactorStatus {
    /// TOTP is confirmed.
    pub enabled: bool,
    /// When the current set of recovery codes was generated.
    pub generated_at: Option<DateTime<Utc>>,
    /// Codes in the current set.
    pub total: u32,
    /// Unused codes in the current set.
    pub remaining: u32,
    /// When a code of the current set was last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The used codes of the current set, oldest first.
    pub used: Vec<UsedCode>,
}

/// Reads the account's two-factor state.
pub fn status(conn: &mut DbConnection, account_id: &str) -> diesel::QueryResult<TwoFactorStatus> {
    let enabled =
        repo::two_factor::find_totp(conn, account_id)?.is_some_and(|t| t.confirmed_at.is_some());
    let Some((set, codes)) = repo::two_factor::current_set(conn, account_id)? else {
        return Ok(TwoFactorStatus {
            enabled,
            ..Default::default()
        });
    };
    let used: Vec<UsedCode> = codes
        .iter()
        .filter_map(|c| {
            c.used_at.map(|at| UsedCode {
                used_at: repo::utc(at),
                ip: c.used_ip.clone(),
                user_agent: c.used_user_agent.clone(),
            })
        })
        .collect();
    Ok(TwoFactorStatus {
        enabled,
        generated_at: Some(repo::utc(set.created_at)),
        total: u32::try_from(codes.len()).unwrap_or(u32::MAX),
        remaining: u32::try_from(codes.len() - used.len()).unwrap_or(0),
        last_used_at: used.iter().map(|u| u.used_at).max(),
        used,
    })
}

/// A new set of recovery codes, shown once.
#[derive(Clone)]
pub struct NewCodes {
    /// The codes, grouped in fours.
    pub codes: Vec<String>,
    /// When they were generated.
    pub generated_at: DateTime<Utc>,
}

impl std::fmt::Debug for NewCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCodes")
            .field("count", &self.codes.len())
            .finish()
    }
}

/// A pending TOTP enrollment, shown once.
#[derive(Clone)]
pub struct Enrollment {
    /// The base32 secret, for manual entry.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrollment(…)")
    }
}

/// Why a two-factor change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    /// The password is wrong.
    #[error("invalid password")]
    InvalidPassword,
    /// 2FA is already on.
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    /// 2FA is off (or no enrollment is pending, for a confirmation).
    #[error("two-factor authentication is not enabled")]
    NotEnabled,
    /// The code did not match.
    #[error("invalid code")]
    InvalidCode(CodeRefusal),
    /// A field is missing.
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
failure_conversions!(TwoFactorError);

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
}

/// Why the second step of a login failed.
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

async fn load_account(ctx: &Ctx, account_id: &str) -> Result<AccountRow, Failure> {
    let id = account_id.to_owned();
    ctx.db
        .run(move |conn| repo::accounts::find(conn, &id).map_err(Failure::from))
        .await?
        .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))
}

async fn check_password(
    ctx: &Ctx,
    account: &AccountRow,
    password: String,
) -> Result<(), TwoFactorError> {
    if ctx
        .passwords
        .verify(password, Some(account.password_hash.clone()))
        .await?
    {
        Ok(())
    } else {
        Err(TwoFactorError::InvalidPassword)
    }
}

/// Starts TOTP enrollment: needs the password; answers the secret and its `otpauth://` URI.
/// 2FA stays off until a first code is confirmed.
pub async fn enroll(
    ctx: &Ctx,
    who: &Principal,
    password: String,
) -> Result<Enrollment, TwoFactorError> {
    let account = load_account(ctx, &who.account_id).await?;
    check_password(ctx, &account, password).await?;
    let secret = TotpSecret::generate();
    let otpauth_uri = secret
        .otpauth_uri(&ctx.config.service_name, &account.username)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    let sealed = ctx
        .cipher
        .seal(&secret.to_base32())
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    let now = ctx.clock.now();
    let account_id = account.id.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), TwoFactorError> {
                if repo::two_factor::find_totp(conn, &account_id)?
                    .is_some_and(|t| t.confirmed_at.is_some())
                {
                    return Err(TwoFactorError::AlreadyEnabled);
                }
                repo::two_factor::put_pending_totp(
                    conn,
                    &TotpRow {
                        account_id: account_id.clone(),
                        secret_sealed: sealed,
                        created_at: repo::naive(now),
                        confirmed_at: None,
                        last_used_step: None,
                    },
                )?;
                Ok(())
            })
        })
        .await?;
    Ok(Enrollment {
        secret: secret.to_base32(),
        otpauth_uri,
    })
}

fn open_secret(ctx: &Ctx, row: &TotpRow) -> Result<TotpSecret, Failure> {
    let b32 = ctx
        .cipher
        .open(&row.secret_sealed)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    TotpSecret::from_base32(&b32).map_err(|e| Failure::Internal(anyhow::Error::new(e)))
}

/// Generates a set of codes (hashing off the async workers) whose lookup ids avoid `taken`.
async fn generate_codes(
    ctx: &Ctx,
    account_id: &str,
    taken: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(NewCodes, CodeSetRow, Vec<CodeRow>), Failure> {
    let count = ctx.config.recovery_codes_per_set as usize;
    let mut codes: Vec<GeneratedCode> = Vec::with_capacity(count);
    while codes.len() < count {
        let code = GeneratedCode::from_random(random_bytes::<20>());
        if !taken.contains(&code.lookup) && !codes.iter().any(|c| c.lookup == code.lookup) {
            codes.push(code);
        }
    }
    let hasher = ctx.passwords.clone();
    let secrets: Vec<String> = codes.iter().map(|c| c.secret.clone()).collect();
    let hashes = ctx
        .passwords
        .run(move || {
            secrets
                .iter()
                .map(|s| hasher.hash_blocking(s))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?
        .map_err(|e| Failure::Internal(anyhow::anyhow!("argon2: {e}")))?;
    let set = CodeSetRow {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: account_id.to_owned(),
        created_at: repo::naive(now),
        superseded_at: None,
    };
    let rows = codes
        .iter()
        .zip(hashes)
        .map(|(c, hash)| CodeRow {
            id: uuid::Uuid::new_v4().to_string(),
            set_id: set.id.clone(),
            account_id: account_id.to_owned(),
            lookup: c.lookup.clone(),
            code_hash: hash,
            used_at: None,
            used_ip: None,
            used_user_agent: None,
        })
        .collect();
    Ok((
        NewCodes {
            codes: codes.iter().map(GeneratedCode::display).collect(),
            generated_at: now,
        },
        set,
        rows,
    ))
}

async fn taken_lookups(ctx: &Ctx, account_id: &str) -> Result<Vec<String>, Failure> {
    let id = account_id.to_owned();
    ctx.db
        .run(move |conn| repo::two_factor::lookups(conn, &id).map_err(Failure::from))
        .await
}

/// Confirms enrollment with a first code: 2FA turns on and the first set of recovery codes is
/// answered, so no account has 2FA without codes.
pub async fn confirm(
    ctx: &Ctx,
    who: &Principal,
    code: &str,
    client: ClientInfo,
) -> Result<NewCodes, TwoFactorError> {
    if code.trim().is_empty() {
        return Err(TwoFactorError::MissingCode);
    }
    let account = load_account(ctx, &who.account_id).await?;
    let id = account.id.clone();
    let pending = ctx
        .db
        .run(move |conn| repo::two_factor::find_totp(conn, &id).map_err(Failure::from))
        .await?;
    let pending = match pending {
        Some(p) if p.confirmed_at.is_some() => return Err(TwoFactorError::AlreadyEnabled),
        Some(p) => p,
        None => return Err(TwoFactorError::NotEnabled),
    };
    let now = ctx.clock.now();
    let step = open_secret(ctx, &pending)?
        .check(code, now.timestamp())
        .ok_or(TwoFactorError::InvalidCode(CodeRefusal::InvalidTotp {
            replayed: false,
        }))?;
    let taken = taken_lookups(ctx, &account.id).await?;
    let (new_codes, set, rows) = generate_codes(ctx, &account.id, taken, now).await?;
    let ctx2 = ctx.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), TwoFactorError> {
                if !repo::two_factor::confirm_totp(conn, &account.id, step, repo::naive(now))? {
                    return Err(TwoFactorError::AlreadyEnabled);
                }
                repo::two_factor::supersede_sets(conn, &account.id, repo::naive(now))?;
                repo::two_factor::insert_set(conn, &set, &rows)?;
                for (event, details) in [
                    (EventType::TotpEnabled, serde_json::json!({})),
                    (
                        EventType::RecoveryCodesGenerated,
                        serde_json::json!({"count": rows.len()}),
                    ),
                ] {
                    audit::record(
                        conn,
                        now,
                        Event {
                            event_type: event,
                            actor: Actor::Account(&account.id),
                            account_id: Some(&account.id),
                            request_id: None,
                            client: &client,
                            details,
                        },
                    )?;
                }
                notify(
                    &ctx2,
                    conn,
                    &account,
                    "totp_enabled",
                    &client,
                    now,
                    serde_json::json!({"codes": rows.len()}),
                )?;
                Ok(())
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(new_codes)
}

/// Queues a two-factor notice to the account's address.
fn notify(
    ctx: &Ctx,
    conn: &mut DbConnection,
    account: &AccountRow,
    template: &'static str,
    client: &ClientInfo,
    now: DateTime<Utc>,
    extra: serde_json::Value,
) -> Result<(), Failure> {
    let mut context = serde_json::json!({
        "username": account.username,
        "at": human_time(now),
        "ip": client.ip,
        "user_agent": client.user_agent,
        "security_link": ctx.mailer.link("account/security", &[]),
    });
    if let (Some(base), serde_json::Value::Object(more)) = (context.as_object_mut(), extra) {
        base.extend(more);
    }
    ctx.mailer.queue(
        conn,
        now,
        OutgoingMail {
            to: account.email.clone(),
            template,
            context,
            carries_token: false,
        },
    )?;
    Ok(())
}

/// The account's recovery codes: counts, times and where used codes were used; never a code.
pub async fn recovery_codes(ctx: &Ctx, who: &Principal) -> Result<TwoFactorStatus, TwoFactorError> {
    let id = who.account_id.clone();
    let s = ctx
        .db
        .run(move |conn| status(conn, &id).map_err(Failure::from))
        .await?;
    if !s.enabled {
        return Err(TwoFactorError::NotEnabled);
    }
    Ok(s)
}

/// Replaces the recovery codes: needs the password; every older code stops working (and is
/// kept, marked superseded, so it can be explained).
pub async fn regenerate(
    ctx: &Ctx,
    who: &Principal,
    password: String,
    client: ClientInfo,
) -> Result<NewCodes, TwoFactorError> {
    let account = load_account(ctx, &who.account_id).await?;
    check_password(ctx, &account, password).await?;
    let id = account.id.clone();
    let s = ctx
        .db
        .run(move |conn| status(conn, &id).map_err(Failure::from))
        .await?;
    if !s.enabled {
        return Err(TwoFactorError::NotEnabled);
    }
    let now = ctx.clock.now();
    let taken = taken_lookups(ctx, &account.id).await?;
    let (new_codes, set, rows) = generate_codes(ctx, &account.id, taken, now).await?;
    let ctx2 = ctx.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), TwoFactorError> {
                repo::two_factor::supersede_sets(conn, &account.id, repo::naive(now))?;
                repo::two_factor::insert_set(conn, &set, &rows)?;
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: EventType::RecoveryCodesGenerated,
                        actor: Actor::Account(&account.id),
                        account_id: Some(&account.id),
                        request_id: None,
                        client: &client,
                        details: serde_json::json!({"count": rows.len(), "replaced": true}),
                    },
                )?;
                notify(
                    &ctx2,
                    conn,
                    &account,
                    "recovery_codes_regenerated",
                    &client,
                    now,
                    serde_json::json!({"codes": rows.len()}),
                )?;
                Ok(())
            })
        })
        .await?;
    ctx.mailer.wake();
    Ok(new_codes)
}

/// Turns 2FA off: needs the password and a current TOTP code or an unused recovery code (which
/// it consumes). TOTP and every recovery code are removed.
pub async fn disable(
    ctx: &Ctx,
    who: &Principal,
    password: String,
    code: &str,
    client: ClientInfo,
) -> Result<(), TwoFactorError> {
    if code.trim().is_empty() {
        return Err(TwoFactorError::MissingCode);
    }
    let account = load_account(ctx, &who.account_id).await?;
    check_password(ctx, &account, password).await?;
    let id = account.id.clone();
    let enabled = ctx
        .db
        .run(move |conn| status(conn, &id).map_err(Failure::from))
        .await?
        .enabled;
    if !enabled {
        return Err(TwoFactorError::NotEnabled);
    }
    let proof = match verify_code(ctx, &account.id, code, &client).await {
        Ok(proof) => proof,
        Err(SecondFactorError::Refused(r)) => return Err(TwoFactorError::InvalidCode(r)),
        Err(SecondFactorError::RateLimited { retry_after_secs }) => {
            return Err(TwoFactorError::RateLimited { retry_after_secs });
        }
        Err(SecondFactorError::MissingCode) => return Err(TwoFactorError::MissingCode),
        Err(SecondFactorError::MfaTokenInvalid) => {
            return Err(TwoFactorError::InvalidCode(CodeRefusal::InvalidTotp {
                replayed: false,
            }));
        }
        Err(SecondFactorError::Failure(f)) => return Err(f.into()),
    };
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let result = ctx
        .db
        .run(move |conn| {
            write_transaction(
                conn,
                |conn| -> Result<Result<(), CodeRefusal>, TwoFactorError> {
                    if let Err(refusal) = spend(conn, &account.id, &proof, &client, now)? {
                        return Ok(Err(refusal));
                    }
                    repo::two_factor::remove_all(conn, &account.id)?;
                    audit::record(
                        conn,
                        now,
                        Event {
                            event_type: EventType::TotpDisabled,
                            actor: Actor::Account(&account.id),
                            account_id: Some(&account.id),
                            request_id: None,
                            client: &client,
                            details: serde_json::json!({"with": proof.factor().as_str()}),
                        },
                    )?;
                    notify(
                        &ctx2,
                        conn,
                        &account,
                        "totp_disabled",
                        &client,
                        now,
                        serde_json::json!({}),
                    )?;
                    Ok(Ok(()))
                },
            )
        })
        .await?;
    match result {
        Ok(()) => {
            ctx.mailer.wake();
            Ok(())
        }
        Err(refusal) => {
            record_failure(ctx, &who.account_id).await?;
            Err(TwoFactorError::InvalidCode(refusal))
        }
    }
}

/// A second factor that matched, not yet spent.
#[derive(Debug, Clone)]
enum Proof {
    /// A TOTP code of this step.
    Totp(i64),
    /// This unused recovery code.
    RecoveryCode(String),
}

impl Proof {
    fn factor(&self) -> SecondFactor {
        match self {
            Self::Totp(_) => SecondFactor::Totp,
            Self::RecoveryCode(_) => SecondFactor::RecoveryCode,
        }
    }
}

/// Spends a proof inside the caller's transaction: the TOTP step advances, or the recovery code
/// is consumed; the row count decides a race. `Ok(Err(..))` when another request won.
fn spend(
    conn: &mut DbConnection,
    account_id: &str,
    proof: &Proof,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<Result<(), CodeRefusal>, Failure> {
    match proof {
        Proof::Totp(step) => Ok(
            if repo::two_factor::use_totp_step(conn, account_id, *step)? {
                Ok(())
            } else {
                Err(CodeRefusal::InvalidTotp { replayed: true })
            },
        ),
        Proof::RecoveryCode(code_id) => Ok(
            if repo::two_factor::consume_code(
                conn,
                code_id,
                repo::naive(now),
                client.ip.as_deref(),
                client.user_agent.as_deref(),
            )? {
                Ok(())
            } else {
                Err(CodeRefusal::AlreadyUsed { used_at: None })
            },
        ),
    }
}

fn second_factor_bucket(account_id: &str) -> String {
    format!("second-factor:{account_id}")
}

/// Counts one failed second-factor attempt (in its own transaction: it must outlive the
/// refusal).
async fn record_failure(ctx: &Ctx, account_id: &str) -> Result<(), Failure> {
    let now = ctx.clock.now();
    let bucket = second_factor_bucket(account_id);
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), Failure> {
                rate_limit::hit(conn, &bucket, now)?;
                Ok(())
            })
        })
        .await
}

/// Refuses every attempt once the account's failure budget is spent, and says so in the log.
async fn check_budget(
    ctx: &Ctx,
    account_id: &str,
    client: &ClientInfo,
) -> Result<(), SecondFactorError> {
    let now = ctx.clock.now();
    let bucket = second_factor_bucket(account_id);
    let limit = ctx.config.rate_limits.second_factor;
    let id = account_id.to_owned();
    let client = client.clone();
    let metrics = ctx.metrics.clone();
    let decision = ctx
        .db
        .run(move |conn| {
            let decision = rate_limit::check(conn, &metrics, &bucket, limit, now)?;
            if let Decision::Limited { retry_after_secs } = decision {
                write_transaction(conn, |conn| -> Result<(), Failure> {
                    audit::record(
                        conn,
                        now,
                        Event {
                            event_type: EventType::SecondFactorRateLimited,
                            actor: Actor::Anonymous,
                            account_id: Some(&id),
                            request_id: None,
                            client: &client,
                            details: serde_json::json!({"retry_after_secs": retry_after_secs}),
                        },
                    )?;
                    Ok(())
                })?;
            }
            Ok::<_, Failure>(decision)
        })
        .await?;
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after_secs } => {
            Err(SecondFactorError::RateLimited { retry_after_secs })
        }
    }
}

/// Checks a code (TOTP when it is six digits, a recovery code otherwise) against the account,
/// with one argon2 verification at most; counts a failure. The proof is spent later, in the
/// transaction that acts on it.
async fn verify_code(
    ctx: &Ctx,
    account_id: &str,
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

async fn check_totp(
    ctx: &Ctx,
    account_id: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<Proof, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    check_budget(ctx, account_id, client).await?;
    let id = account_id.to_owned();
    let row = ctx
        .db
        .run(move |conn| repo::two_factor::find_totp(conn, &id).map_err(Failure::from))
        .await?
        .filter(|t| t.confirmed_at.is_some());
    let now = ctx.clock.now();
    let matched = match &row {
        Some(row) => open_secret(ctx, row)?
            .check(code, now.timestamp())
            .map(|step| (step, row.last_used_step)),
        None => None,
    };
    match matched {
        Some((step, last)) if last.is_none_or(|l| l < step) => Ok(Proof::Totp(step)),
        Some(_) => {
            record_failure(ctx, account_id).await?;
            Err(SecondFactorError::Refused(CodeRefusal::InvalidTotp {
                replayed: true,
            }))
        }
        None => {
            record_failure(ctx, account_id).await?;
            Err(SecondFactorError::Refused(CodeRefusal::InvalidTotp {
                replayed: false,
            }))
        }
    }
}

async fn check_recovery_code(
    ctx: &Ctx,
    account_id: &str,
    code: &str,
    client: &ClientInfo,
) -> Result<Proof, SecondFactorError> {
    let parsed = match RecoveryCodeInput::parse(code) {
        Err(RecoveryCodeInputError::Empty) => return Err(SecondFactorError::MissingCode),
        other => other,
    };
    check_budget(ctx, account_id, client).await?;
    let found = match &parsed {
        Ok(input) => {
            let (id, lookup) = (account_id.to_owned(), input.lookup().to_owned());
            ctx.db
                .run(move |conn| {
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
    let dummy_needed = found.is_none();
    if dummy_needed {
        let _ = ctx.passwords.verify(code.to_owned(), None).await?;
    }
    let refusal = match (parsed, found, matches) {
        (Ok(_), Some((code_row, set)), true) => {
            if let Some(replaced) = set.superseded_at {
                CodeRefusal::Superseded {
                    replaced_at: repo::utc(replaced),
                }
            } else if let Some(used) = code_row.used_at {
                CodeRefusal::AlreadyUsed {
                    used_at: Some(repo::utc(used)),
                }
            } else {
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
    record_failure(ctx, account_id).await?;
    Err(SecondFactorError::Refused(refusal))
}

/// Issues the mfa challenge of a login whose password was right (inside its transaction):
/// answers the mfa token.
pub fn start_challenge(
    ctx: &Ctx,
    conn: &mut DbConnection,
    account: &AccountRow,
    now: DateTime<Utc>,
) -> Result<(String, u64), Failure> {
    let id = uuid::Uuid::new_v4().to_string();
    let ttl = ctx.config.mfa_token_ttl;
    repo::two_factor::insert_challenge(
        conn,
        &ChallengeRow {
            id: id.clone(),
            account_id: account.id.clone(),
            created_at: repo::naive(now),
            expires_at: repo::naive(now + chrono::Duration::from_std(ttl).unwrap_or_default()),
            used_at: None,
        },
    )?;
    let token = ctx.jwt.issue(TokenType::Mfa, &account.id, &id, now, ttl)?;
    Ok((token, ttl.as_secs()))
}

/// Whether the account has 2FA on (inside a transaction).
pub fn is_enabled(conn: &mut DbConnection, account_id: &str) -> diesel::QueryResult<bool> {
    Ok(repo::two_factor::find_totp(conn, account_id)?.is_some_and(|t| t.confirmed_at.is_some()))
}

/// Removes TOTP and every recovery code (inside the caller's transaction).
pub fn remove_all(conn: &mut DbConnection, account_id: &str) -> diesel::QueryResult<()> {
    repo::two_factor::remove_all(conn, account_id)
}

/// The mfa token's challenge, checked for the second step.
async fn challenge_of(ctx: &Ctx, mfa_token: &str) -> Result<ChallengeRow, SecondFactorError> {
    let now = ctx.clock.now();
    let claims = ctx
        .jwt
        .verify(mfa_token, TokenType::Mfa, now)
        .map_err(|_| SecondFactorError::MfaTokenInvalid)?;
    let challenge = ctx
        .db
        .run(move |conn| {
            repo::two_factor::find_live_challenge(conn, &claims.sid, repo::naive(now))
                .map_err(Failure::from)
        })
        .await?
        .ok_or(SecondFactorError::MfaTokenInvalid)?;
    Ok(challenge)
}

/// What a finished second step answers.
#[derive(Debug, Clone)]
pub struct SecondStep {
    /// The session's tokens.
    pub tokens: SessionTokens,
    /// After a recovery code: how many are left.
    pub recovery_codes_remaining: Option<u32>,
}

/// Finishes a login with an authenticator code.
pub async fn login_with_totp(
    ctx: &Ctx,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<SecondStep, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    let challenge = challenge_of(ctx, mfa_token).await?;
    let proof = check_totp(ctx, &challenge.account_id, code, &client).await?;
    finish_login(ctx, challenge, proof, client).await
}

/// Finishes a login with a recovery code.
pub async fn login_with_recovery_code(
    ctx: &Ctx,
    mfa_token: &str,
    code: &str,
    client: ClientInfo,
) -> Result<SecondStep, SecondFactorError> {
    if code.trim().is_empty() {
        return Err(SecondFactorError::MissingCode);
    }
    let challenge = challenge_of(ctx, mfa_token).await?;
    let proof = check_recovery_code(ctx, &challenge.account_id, code, &client).await?;
    finish_login(ctx, challenge, proof, client).await
}

/// Spends the proof, consumes the challenge and opens the session, all in one transaction; a
/// recovery code is consumed only if the login completes.
async fn finish_login(
    ctx: &Ctx,
    challenge: ChallengeRow,
    proof: Proof,
    client: ClientInfo,
) -> Result<SecondStep, SecondFactorError> {
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    let account_id = challenge.account_id.clone();
    let outcome = ctx
        .db
        .run(move |conn| {
            write_transaction(
                conn,
                |conn| -> Result<Result<SecondStep, CodeRefusal>, SecondFactorError> {
                    if !repo::two_factor::consume_challenge(conn, &challenge.id, repo::naive(now))?
                    {
                        return Err(SecondFactorError::MfaTokenInvalid);
                    }
                    if let Err(refusal) = spend(conn, &challenge.account_id, &proof, &client, now)?
                    {
                        return Ok(Err(refusal));
                    }
                    let account = repo::accounts::find(conn, &challenge.account_id)?
                        .ok_or(SecondFactorError::MfaTokenInvalid)?;
                    let tokens = open_session(&ctx2, conn, &account, proof.factor(), &client, now)?;
                    let remaining = match proof {
                        Proof::Totp(_) => None,
                        Proof::RecoveryCode(_) => {
                            let s = status(conn, &account.id)?;
                            audit::record(
                                conn,
                                now,
                                Event {
                                    event_type: EventType::RecoveryCodeUsed,
                                    actor: Actor::Account(&account.id),
                                    account_id: Some(&account.id),
                                    request_id: None,
                                    client: &client,
                                    details: serde_json::json!({"remaining": s.remaining}),
                                },
                            )?;
                            notify(
                                &ctx2,
                                conn,
                                &account,
                                "recovery_code_used",
                                &client,
                                now,
                                serde_json::json!({
                                    "remaining": s.remaining,
                                    "low": s.remaining <= LOW_CODES,
                                }),
                            )?;
                            Some(s.remaining)
                        }
                    };
                    Ok(Ok(SecondStep {
                        tokens,
                        recovery_codes_remaining: remaining,
                    }))
                },
            )
        })
        .await?;
    match outcome {
        Ok(step) => {
            ctx.mailer.wake();
            Ok(step)
        }
        Err(refusal) => {
            // Another request spent the same code first.
            record_failure(ctx, &account_id).await?;
            Err(SecondFactorError::Refused(refusal))
        }
    }
}
