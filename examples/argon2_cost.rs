//! The CPU cost of one password verification at the configured argon2 cost, and the login
//! throughput it bounds: `cargo run --release --example argon2_cost [N]`.
//!
//! It builds the app's own [`PasswordHasher`] from the configuration (the `ARGON2_*` variables
//! of the environment, else the defaults the server uses), hashes one password with it, then
//! verifies that password N times (default 40) on one thread with the function every login
//! uses, timing the thread's CPU time (from `/proc/thread-self/schedstat`) and the wall time.
//! A login costs one verification, so a machine with C cores cannot serve more than
//! C ÷ (CPU time of one verification) logins per second: the "argon2 bound" that
//! `bench/load/run` compares the login scenarios with.
//!
//! The last line is machine-readable:
//! `argon2_cost m_kib=… t=… p=… n=… cpu_ms=… wall_ms=… cores=… bound_per_s=…`.

use std::collections::HashMap;
use std::time::Instant;

use account_recovery::config::Config;
use account_recovery::security::password::{PasswordHasher, verify_with};

/// This thread's CPU time in nanoseconds (Linux: the first field of schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N must be a whole number"))
        .unwrap_or(40)
        .max(1);
    // Only the argon2 settings matter here; the secrets are set so that nothing is written.
    let mut env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("ARGON2_"))
        .collect();
    env.insert("JWT_SECRET".into(), "x".repeat(32));
    env.insert("DATA_ENCRYPTION_KEY".into(), "y".repeat(32));
    let config = Config::from_map(&env).expect("configuration");
    let cost = config.argon2;
    let hasher = PasswordHasher::new(cost, 1).expect("argon2 parameters");
    let password = "orbit lantern mosaic 42";
    let hash = hasher.hash_blocking(password).expect("hash");

    // One warm-up verification (page faults of the first 19 MiB block), not counted.
    assert!(verify_with(password, &hash));
    let cpu0 = thread_cpu_ns().expect("/proc/thread-self/schedstat");
    let wall0 = Instant::now();
    for _ in 0..n {
        assert!(verify_with(password, &hash));
    }
    let wall = wall0.elapsed().as_secs_f64() / f64::from(n);
    let cpu = (thread_cpu_ns().expect("schedstat") - cpu0) as f64 / 1e9 / f64::from(n);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let bound = cores as f64 / cpu;
    println!(
        "one verification at m={} KiB, t={}, p={}: {:.2} ms CPU, {:.2} ms wall (mean of {n})",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        cpu * 1e3,
        wall * 1e3
    );
    println!("argon2 bound on {cores} cores: {bound:.1} logins/s");
    println!(
        "argon2_cost m_kib={} t={} p={} n={n} cpu_ms={:.3} wall_ms={:.3} cores={cores} bound_per_s={bound:.1}",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        cpu * 1e3,
        wall * 1e3
    );
}
