//! Login latency at the default argon2 cost (release build): `cargo bench --bench login`.
//!
//! Measures, in one run and interleaved so that machine noise hits all alike:
//! - one argon2id verification alone (m=19456 KiB, t=2, p=1);
//! - a password login through HTTP (POST /api/v1/sessions, no 2FA);
//! - the password step of an account with 2FA (answers `mfa_required`);
//! - the recovery-code step (POST /api/v1/sessions/recovery-code) on a set of 8 codes with one
//!   superseded set kept.
//!
//! It prints the medians and the ratios the issues ask for. The app runs in this process with
//! its real HTTP server, database (SQLite, or PostgreSQL with TEST_POSTGRES_URL) and SMTP sink.

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/api/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use account_recovery::security::password::verify_with;
use serde_json::json;
use support::{PASSWORD, TestApp, json};

const ROUNDS: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn two_factor_account(app: &TestApp, name: &str) -> Vec<String> {
    let tokens = app
        .with_two_factor(name, &format!("{name}@example.com"))
        .await
        .tokens;
    // One superseded set kept, as the issue asks.
    let fresh = json(
        app.post_auth(
            "/api/v1/account/recovery-codes",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    fresh["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let app = support::spawn_app_with(|env| {
            for key in [
                "ARGON2_MEMORY_KIB",
                "ARGON2_ITERATIONS",
                "ARGON2_PARALLELISM",
            ] {
                env.remove(key);
            }
            env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "100000/1h".into());
            env.insert("RATE_LIMIT_LOGIN_PER_IP".into(), "100000/1h".into());
            env.insert("RATE_LIMIT_SECOND_FACTOR".into(), "100000/1h".into());
        })
        .await;
        app.verified_user("plain", "plain@example.com", PASSWORD)
            .await;
        let hash = app
            .db_texts("SELECT password_hash AS value FROM accounts WHERE username = 'plain'")[0]
            .clone();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );

        let accounts = ROUNDS.div_ceil(8);
        let mut codes = Vec::new();
        for i in 0..accounts {
            let name = format!("mfa{i}");
            for c in two_factor_account(&app, &name).await {
                codes.push((name.clone(), c));
            }
        }

        let (mut verify, mut plain, mut step1, mut step2) = (vec![], vec![], vec![], vec![]);
        for (name, code) in codes.iter().take(ROUNDS) {
            let t = Instant::now();
            let pw = PASSWORD.to_string();
            let h = hash.clone();
            assert!(
                tokio::task::spawn_blocking(move || verify_with(&pw, &h))
                    .await
                    .expect("task")
            );
            verify.push(t.elapsed());

            let t = Instant::now();
            let res = app
                .post(
                    "/api/v1/sessions",
                    json!({"login": "plain", "password": PASSWORD}),
                )
                .await;
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("body");
            plain.push(t.elapsed());

            let t = Instant::now();
            let body = json(
                app.post(
                    "/api/v1/sessions",
                    json!({"login": name, "password": PASSWORD}),
                )
                .await,
                200,
            )
            .await;
            step1.push(t.elapsed());
            let mfa = body["mfa_token"].as_str().expect("mfa").to_string();

            let t = Instant::now();
            let res = app
                .post(
                    "/api/v1/sessions/recovery-code",
                    json!({"mfa_token": mfa, "code": code}),
                )
                .await;
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("body");
            step2.push(t.elapsed());
        }
        let (v, p, s1, s2) = (median(verify), median(plain), median(step1), median(step2));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "backend: {}",
            if app.db.is_postgres() {
                "postgres"
            } else {
                "sqlite"
            }
        );
        println!("rounds: {ROUNDS} (interleaved), argon2id m=19456 KiB t=2 p=1");
        println!("argon2 verification alone      median {:>7.2} ms", ms(v));
        println!(
            "password login (no 2FA)        median {:>7.2} ms  ({:.2} x one verification)",
            ms(p),
            ms(p) / ms(v)
        );
        println!("password step (2FA account)    median {:>7.2} ms", ms(s1));
        println!("recovery-code step             median {:>7.2} ms", ms(s2));
        println!(
            "recovery-code step / password step = {:.2} (target <= 1.3)",
            ms(s2) / ms(s1)
        );
    });
}
