//! The second login step with a passkey against the same step with a TOTP code (release build):
//! `cargo bench --bench passkey_login`.
//!
//! Measures, in one run and interleaved so that machine noise hits both alike, the latency of
//! finishing an mfa challenge through HTTP:
//! - TOTP: `POST /api/v1/sessions/totp` with the code of the app's clock;
//! - passkey: `POST /api/v1/sessions/webauthn/options` then `POST /api/v1/sessions/webauthn`
//!   with an assertion of the tests' software authenticator (P-256); both requests are timed,
//!   separately and together, the signing in the "browser" is not.
//!
//! The app runs in this process with its real HTTP server, database (SQLite, or PostgreSQL with
//! TEST_POSTGRES_URL) and SMTP sink, at the default argon2 cost (the password step is not timed).

#[allow(dead_code, reason = "the bench uses part of the test harness")]
#[path = "../tests/api/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::passkey::SoftAuthenticator;
use support::{PASSWORD, json};

const ROUNDS: usize = 40;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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
        let totp_user = app.with_two_factor("totp", "totp@example.com").await;
        let tokens = app
            .verified_user("passkey", "passkey@example.com", PASSWORD)
            .await;
        let mut authenticator = SoftAuthenticator::new();
        app.add_passkey(&tokens, &authenticator, "bench key").await;

        let (mut totp, mut options, mut finish, mut passkey) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            // A TOTP code is accepted once per 30-second step: each round has its own step.
            app.clock.advance(chrono::Duration::seconds(30));
            let mfa = app.mfa_required("totp").await;
            let token = mfa["mfa_token"].as_str().expect("mfa token").to_string();
            let code = app.totp_now(&totp_user.secret, 0);
            let t = Instant::now();
            let res = app
                .post(
                    "/api/v1/sessions/totp",
                    json!({"mfa_token": token, "code": code}),
                )
                .await;
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("body");
            totp.push(t.elapsed());

            let mfa = app.mfa_required("passkey").await;
            let token = mfa["mfa_token"].as_str().expect("mfa token").to_string();
            let t = Instant::now();
            let body = json(
                app.post(
                    "/api/v1/sessions/webauthn/options",
                    json!({"mfa_token": token}),
                )
                .await,
                200,
            )
            .await;
            let took_options = t.elapsed();
            let assertion = authenticator.assert(&body["options"]);
            let t = Instant::now();
            let res = app.webauthn_login(&token, assertion).await;
            assert_eq!(res.status(), 200);
            res.bytes().await.expect("body");
            let took_finish = t.elapsed();
            options.push(took_options);
            finish.push(took_finish);
            passkey.push(took_options + took_finish);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (t, o, f, p) = (
            median(totp),
            median(options),
            median(finish),
            median(passkey),
        );
        println!(
            "backend: {}",
            if app.db.is_postgres() {
                "postgres"
            } else {
                "sqlite"
            }
        );
        println!("rounds: {ROUNDS} (interleaved)");
        println!("TOTP step                      median {:>7.2} ms", ms(t));
        println!("passkey options                median {:>7.2} ms", ms(o));
        println!("passkey finish                 median {:>7.2} ms", ms(f));
        println!("passkey step (both requests)   median {:>7.2} ms", ms(p));
        println!(
            "passkey step / TOTP step = {:.2}; passkey finish / TOTP step = {:.2}",
            ms(p) / ms(t),
            ms(f) / ms(t)
        );
    });
}
