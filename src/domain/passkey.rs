//! Passkeys (WebAuthn credentials) as a second factor: the stored passkey, its owner-given
//! name, and the kinds of ceremony that wait server-side for an authenticator's answer.
//!
//! The credential itself (public key, counter, flags) is opaque here: `security`'s WebAuthn
//! wrapper reads and writes it; this module holds only what the rest of the service reasons
//! about. Nothing in a passkey is secret, but key material is never shown: the owner's list and
//! support's evidence page see the name, times and backup flags only.

use chrono::{DateTime, Utc};

use crate::domain::ids::{AccountId, PasskeyId};
use crate::domain::limits::PASSKEY_NAME_MAX_CHARS;
use crate::domain::text::{TextKind, is_clean};

/// The name an owner gives a passkey ("YubiKey 5", "Pixel 9"): trimmed, 1 to 64 characters,
/// one line. Only [`PasskeyName::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

/// Why a passkey name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyNameError {
    /// Empty or only spaces.
    #[error("name is required")]
    Empty,
    /// More than [`PASSKEY_NAME_MAX_CHARS`] characters.
    #[error("name is longer than {} characters", PASSKEY_NAME_MAX_CHARS)]
    TooLong,
    /// A control character or line break.
    #[error("name has a control character")]
    ControlCharacter,
}

impl PasskeyNameError {
    /// The field-error code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "required",
            Self::TooLong => "too_long",
            Self::ControlCharacter => "control_character",
        }
    }
}

impl PasskeyName {
    /// Checks and trims a name.
    pub fn parse(raw: &str) -> Result<Self, PasskeyNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(PasskeyNameError::Empty);
        }
        if name.chars().count() > PASSKEY_NAME_MAX_CHARS {
            return Err(PasskeyNameError::TooLong);
        }
        if !is_clean(name, TextKind::Line) {
            return Err(PasskeyNameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// Wraps a name read back from the database.
    pub fn from_stored(stored: String) -> Self {
        Self(stored)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A passkey registered to an account.
#[derive(Debug, Clone)]
pub struct Passkey {
    /// Its id in this service (not the credential id).
    pub id: PasskeyId,
    /// Its account.
    pub account_id: AccountId,
    /// The credential id the authenticator chose, base64url: one account only.
    pub credential_id: String,
    /// The stored credential (webauthn-rs's serialised form; public key, counter, flags).
    pub credential: String,
    /// The owner's name for it.
    pub name: PasskeyName,
    /// The last signature counter seen (0 for authenticators that keep none).
    pub sign_count: u32,
    /// The authenticator may back the credential up (a synced passkey).
    pub backup_eligible: bool,
    /// The credential is backed up (synced) as of its last use.
    pub backed_up: bool,
    /// The transports the authenticator named at registration (JSON list), if any.
    pub transports: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last finished a login.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey about to be stored.
#[derive(Debug, Clone)]
pub struct NewPasskey {
    /// Its account.
    pub account_id: AccountId,
    /// The credential id, base64url.
    pub credential_id: String,
    /// The stored credential.
    pub credential: String,
    /// The owner's name for it.
    pub name: PasskeyName,
    /// The signature counter at registration.
    pub sign_count: u32,
    /// Backup eligible.
    pub backup_eligible: bool,
    /// Backed up.
    pub backed_up: bool,
    /// Transports (JSON list), if any.
    pub transports: Option<String>,
}

/// What a ceremony waiting server-side is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a new passkey (started with the password).
    Registration,
    /// Finishing a login with a passkey (bound to one mfa challenge).
    Authentication,
}

impl CeremonyKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Authentication => "authentication",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PasskeyName::parse("  Key  ").map(|n| n.0), Ok("Key".into()));
        assert_eq!(PasskeyName::parse("   "), Err(PasskeyNameError::Empty));
        assert_eq!(
            PasskeyName::parse(&"é".repeat(65)),
            Err(PasskeyNameError::TooLong)
        );
        assert!(PasskeyName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            PasskeyName::parse("a\u{0}b"),
            Err(PasskeyNameError::ControlCharacter)
        );
    }
}
