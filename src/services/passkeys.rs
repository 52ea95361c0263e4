//! Passkeys (WebAuthn) as a second factor: registering one (behind the password), listing,
//! renaming and removing them, and finishing a login with one.
//!
//! Rules (API.md, issue 16):
//! - Registration asks the password again (the re-authentication budget, `reauth`); its
//!   ceremony state lives server-side for five minutes, bound to the account, and is taken once
//!   (a conditional UPDATE: a second finish with the same `registration_id`, even a burst of
//!   parallel ones, is refused). The account's passkeys are excluded; a credential id belongs to
//!   one account only.
//! - The first second factor turns 2FA on and answers the first set of recovery codes (as TOTP
//!   does in `two_factor`); a passkey added beside TOTP leaves the codes alone. Removing the last
//!   second factor needs an unused recovery code and turns 2FA off (codes removed).
//! - A login's options are bound to its mfa challenge; the assertion shares the second-factor
//!   budget with TOTP and recovery codes (`second_factor`), and a verified one is spent in the
//!   login's own transaction (`login::finish_login`): the new counter is written only if it is
//!   ahead of the stored one. A counter that went backwards is refused and audited
//!   (`passkey.counter_regressed`).
//! - Adding and removing mail a notice and write `passkey.added` / `passkey.removed`.
//!
//! Checking WebAuthn itself is webauthn-rs's work, behind `security::webauthn`.

use chrono::{DateTime, Utc};

use crate::context::{CEREMONY_TTL, Ctx};
use crate::db::repo::{self, passkeys::NewCeremony};
use crate::domain::{
    Account, AccountId, CeremonyId, CeremonyKind, EventType, NewPasskey, Passkey, PasskeyId,
    PasskeyName, PasskeyNameError,
};
use crate::failure_conversions;
use crate::security::webauthn::{Refusal, RelyingParty};
use crate::services::audit::{Actor, Event};
use crate::services::login::{self, SecondStep};
use crate::services::reauth;
use crate::services::second_factor::{self, CodeRefusal, PasskeyProof, Proof, SecondFactorError};
use crate::services::sessions::Principal;
use crate::services::two_factor::{self, NewCodes};
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// Why a passkey change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The password is wrong.
    #[error("invalid password")]
    InvalidPassword,
    /// Too many failed attempts (re-authentication or second-factor budget).
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The name is not acceptable.
    #[error("invalid name: {0}")]
    InvalidName(PasskeyNameError),
    /// A required field is empty.
    #[error("{0} is required")]
    Missing(&'static str),
    /// The registration is unknown, another account's, used or expired, or the authenticator's
    /// response was refused, or its credential is registered already.
    #[error("invalid webauthn response: {0}")]
    InvalidResponse(&'static str),
    /// The account has no such passkey.
    #[error("passkey not found")]
    NotFound,
    /// The recovery code that removing the last second factor needs was refused.
    #[error("invalid code")]
    InvalidCode(CodeRefusal),
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(PasskeyError);

impl From<crate::security::webauthn::WebauthnFailure> for Failure {
    fn from(e: crate::security::webauthn::WebauthnFailure) -> Self {
        Failure::Internal(anyhow::Error::new(e))
    }
}

/// Registration options: the id to finish with and the `{publicKey: …}` creation options.
#[derive(Debug, Clone)]
pub struct RegistrationOptions {
    /// Send back with the authenticator's response.
    pub registration_id: CeremonyId,
    /// `{"publicKey": PublicKeyCredentialCreationOptionsJSON}`.
    pub options: serde_json::Value,
}

/// A registered passkey and, when it turned 2FA on, the first recovery codes.
#[derive(Debug, Clone)]
pub struct Added {
    /// The passkey.
    pub passkey: Passkey,
    /// The first set of recovery codes, shown once.
    pub codes: Option<NewCodes>,
}

fn account_id(who: &Principal) -> AccountId {
    who.account_id.clone()
}

async fn load_account(ctx: &Ctx, id: &AccountId) -> Result<Account, Failure> {
    let id = id.clone();
    unit_of_work::read(ctx, move |conn| {
        repo::accounts::find(conn, &id).map_err(Failure::from)
    })
    .await?
    .ok_or_else(|| Failure::Internal(anyhow::anyhow!("account vanished")))
}

async fn check_password(
    ctx: &Ctx,
    account: &Account,
    password: String,
    client: &ClientInfo,
) -> Result<(), PasskeyError> {
    // A blank password is a wrong one (403, in the re-authentication budget), as in every other
    // re-authentication.
    match reauth::password(ctx, &account.id, &account.password_hash, password, client).await? {
        Ok(true) => Ok(()),
        Ok(false) => Err(PasskeyError::InvalidPassword),
        Err(reauth::Limited { retry_after_secs }) => {
            Err(PasskeyError::RateLimited { retry_after_secs })
        }
    }
}

async fn passkeys_of(ctx: &Ctx, account: &AccountId) -> Result<Vec<Passkey>, Failure> {
    let account = account.clone();
    unit_of_work::read(ctx, move |conn| {
        repo::passkeys::list(conn, &account).map_err(Failure::from)
    })
    .await
}

fn ceremony_expiry(now: DateTime<Utc>, limit: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let ttl =
        chrono::Duration::from_std(CEREMONY_TTL).unwrap_or_else(|_| chrono::Duration::minutes(5));
    let end = now + ttl;
    limit.map_or(end, |l| l.min(end))
}

/// Starts registering a passkey: checks the password and answers the creation options (the
/// account's passkeys excluded) with the id of the ceremony state kept for five minutes.
pub async fn registration_options(
    ctx: &Ctx,
    who: &Principal,
    password: String,
    client: ClientInfo,
) -> Result<RegistrationOptions, PasskeyError> {
    let account = load_account(ctx, &who.account_id).await?;
    check_password(ctx, &account, password, &client).await?;
    let id = account_id(who);
    let existing: Vec<String> = passkeys_of(ctx, &id)
        .await?
        .into_iter()
        .map(|p| p.credential)
        .collect();
    let user = uuid::Uuid::parse_str(account.id.as_str())
        .map_err(|e| Failure::Internal(anyhow::anyhow!("account id is not a UUID: {e}")))?;
    let (options, state) = ctx
        .webauthn
        .start_registration(user, &account.username, &existing)
        .map_err(Failure::from)?;
    let registration_id = unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<_, Failure> {
        Ok(repo::passkeys::insert_ceremony(
            w.conn,
            &NewCeremony {
                account: &id,
                kind: CeremonyKind::Registration,
                mfa_challenge_id: None,
                state: &state,
                expires_at: ceremony_expiry(w.now, None),
            },
            w.now,
        )?)
    })
    .await?;
    Ok(RegistrationOptions {
        registration_id,
        options,
    })
}

/// How a registration's unit of work ended without an error (it commits: the ceremony is
/// taken even when the response is refused).
enum Registration {
    Done(Box<Added>),
    Refused(&'static str),
}

/// Why a registration's unit of work rolled back.
enum Abort {
    /// 2FA turned off between the read and the write: codes must be made first, and the
    /// ceremony must stay untaken for the second pass.
    NeedsCodes,
    /// A real error.
    Error(PasskeyError),
}

impl From<Failure> for Abort {
    fn from(e: Failure) -> Self {
        Self::Error(e.into())
    }
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Self::Error(e.into())
    }
}

impl From<crate::db::DbError> for Abort {
    fn from(e: crate::db::DbError) -> Self {
        Self::Error(e.into())
    }
}

/// Finishes registering a passkey with the authenticator's response. The ceremony is taken
/// whatever the outcome, so an id works once.
pub async fn register(
    ctx: &Ctx,
    who: &Principal,
    registration_id: &str,
    name: &str,
    credential: serde_json::Value,
    client: ClientInfo,
) -> Result<Added, PasskeyError> {
    let name = PasskeyName::parse(name).map_err(PasskeyError::InvalidName)?;
    if registration_id.trim().is_empty() {
        return Err(PasskeyError::Missing("registration_id"));
    }
    let ceremony = CeremonyId::parse(registration_id.trim())
        .ok_or(PasskeyError::InvalidResponse("unknown registration"))?;
    let account = load_account(ctx, &who.account_id).await?;
    let id = account.id.clone();
    let mut enabled = unit_of_work::read(ctx, move |conn| {
        two_factor::is_enabled(conn, &id).map_err(Failure::from)
    })
    .await?;
    // At most twice: a second pass only if 2FA went off while the first hashed nothing.
    for _ in 0..2 {
        let codes = if enabled {
            None
        } else {
            Some(two_factor::first_set(ctx, &account.id, ctx.clock.now()).await?)
        };
        let (account, ceremony, name, credential, client) = (
            account.clone(),
            ceremony.clone(),
            name.clone(),
            credential.clone(),
            client.clone(),
        );
        let outcome = unit_of_work::write(
            ctx,
            move |w: &mut Work<'_>| -> Result<Registration, Abort> {
                let owner = account.id.clone();
                // First the account's row: whether this passkey is the first second factor is
                // decided below on the newest state, also against a racing TOTP change.
                repo::accounts::lock_for_update(w.conn, &owner)?;
                let Some(state) = repo::passkeys::take_ceremony(
                    w.conn,
                    &ceremony,
                    &owner,
                    CeremonyKind::Registration,
                    w.now,
                )?
                else {
                    return Ok(Registration::Refused(
                        "unknown, used or expired registration",
                    ));
                };
                let registered = match w.ctx.webauthn.finish_registration(&credential, &state) {
                    Ok(Ok(r)) => r,
                    Ok(Err(refusal)) => {
                        tracing::info!(?refusal, "passkey registration refused");
                        return Ok(Registration::Refused("response refused"));
                    }
                    Err(e) => return Err(Failure::from(e).into()),
                };
                if repo::passkeys::credential_taken(w.conn, &registered.credential_id)? {
                    return Ok(Registration::Refused("credential already registered"));
                }
                let first = !two_factor::is_enabled(w.conn, &account.id)?;
                let shown = match (first, codes) {
                    (false, _) => None,
                    (true, None) => return Err(Abort::NeedsCodes),
                    (true, Some((new_codes, set, rows))) => {
                        two_factor::store_first_set(w, &account.id, &set, &rows, &client)?;
                        Some(new_codes)
                    }
                };
                let passkey = repo::passkeys::insert(
                    w.conn,
                    &NewPasskey {
                        account_id: owner,
                        credential_id: registered.credential_id,
                        credential: registered.credential,
                        name,
                        sign_count: registered.sign_count,
                        backup_eligible: registered.backup_eligible,
                        backed_up: registered.backed_up,
                        transports: registered.transports,
                    },
                    w.now,
                )?;
                w.audit(
                    Event::new(
                        EventType::PasskeyAdded,
                        Actor::Account(&account.id),
                        &client,
                    )
                    .account(Some(&account.id))
                    .details(serde_json::json!({
                        "passkey_id": passkey.id.as_str(),
                        "backup_eligible": passkey.backup_eligible,
                        "two_factor_enabled": first,
                    })),
                )?;
                let codes_count = shown.as_ref().map_or(0, |c| c.codes.len());
                two_factor::notify(
                    w,
                    &account,
                    "passkey_added",
                    &client,
                    serde_json::json!({"name": passkey.name.as_str(), "codes": codes_count}),
                )?;
                Ok(Registration::Done(Box::new(Added {
                    passkey,
                    codes: shown,
                })))
            },
        )
        .await;
        match outcome {
            Ok(Registration::Done(added)) => return Ok(*added),
            Ok(Registration::Refused(why)) => return Err(PasskeyError::InvalidResponse(why)),
            Err(Abort::NeedsCodes) => enabled = false,
            Err(Abort::Error(e)) => return Err(e),
        }
    }
    Err(Failure::Internal(anyhow::anyhow!("two-factor state kept changing")).into())
}

/// The caller's passkeys, oldest first.
pub async fn list(ctx: &Ctx, who: &Principal) -> Result<Vec<Passkey>, PasskeyError> {
    Ok(passkeys_of(ctx, &account_id(who)).await?)
}

/// Renames one of the caller's passkeys.
pub async fn rename(
    ctx: &Ctx,
    who: &Principal,
    id: &PasskeyId,
    name: &str,
    client: ClientInfo,
) -> Result<Passkey, PasskeyError> {
    let name = PasskeyName::parse(name).map_err(PasskeyError::InvalidName)?;
    let (owner, id) = (account_id(who), id.clone());
    unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Passkey, PasskeyError> {
            if !repo::passkeys::rename(w.conn, &owner, &id, &name)? {
                return Err(PasskeyError::NotFound);
            }
            w.audit(
                Event::new(EventType::PasskeyRenamed, Actor::Account(&owner), &client)
                    .account(Some(&owner))
                    .details(serde_json::json!({"passkey_id": id.as_str()})),
            )?;
            repo::passkeys::find(w.conn, &owner, &id)?.ok_or(PasskeyError::NotFound)
        },
    )
    .await
}

/// Removes one of the caller's passkeys: needs the password and, when it is the account's last
/// second factor, an unused recovery code (consumed); then 2FA goes off and the codes go.
pub async fn remove(
    ctx: &Ctx,
    who: &Principal,
    id: &PasskeyId,
    password: String,
    code: Option<String>,
    client: ClientInfo,
) -> Result<(), PasskeyError> {
    let account = load_account(ctx, &who.account_id).await?;
    let owner = account_id(who);
    let (o, i) = (owner.clone(), id.clone());
    let found = unit_of_work::read(ctx, move |conn| {
        repo::passkeys::find(conn, &o, &i).map_err(Failure::from)
    })
    .await?;
    if found.is_none() {
        return Err(PasskeyError::NotFound);
    }
    check_password(ctx, &account, password, &client).await?;
    let a = account.id.clone();
    let status = unit_of_work::read(ctx, move |conn| {
        two_factor::status(conn, &a).map_err(Failure::from)
    })
    .await?;
    let last = !status.totp && status.passkeys <= 1;
    let code = code.filter(|c| !c.trim().is_empty());
    let proof = match (last, code) {
        (false, _) => None,
        (true, None) => return Err(PasskeyError::Missing("code")),
        (true, Some(code)) => {
            match second_factor::check_recovery_code(ctx, &account.id, &code, &client).await {
                Ok(proof) => Some(proof),
                Err(SecondFactorError::Refused(r)) => return Err(PasskeyError::InvalidCode(r)),
                Err(SecondFactorError::RateLimited { retry_after_secs }) => {
                    return Err(PasskeyError::RateLimited { retry_after_secs });
                }
                Err(SecondFactorError::MissingCode) => return Err(PasskeyError::Missing("code")),
                Err(SecondFactorError::MfaTokenInvalid) => {
                    return Err(PasskeyError::InvalidCode(
                        CodeRefusal::InvalidRecoveryCode {
                            looks_like_totp: false,
                        },
                    ));
                }
                Err(SecondFactorError::Failure(f)) => return Err(f.into()),
            }
        }
    };
    let (id, session_id, account_for_work) = (id.clone(), who.session_id.clone(), account.clone());
    let outcome = unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Result<(), CodeRefusal>, PasskeyError> {
            let account = account_for_work;
            // The account's row first (PostgreSQL): two removals, or a removal and a TOTP
            // change, then decide one after the other on what the other left.
            repo::accounts::lock_for_update(w.conn, &account.id)?;
            let Some(passkey) = repo::passkeys::find(w.conn, &owner, &id)? else {
                return Err(PasskeyError::NotFound);
            };
            // Decided again inside the transaction: two removals racing must not both skip
            // the recovery code and leave the account without 2FA unasked.
            let totp = two_factor::totp_confirmed(w.conn, &account.id)?;
            let last = !totp && two_factor::passkey_count(w.conn, &account.id)? <= 1;
            match (&proof, last) {
                (None, true) => return Err(PasskeyError::Missing("code")),
                (Some(proof), _) => {
                    if let Err(refusal) =
                        second_factor::spend(w.conn, &account.id, proof, &client, w.now)?
                    {
                        return Ok(Err(refusal));
                    }
                }
                (None, false) => {}
            }
            if !repo::passkeys::remove(w.conn, &owner, &id)? {
                return Err(PasskeyError::NotFound);
            }
            if last {
                two_factor::remove_all(w.conn, &account.id)?;
            }
            let revoked = two_factor::revoke_other_sessions(w, &account.id, &session_id)?;
            w.audit(
                Event::new(
                    EventType::PasskeyRemoved,
                    Actor::Account(&account.id),
                    &client,
                )
                .account(Some(&account.id))
                .details(serde_json::json!({
                    "passkey_id": passkey.id.as_str(),
                    "two_factor_disabled": last,
                    "sessions_revoked": revoked,
                })),
            )?;
            two_factor::notify(
                w,
                &account,
                "passkey_removed",
                &client,
                serde_json::json!({"name": passkey.name.as_str(), "two_factor_off": last}),
            )?;
            Ok(Ok(()))
        },
    )
    .await?;
    match outcome {
        Ok(()) => Ok(()),
        Err(refusal) => {
            second_factor::record_failure(ctx, &account.id).await?;
            Err(PasskeyError::InvalidCode(refusal))
        }
    }
}

/// Removes every passkey of an account (inside the caller's transaction: a completed recovery
/// request); answers how many.
pub fn remove_all(
    conn: &mut crate::db::DbConnection,
    account_id: &AccountId,
) -> diesel::QueryResult<usize> {
    repo::passkeys::remove_all(conn, account_id)
}

/// Forgets WebAuthn ceremonies that expired (they can never be taken); answers how many.
pub async fn forget_ceremonies(ctx: &Ctx) -> Result<usize, Failure> {
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<usize, Failure> {
        Ok(repo::passkeys::purge_ceremonies(w.conn, w.now)?)
    })
    .await
}

/// Login options for the passkeys of the account an mfa token names, bound to its mfa
/// challenge (newer options replace older ones of the same login).
pub async fn login_options(
    ctx: &Ctx,
    mfa_token: &str,
) -> Result<serde_json::Value, SecondFactorError> {
    let challenge = second_factor::challenge_of(ctx, mfa_token).await?;
    let owner = challenge.account_id.clone();
    let credentials: Vec<String> = passkeys_of(ctx, &owner)
        .await?
        .into_iter()
        .map(|p| p.credential)
        .collect();
    if credentials.is_empty() {
        return Err(SecondFactorError::Refused(CodeRefusal::InvalidPasskey));
    }
    let (options, state) = ctx
        .webauthn
        .start_login(&credentials)
        .map_err(Failure::from)?;
    let challenge_expires = challenge.expires_at;
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
        repo::passkeys::retire_login_ceremonies(w.conn, challenge.id.as_str(), w.now)?;
        repo::passkeys::insert_ceremony(
            w.conn,
            &NewCeremony {
                account: &owner,
                kind: CeremonyKind::Authentication,
                mfa_challenge_id: Some(challenge.id.as_str()),
                state: &state,
                expires_at: ceremony_expiry(w.now, Some(challenge_expires)),
            },
            w.now,
        )?;
        Ok(())
    })
    .await?;
    Ok(options)
}

/// Finishes a login with a passkey's assertion. The attempt counts in the second-factor budget
/// before anything is checked; the login's ceremony is taken whatever the outcome.
pub async fn login(
    ctx: &Ctx,
    mfa_token: &str,
    credential: serde_json::Value,
    client: ClientInfo,
    device_token: Option<String>,
) -> Result<SecondStep, SecondFactorError> {
    let challenge = second_factor::challenge_of(ctx, mfa_token).await?;
    let account = challenge.account_id.clone();
    second_factor::take_budget(ctx, &account, &client).await?;
    let challenge_id = challenge.id.clone();
    let owner = account.clone();
    let o = owner.clone();
    let state = unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<_, Failure> {
        let Some(id) = repo::passkeys::live_login_ceremony(w.conn, challenge_id.as_str(), w.now)?
        else {
            return Ok(None);
        };
        Ok(repo::passkeys::take_ceremony(
            w.conn,
            &id,
            &o,
            CeremonyKind::Authentication,
            w.now,
        )?)
    })
    .await?;
    let refused = || SecondFactorError::Refused(CodeRefusal::InvalidPasskey);
    let Some(state) = state else {
        return Err(refused());
    };
    let Some(credential_id) = RelyingParty::asserted_credential_id(&credential) else {
        return Err(refused());
    };
    let Some(passkey) = passkeys_of(ctx, &owner)
        .await?
        .into_iter()
        .find(|p| p.credential_id == credential_id)
    else {
        return Err(refused());
    };
    let verdict = ctx
        .webauthn
        .finish_login(&credential, &state, &passkey.credential)
        .map_err(Failure::from)?
        .and_then(|asserted| {
            // Against the counter stored now, not the one the options were made with.
            let forward = asserted.sign_count > passkey.sign_count
                || (asserted.sign_count == 0 && passkey.sign_count == 0);
            if forward {
                Ok(asserted)
            } else {
                Err(Refusal::CounterRegressed)
            }
        });
    let asserted = match verdict {
        Ok(asserted) => asserted,
        Err(refusal) => {
            tracing::info!(?refusal, "passkey assertion refused");
            if refusal == Refusal::CounterRegressed {
                audit_counter_regression(ctx, &passkey, &client).await?;
            }
            return Err(refused());
        }
    };
    second_factor::refund_budget(ctx, &account).await?;
    let proof = Proof::Passkey(PasskeyProof {
        id: passkey.id,
        sign_count: asserted.sign_count,
        backup_eligible: asserted.backup_eligible,
        backed_up: asserted.backed_up,
        credential: asserted.credential,
    });
    login::finish_login(ctx, challenge, proof, client, device_token).await
}

async fn audit_counter_regression(
    ctx: &Ctx,
    passkey: &Passkey,
    client: &ClientInfo,
) -> Result<(), Failure> {
    let (account, id, stored) = (
        passkey.account_id.clone(),
        passkey.id.clone(),
        passkey.sign_count,
    );
    let client = client.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
        w.audit(
            Event::new(
                EventType::PasskeyCounterRegressed,
                Actor::Anonymous,
                &client,
            )
            .account(Some(&account))
            .details(serde_json::json!({
                "passkey_id": id.as_str(),
                "stored_counter": stored,
            })),
        )
    })
    .await
}
