//! Does `POST /api/v1/password-resets` take the same time for a known and an unknown login?
//!
//! Spawns the real app in-process (default argon2 settings, SMTP to a loopback sink, SQLite, or
//! PostgreSQL when `TEST_POSTGRES_URL` is set), raises the reset limits through the
//! configuration map so every known request really sends a mail, then times the requests for
//! a known and an unknown login, interleaved and alternating which goes first. Prints both
//! medians and their ratio; the target is 0.9–1.1.
//!
//! ```sh
//! cargo bench --bench password_reset                 # 200 of each
//! BENCH_ROUNDS=500 cargo bench --bench password_reset
//! ```

#[path = "../tests/api/support/mod.rs"]
#[expect(dead_code, reason = "the benchmark uses only part of the test harness")]
mod support;

use std::time::{Duration, Instant};

use support::{PASSWORD, TestApp};

const KNOWN: &str = "jb@example.com";
const UNKNOWN: &str = "nobody@example.com";
const WARM_UP: usize = 30;
const TARGET: std::ops::RangeInclusive<f64> = 0.9..=1.1;

fn main() -> std::process::ExitCode {
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(200);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(rounds))
}

async fn run(rounds: usize) -> std::process::ExitCode {
    let app = support::spawn_app_with(|env| {
        // Default argon2 cost, as in production.
        for key in [
            "ARGON2_MEMORY_KIB",
            "ARGON2_ITERATIONS",
            "ARGON2_PARALLELISM",
        ] {
            env.remove(key);
        }
        // Every request counts and every known one mails: the limits must not cut in.
        env.insert(
            "RATE_LIMIT_PASSWORD_RESET_EMAILS".into(),
            "1000000/1h".into(),
        );
        env.insert(
            "RATE_LIMIT_PASSWORD_RESET_PER_IP".into(),
            "1000000/1h".into(),
        );
    })
    .await;
    app.verified_user("jbber", KNOWN, PASSWORD).await;
    let backend = if app.db.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };

    for _ in 0..WARM_UP {
        time(&app, KNOWN).await;
        time(&app, UNKNOWN).await;
    }
    let mut known = Vec::with_capacity(rounds);
    let mut unknown = Vec::with_capacity(rounds);
    for i in 0..rounds {
        if i % 2 == 0 {
            known.push(time(&app, KNOWN).await);
            unknown.push(time(&app, UNKNOWN).await);
        } else {
            unknown.push(time(&app, UNKNOWN).await);
            known.push(time(&app, KNOWN).await);
        }
    }
    let mails = app.smtp.all().len();

    let (k, u) = (median(&mut known), median(&mut unknown));
    let ratio = k.as_secs_f64() / u.as_secs_f64();
    println!("POST /api/v1/password-resets, {rounds} of each, interleaved, on {backend}");
    println!(
        "  known login:   median {:>8.1} µs   p10 {:>8.1} µs   p90 {:>8.1} µs",
        micros(k),
        micros(percentile(&known, 10)),
        micros(percentile(&known, 90)),
    );
    println!(
        "  unknown login: median {:>8.1} µs   p10 {:>8.1} µs   p90 {:>8.1} µs",
        micros(u),
        micros(percentile(&unknown, 10)),
        micros(percentile(&unknown, 90)),
    );
    println!("  ratio known/unknown: {ratio:.3} (target 0.9–1.1)");
    println!("  mails delivered so far: {mails}");
    if TARGET.contains(&ratio) {
        println!("  within target");
        std::process::ExitCode::SUCCESS
    } else {
        println!("  OUTSIDE TARGET");
        std::process::ExitCode::FAILURE
    }
}

/// The time of one request, from send to the whole body read; it must be a 202.
async fn time(app: &TestApp, login: &str) -> Duration {
    let started = Instant::now();
    let res = app
        .post(
            "/api/v1/password-resets",
            serde_json::json!({"login": login}),
        )
        .await;
    let status = res.status();
    let body = res.bytes().await;
    let elapsed = started.elapsed();
    assert_eq!(status, 202, "{body:?}");
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    percentile(samples, 50)
}

/// The `p`th percentile of sorted samples.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let mut s = sorted.to_vec();
    s.sort_unstable();
    s.get((s.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
