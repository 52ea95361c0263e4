//! Sessions as stored: one login and its chain of refresh tokens.

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, DeviceId, Role, SecondFactor, SessionId};

/// A stored session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id, carried in access tokens as `sid`.
    pub id: SessionId,
    /// The account.
    pub account_id: AccountId,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it was last used (refreshed or used, at most once a minute).
    pub last_used_at: DateTime<Utc>,
    /// When its refresh-token chain ends.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// The second factor it was opened with.
    pub second_factor: SecondFactor,
    /// The device it was opened from.
    pub device_id: Option<DeviceId>,
}

/// What authenticating an access token needs of its session: found live (not revoked, not
/// expired), alone or together with its account.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// Its id.
    pub id: SessionId,
    /// The account.
    pub account_id: AccountId,
    /// The account's role.
    pub role: Role,
    /// When it was last used (at most once a minute).
    pub last_used_at: DateTime<Utc>,
    /// The device it was opened from.
    pub device_id: Option<DeviceId>,
}

/// A stored refresh token (its hash).
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The session it refreshes.
    pub session_id: SessionId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was exchanged for a new one.
    pub rotated_at: Option<DateTime<Utc>>,
    /// New pairs it answered after its rotation, inside `REFRESH_REUSE_GRACE`.
    pub grace_uses: i32,
}
