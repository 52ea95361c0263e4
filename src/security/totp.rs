//! TOTP (RFC 6238, totp-rs): SHA-1, 6 digits, 30-second steps, one step of drift either way,
//! 160-bit secrets. Checks use the app's clock and return the matched step so a code is accepted
//! once per step.

use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The TOTP parameters every authenticator app understands.
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
const SKEW_STEPS: u16 = 1;

/// A TOTP secret (20 random bytes). Its `Debug` never shows it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

/// A secret could not be used (a damaged stored value).
#[derive(Debug, thiserror::Error)]
#[error("TOTP secret is not usable")]
pub struct TotpError;

impl TotpSecret {
    /// A new random 160-bit secret.
    pub fn generate() -> Self {
        Self(crate::security::tokens::random_bytes::<20>().to_vec())
    }

    /// Reads a base32 secret (as stored, after decryption).
    pub fn from_base32(s: &str) -> Result<Self, TotpError> {
        Secret::try_from_base32(s)
            .map(|s| Self(s.as_ref().to_vec()))
            .map_err(|_| TotpError)
    }

    /// Base32, as shown to people and stored (sealed).
    pub fn to_base32(&self) -> String {
        Secret::from(self.0.clone()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.clone())
            .with_issuer(Some(issuer.replace(':', "")))
            .with_account_name(account.replace(':', ""))
            .build()
            .map_err(|_| TotpError)
    }

    /// The `otpauth://` URI for authenticator apps.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        self.totp(issuer, account)?.to_url().map_err(|_| TotpError)
    }

    /// The step a code matches at `unix_time` (± one step), if any.
    pub fn check(&self, code: &str, unix_time: i64) -> Option<i64> {
        let time = u64::try_from(unix_time).ok()?;
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != usize::from(DIGITS) || !code.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp("x", "x").ok()?;
        totp.check(&code, time).and_then(|s| i64::try_from(s).ok())
    }

    /// The code at `unix_time` (for tests and tools).
    pub fn code_at(&self, unix_time: i64) -> Option<String> {
        let totp = self.totp("x", "x").ok()?;
        Some(totp.generate(u64::try_from(unix_time).ok()?).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_within_one_step_and_name_their_step() {
        let s = TotpSecret::generate();
        let t = 1_800_000_000_i64;
        let code = s.code_at(t).expect("code");
        assert_eq!(code.len(), 6);
        assert_eq!(s.check(&code, t), Some(t / 30));
        assert_eq!(s.check(&code, t + 30), Some(t / 30));
        assert_eq!(s.check(&code, t - 30), Some(t / 30));
        assert_eq!(s.check(&code, t + 60), None);
        assert_eq!(s.check("12345", t), None);
    }

    #[test]
    fn uri_and_base32_round_trip() {
        let s = TotpSecret::generate();
        let b32 = s.to_base32();
        assert!(b32.len() >= 32);
        let back = TotpSecret::from_base32(&b32).expect("parses");
        assert_eq!(back.code_at(1_800_000_000), s.code_at(1_800_000_000));
        let uri = s.otpauth_uri("PyPI", "jbber").expect("uri");
        assert!(uri.starts_with("otpauth://totp/PyPI:jbber?"), "{uri}");
        assert!(uri.contains("issuer=PyPI"));
    }
}
