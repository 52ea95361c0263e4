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
//! Then it runs the same verifications on every core at once and reports how many per second
//! the machine does that way (`all_cores_per_s`): with nothing else running, the most logins
//! it could serve. Where cores share a physical core or memory bandwidth (virtual machines),
//! this is below the bound.
//!
//! The last line is machine-readable: `argon2_cost m_kib=… t=… p=… n=… cpu_ms=… wall_ms=…
//! cores=… bound_per_s=… all_cores_per_s=… all_cores_cpu_ms=…`.

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

    // Every core at once, each thread with its own warm-up first.
    let start = std::sync::Barrier::new(cores);
    let (wall_all, cpu_all) = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    assert!(verify_with(password, &hash));
                    start.wait();
                    let cpu0 = thread_cpu_ns().expect("schedstat");
                    let wall0 = Instant::now();
                    for _ in 0..n {
                        assert!(verify_with(password, &hash));
                    }
                    let cpu = thread_cpu_ns().expect("schedstat") - cpu0;
                    (wall0.elapsed().as_secs_f64(), cpu as f64 / 1e9)
                })
            })
            .collect();
        let done: Vec<(f64, f64)> = runs
            .into_iter()
            .map(|r| r.join().expect("thread"))
            .collect();
        let wall = done.iter().map(|d| d.0).fold(0.0, f64::max);
        let cpu = done.iter().map(|d| d.1).sum::<f64>() / (f64::from(n) * cores as f64);
        (wall, cpu)
    });
    let all_cores = f64::from(n) * cores as f64 / wall_all;
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
        "on {cores} threads at once: {all_cores:.1} verifications/s, {:.2} ms CPU each",
        cpu_all * 1e3
    );
    println!(
        "argon2_cost m_kib={} t={} p={} n={n} cpu_ms={:.3} wall_ms={:.3} cores={cores} bound_per_s={bound:.1} all_cores_per_s={all_cores:.1} all_cores_cpu_ms={:.3}",
        cost.memory_kib,
        cost.iterations,
        cost.parallelism,
        cpu * 1e3,
        wall * 1e3,
        cpu_all * 1e3
    );
}
