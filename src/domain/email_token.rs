//! Single-use tokens sent by email, and what each is for. Only their SHA-256 hash is stored.

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, SecondFactor};

/// What an emailed token does. Stored as [`TokenPurpose::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Verifies the account's address.
    VerifyEmail,
    /// Sets a new password (voided by any password change).
    ResetPassword,
    /// Finishes a login from an unknown device that used this second factor.
    ConfirmLogin(SecondFactor),
    /// Confirms a new address (`confirm-email-change`); voided by any password change, so an
    /// owner who changes a leaked password also stops a thief's pending change.
    ChangeEmail,
}

impl TokenPurpose {
    /// The stable stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ConfirmLogin(SecondFactor::Totp) => "confirm_login:totp",
            Self::ConfirmLogin(SecondFactor::Webauthn) => "confirm_login:webauthn",
            Self::ConfirmLogin(_) => "confirm_login:recovery_code",
            Self::ChangeEmail => "change_email",
        }
    }

    /// Reads a stored purpose.
    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "verify_email" => Self::VerifyEmail,
            "reset_password" => Self::ResetPassword,
            "confirm_login:totp" => Self::ConfirmLogin(SecondFactor::Totp),
            "confirm_login:webauthn" => Self::ConfirmLogin(SecondFactor::Webauthn),
            "confirm_login:recovery_code" => Self::ConfirmLogin(SecondFactor::RecoveryCode),
            "change_email" => Self::ChangeEmail,
            _ => return None,
        })
    }
}

/// A stored email token.
#[derive(Debug, Clone)]
pub struct EmailToken {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// What it does.
    pub purpose: TokenPurpose,
    /// The account.
    pub account_id: AccountId,
    /// The address the link went to.
    pub email: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used.
    pub used_at: Option<DateTime<Utc>>,
    /// When a newer token or a password change voided it.
    pub revoked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip() {
        for p in [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::ConfirmLogin(SecondFactor::Totp),
            TokenPurpose::ConfirmLogin(SecondFactor::Webauthn),
            TokenPurpose::ConfirmLogin(SecondFactor::RecoveryCode),
            TokenPurpose::ChangeEmail,
        ] {
            assert_eq!(TokenPurpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(TokenPurpose::parse("verify"), None);
    }
}
