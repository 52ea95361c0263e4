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

/// A file encrypted with its own key: the key sealed by the data key, and
/// base64(nonce ‖ ciphertext ‖ tag).
#[derive(Clone)]
pub struct SealedFile {
    /// The file's key, sealed with the data key.
    pub wrapped_key: String,
    /// The encrypted content, base64.
    pub content: String,
}

impl DataCipher {
    /// Encrypts `bytes` with a fresh random key, which is returned wrapped by the data key.
    pub fn seal_file(&self, bytes: &[u8]) -> Result<SealedFile, SealError> {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        let file_cipher = Aes256Gcm::new(&key);
        let nonce = Nonce::generate();
        let ct = file_cipher.encrypt(&nonce, bytes).map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(SealedFile {
            wrapped_key: self.seal(&STANDARD.encode(key.as_slice()))?,
            content: STANDARD.encode(out),
        })
    }

    /// Decrypts what [`DataCipher::seal_file`] produced.
    pub fn open_file(&self, wrapped_key: &str, content: &str) -> Result<Vec<u8>, OpenError> {
        let key = STANDARD
            .decode(self.open(wrapped_key)?)
            .map_err(|_| OpenError)?;
        let key = aes_gcm::Key::<Aes256Gcm>::try_from(key.as_slice()).map_err(|_| OpenError)?;
        let bytes = STANDARD.decode(content).map_err(|_| OpenError)?;
        if bytes.len() < 12 + 16 {
            return Err(OpenError);
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| OpenError)?;
        Aes256Gcm::new(&key)
            .decrypt(&nonce, ct)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_opens_with_the_data_key_only() {
        let c = DataCipher::new(b"0123456789abcdef0123456789abcdef");
        let sealed = c.seal_file(b"%PDF-1.4 secret document").expect("seals");
        assert!(!sealed.content.contains("secret"));
        assert_eq!(
            c.open_file(&sealed.wrapped_key, &sealed.content).ok(),
            Some(b"%PDF-1.4 secret document".to_vec())
        );
        let other = DataCipher::new(b"another key of at least 32 bytes!!");
        assert!(
            other
                .open_file(&sealed.wrapped_key, &sealed.content)
                .is_err()
        );
    }

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
