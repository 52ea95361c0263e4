//! Login timing: an unknown login and a wrong password must take the same time, or the
//! latency tells which accounts exist (issue #8: medians within ±10 %).
//!
//! Runs the real app (release build, default argon2 cost, rate limits raised) and sends the two
//! kinds of failed login interleaved, so both see the same machine load:
//!
//! ```text
//! cargo bench --bench login_timing
//! LOGIN_TIMING_SAMPLES=300 cargo bench --bench login_timing
//! ```

#[allow(
    dead_code,
    reason = "the test harness is shared with tests/api; the benchmark uses a part of it"
)]
#[path = "../tests/api/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use support::{PASSWORD, TestApp, spawn_app_with};

const DEFAULT_SAMPLES: usize = 100;
const WARMUP: usize = 10;

async fn timed_login(app: &TestApp, login: &str) -> Duration {
    let started = Instant::now();
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": login, "password": "not the password at all"}),
        )
        .await;
    let status = res.status().as_u16();
    let _ = res.bytes().await;
    let elapsed = started.elapsed();
    assert_eq!(status, 401, "a failed login must answer 401");
    elapsed
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let mid = samples.len() / 2;
    if samples.len().is_multiple_of(2) {
        (samples[mid - 1] + samples[mid]) / 2
    } else {
        samples[mid]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let samples: usize = std::env::var("LOGIN_TIMING_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_SAMPLES);
    let app = spawn_app_with(|env| {
        // The production cost, not the tests' cheap one.
        for key in [
            "ARGON2_MEMORY_KIB",
            "ARGON2_ITERATIONS",
            "ARGON2_PARALLELISM",
        ] {
            env.remove(key);
        }
        for key in ["RATE_LIMIT_LOGIN_PER_ACCOUNT", "RATE_LIMIT_LOGIN_PER_IP"] {
            env.insert(key.into(), "1000000/1h".into());
        }
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;

    for _ in 0..WARMUP {
        timed_login(&app, "nobody-at-all").await;
        timed_login(&app, "jbber").await;
    }
    let mut unknown = Vec::with_capacity(samples);
    let mut wrong = Vec::with_capacity(samples);
    for i in 0..samples {
        // Alternate which goes first, so neither always follows the other.
        if i % 2 == 0 {
            unknown.push(timed_login(&app, "nobody-at-all").await);
            wrong.push(timed_login(&app, "jbber").await);
        } else {
            wrong.push(timed_login(&app, "jbber").await);
            unknown.push(timed_login(&app, "nobody-at-all").await);
        }
    }
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    let ratio = u.as_secs_f64() / w.as_secs_f64();
    let backend = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("login_timing ({backend}, {samples} samples each, interleaved, default argon2 cost)");
    println!("  unknown login   median {:8.2} ms", ms(u));
    println!("  wrong password  median {:8.2} ms", ms(w));
    println!(
        "  ratio unknown/wrong     {ratio:.3} ({})",
        if (0.9..=1.1).contains(&ratio) {
            "within ±10 %"
        } else {
            "OUTSIDE ±10 %"
        }
    );
}
