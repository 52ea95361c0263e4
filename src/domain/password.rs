//! The password policy of API.md: 8 to 128 characters, no composition rules, and not guessable:
//! passwords containing the username, the email (or its local part) or the service's name,
//! the 100,000 most common breached passwords, the operator's own list, and whatever else zxcvbn
//! finds guessable are refused, each with its own code. The lists live in
//! [`super::password_lists`]. The minimum stays 8, NIST SP 800-63B-4's floor for a password
//! used with a second factor; README says why.

use std::fmt;

use super::limits::{PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};

/// The score a new password must reach (zxcvbn 3: more than 10^8 guesses).
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

/// A password that passed the policy. Its `Debug` never shows it.
#[derive(Clone)]
pub struct NewPassword(String);

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(…)")
    }
}

/// Why a new password is refused; each rule has its own field-error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 8 characters.
    #[error("must be at least 8 characters")]
    TooShort,
    /// More than 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// It is, or contains, the username, the email address or the email's local part.
    #[error("must not contain your username or email address")]
    ContainsPersonalInfo,
    /// It is, or contains, the name of the service (`SERVICE_NAME`).
    #[error("must not contain the name of this service")]
    ContainsServiceName,
    /// One of the most common passwords found in data breaches: the first that attackers try.
    #[error("is one of the most common passwords found in data breaches; choose another")]
    Breached,
    /// On the operator's own list (`PASSWORD_BLOCKLIST_FILE`).
    #[error("is not allowed on this service; choose another")]
    Blocklisted,
    /// Too easy to guess for another reason; the reason says why.
    #[error("is too easy to guess: {0}")]
    Weak(String),
}

impl PasswordError {
    /// The field-error code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::ContainsPersonalInfo => "contains_personal_info",
            Self::ContainsServiceName => "contains_service_name",
            Self::Breached => "breached",
            Self::Blocklisted => "blocklisted",
            Self::Weak(_) => "weak",
        }
    }
}

/// Letters and digits only, lower-cased: `Ana.Lopez-99` and `analopez99` compare equal, so
/// separators do not hide a name inside a password.
fn folded(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `password` (already folded) contains `name` once folded, for names long enough to
/// mean something (three letters or digits or more).
fn contains_name(password: &str, name: &str) -> bool {
    let name = folded(name);
    name.chars().count() >= 3 && password.contains(&name)
}

impl NewPassword {
    /// Checks `raw` against the policy, one rule after the other, and answers the first that
    /// refuses it: length; the account's own names (`context` holds the username and the email
    /// address, whose local part counts too); the service's name; the most common breached
    /// passwords; the operator's list; then a zxcvbn estimate fed all those names.
    pub fn parse(raw: &str, context: &[&str]) -> Result<Self, PasswordError> {
        let len = raw.chars().count();
        if len < PASSWORD_MIN_CHARS {
            return Err(PasswordError::TooShort);
        }
        if len > PASSWORD_MAX_CHARS {
            return Err(PasswordError::TooLong);
        }
        let lower = raw.to_lowercase();
        let plain = folded(raw);
        let mut inputs: Vec<String> = Vec::new();
        for c in context {
            let c = c.trim().to_lowercase();
            let local = c.split_once('@').map(|(local, _)| local.to_owned());
            for name in std::iter::once(&c).chain(local.as_ref()) {
                if contains_name(&plain, name) || (name.len() >= 3 && lower.contains(name)) {
                    return Err(PasswordError::ContainsPersonalInfo);
                }
            }
            inputs.extend(local);
            inputs.push(c);
        }
        for service in super::password_lists::service_names() {
            if contains_name(&plain, &service) || lower.contains(&service) {
                return Err(PasswordError::ContainsServiceName);
            }
            inputs.push(service);
        }
        if super::password_lists::is_common(&lower) {
            return Err(PasswordError::Breached);
        }
        if super::password_lists::is_operator_refused(&lower) {
            return Err(PasswordError::Blocklisted);
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let estimate = zxcvbn::zxcvbn(raw, &refs);
        if estimate.score() < MIN_SCORE {
            let reason = estimate
                .feedback()
                .and_then(|f| {
                    f.warning()
                        .map(|w| w.to_string())
                        .or_else(|| f.suggestions().first().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| {
                    "it would be found quickly by guessing; add more words or characters".into()
                });
            return Err(PasswordError::Weak(reason));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes it, for hashing on another thread.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits() {
        assert_eq!(
            NewPassword::parse("Ab1!x", &[]).err(),
            Some(PasswordError::TooShort)
        );
        assert_eq!(
            NewPassword::parse(&"x".repeat(129), &[]).err(),
            Some(PasswordError::TooLong)
        );
    }

    #[test]
    fn each_rule_refuses_with_its_own_code() {
        for (pw, ctx, code) in [
            (
                "jbber2024!",
                vec!["jbber", "jb@example.com"],
                "contains_personal_info",
            ),
            (
                "JBBER lantern 2024",
                vec!["jbber", "jb@example.com"],
                "contains_personal_info",
            ),
            (
                "ana.lopez99",
                vec!["someone", "ana.lopez@example.com"],
                "contains_personal_info",
            ),
            (
                "Ana-Lopez forever 7",
                vec!["someone", "ana.lopez@example.com"],
                "contains_personal_info",
            ),
            ("password123", vec![], "breached"),
            ("PassWord123", vec![], "breached"),
            ("qwertyuiop", vec![], "breached"),
            ("aaaaaaaaaaaaaaab", vec![], "weak"),
        ] {
            match NewPassword::parse(pw, &ctx) {
                Err(e) => {
                    assert_eq!(e.code(), code, "{pw}");
                    assert!(!e.to_string().is_empty());
                }
                Ok(_) => panic!("{pw} should be refused"),
            }
        }
    }

    #[test]
    fn the_service_name_is_refused_inside_a_password() {
        super::super::password_lists::add_service_name("Unit Test Keyring");
        assert_eq!(
            NewPassword::parse("my unit-test-keyring 2031", &[]).err(),
            Some(PasswordError::ContainsServiceName)
        );
    }

    #[test]
    fn long_passphrases_pass_and_never_show_in_debug() {
        let p = NewPassword::parse("orbit lantern mosaic 42 fjord", &["jbber"]).expect("strong");
        assert_eq!(format!("{p:?}"), "NewPassword(…)");
    }
}
