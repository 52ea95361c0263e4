//! Argon2id password hashing on a bounded pool.
//!
//! At most `ARGON2_MAX_CONCURRENT` hashes (one per core by default) run at once, each on a
//! blocking thread, never on an async worker: 64 concurrent logins queue for a permit instead
//! of holding 64 × 19 MiB, and throughput stays at the hashing bound. Verifying against an
//! unknown account uses a dummy hash of the same cost, so both take the same time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::Argon2Params;

/// Hashing failed: bad parameters, or the blocking pool is gone (shutdown).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The argon2 parameters are not usable.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The hashing task could not run.
    #[error("password hashing task failed")]
    Task,
}

/// The app's password hasher.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("max_concurrent", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// Builds the hasher and its dummy hash (one hash at start).
    pub fn new(cost: Argon2Params, max_concurrent: usize) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let dummy_hash = hash_with(&params, "dummy password for unknown accounts")?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Hashes `password` (PHC string) off the async workers.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move || hash_with(&params, &password)).await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account) it verifies against
    /// the dummy hash and answers `false`, taking the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let dummy = self.dummy_hash.clone();
        self.run(move || match hash {
            Some(h) => verify_with(&password, &h),
            None => {
                let _ = verify_with(&password, &dummy);
                false
            }
        })
        .await
    }

    /// Runs `f` (argon2 work) on a blocking thread once a permit is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, HashError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Task)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| HashError::Task)
    }

    /// The argon2id instance with the configured cost (for recovery codes and the CLI).
    pub fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes on the calling thread (the command line, which may block).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Checks `password` against a PHC string (its own parameters apply); a malformed hash is a
/// mismatch.
pub fn verify_with(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .expect("valid params")
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = cheap();
        let hash = h.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(
            h.verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("v")
        );
        assert!(!h.verify("wrong horse".into(), Some(hash)).await.expect("v"));
        assert!(!h.verify("anything".into(), None).await.expect("v"));
        assert!(!verify_with("x", "not a hash"));
    }
}
