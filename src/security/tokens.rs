//! Random single-use tokens: 256 random bits, URL-safe, stored only as SHA-256 hashes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// A freshly generated token: the value goes to its owner once, the hash to the database.
pub struct NewToken {
    /// The URL-safe token (43 characters, 256 bits).
    pub value: String,
    /// Its SHA-256, hex.
    pub hash: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewToken(…)")
    }
}

/// `n` random bytes from the thread's CSPRNG (ChaCha, seeded from the OS).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new 256-bit URL-safe token and its hash.
pub fn new_token() -> NewToken {
    let value = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let hash = hash_token(&value);
    NewToken { value, hash }
}

/// The SHA-256 of a token, hex: how tokens are stored and looked up.
pub fn hash_token(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A keyed SHA-256 of `value` for `purpose`, hex: for identifiers that must be stable but must
/// not be readable or guessable from the database alone (a login text typed into a rate-limit
/// bucket may be a password typed into the wrong field). Only compared for equality, so the
/// fixed-length key prefix is enough; no HMAC is needed.
pub fn keyed_hash(key: &[u8], purpose: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(key));
    hasher.update(purpose.as_bytes());
    hasher.update([0u8]);
    hasher.update(value.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether two strings are equal, in time that depends only on their lengths (for secrets a
/// client presents, such as CSRF tokens).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_unique_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.value, b.value);
        assert_eq!(a.value.len(), 43);
        assert!(
            a.value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(a.hash, hash_token(&a.value));
        assert_eq!(a.hash.len(), 64);
        assert_eq!(format!("{a:?}"), "NewToken(…)");
    }

    #[test]
    fn keyed_hashes_depend_on_key_purpose_and_value() {
        let base = keyed_hash(b"key", "login", "jbber");
        assert_eq!(base, keyed_hash(b"key", "login", "jbber"));
        assert_eq!(base.len(), 64);
        assert_ne!(base, keyed_hash(b"other key", "login", "jbber"));
        assert_ne!(base, keyed_hash(b"key", "ip", "jbber"));
        assert_ne!(base, keyed_hash(b"key", "login", "jbber2"));
        assert!(!base.contains("jbber"));
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
        assert!(!constant_time_eq("", "a"));
    }
}
