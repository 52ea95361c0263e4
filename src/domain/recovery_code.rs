//! Recovery codes: how they look, how input is normalised, and how a code splits into the
//! non-secret part that finds its row and the secret part that is hashed.
//!
//! A code is 20 characters of Crockford's base32 shown in groups of four, like
//! `k3vq-9x2m-hh4t-a7pe-w0cd`. The first group (20 bits) is a lookup id, unique per account and
//! not secret; the other 16 characters are 80 random secret bits, stored only as an argon2id
//! hash. A login attempt selects at most one row by the lookup id, so it costs exactly one
//! argon2 verification however many codes and superseded sets the account has.

use std::fmt;

/// Crockford's base32 alphabet (no i, l, o, u), lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters of the lookup id.
pub const LOOKUP_LEN: usize = 4;
/// Characters of the secret part (16 × 5 = 80 bits).
pub const SECRET_LEN: usize = 16;

/// A freshly generated code. Its `Debug` never shows it.
#[derive(Clone)]
pub struct GeneratedCode {
    /// The non-secret lookup id.
    pub lookup: String,
    /// The secret part, to hash.
    pub secret: String,
}

impl fmt::Debug for GeneratedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GeneratedCode(…)")
    }
}

impl GeneratedCode {
    /// Builds a code from 20 random bytes (each maps to one base32 character).
    pub fn from_random(bytes: [u8; LOOKUP_LEN + SECRET_LEN]) -> Self {
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(b & 31)] as char)
            .collect();
        Self {
            lookup: chars[..LOOKUP_LEN].to_owned(),
            secret: chars[LOOKUP_LEN..].to_owned(),
        }
    }

    /// The code as shown to its owner, grouped in fours: `k3vq-9x2m-hh4t-a7pe-w0cd`.
    pub fn display(&self) -> String {
        let all = format!("{}{}", self.lookup, self.secret);
        all.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// A recovery code as typed, normalised.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodeInput {
    lookup: String,
    secret: String,
}

impl fmt::Debug for RecoveryCodeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCodeInput(…)")
    }
}

/// Why typed input is not a recovery code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryCodeInputError {
    /// Nothing was typed (a 422).
    #[error("is required")]
    Empty,
    /// Six digits: an authenticator code typed in the wrong field.
    #[error("looks like an authenticator code")]
    LooksLikeTotp,
    /// Not of a recovery code's shape.
    #[error("is not a recovery code")]
    Malformed,
}

impl RecoveryCodeInput {
    /// Normalises case, dashes and spaces (and Crockford's look-alikes: i, l → 1; o → 0).
    pub fn parse(raw: &str) -> Result<Self, RecoveryCodeInputError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(RecoveryCodeInputError::Empty);
        }
        let compact: String = trimmed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == 6 && compact.chars().all(|c| c.is_ascii_digit()) {
            return Err(RecoveryCodeInputError::LooksLikeTotp);
        }
        let normalised: String = compact
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                'i' | 'l' => '1',
                'o' => '0',
                other => other,
            })
            .collect();
        if normalised.chars().count() != LOOKUP_LEN + SECRET_LEN
            || !normalised.bytes().all(|b| ALPHABET.contains(&b))
        {
            return Err(RecoveryCodeInputError::Malformed);
        }
        Ok(Self {
            lookup: normalised[..LOOKUP_LEN].to_owned(),
            secret: normalised[LOOKUP_LEN..].to_owned(),
        })
    }

    /// The lookup id that selects the row.
    pub fn lookup(&self) -> &str {
        &self.lookup
    }

    /// The secret part, to verify against the hash.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GeneratedCode {
        let mut bytes = [0u8; 20];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        GeneratedCode::from_random(bytes)
    }

    #[test]
    fn display_groups_in_fours_and_parses_back() {
        let code = sample();
        let shown = code.display();
        assert_eq!(shown.len(), 24);
        assert_eq!(shown.matches('-').count(), 4);
        let parsed = RecoveryCodeInput::parse(&shown).expect("parses");
        assert_eq!(parsed.lookup(), code.lookup);
        assert_eq!(parsed.secret(), code.secret);
    }

    #[test]
    fn input_is_normalised() {
        let code = sample();
        let shown = code.display().to_uppercase().replace('-', " ");
        let parsed = RecoveryCodeInput::parse(&format!("  {shown} ")).expect("parses");
        assert_eq!(parsed.secret(), code.secret);
        let with_lookalikes = "0000-1111-0000-1111-0000"
            .replace('0', "O")
            .replacen('1', "l", 2);
        assert_eq!(
            RecoveryCodeInput::parse(&with_lookalikes)
                .expect("parses")
                .lookup(),
            "0000"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            RecoveryCodeInput::parse("  "),
            Err(RecoveryCodeInputError::Empty)
        );
        assert_eq!(
            RecoveryCodeInput::parse("123 456"),
            Err(RecoveryCodeInputError::LooksLikeTotp)
        );
        assert_eq!(
            RecoveryCodeInput::parse("abcd-efgh"),
            Err(RecoveryCodeInputError::Malformed)
        );
        assert_eq!(
            RecoveryCodeInput::parse("uuuu-uuuu-uuuu-uuuu-uuuu"),
            Err(RecoveryCodeInputError::Malformed)
        );
        assert_eq!(format!("{:?}", sample()), "GeneratedCode(…)");
    }

    #[test]
    fn every_character_comes_from_the_alphabet_with_80_secret_bits() {
        let code = GeneratedCode::from_random([255; 20]);
        assert!(code.secret.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(code.secret.len() * 5, 80);
    }
}
