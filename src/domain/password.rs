//! The password policy of API.md: 8 to 128 characters, no composition rules, and not guessable:
//! common, breached-list and username-like passwords are refused, with the reason. Strength is
//! estimated with zxcvbn, fed the account's username and email.

use std::fmt;

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

/// Why a new password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than 8 characters.
    #[error("must be at least 8 characters")]
    TooShort,
    /// More than 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// Too easy to guess; the reason says why.
    #[error("is too easy to guess: {0}")]
    Weak(String),
}

impl PasswordError {
    /// The field-error code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::Weak(_) => "weak",
        }
    }
}

impl NewPassword {
    /// Checks `raw` against the policy; `context` holds the username and email, which the
    /// password must not resemble.
    pub fn parse(raw: &str, context: &[&str]) -> Result<Self, PasswordError> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(PasswordError::TooShort);
        }
        if len > 128 {
            return Err(PasswordError::TooLong);
        }
        let lower = raw.to_lowercase();
        let mut inputs: Vec<String> = Vec::new();
        for c in context {
            let c = c.trim().to_lowercase();
            if c.len() >= 3 {
                if lower.contains(&c) {
                    return Err(PasswordError::Weak(
                        "it contains your username or email address".into(),
                    ));
                }
                if let Some((local, _)) = c.split_once('@')
                    && local.len() >= 3
                {
                    if lower.contains(local) {
                        return Err(PasswordError::Weak(
                            "it contains your username or email address".into(),
                        ));
                    }
                    inputs.push(local.to_owned());
                }
                inputs.push(c);
            }
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
    fn common_and_username_like_passwords_are_weak_with_a_reason() {
        for (pw, ctx) in [
            ("password123", vec![]),
            ("qwertyuiop", vec![]),
            ("jbber2024!", vec!["jbber", "jb@example.com"]),
            ("ana.lopez99", vec!["someone", "ana.lopez@example.com"]),
        ] {
            match NewPassword::parse(pw, &ctx) {
                Err(PasswordError::Weak(reason)) => assert!(!reason.is_empty(), "{pw}"),
                other => panic!("{pw} should be weak, got {other:?}"),
            }
        }
    }

    #[test]
    fn long_passphrases_pass_and_never_show_in_debug() {
        let p = NewPassword::parse("orbit lantern mosaic 42 fjord", &["jbber"]).expect("strong");
        assert_eq!(format!("{p:?}"), "NewPassword(…)");
    }
}
