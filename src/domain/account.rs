//! Who an account is: its username, email address, role, and how a login names it.
//!
//! Identities are compared in one folded form (NFKC, lower case, NFKC again: [`fold`]), and
//! guarded against look-alikes by their UTS #39 confusable skeleton ([`confusable_key`]) and
//! the single-script rule (unicode-security), so that `аlice` (Cyrillic а) or `aIice` cannot sit
//! beside `alice`.

use std::fmt;

use chrono::{DateTime, Utc};

use super::limits::{EMAIL_MAX_BYTES, LOGIN_MAX_BYTES, USERNAME_MAX_CHARS, USERNAME_MIN_CHARS};

use unicode_normalization::UnicodeNormalization as _;
use unicode_security::{GeneralSecurityProfile as _, MixedScript as _};

use crate::domain::AccountId;

/// The form in which usernames, emails and login texts are compared: NFKC, lower-cased, NFKC
/// again (lower-casing can undo a normalisation, as `İ` does).
pub fn fold(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase().nfkc().collect()
}

/// The key two look-alike identities share: the UTS #39 skeleton of the text as shown, folded
/// to lower case, and skeletonised again, so that `aIice` (capital i), `al1ce`'s kin and
/// `аlice` (Cyrillic а) all meet `alice`. Stored beside each account and indexed.
pub fn confusable_key(s: &str) -> String {
    let shown: String = unicode_security::skeleton(&s.nfkc().collect::<String>()).collect();
    unicode_security::skeleton(&shown.to_lowercase()).collect()
}

/// The case-insensitive key of a username as typed (what [`Username::key`] gives for a valid
/// one): for looking an account up by a name that was not validated as a new username.
pub fn username_key(raw: &str) -> String {
    fold(raw.trim())
}

/// A letter, digit or combining mark that UTS #39 allows in identifiers (not the punctuation
/// and joiners it also allows: apostrophes, colons and zero-width joiners have no place in a
/// username).
fn identifier_letter(c: char) -> bool {
    (c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c))
        && c.identifier_allowed()
}

/// A username: 3–50 letters or digits of one script (NFKC-normalised, as allowed in
/// identifiers by UTS #39), `-`, `_` and `.`; unique ignoring case and look-alikes.
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
    /// Letters of more than one script, as in a Cyrillic `а` among Latin letters.
    #[error("mixes letters of different scripts, which makes it look like another name")]
    MixedScripts,
}

impl UsernameError {
    /// The field-error code of API.md.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidCharacter => "invalid",
            Self::MixedScripts => "confusable",
        }
    }
}

impl Username {
    /// Validates a username as typed: NFKC-normalised, surrounding spaces trimmed, case kept.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let normalised: String = raw.trim().nfkc().collect();
        let s = normalised.trim();
        let len = s.chars().count();
        if len < USERNAME_MIN_CHARS {
            return Err(UsernameError::TooShort);
        }
        if len > USERNAME_MAX_CHARS {
            return Err(UsernameError::TooLong);
        }
        if !s
            .chars()
            .all(|c| matches!(c, '-' | '_' | '.') || identifier_letter(c))
        {
            return Err(UsernameError::InvalidCharacter);
        }
        if !s.is_single_script() {
            return Err(UsernameError::MixedScripts);
        }
        Ok(Self(s.to_owned()))
    }

    /// The username as chosen.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive key that makes usernames unique.
    pub fn key(&self) -> String {
        fold(&self.0)
    }

    /// The look-alike key ([`confusable_key`]): no two accounts share one.
    pub fn skeleton(&self) -> String {
        confusable_key(&self.0)
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
    /// The local part, or a label of the domain, mixes letters of different scripts.
    #[error("mixes letters of different scripts, which makes it look like another address")]
    MixedScripts,
}

impl EmailError {
    /// The field-error code of API.md.
    pub fn code(self) -> &'static str {
        match self {
            Self::Empty => "required",
            Self::TooLong => "too_long",
            Self::Malformed => "invalid",
            Self::MixedScripts => "confusable",
        }
    }
}

impl EmailAddress {
    /// Normalises ([`fold`]: NFKC, lower case) and validates an address; the local part and
    /// each label of the domain must each be of one script.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let s = fold(raw.trim()).trim().to_owned();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.len() > EMAIL_MAX_BYTES {
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
        if !local.is_single_script() || !labels.iter().all(|l| l.is_single_script()) {
            return Err(EmailError::MixedScripts);
        }
        Ok(Self(s))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The look-alike key ([`confusable_key`]): no two accounts share one.
    pub fn skeleton(&self) -> String {
        confusable_key(&self.0)
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
    /// Trims and folds ([`fold`]: NFKC, lower case); `None` when empty or absurdly long.
    pub fn parse(raw: &str) -> Option<Self> {
        let s = fold(raw.trim()).trim().to_owned();
        (!s.is_empty() && s.len() <= LOGIN_MAX_BYTES).then_some(Self(s))
    }

    /// The normalised text: compared with username keys and with emails.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Username as chosen.
    pub username: String,
    /// The folded username (unique).
    pub username_key: String,
    /// Normalised email (unique).
    pub email: String,
    /// When the email was verified.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the password was last set.
    pub password_changed_at: DateTime<Utc>,
    /// What it may do.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
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
    /// A passkey (WebAuthn).
    Webauthn,
}

impl SecondFactor {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
            Self::Webauthn => "webauthn",
        }
    }

    /// Reads a stored value.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "totp" => Self::Totp,
            "recovery_code" => Self::RecoveryCode,
            "webauthn" => Self::Webauthn,
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
        for bad in ["jb'ber", "jb:ber", "jb\u{200d}ber", "jb🙂ber", "jb\u{0}ber"] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::InvalidCharacter),
                "{bad:?}"
            );
        }
        let u = Username::parse(" JBber.dev_1-x ").expect("valid");
        assert_eq!(u.as_str(), "JBber.dev_1-x");
        assert_eq!(u.key(), "jbber.dev_1-x");
    }

    #[test]
    fn usernames_are_nfkc_normalised_and_compared_ignoring_case() {
        let wide = Username::parse("ＪＢｂｅｒ２").expect("valid");
        assert_eq!(wide.as_str(), "JBber2");
        assert_eq!(wide.key(), "jbber2");
        let e = Username::parse("Élise").expect("one script");
        assert_eq!(e.key(), "élise");
        assert_eq!(e.key(), username_key(" ÉLISE "));
        assert!(Username::parse("日本語の名前").is_ok());
        assert!(Username::parse("Владимир").is_ok());
    }

    #[test]
    fn mixed_scripts_are_confusable() {
        // Cyrillic а (U+0430) among Latin letters.
        assert_eq!(
            Username::parse("\u{430}lice"),
            Err(UsernameError::MixedScripts)
        );
        assert_eq!(UsernameError::MixedScripts.code(), "confusable");
        assert_eq!(
            EmailAddress::parse("\u{430}lice@example.com"),
            Err(EmailError::MixedScripts)
        );
        assert_eq!(
            EmailAddress::parse("alice@ex\u{430}mple.com"),
            Err(EmailError::MixedScripts)
        );
        // One script per part is fine.
        assert!(EmailAddress::parse("владимир@пример.рф").is_ok());
        assert!(EmailAddress::parse("ana@пример.рф").is_ok());
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let key = |s: &str| Username::parse(s).expect(s).skeleton();
        let alice = key("alice");
        assert_eq!(key("aIice"), alice, "capital i");
        assert_eq!(key("Alice"), alice);
        assert_eq!(confusable_key("\u{430}lice"), alice, "Cyrillic а");
        // Wholly Cyrillic, and still like a Latin name.
        assert_eq!(key("\u{441}\u{43e}\u{440}\u{435}"), key("cope"));
        assert_eq!(key("b0b"), key("bob"));
        assert_ne!(key("alice"), key("alicia"));
        let mail = |s: &str| EmailAddress::parse(s).expect(s).skeleton();
        assert_eq!(mail("rn@example.com"), mail("m@example.com"));
        assert_ne!(mail("ana@example.com"), mail("ann@example.com"));
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
        assert_eq!(
            Login::parse("ＪＢｂｅｒ").map(|l| l.as_str().to_owned()),
            Some("jbber".into())
        );
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
            SecondFactor::Webauthn,
        ] {
            assert_eq!(SecondFactor::from_stored(f.as_str()), f);
        }
    }
}
