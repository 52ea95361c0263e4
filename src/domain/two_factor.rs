//! Second factors as stored: the TOTP credential, recovery-code sets and their codes (hashed),
//! and the mfa challenge a login's password step leaves for its second step.

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, ChallengeId};

/// A TOTP credential (pending until its first code confirms it).
#[derive(Debug, Clone)]
pub struct TotpCredential {
    /// The account.
    pub account_id: AccountId,
    /// The base32 secret, sealed with the data key.
    pub secret_sealed: String,
    /// When enrollment started.
    pub created_at: DateTime<Utc>,
    /// When the first code confirmed it (2FA is on from then).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last time step accepted (a code is accepted once per step).
    pub last_used_step: Option<i64>,
}

/// A set of recovery codes.
#[derive(Debug, Clone)]
pub struct CodeSet {
    /// Its id.
    pub id: String,
    /// The account.
    pub account_id: AccountId,
    /// When it was generated.
    pub created_at: DateTime<Utc>,
    /// When a newer set replaced it.
    pub superseded_at: Option<DateTime<Utc>>,
}

/// One recovery code as stored (its hash, never the code).
#[derive(Debug, Clone)]
pub struct StoredCode {
    /// Its id.
    pub id: String,
    /// Its set.
    pub set_id: String,
    /// The account.
    pub account_id: AccountId,
    /// The non-secret lookup id (unique per account).
    pub lookup: String,
    /// Argon2id hash of the secret part.
    pub code_hash: String,
    /// When it was used.
    pub used_at: Option<DateTime<Utc>>,
    /// From which IP.
    pub used_ip: Option<String>,
    /// From which user agent.
    pub used_user_agent: Option<String>,
}

/// An mfa challenge: the password step of a login, waiting for a second factor.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    /// Its id (carried in the mfa token).
    pub id: ChallengeId,
    /// The account.
    pub account_id: AccountId,
    /// When the password step succeeded.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When a second factor finished it.
    pub used_at: Option<DateTime<Utc>>,
}
