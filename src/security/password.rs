//! Argon2id password hashing on a bounded pool.
//!
//! At most `ARGON2_MAX_CONCURRENT` hashes (one per core by default) run at once, each on one of
//! the hasher's own threads (as many as permits), never on an async worker: 64 concurrent
//! logins queue for a permit instead of holding 64 × 19 MiB, and throughput stays at the
//! hashing bound. The threads are the hasher's own, not the shared blocking pool, so that the
//! argon2 memory is allocated by a few long-lived threads whose allocator reuses it: on tokio's
//! blocking pool (dozens of threads, each with its own malloc arena keeping freed blocks) 64
//! concurrent logins grew the process to 0.7–1.1 GiB, and every hash page-faulted fresh memory.
//! Verifying against an unknown account uses a dummy hash of the same cost, so both take the
//! same time.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use std::cell::RefCell;

use argon2::password_hash::generate_salt;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// A unit of argon2 work for the hasher's threads.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The app's password hasher.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Hasher threads (and permits) in all.
    threads: usize,
    /// Calls waiting for a permit (for the metrics).
    waiting: Arc<AtomicUsize>,
    dummy_hash: Arc<str>,
    /// Work for the hasher's threads; they stop when the last clone is dropped.
    jobs: mpsc::Sender<Job>,
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
        let threads = max_concurrent.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => break,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|_| HashError::Task)?;
        }
        // On one of those threads, like every hash: a thread that hashes keeps its argon2
        // memory, and the caller's thread should not keep 19 MiB for one hash at start.
        let (dummy_tx, dummy_rx) = mpsc::channel();
        let dummy_params = params.clone();
        jobs.send(Box::new(move || {
            let _ = dummy_tx.send(hash_with(
                &dummy_params,
                "dummy password for unknown accounts",
            ));
        }))
        .map_err(|_| HashError::Task)?;
        let dummy_hash = dummy_rx.recv().map_err(|_| HashError::Task)??;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            waiting: Arc::new(AtomicUsize::new(0)),
            dummy_hash: dummy_hash.into(),
            jobs,
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

    /// Runs `f` (argon2 work) on one of the hasher's threads once a permit is free. The permit
    /// is held until `f` has finished, even if the caller stops waiting, so no more than
    /// `ARGON2_MAX_CONCURRENT` run at once. A panic in `f` is a [`HashError::Task`].
    pub async fn run<T, F>(&self, f: F) -> Result<T, HashError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = {
            // Counted while waiting, also when the caller gives up before a permit comes.
            let _waiting = Waiting::enter(&self.waiting);
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| HashError::Task)?
        };
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
                drop(permit);
                if let Ok(value) = outcome {
                    let _ = done.send(value);
                }
            }))
            .map_err(|_| HashError::Task)?;
        result.await.map_err(|_| HashError::Task)
    }

    /// How many calls wait for a hasher thread, and how many hash now (for the metrics).
    pub fn queue(&self) -> crate::metrics::HasherReading {
        crate::metrics::HasherReading {
            waiting: self.waiting.load(Ordering::Relaxed),
            in_flight: self
                .threads
                .saturating_sub(self.permits.available_permits()),
        }
    }

    /// Hashes on the calling thread (the command line, and the hasher's own threads).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password)
    }
}

/// One call counted as waiting for a permit until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// This thread's argon2 memory, kept from one hash to the next (19 MiB at the default cost).
    /// Allocating it for every hash made the allocator keep freed blocks in many places (see
    /// the module documentation) and cost a page fault per 4 KiB each time. Argon2 overwrites
    /// every block before reading it, so what a previous hash left there does not matter.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `blocks` blocks of this thread's argon2 memory.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() != blocks {
            // Another cost (a hash made with older parameters): size it anew, not keep the
            // larger of the two for the life of the thread.
            *memory = Vec::new();
            *memory = vec![Block::default(); blocks];
        }
        f(memory)
    })
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let failed = |e: &dyn std::fmt::Display| HashError::Argon2(e.to_string());
    let salt = Salt::new(&generate_salt()).map_err(|e| failed(&e))?;
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .ok_or_else(|| HashError::Argon2("output length".into()))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut *out, memory)
    })
    .map_err(|e| failed(&e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Checks `password` against a PHC string (its own algorithm, version and parameters apply, as
/// in argon2's `verify_password`); a malformed hash is a mismatch. The outputs are compared in
/// constant time.
pub fn verify_with(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = with_memory(blocks, |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut *out, memory)
    });
    computed.is_ok() && Output::new(out).is_ok_and(|out| out == *expected)
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

    #[test]
    fn agrees_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let ours = cheap().hash_blocking("correct horse").expect("hash");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", ours.as_str())
                .is_err()
        );
        // Theirs, at other costs and in other variants, one after the other on this thread.
        for (alg, m, t) in [
            (Algorithm::Argon2id, 64, 1),
            (Algorithm::Argon2id, 128, 2),
            (Algorithm::Argon2i, 64, 1),
            (Algorithm::Argon2d, 96, 3),
        ] {
            let params = Params::new(m, t, 1, None).expect("params");
            let theirs = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"correct horse")
                .expect("hash")
                .to_string();
            assert!(verify_with("correct horse", &theirs), "{theirs}");
            assert!(!verify_with("correct horsf", &theirs), "{theirs}");
        }
        let v10 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x10,
            Params::new(64, 1, 1, None).expect("params"),
        )
        .hash_password(b"pw")
        .expect("hash")
        .to_string();
        assert!(verify_with("pw", &v10));
        assert!(!verify_with(
            "pw",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ"
        ));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_threads_keep_working() {
        let h = cheap();
        for _ in 0..3 {
            let r: Result<(), HashError> = h.run(|| panic!("boom")).await;
            assert!(matches!(r, Err(HashError::Task)));
        }
        assert_eq!(h.run(|| 42).await.expect("runs"), 42);
        assert_eq!(h.permits.available_permits(), 2);
    }

    #[tokio::test]
    async fn the_queue_counts_waiting_and_running_hashes() {
        let h = cheap();
        assert_eq!(h.queue().in_flight + h.queue().waiting, 0);
        // Two jobs hold both threads until released; a third waits for a permit.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut running = Vec::new();
        for _ in 0..2 {
            let (h, gate) = (h.clone(), gate.clone());
            running.push(tokio::spawn(async move {
                h.run(move || gate.lock().map(|g| g.recv().is_ok()).unwrap_or(false))
                    .await
            }));
        }
        let third = {
            let h = h.clone();
            tokio::spawn(async move { h.run(|| 3).await })
        };
        let mut seen = crate::metrics::HasherReading {
            waiting: 0,
            in_flight: 0,
        };
        for _ in 0..200 {
            seen = h.queue();
            if seen.waiting == 1 && seen.in_flight == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!((seen.waiting, seen.in_flight), (1, 2));
        for _ in 0..2 {
            release.send(()).expect("release");
        }
        for job in running {
            assert!(job.await.expect("joined").expect("ran"));
        }
        assert_eq!(third.await.expect("joined").expect("ran"), 3);
        assert_eq!((h.queue().waiting, h.queue().in_flight), (0, 0));
    }
}
