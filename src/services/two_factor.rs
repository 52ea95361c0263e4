//! Managing two-factor authentication: TOTP enrollment and removal, and recovery codes (status
//! and regeneration). No account has 2FA without recovery codes: the first factor's
//! confirmation answers the first set. 2FA is on while the account has a confirmed TOTP or at
//! least one passkey (`passkeys`); a second factor added to an account that already has one
//! leaves its codes alone, and removing TOTP while passkeys remain keeps them.
//!
//! Checking a code lives in `second_factor`; logging in with one in `login`.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo;
use crate::domain::{Account, AccountId, CodeSet, SessionId, StoredCode, TotpCredential};
use crate::domain::{EventType, GeneratedCode};
use crate::failure_conversions;
use crate::mail::human_time;
use crate::security::tokens::random_bytes;
use crate::security::totp::TotpSecret;
use crate::services::account_lock;
use crate::services::audit::{Actor, Event};
use crate::services::reauth;
use crate::services::second_factor::{self, CodeRefusal, SecondFactorError};
use crate::services::sessions::Principal;
use crate::services::unit_of_work::{self, Work};
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
    /// 2FA is on: TOTP is confirmed or the account has a passkey.
    pub enabled: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// How many passkeys the account has.
    pub passkeys: u32,
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

impl TwoFactorStatus {
    /// Whether the owner should make a new set ([`should_regenerate`]).
    pub fn should_regenerate(&self) -> bool {
        should_regenerate(self.enabled, !self.used.is_empty())
    }
}

/// 2FA is on when TOTP is confirmed or the account has a passkey.
fn enabled_by(totp: bool, passkeys: u32) -> bool {
    totp || passkeys > 0
}

/// Whether the owner should make a new set of recovery codes: 2FA is on and a code of the
/// current set was used. A login with a recovery code is account recovery (NIST SP 800-63B-4
/// §4.2.1.1), after which the remaining codes of that set may be as exposed as the one used.
fn should_regenerate(enabled: bool, a_code_was_used: bool) -> bool {
    enabled && a_code_was_used
}

/// What the account view shows of the two-factor state, read in one statement.
#[derive(Debug, Clone, Copy, Default)]
pub struct TwoFactorSummary {
    /// 2FA is on.
    pub enabled: bool,
    /// TOTP is confirmed.
    pub totp: bool,
    /// How many passkeys the account has.
    pub passkeys: u32,
    /// Unused codes in the current set.
    pub remaining: u32,
    /// The owner should make a new set ([`should_regenerate`]).
    pub should_regenerate: bool,
}

/// Reads the account's [`TwoFactorSummary`].
pub fn summary(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> diesel::QueryResult<TwoFactorSummary> {
    repo::two_factor::counts(conn, account_id).map(summary_of)
}

/// The [`TwoFactorSummary`] the counts give.
pub fn summary_of(c: repo::two_factor::SecondFactorCounts) -> TwoFactorSummary {
    let passkeys = u32::try_from(c.passkeys).unwrap_or(u32::MAX);
    let enabled = enabled_by(c.totp_confirmed, passkeys);
    TwoFactorSummary {
        enabled,
        totp: c.totp_confirmed,
        passkeys,
        remaining: u32::try_from(c.codes.saturating_sub(c.used_codes)).unwrap_or(0),
        should_regenerate: should_regenerate(enabled, c.used_codes > 0),
    }
}

/// Reads the account's two-factor state.
pub fn status(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> diesel::QueryResult<TwoFactorStatus> {
    let totp = totp_confirmed(conn, account_id)?;
    let passkeys = passkey_count(conn, account_id)?;
    let enabled = enabled_by(totp, passkeys);
    let Some((set, codes)) = repo::two_factor::current_set(conn, account_id)? else {
        return Ok(TwoFactorStatus {
            enabled,
            totp,
            passkeys,
            ..Default::default()
        });
    };
    let used: Vec<UsedCode> = codes
        .iter()
        .filter_map(|c| {
            c.used_at.map(|at| UsedCode {
                used_at: at,
                ip: c.used_ip.clone(),
                user_agent: c.used_user_agent.clone(),
            })
        })
        .collect();
    Ok(TwoFactorStatus {
        enabled,
        totp,
        passkeys,
        generated_at: Some(set.created_at),
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

async fn load_account(ctx: &Ctx, account_id: &AccountId) -> Result<Account, Failure> {
    let id = account_id.to_owned();
    unit_of_work::read(ctx, move |conn| {
        repo::accounts::find(conn, &id).map_err(Failure::from)
    })
    .await?
    .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))
}

/// Checks the caller's password again (in the re-authentication budget).
async fn check_password(
    ctx: &Ctx,
    account: &Account,
    password: String,
    client: &ClientInfo,
) -> Result<(), TwoFactorError> {
    match reauth::password(ctx, &account.id, &account.password_hash, password, client).await? {
        Ok(true) => Ok(()),
        Ok(false) => Err(TwoFactorError::InvalidPassword),
        Err(reauth::Limited { retry_after_secs }) => {
            Err(TwoFactorError::RateLimited { retry_after_secs })
        }
    }
}

/// Starts TOTP enrollment: needs the password; answers the secret and its `otpauth://` URI.
/// 2FA stays off until a first code is confirmed.
pub async fn enroll(
    ctx: &Ctx,
    who: &Principal,
    password: String,
    client: ClientInfo,
) -> Result<Enrollment, TwoFactorError> {
    let account = load_account(ctx, &who.account_id).await?;
    check_password(ctx, &account, password, &client).await?;
    let secret = TotpSecret::generate();
    let otpauth_uri = secret
        .otpauth_uri(&ctx.config.service_name, &account.username)
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    let sealed = ctx
        .cipher
        .seal(&secret.to_base32())
        .map_err(|e| Failure::Internal(anyhow::Error::new(e)))?;
    let account_id = account.id.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), TwoFactorError> {
        if totp_confirmed(w.conn, &account_id)? {
            return Err(TwoFactorError::AlreadyEnabled);
        }
        repo::two_factor::put_pending_totp(
            w.conn,
            &TotpCredential {
                account_id: account_id.clone(),
                secret_sealed: sealed,
                created_at: w.now,
                confirmed_at: None,
                last_used_step: None,
            },
        )?;
        Ok(())
    })
    .await?;
    Ok(Enrollment {
        secret: secret.to_base32(),
        otpauth_uri,
    })
}

/// Generates a set of codes (hashing off the async workers) whose lookup ids avoid `taken`.
async fn generate_codes(
    ctx: &Ctx,
    account_id: &AccountId,
    taken: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(NewCodes, CodeSet, Vec<StoredCode>), Failure> {
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
    let set = CodeSet {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: account_id.to_owned(),
        created_at: now,
        superseded_at: None,
    };
    let rows = codes
        .iter()
        .zip(hashes)
        .map(|(c, hash)| StoredCode {
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

async fn taken_lookups(ctx: &Ctx, account_id: &AccountId) -> Result<Vec<String>, Failure> {
    let id = account_id.to_owned();
    unit_of_work::read(ctx, move |conn| {
        repo::two_factor::lookups(conn, &id).map_err(Failure::from)
    })
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
    let pending = unit_of_work::read(ctx, move |conn| {
        repo::two_factor::find_totp(conn, &id).map_err(Failure::from)
    })
    .await?;
    let pending = match pending {
        Some(p) if p.confirmed_at.is_some() => return Err(TwoFactorError::AlreadyEnabled),
        Some(p) => p,
        None => return Err(TwoFactorError::NotEnabled),
    };
    // Confirmation codes are guessed against the re-authentication budget, like passwords.
    if let Err(reauth::Limited { retry_after_secs }) = reauth::begin(ctx, &account.id).await? {
        return Err(TwoFactorError::RateLimited { retry_after_secs });
    }
    let now = ctx.clock.now();
    let step = second_factor::open_secret(ctx, &pending)?.check(code, now.timestamp());
    let check = reauth::Check::TotpConfirmation;
    reauth::end(ctx, &account.id, check, step.is_some(), &client).await?;
    let step = step.ok_or(TwoFactorError::InvalidCode(CodeRefusal::InvalidTotp {
        replayed: false,
    }))?;
    // A first second factor answers the first set of codes; TOTP added beside a passkey
    // leaves the codes the account already has alone (an empty list is answered then). Which
    // of the two it is, is decided under the account's lock; codes are hashed outside the
    // transaction, so a second pass makes them when a passkey went away meanwhile.
    let id = account.id.clone();
    let mut need_codes = unit_of_work::read(ctx, move |conn| {
        passkey_count(conn, &id).map_err(Failure::from)
    })
    .await?
        == 0;
    for _ in 0..2 {
        let fresh = if need_codes {
            let taken = taken_lookups(ctx, &account.id).await?;
            Some(generate_codes(ctx, &account.id, taken, now).await?)
        } else {
            None
        };
        let (account, client) = (account.clone(), client.clone());
        let outcome = unit_of_work::write(
            ctx,
            move |w: &mut Work<'_>| -> Result<Confirmed, TwoFactorError> {
                repo::accounts::lock_for_update(w.conn, &account.id)?;
                let beside_passkey = passkey_count(w.conn, &account.id)? > 0;
                let fresh = match (beside_passkey, fresh) {
                    (true, _) => None,
                    (false, Some(fresh)) => Some(fresh),
                    // Nothing written yet: the empty transaction commits harmlessly.
                    (false, None) => return Ok(Confirmed::NeedsCodes),
                };
                if !repo::two_factor::confirm_totp(w.conn, &account.id, step, w.now)? {
                    return Err(TwoFactorError::AlreadyEnabled);
                }
                let mut events = vec![(EventType::TotpEnabled, serde_json::json!({}))];
                let mut count = 0;
                if let Some((_, set, rows)) = &fresh {
                    repo::two_factor::supersede_sets(w.conn, &account.id, w.now)?;
                    repo::two_factor::insert_set(w.conn, set, rows)?;
                    count = rows.len();
                    events.push((
                        EventType::RecoveryCodesGenerated,
                        serde_json::json!({"count": count}),
                    ));
                }
                for (event, details) in events {
                    w.audit(
                        Event::new(event, Actor::Account(&account.id), &client)
                            .account(Some(&account.id))
                            .details(details),
                    )?;
                }
                notify(
                    w,
                    &account,
                    "totp_enabled",
                    &client,
                    serde_json::json!({"codes": count}),
                )?;
                Ok(match fresh {
                    Some((new_codes, _, _)) => Confirmed::Done(new_codes),
                    None => {
                        let kept = repo::two_factor::current_set(w.conn, &account.id)?;
                        Confirmed::Done(NewCodes {
                            codes: Vec::new(),
                            generated_at: kept.map_or(w.now, |(set, _)| set.created_at),
                        })
                    }
                })
            },
        )
        .await?;
        match outcome {
            Confirmed::Done(codes) => return Ok(codes),
            Confirmed::NeedsCodes => need_codes = true,
        }
    }
    Err(Failure::Internal(anyhow::anyhow!("two-factor state kept changing")).into())
}

/// What a confirmation's unit of work decided.
enum Confirmed {
    /// TOTP is on; the codes to answer (empty beside a passkey).
    Done(NewCodes),
    /// The passkeys went away since the read: a first set must be made first.
    NeedsCodes,
}

/// Queues a two-factor notice (with its lock link) to the account's address, inside the
/// caller's unit of work.
pub fn notify(
    w: &mut Work<'_>,
    account: &Account,
    template: &'static str,
    client: &ClientInfo,
    extra: serde_json::Value,
) -> Result<(), Failure> {
    let mut context = serde_json::json!({
        "username": account.username,
        "at": human_time(w.now),
        "ip": client.ip,
        "user_agent": client.user_agent,
        "security_link": w.ctx.mailer.link("account/security", &[]),
    });
    if let (Some(base), serde_json::Value::Object(more)) = (context.as_object_mut(), extra) {
        base.extend(more);
    }
    account_lock::notice(
        w,
        account_lock::NoticeTo::account(account),
        &account.id,
        template,
        client,
        context,
        None,
    )
}

/// The account's recovery codes: counts, times and where used codes were used; never a code.
pub async fn recovery_codes(ctx: &Ctx, who: &Principal) -> Result<TwoFactorStatus, TwoFactorError> {
    let id = who.account_id.clone();
    let s = unit_of_work::read(ctx, move |conn| status(conn, &id).map_err(Failure::from)).await?;
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
    check_password(ctx, &account, password, &client).await?;
    let id = account.id.clone();
    let s = unit_of_work::read(ctx, move |conn| status(conn, &id).map_err(Failure::from)).await?;
    if !s.enabled {
        return Err(TwoFactorError::NotEnabled);
    }
    let now = ctx.clock.now();
    let taken = taken_lookups(ctx, &account.id).await?;
    let (new_codes, set, rows) = generate_codes(ctx, &account.id, taken, now).await?;
    let session_id = who.session_id.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), TwoFactorError> {
        // Decided again under the account's lock: the last factor may have gone meanwhile, and
        // codes without 2FA would be orphans.
        repo::accounts::lock_for_update(w.conn, &account.id)?;
        if !is_enabled(w.conn, &account.id)? {
            return Err(TwoFactorError::NotEnabled);
        }
        repo::two_factor::supersede_sets(w.conn, &account.id, w.now)?;
        repo::two_factor::insert_set(w.conn, &set, &rows)?;
        let revoked = revoke_other_sessions(w, &account.id, &session_id)?;
        w.audit(
            Event::new(
                EventType::RecoveryCodesGenerated,
                Actor::Account(&account.id),
                &client,
            )
            .account(Some(&account.id))
            .details(serde_json::json!({
                "count": rows.len(),
                "replaced": true,
                "sessions_revoked": revoked,
            })),
        )?;
        notify(
            w,
            &account,
            "recovery_codes_regenerated",
            &client,
            serde_json::json!({"codes": rows.len()}),
        )?;
        Ok(())
    })
    .await?;
    Ok(new_codes)
}

/// Removes TOTP: needs the password and a current TOTP code or an unused recovery code (which
/// it consumes). When TOTP was the last second factor, 2FA goes off and every recovery code is
/// removed; while passkeys remain, 2FA stays on and the codes are kept.
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
    check_password(ctx, &account, password, &client).await?;
    let id = account.id.clone();
    let totp = unit_of_work::read(ctx, move |conn| status(conn, &id).map_err(Failure::from))
        .await?
        .totp;
    if !totp {
        return Err(TwoFactorError::NotEnabled);
    }
    let proof = match second_factor::verify_code(ctx, &account.id, code, &client).await {
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
    let account_id = account.id.clone();
    let session_id = who.session_id.clone();
    let result = unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Result<(), CodeRefusal>, TwoFactorError> {
            // The account's row first (PostgreSQL), so a passkey removed at the same time is
            // either seen here (2FA goes off with the codes) or sees TOTP gone (and asks for
            // a recovery code).
            repo::accounts::lock_for_update(w.conn, &account.id)?;
            if !totp_confirmed(w.conn, &account.id)? {
                return Err(TwoFactorError::NotEnabled);
            }
            if let Err(refusal) = second_factor::spend(w.conn, &account.id, &proof, &client, w.now)?
            {
                return Ok(Err(refusal));
            }
            // Passkeys keep 2FA on, and so its recovery codes; without them 2FA goes off.
            let two_factor_off = passkey_count(w.conn, &account.id)? == 0;
            if two_factor_off {
                repo::two_factor::remove_all(w.conn, &account.id)?;
            } else {
                repo::two_factor::remove_totp(w.conn, &account.id)?;
            }
            let revoked = revoke_other_sessions(w, &account.id, &session_id)?;
            w.audit(
                Event::new(
                    EventType::TotpDisabled,
                    Actor::Account(&account.id),
                    &client,
                )
                .account(Some(&account.id))
                .details(serde_json::json!({
                    "with": proof.factor().as_str(),
                    "two_factor_disabled": two_factor_off,
                    "sessions_revoked": revoked,
                })),
            )?;
            notify(
                w,
                &account,
                "totp_disabled",
                &client,
                serde_json::json!({"two_factor_off": two_factor_off}),
            )?;
            Ok(Ok(()))
        },
    )
    .await?;
    match result {
        Ok(()) => Ok(()),
        Err(refusal) => {
            second_factor::record_failure(ctx, &account_id).await?;
            Err(TwoFactorError::InvalidCode(refusal))
        }
    }
}

/// Revokes every session of the account but the caller's: a change to the second factors must
/// not leave a thief's session alive. Answers how many were revoked.
pub(crate) fn revoke_other_sessions(
    w: &mut Work<'_>,
    account_id: &AccountId,
    keep: &SessionId,
) -> Result<usize, Failure> {
    Ok(repo::sessions::revoke_all(
        w.conn,
        account_id,
        Some(keep),
        w.now,
        "second_factor_changed",
    )?)
}

/// Whether the account has 2FA on: a confirmed TOTP or a passkey (inside a transaction).
pub fn is_enabled(conn: &mut DbConnection, account_id: &AccountId) -> diesel::QueryResult<bool> {
    Ok(enabled_by(
        totp_confirmed(conn, account_id)?,
        passkey_count(conn, account_id)?,
    ))
}

/// Whether the account's TOTP is confirmed.
pub fn totp_confirmed(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> diesel::QueryResult<bool> {
    Ok(repo::two_factor::find_totp(conn, account_id)?.is_some_and(|t| t.confirmed_at.is_some()))
}

/// How many passkeys the account has.
pub fn passkey_count(conn: &mut DbConnection, account_id: &AccountId) -> diesel::QueryResult<u32> {
    Ok(u32::try_from(repo::passkeys::count(conn, account_id)?).unwrap_or(u32::MAX))
}

/// Generates a first set of recovery codes for an account turning 2FA on with another factor
/// (a passkey): hashed off the async workers, stored by [`store_first_set`].
pub async fn first_set(
    ctx: &Ctx,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> Result<(NewCodes, CodeSet, Vec<StoredCode>), Failure> {
    let taken = taken_lookups(ctx, account_id).await?;
    generate_codes(ctx, account_id, taken, now).await
}

/// Stores a set made by [`first_set`] (inside the caller's unit of work), replacing any older
/// set, and audits it.
pub fn store_first_set(
    w: &mut Work<'_>,
    account_id: &AccountId,
    set: &CodeSet,
    rows: &[StoredCode],
    client: &ClientInfo,
) -> Result<(), Failure> {
    repo::two_factor::supersede_sets(w.conn, account_id, w.now)?;
    repo::two_factor::insert_set(w.conn, set, rows)?;
    w.audit(
        Event::new(
            EventType::RecoveryCodesGenerated,
            Actor::Account(account_id),
            client,
        )
        .account(Some(account_id))
        .details(serde_json::json!({"count": rows.len()})),
    )
}

/// Removes TOTP and every recovery code (inside the caller's transaction).
pub fn remove_all(conn: &mut DbConnection, account_id: &AccountId) -> diesel::QueryResult<()> {
    repo::two_factor::remove_all(conn, account_id)
}
