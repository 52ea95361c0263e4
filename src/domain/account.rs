//! Who an account is: its username, email address, role, and how a login names it.

use std::fmt;

/// A username: 3–50 characters of ASCII letters, digits, `-`, `_` and `.`; unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

/// Why a username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Fewer than 3 characters.
    #[error("must be at least 3 characters")]
    TooShort,
    /// More than 50 characters.
    #[error("must be at most 50 characters")]
    TooLong,
    /// A character outside letters, digits, `-`, `_` and `.`.
    #[error("may contain only letters, digits, '-', '_' and '.'")]
    InvalidCharacter,
}

impl UsernameError {
    /// The field-error code of API.md.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidCharacter => "invalid",
        }
    }
}

impl Username {
    /// Validates a username as typed (surrounding spaces are trimmed; case is kept).
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let s = raw.trim();
        let len = s.chars().count();
        if len < 3 {
            return Err(UsernameError::TooShort);
        }
        if len > 50 {
            return Err(UsernameError::TooLong);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(UsernameError::InvalidCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    /// The username as chosen.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key that makes usernames unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An email address, trimmed and lower-cased; unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

/// Why an email address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing was given.
    #[error("is required")]
    Empty,
    /// More than 254 bytes.
    #[error("must be at most 254 characters")]
    TooLong,
    /// Not of the form local@domain.tld.
    #[error("is not a valid email address")]
    Malformed,
}

impl EmailError {
    /// The field-error code of API.md.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "required",
            Self::TooLong => "too_long",
            Self::Malformed => "invalid",
        }
    }
}

impl EmailAddress {
    /// Normalises (trim, lower-case) and validates an address.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(EmailError::Malformed);
        }
        Ok(Self(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a person types to log in: a username or an email address, normalised so that the same
/// text always names the same account (and the same rate-limit bucket), whether or not it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login(String);

impl Login {
    /// Trims and lower-cases; `None` when empty or absurdly long.
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim().to_lowercase();
        (!s.is_empty() && s.len() <= 254).then_some(Self(s))
    }

    /// The normalised text: compared with username keys and with emails.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An account holder.
    User,
    /// Support staff: reviews recovery requests.
    Support,
}

impl Role {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Support => "support",
        }
    }

    /// Reads a stored role; anything unknown is the least privileged.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "support" => Self::Support,
            _ => Self::User,
        }
    }
}

/// The second factor a session was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// Password only (no 2FA on the account).
    None,
    /// An authenticator code.
    Totp,
    /// A recovery code.
    RecoveryCode,
}

impl SecondFactor {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
        }
    }

    /// Reads a stored value.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "totp" => Self::Totp,
            "recovery_code" => Self::RecoveryCode,
            _ => Self::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::TooShort));
        assert_eq!(
            Username::parse(&"a".repeat(51)),
            Err(UsernameError::TooLong)
        );
        assert_eq!(
            Username::parse("jb ber"),
            Err(UsernameError::InvalidCharacter)
        );
        assert_eq!(
            Username::parse("jbbér"),
            Err(UsernameError::InvalidCharacter)
        );
        let u = Username::parse(" JBber.dev_1-x ").expect("valid");
        assert_eq!(u.as_str(), "JBber.dev_1-x");
        assert_eq!(u.key(), "jbber.dev_1-x");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            EmailAddress::parse("  Ana@Example.COM ").map(|e| e.as_str().to_owned()),
            Ok("ana@example.com".to_owned())
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.io",
            "ana@localhost",
            "a..b@x.io",
            "a b@x.io",
            "ana@-x.io",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EmailAddress::parse(&format!("{}@x.io", "a".repeat(260))),
            Err(EmailError::TooLong)
        );
    }

    #[test]
    fn logins_are_normalised() {
        assert_eq!(
            Login::parse(" JBber ").map(|l| l.as_str().to_owned()),
            Some("jbber".into())
        );
        assert_eq!(Login::parse("   "), None);
    }

    #[test]
    fn roles_and_factors_round_trip() {
        for r in [Role::User, Role::Support] {
            assert_eq!(Role::from_stored(r.as_str()), r);
        }
        assert_eq!(Role::from_stored("admin"), Role::User);
        for f in [
            SecondFactor::None,
            SecondFactor::Totp,
            SecondFactor::RecoveryCode,
        ] {
            assert_eq!(SecondFactor::from_stored(f.as_str()), f);
        }
    }
}
