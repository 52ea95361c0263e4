//! Login, refresh with rotation, logout, the account's sessions, and checking access tokens.
//!
//! A session is a row; access tokens (JWT, 15 minutes) carry its id and are checked against it
//! on every request, so revoking the row revokes the token at once. Refresh tokens are opaque,
//! stored as SHA-256 hashes and rotated on use; presenting a rotated one again revokes the
//! session (someone copied it).

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::repo::sessions::SessionRow;
use crate::db::repo::{self, accounts::AccountRow, sessions::RefreshTokenRow};
use crate::db::{DbConnection, write_transaction};
use crate::domain::{EventType, Login, Role, SecondFactor};
use crate::failure_conversions;
use crate::security::jwt::TokenType;
use crate::security::tokens;
use crate::services::audit::{self, Actor, Event};
use crate::services::rate_limit::{self, Decision};
use crate::services::two_factor;
use crate::services::{ClientInfo, Failure};

/// The tokens of an authenticated session.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The access token (JWT).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The opaque refresh token.
    pub refresh_token: String,
}

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
    },
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown login or wrong password: the same answer for both.
    #[error("invalid credentials")]
    InvalidCredentials,
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

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, rotated, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(RefreshError);

/// Why an access token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired, of the wrong type, or its session is revoked.
    #[error("unauthorized")]
    Unauthorized,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(AuthError);

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// No live session of this account has that id.
    #[error("session not found")]
    NotFound,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(RevokeError);

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The account.
    pub account_id: String,
    /// The session of the access token.
    pub session_id: String,
    /// The account's role.
    pub role: Role,
}

/// A live session, as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Id.
    pub id: String,
    /// Opened at.
    pub created_at: DateTime<Utc>,
    /// Last used at.
    pub last_used_at: DateTime<Utc>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// Whether it is the caller's session.
    pub current: bool,
    /// How it was opened.
    pub second_factor: SecondFactor,
}

/// Password step of a login. Unknown logins and wrong passwords do the same work (a dummy
/// verification) and give the same answer.
///
/// Failed logins are limited per normalised login text and per client IP, both counted in the
/// database. The limits are checked before the password is verified, so a limited attempt costs
/// no argon2 work and says nothing about whether its password was right; only failures count.
pub async fn login(
    ctx: &Ctx,
    login: &str,
    password: String,
    client: ClientInfo,
) -> Result<LoginOutcome, LoginError> {
    let login = Login::parse(login).ok_or(LoginError::MissingLogin)?;
    let buckets = LoginBuckets::new(ctx, &login, &client);
    let limits = ctx.config.rate_limits;
    let lookup = login.as_str().to_owned();
    let now = ctx.clock.now();
    let limit_buckets = buckets.clone();
    let metrics = ctx.metrics.clone();
    let account = ctx
        .db
        .run(move |conn| -> Result<Option<AccountRow>, LoginError> {
            // The same check for existing and unknown accounts, before the account is looked
            // up: the answer never tells which logins exist.
            let mut retry_after = None;
            for (bucket, limit) in [
                (Some(&limit_buckets.login), limits.login_per_account),
                (limit_buckets.ip.as_ref(), limits.login_per_ip),
            ] {
                let Some(bucket) = bucket else { continue };
                if let Decision::Limited { retry_after_secs } =
                    rate_limit::check(conn, &metrics, bucket, limit, now)?
                {
                    retry_after = retry_after.max(Some(retry_after_secs));
                }
            }
            if let Some(retry_after_secs) = retry_after {
                return Err(LoginError::RateLimited { retry_after_secs });
            }
            Ok(repo::accounts::find_by_login(conn, &lookup)?)
        })
        .await
        .inspect_err(|e| {
            if matches!(e, LoginError::RateLimited { .. }) {
                tracing::info!("login refused: too many failed attempts");
            }
        })?;
    let ok = ctx
        .passwords
        .verify(password, account.as_ref().map(|a| a.password_hash.clone()))
        .await?;
    let now = ctx.clock.now();
    match account {
        Some(account) if ok => {
            let ctx2 = ctx.clone();
            let outcome = ctx
                .db
                .run(move |conn| {
                    write_transaction(conn, |conn| -> Result<LoginOutcome, Failure> {
                        // The right password ends the count of this login text's failures;
                        // the IP's count stays, or one known account would reset the budget
                        // of an IP that guesses at others.
                        rate_limit::reset(conn, &buckets.login)?;
                        if two_factor::is_enabled(conn, &account.id)? {
                            let (mfa_token, expires_in) =
                                two_factor::start_challenge(&ctx2, conn, &account, now)?;
                            return Ok(LoginOutcome::MfaRequired {
                                mfa_token,
                                expires_in,
                            });
                        }
                        open_session(&ctx2, conn, &account, SecondFactor::None, &client, now)
                            .map(LoginOutcome::Authenticated)
                    })
                })
                .await?;
            Ok(outcome)
        }
        account => {
            let account_id = account.map(|a| a.id);
            ctx.db
                .run(move |conn| {
                    write_transaction(conn, |conn| -> Result<(), Failure> {
                        rate_limit::hit(conn, &buckets.login, now)?;
                        if let Some(ip) = &buckets.ip {
                            rate_limit::hit(conn, ip, now)?;
                        }
                        audit::record(
                            conn,
                            now,
                            Event {
                                event_type: EventType::SessionLoginFailed,
                                actor: Actor::Anonymous,
                                account_id: account_id.as_deref(),
                                request_id: None,
                                client: &client,
                                details: serde_json::json!({"reason": "invalid_credentials"}),
                            },
                        )
                        .map_err(Failure::from)
                    })
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
        let key = ctx.config.data_encryption_key.expose();
        Self {
            login: format!(
                "login:{}",
                tokens::keyed_hash(key, "rate-limit:login", login.as_str())
            ),
            ip: client.ip.as_ref().map(|ip| format!("login-ip:{ip}")),
        }
    }
}

/// Opens a session for `account` inside the caller's transaction: the session row, its first
/// refresh token, the last-login time and the audit event. Every way of logging in ends here.
pub fn open_session(
    ctx: &Ctx,
    conn: &mut DbConnection,
    account: &AccountRow,
    factor: SecondFactor,
    client: &ClientInfo,
    now: DateTime<Utc>,
) -> Result<SessionTokens, Failure> {
    let session_id = uuid::Uuid::new_v4().to_string();
    let refresh = tokens::new_token();
    let expires_at = now
        + chrono::Duration::from_std(ctx.config.refresh_token_ttl)
            .unwrap_or(chrono::Duration::days(30));
    repo::sessions::insert(
        conn,
        &SessionRow {
            id: session_id.clone(),
            account_id: account.id.clone(),
            created_at: repo::naive(now),
            last_used_at: repo::naive(now),
            expires_at: repo::naive(expires_at),
            revoked_at: None,
            revoked_reason: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            second_factor: factor.as_str().to_owned(),
        },
        &RefreshTokenRow {
            token_hash: refresh.hash.clone(),
            session_id: session_id.clone(),
            created_at: repo::naive(now),
            rotated_at: None,
        },
    )?;
    repo::accounts::touch_last_login(conn, &account.id, repo::naive(now))?;
    audit::record(
        conn,
        now,
        Event {
            event_type: EventType::SessionLoginSucceeded,
            actor: Actor::Account(&account.id),
            account_id: Some(&account.id),
            request_id: None,
            client,
            details: serde_json::json!({"session": session_id, "second_factor": factor.as_str()}),
        },
    )?;
    let access_token = ctx.jwt.issue(
        TokenType::Access,
        &account.id,
        &session_id,
        now,
        ctx.config.access_token_ttl,
    )?;
    Ok(SessionTokens {
        access_token,
        expires_in: ctx.config.access_token_ttl.as_secs(),
        refresh_token: refresh.value,
    })
}

/// Exchanges a refresh token for a new pair. The old token stops working; using it again
/// revokes the session.
pub async fn refresh(
    ctx: &Ctx,
    refresh_token: &str,
    client: ClientInfo,
) -> Result<SessionTokens, RefreshError> {
    let hash = tokens::hash_token(refresh_token);
    let now = ctx.clock.now();
    let ctx2 = ctx.clone();
    // The reuse verdict is written in its own transaction so that it survives the refusal.
    let outcome = ctx
        .db
        .run(move |conn| {
            write_transaction(
                conn,
                |conn| -> Result<Result<SessionTokens, String>, RefreshError> {
                    let Some(row) = repo::sessions::find_refresh(conn, &hash)? else {
                        return Err(RefreshError::InvalidRefreshToken);
                    };
                    let Some(session) =
                        repo::sessions::find_live(conn, &row.session_id, repo::naive(now))?
                    else {
                        return Err(RefreshError::InvalidRefreshToken);
                    };
                    if row.rotated_at.is_some()
                        || !repo::sessions::rotate_refresh(conn, &hash, repo::naive(now))?
                    {
                        repo::sessions::revoke(
                            conn,
                            &session.account_id,
                            &session.id,
                            repo::naive(now),
                            "refresh_token_reused",
                        )?;
                        audit::record(
                            conn,
                            now,
                            Event {
                                event_type: EventType::SessionRefreshReused,
                                actor: Actor::Anonymous,
                                account_id: Some(&session.account_id),
                                request_id: None,
                                client: &client,
                                details: serde_json::json!({"session": session.id}),
                            },
                        )?;
                        return Ok(Err(session.id));
                    }
                    let next = tokens::new_token();
                    repo::sessions::insert_refresh(
                        conn,
                        &RefreshTokenRow {
                            token_hash: next.hash.clone(),
                            session_id: session.id.clone(),
                            created_at: repo::naive(now),
                            rotated_at: None,
                        },
                    )?;
                    repo::sessions::touch(conn, &session.id, repo::naive(now), repo::naive(now))?;
                    let access_token = ctx2.jwt.issue(
                        TokenType::Access,
                        &session.account_id,
                        &session.id,
                        now,
                        ctx2.config.access_token_ttl,
                    )?;
                    Ok(Ok(SessionTokens {
                        access_token,
                        expires_in: ctx2.config.access_token_ttl.as_secs(),
                        refresh_token: next.value,
                    }))
                },
            )
        })
        .await?;
    match outcome {
        Ok(tokens) => Ok(tokens),
        Err(session_id) => {
            tracing::warn!(session.id = %session_id, "a rotated refresh token was used again; session revoked");
            Err(RefreshError::InvalidRefreshToken)
        }
    }
}

/// Checks an access token: signature, type and times, then that its session is live.
pub async fn authenticate(ctx: &Ctx, bearer: &str) -> Result<Principal, AuthError> {
    let now = ctx.clock.now();
    let claims = ctx
        .jwt
        .verify(bearer, TokenType::Access, now)
        .map_err(|_| AuthError::Unauthorized)?;
    ctx.db
        .run(move |conn| {
            let Some(session) = repo::sessions::find_live(conn, &claims.sid, repo::naive(now))?
            else {
                return Err(AuthError::Unauthorized);
            };
            if session.account_id != claims.sub {
                return Err(AuthError::Unauthorized);
            }
            let Some(account) = repo::accounts::find(conn, &session.account_id)? else {
                return Err(AuthError::Unauthorized);
            };
            // Record use at most once a minute, so most requests stay reads.
            if repo::utc(session.last_used_at) < now - chrono::Duration::minutes(1) {
                let stale = repo::naive(now - chrono::Duration::minutes(1));
                write_transaction(conn, |conn| -> Result<(), AuthError> {
                    Ok(repo::sessions::touch(
                        conn,
                        &session.id,
                        repo::naive(now),
                        stale,
                    )?)
                })?;
            }
            Ok(Principal {
                account_id: account.id,
                session_id: session.id,
                role: Role::from_stored(&account.role),
            })
        })
        .await
}

/// Ends the caller's session: its access and refresh tokens stop working.
pub async fn logout(ctx: &Ctx, who: &Principal, client: ClientInfo) -> Result<(), Failure> {
    let now = ctx.clock.now();
    let who = who.clone();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), Failure> {
                repo::sessions::revoke(
                    conn,
                    &who.account_id,
                    &who.session_id,
                    repo::naive(now),
                    "logout",
                )?;
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: EventType::SessionLogout,
                        actor: Actor::Account(&who.account_id),
                        account_id: Some(&who.account_id),
                        request_id: None,
                        client: &client,
                        details: serde_json::json!({"session": who.session_id}),
                    },
                )?;
                Ok(())
            })
        })
        .await
}

/// The caller's live sessions, newest first.
pub async fn list(ctx: &Ctx, who: &Principal) -> Result<Vec<SessionView>, Failure> {
    let now = ctx.clock.now();
    let who = who.clone();
    ctx.db
        .run(move |conn| {
            let rows = repo::sessions::list_live(conn, &who.account_id, repo::naive(now))?;
            Ok(rows
                .into_iter()
                .map(|s| SessionView {
                    current: s.id == who.session_id,
                    id: s.id,
                    created_at: repo::utc(s.created_at),
                    last_used_at: repo::utc(s.last_used_at),
                    ip: s.ip,
                    user_agent: s.user_agent,
                    second_factor: SecondFactor::from_stored(&s.second_factor),
                })
                .collect())
        })
        .await
}

/// Revokes one of the caller's sessions (possibly the current one).
pub async fn revoke(
    ctx: &Ctx,
    who: &Principal,
    session_id: &str,
    client: ClientInfo,
) -> Result<(), RevokeError> {
    let now = ctx.clock.now();
    let who = who.clone();
    let target = session_id.to_owned();
    ctx.db
        .run(move |conn| {
            write_transaction(conn, |conn| -> Result<(), RevokeError> {
                if !repo::sessions::revoke(
                    conn,
                    &who.account_id,
                    &target,
                    repo::naive(now),
                    "revoked_by_owner",
                )? {
                    return Err(RevokeError::NotFound);
                }
                audit::record(
                    conn,
                    now,
                    Event {
                        event_type: EventType::SessionRevoked,
                        actor: Actor::Account(&who.account_id),
                        account_id: Some(&who.account_id),
                        request_id: None,
                        client: &client,
                        details: serde_json::json!({"session": target}),
                    },
                )?;
                Ok(())
            })
        })
        .await
}
