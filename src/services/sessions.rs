//! Sessions: opening one (every way of logging in ends here), refresh with rotation, logout,
//! the account's sessions, and checking access tokens. The login steps themselves live in
//! `login`.
//!
//! A session is a row; access tokens (JWT, 15 minutes) carry its id and are checked against it
//! on every request, so revoking the row revokes the token at once. Refresh tokens are opaque,
//! stored as SHA-256 hashes and rotated on use; presenting a rotated one again revokes the
//! session (someone copied it), unless it comes within `REFRESH_REUSE_GRACE` of the rotation
//! (two tabs refreshing at once), which answers a new pair on the same session. A cookie
//! session's writes carry its CSRF token, derived here from the session id.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::repo;
use crate::domain::{
    Account, AccountId, DeviceId, EventType, LiveSession, RefreshToken, Role, SecondFactor,
    Session, SessionId,
};
use crate::failure_conversions;
use crate::security::jwt::TokenType;
use crate::security::tokens;
use crate::services::audit::{Actor, Event};
use crate::services::devices;
use crate::services::unit_of_work::{self, Work};
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
    /// A new device's token, when the login did not present a valid one for the account:
    /// the client keeps it and sends it back as `X-Device-Token`.
    pub device_token: Option<String>,
    /// The session's CSRF token (see [`csrf_token`]): what a cookie session's page sends back
    /// as `X-CSRF-Token` on writes.
    pub csrf_token: String,
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, rotated, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A cookie refresh without the session's CSRF token.
    #[error("csrf token missing or wrong")]
    CsrfFailed,
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
    pub account_id: AccountId,
    /// The session of the access token.
    pub session_id: SessionId,
    /// The account's role.
    pub role: Role,
    /// The device the session was opened from.
    pub device_id: Option<DeviceId>,
}

/// A live session, as listed to its owner.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// Id.
    pub id: SessionId,
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

/// Opens a session for `account` inside the caller's unit of work: the session row, its first
/// refresh token, the last-login time and the audit event. Every way of logging in ends here.
pub fn open_session(
    w: &mut Work<'_>,
    account: &Account,
    factor: SecondFactor,
    client: &ClientInfo,
    device_token: Option<&str>,
) -> Result<SessionTokens, Failure> {
    let (device_id, device_token) = devices::sign_in(w, &account.id, device_token, client)?;
    let (now, config) = (w.now, w.ctx.config.clone());
    let session_id = SessionId::generate();
    let refresh = tokens::new_token();
    let expires_at = now
        + chrono::Duration::from_std(config.refresh_token_ttl)
            .unwrap_or(chrono::Duration::days(30));
    repo::sessions::insert(
        w.conn,
        &Session {
            id: session_id.clone(),
            account_id: account.id.clone(),
            created_at: now,
            last_used_at: now,
            expires_at,
            revoked_at: None,
            revoked_reason: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            second_factor: factor,
            device_id: Some(device_id.clone()),
        },
        &RefreshToken {
            token_hash: refresh.hash.clone(),
            session_id: session_id.clone(),
            created_at: now,
            rotated_at: None,
            grace_uses: 0,
        },
    )?;
    repo::accounts::touch_last_login(w.conn, &account.id, now)?;
    w.audit(
        Event::new(
            EventType::SessionLoginSucceeded,
            Actor::Account(&account.id),
            client,
        )
        .account(Some(&account.id))
        .details(serde_json::json!({
            "session": session_id,
            "second_factor": factor.as_str(),
            "device": device_id,
            "new_device": device_token.is_some(),
        })),
    )?;
    let access_token = w.ctx.jwt.issue(
        TokenType::Access,
        account.id.as_str(),
        session_id.as_str(),
        now,
        config.access_token_ttl,
    )?;
    Ok(SessionTokens {
        access_token,
        expires_in: config.access_token_ttl.as_secs(),
        refresh_token: refresh.value,
        device_token,
        csrf_token: csrf_token(w.ctx, &session_id),
    })
}

/// How many new pairs a rotated refresh token may answer inside `REFRESH_REUSE_GRACE`: enough
/// for a few tabs refreshing at once, while a burst of copies cannot fan one token out into
/// many live ones. Past it, inside the grace, the reuse is refused without revoking.
pub const GRACE_PAIRS_PER_TOKEN: i32 = 4;

/// What a refresh must show besides its token: a cookie session's refresh carries the
/// session's CSRF token (the browser sends the cookie by itself, so the cookie alone proves
/// nothing about which page asked).
#[derive(Debug, Clone)]
pub enum CsrfProof {
    /// The token came in the body: no CSRF token needed.
    NotNeeded,
    /// The token came as a cookie: the CSRF token the request presented, if any.
    Presented(Option<String>),
}

/// Exchanges a refresh token for a new pair. The old token stops working; using it again
/// revokes the session, except within `REFRESH_REUSE_GRACE` of its rotation, where it answers
/// a new pair on the same session (at most [`GRACE_PAIRS_PER_TOKEN`] times).
pub async fn refresh(
    ctx: &Ctx,
    refresh_token: &str,
    csrf: CsrfProof,
    client: ClientInfo,
) -> Result<SessionTokens, RefreshError> {
    let hash = tokens::hash_token(refresh_token);
    // The reuse verdict is written in its own transaction so that it survives the refusal.
    let outcome = unit_of_work::write(
        ctx,
        move |w: &mut Work<'_>| -> Result<Result<SessionTokens, SessionId>, RefreshError> {
            let now = w.now;
            let Some(row) = repo::sessions::find_refresh(w.conn, &hash)? else {
                return Err(RefreshError::InvalidRefreshToken);
            };
            let Some(session) = repo::sessions::find_live(w.conn, &row.session_id, now)? else {
                return Err(RefreshError::InvalidRefreshToken);
            };
            // Before anything changes: a refused request changes nothing.
            if let CsrfProof::Presented(presented) = &csrf
                && !csrf_matches(w.ctx, &session.id, presented.as_deref())
            {
                return Err(RefreshError::CsrfFailed);
            }
            // An unused refresh token dies after the idle limit: a copy left on a forgotten
            // device stops being a way in, even inside the session's lifetime.
            let idle = chrono::Duration::from_std(w.ctx.config.refresh_token_idle_ttl)
                .unwrap_or(chrono::Duration::days(7));
            if row.rotated_at.is_none() && row.created_at + idle <= now {
                return Err(RefreshError::InvalidRefreshToken);
            }
            // The conditional UPDATE decides a race: exactly one request rotates the token.
            // Every other one, whether it read the row before or after, is a reuse and goes
            // through the grace below (a parallel loser is never mistaken for a late thief
            // because the grace counts from the winner's rotation, not from what it read).
            if !repo::sessions::rotate_refresh(w.conn, &hash, now)? {
                match grace_reuse(w, &hash)? {
                    Grace::Granted => {
                        tracing::info!(session.id = %session.id, "a rotated refresh token was presented again inside the reuse grace; new pair on the same session");
                    }
                    Grace::Exhausted => return Err(RefreshError::InvalidRefreshToken),
                    Grace::Over => {
                        repo::sessions::revoke(
                            w.conn,
                            &session.account_id,
                            &session.id,
                            now,
                            "refresh_token_reused",
                        )?;
                        w.audit(
                            Event::new(EventType::SessionRefreshReused, Actor::Anonymous, &client)
                                .account(Some(&session.account_id))
                                .details(serde_json::json!({"session": session.id})),
                        )?;
                        return Ok(Err(session.id));
                    }
                }
            }
            let next = tokens::new_token();
            repo::sessions::insert_refresh(
                w.conn,
                &RefreshToken {
                    token_hash: next.hash.clone(),
                    session_id: session.id.clone(),
                    created_at: now,
                    rotated_at: None,
                    grace_uses: 0,
                },
            )?;
            repo::sessions::touch(w.conn, &session.id, now, now)?;
            let ttl = w.ctx.config.access_token_ttl;
            let access_token = w.ctx.jwt.issue(
                TokenType::Access,
                session.account_id.as_str(),
                session.id.as_str(),
                now,
                ttl,
            )?;
            Ok(Ok(SessionTokens {
                access_token,
                expires_in: ttl.as_secs(),
                refresh_token: next.value,
                device_token: None,
                csrf_token: csrf_token(w.ctx, &session.id),
            }))
        },
    )
    .await?;
    match outcome {
        Ok(tokens) => Ok(tokens),
        Err(session_id) => {
            tracing::warn!(session.id = %session_id, "a rotated refresh token was used again; session revoked");
            Err(RefreshError::InvalidRefreshToken)
        }
    }
}

/// The verdict on a rotated refresh token presented again.
enum Grace {
    /// Inside the grace, with pairs left: answer a new pair on the same session.
    Granted,
    /// Inside the grace, but the token already answered its pairs: refuse, keep the session.
    Exhausted,
    /// After the grace (or with the grace off): someone holds a copy; revoke the session.
    Over,
}

fn grace_reuse(w: &mut Work<'_>, hash: &str) -> Result<Grace, Failure> {
    let grace = chrono::Duration::from_std(w.ctx.config.refresh_reuse_grace)
        .unwrap_or(chrono::Duration::zero());
    if grace <= chrono::Duration::zero() {
        return Ok(Grace::Over);
    }
    let rotated_after = w.now - grace;
    if repo::sessions::take_grace_use(w.conn, hash, rotated_after, GRACE_PAIRS_PER_TOKEN)? {
        return Ok(Grace::Granted);
    }
    // Read again: the rotation may be another request's of a moment ago.
    let inside = repo::sessions::find_refresh(w.conn, hash)?
        .and_then(|row| row.rotated_at)
        .is_some_and(|at| at > rotated_after);
    Ok(if inside {
        Grace::Exhausted
    } else {
        Grace::Over
    })
}

/// The CSRF token of a cookie session: a keyed hash of the session id, so it needs no storage,
/// cannot be guessed without the server's secret, and cannot be planted from another session.
pub fn csrf_token(ctx: &Ctx, session_id: &SessionId) -> String {
    tokens::keyed_hash(ctx.config.jwt_secret.expose(), "csrf", session_id.as_str())
}

/// Whether `presented` is the CSRF token of `session_id` (compared in constant time).
pub fn csrf_matches(ctx: &Ctx, session_id: &SessionId, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| tokens::constant_time_eq(p, &csrf_token(ctx, session_id)))
}

/// An access token whose signature, type and times are checked; its session is not yet.
#[derive(Debug)]
pub struct AccessClaims {
    session_id: SessionId,
    subject: String,
    /// When it was checked: the session must be live then.
    now: DateTime<Utc>,
}

impl AccessClaims {
    /// Checks `bearer`'s signature, type and times (no database).
    pub fn check(ctx: &Ctx, bearer: &str) -> Result<Self, AuthError> {
        let now = ctx.clock.now();
        let claims = ctx
            .jwt
            .verify(bearer, TokenType::Access, now)
            .map_err(|_| AuthError::Unauthorized)?;
        let session_id = SessionId::parse(&claims.sid).ok_or(AuthError::Unauthorized)?;
        Ok(Self {
            session_id,
            subject: claims.sub,
            now,
        })
    }

    /// The session the token names.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// When it was checked.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Admits the caller if `found`, the token's session as read live at [`Self::now`], belongs
    /// to the token's account; records its use at most once a minute, so most requests stay
    /// reads.
    pub async fn admit(
        self,
        ctx: &Ctx,
        found: Option<LiveSession>,
    ) -> Result<Principal, AuthError> {
        let session = found.ok_or(AuthError::Unauthorized)?;
        if session.id != self.session_id || session.account_id.as_str() != self.subject {
            return Err(AuthError::Unauthorized);
        }
        let (now, stale) = (self.now, self.now - chrono::Duration::minutes(1));
        if session.last_used_at < stale {
            let id = session.id.clone();
            ctx.db
                .write_one(move |conn| -> Result<(), AuthError> {
                    Ok(repo::sessions::touch(conn, &id, now, stale)?)
                })
                .await?;
        }
        Ok(Principal {
            account_id: session.account_id,
            session_id: session.id,
            role: session.role,
            device_id: session.device_id,
        })
    }
}

/// Checks an access token: signature, type and times, then that its session is live.
pub async fn authenticate(ctx: &Ctx, bearer: &str) -> Result<Principal, AuthError> {
    let claims = AccessClaims::check(ctx, bearer)?;
    let (session_id, now) = (claims.session_id().clone(), claims.now());
    let found = unit_of_work::read_one(ctx, move |conn| -> Result<_, AuthError> {
        Ok(repo::sessions::find_live_with_role(conn, &session_id, now)?)
    })
    .await?;
    claims.admit(ctx, found).await
}

/// Ends the caller's session: its access and refresh tokens stop working.
pub async fn logout(ctx: &Ctx, who: &Principal, client: ClientInfo) -> Result<(), Failure> {
    let who = who.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), Failure> {
        repo::sessions::revoke(w.conn, &who.account_id, &who.session_id, w.now, "logout")?;
        w.audit(
            Event::new(
                EventType::SessionLogout,
                Actor::Account(&who.account_id),
                &client,
            )
            .account(Some(&who.account_id))
            .details(serde_json::json!({"session": who.session_id})),
        )
    })
    .await
}

/// The caller's live sessions, newest first.
pub async fn list(ctx: &Ctx, who: &Principal) -> Result<Vec<SessionView>, Failure> {
    let now = ctx.clock.now();
    let who = who.clone();
    unit_of_work::read(ctx, move |conn| {
        let rows = repo::sessions::list_live(conn, &who.account_id, now)?;
        Ok(rows
            .into_iter()
            .map(|s| SessionView {
                current: s.id == who.session_id,
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                ip: s.ip,
                user_agent: s.user_agent,
                second_factor: s.second_factor,
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
    let Some(target) = SessionId::parse(session_id) else {
        return Err(RevokeError::NotFound);
    };
    let who = who.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), RevokeError> {
        if !repo::sessions::revoke(w.conn, &who.account_id, &target, w.now, "revoked_by_owner")? {
            return Err(RevokeError::NotFound);
        }
        w.audit(
            Event::new(
                EventType::SessionRevoked,
                Actor::Account(&who.account_id),
                &client,
            )
            .account(Some(&who.account_id))
            .details(serde_json::json!({"session": target})),
        )?;
        Ok(())
    })
    .await
}
