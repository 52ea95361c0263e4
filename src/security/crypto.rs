//! Encryption at rest with AES-256-GCM (RustCrypto): TOTP secrets and mail bodies that carry
//! link tokens. The key is derived from `DATA_ENCRYPTION_KEY` with SHA-256.

use aes_gcm::aead::{Aead, Generate, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

const PREFIX: &str = "v1:";

/// Seals and opens short texts with the data key.
#[derive(Clone)]
pub struct DataCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataCipher(…)")
    }
}

/// A text could not be encrypted (only for inputs beyond AES-GCM's size limit).
#[derive(Debug, thiserror::Error)]
#[error("data could not be encrypted")]
pub struct SealError;

/// A sealed text could not be opened (wrong key or tampered data).
#[derive(Debug, thiserror::Error)]
#[error("encrypted data could not be decrypted (wrong DATA_ENCRYPTION_KEY or damaged data)")]
pub struct OpenError;

impl DataCipher {
    /// Derives the AES-256 key from the configured secret (≥ 32 bytes).
    pub fn new(secret: &[u8]) -> Self {
        let key = Sha256::digest(secret);
        Self {
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// Encrypts `plain` with a fresh random nonce: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, plain: &str) -> Result<String, SealError> {
        let nonce = Nonce::generate();
        let ct = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`DataCipher::seal`] produced.
    pub fn open(&self, sealed: &str) -> Result<String, OpenError> {
        let raw = sealed.strip_prefix(PREFIX).ok_or(OpenError)?;
        let bytes = STANDARD.decode(raw).map_err(|_| OpenError)?;
        if bytes.len() < 12 + 16 {
            return Err(OpenError);
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| OpenError)?;
        let plain = self.cipher.decrypt(&nonce, ct).map_err(|_| OpenError)?;
        String::from_utf8(plain).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_hides_the_text() {
        let c = DataCipher::new(b"0123456789abcdef0123456789abcdef");
        let sealed = c.seal("otpauth secret JBSWY3DPEHPK3PXP").expect("seals");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            c.seal("otpauth secret JBSWY3DPEHPK3PXP").expect("seals")
        );
        assert_eq!(
            c.open(&sealed).expect("opens"),
            "otpauth secret JBSWY3DPEHPK3PXP"
        );
    }

    #[test]
    fn wrong_key_or_tampering_is_refused() {
        let c = DataCipher::new(b"0123456789abcdef0123456789abcdef");
        let other = DataCipher::new(b"fedcba9876543210fedcba9876543210");
        let sealed = c.seal("x").expect("seals");
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push('A');
        assert!(c.open(&tampered).is_err() || tampered == sealed);
        assert!(c.open("plain").is_err());
    }
}
