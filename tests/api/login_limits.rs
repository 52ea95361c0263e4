//! Failed-login limits: per normalised login text (the same for known and unknown logins) and
//! per client IP, answered with a 429 `rate_limited` and `Retry-After`.

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app_with};

/// Trusts the loopback peer as a proxy, so a test can pick the client IP with X-Forwarded-For.
fn behind_proxy(env: &mut std::collections::HashMap<String, String>) {
    env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
}

impl TestApp {
    async fn login_from(&self, ip: &str, login: &str, password: &str) -> Response {
        self.http
            .post(self.url("/api/v1/sessions"))
            .header("X-Forwarded-For", ip)
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .expect("request")
    }
}

fn retry_after(res: &Response) -> u64 {
    res.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

/// Asserts a 429 with a sensible Retry-After; returns the body's bytes.
async fn limited(res: Response, window_secs: u64) -> Vec<u8> {
    assert_eq!(res.status(), 429);
    let secs = retry_after(&res);
    assert!((1..=window_secs).contains(&secs), "Retry-After {secs}");
    let bytes = res.bytes().await.expect("body").to_vec();
    let body: Value = serde_json::from_slice(&bytes).expect("problem JSON");
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
    bytes
}

#[tokio::test]
async fn the_21st_failure_in_an_hour_is_limited_alike_for_known_and_unknown_logins() {
    let app = spawn_app_with(behind_proxy).await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let mut bodies = Vec::new();
    for login in ["jbber", "nobody-here"] {
        for i in 0..20 {
            problem(
                app.login_from("203.0.113.1", login, &format!("wrong password {i}"))
                    .await,
                401,
                "invalid_credentials",
            )
            .await;
        }
        // Case and spaces do not make a new login text.
        let res = app
            .login_from("203.0.113.1", &format!("  {}  ", login.to_uppercase()), "x")
            .await;
        bodies.push(limited(res, 3600).await);
    }
    assert_eq!(
        bodies[0], bodies[1],
        "known and unknown logins answer alike"
    );

    // Limited before the password is looked at: the right one is refused too, and another IP
    // is still limited on the login text.
    limited(app.login_from("203.0.113.1", "jbber", PASSWORD).await, 3600).await;
    limited(
        app.login_from("198.51.100.7", "jbber", PASSWORD).await,
        3600,
    )
    .await;
    limited(
        app.login_from("198.51.100.7", "nobody-here", "x").await,
        3600,
    )
    .await;
    // Other login texts are not affected.
    problem(
        app.login_from("198.51.100.7", "somebody-else", "x").await,
        401,
        "invalid_credentials",
    )
    .await;

    // An hour later the oldest failures have left the window.
    app.clock.advance(chrono::Duration::seconds(3601));
    let body = json(app.login_from("203.0.113.1", "jbber", PASSWORD).await, 200).await;
    assert_eq!(body["status"], "authenticated");
    problem(
        app.login_from("203.0.113.1", "nobody-here", "x").await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn a_right_password_clears_the_login_texts_failures_and_limited_attempts_do_not_count() {
    let app = spawn_app_with(|env| {
        behind_proxy(env);
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "3/1h".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for _ in 0..2 {
        problem(
            app.login_from("203.0.113.1", "jbber", "wrong").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    json(app.login_from("203.0.113.1", "jbber", PASSWORD).await, 200).await;
    // The count starts again: three more failures before the limit.
    for _ in 0..3 {
        problem(
            app.login_from("203.0.113.1", "jbber", "wrong").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let res = app.login_from("203.0.113.1", "jbber", "wrong").await;
    let first = retry_after(&res);
    limited(res, 3600).await;
    // Refused attempts are not failures: ten minutes on (less than the 20 minutes one attempt
    // occupies in a 3/1h limit), still limited, and the wait shrank by those ten minutes.
    app.clock.advance(chrono::Duration::minutes(10));
    for _ in 0..5 {
        limited(app.login_from("203.0.113.1", "jbber", "wrong").await, 3600).await;
    }
    let res = app.login_from("203.0.113.1", "jbber", "wrong").await;
    assert!(
        retry_after(&res) <= first - 600 + 1,
        "{} after {first}",
        retry_after(&res)
    );
    limited(res, 3600).await;
    // Once the wait is over, one more attempt is allowed (the limit refills at one attempt per
    // window / count), not a whole new burst.
    app.clock.advance(chrono::Duration::seconds(
        i64::try_from(first).unwrap_or(0) - 600 + 1,
    ));
    problem(
        app.login_from("203.0.113.1", "jbber", "wrong").await,
        401,
        "invalid_credentials",
    )
    .await;
    limited(app.login_from("203.0.113.1", "jbber", "wrong").await, 3600).await;
}

#[tokio::test]
async fn failures_from_one_ip_are_limited_across_login_texts() {
    let app = spawn_app_with(|env| {
        behind_proxy(env);
        env.insert("RATE_LIMIT_LOGIN_PER_IP".into(), "5/15m".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for i in 0..5 {
        problem(
            app.login_from("203.0.113.1", &format!("user-{i}"), "wrong")
                .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    limited(app.login_from("203.0.113.1", "user-9", "wrong").await, 900).await;
    limited(app.login_from("203.0.113.1", "jbber", PASSWORD).await, 900).await;
    // Another IP is not limited, and neither are the login texts themselves.
    json(app.login_from("198.51.100.7", "jbber", PASSWORD).await, 200).await;
    problem(
        app.login_from("198.51.100.7", "user-0", "wrong").await,
        401,
        "invalid_credentials",
    )
    .await;
    // After the window the IP may try again.
    app.clock
        .advance(chrono::Duration::minutes(15) + chrono::Duration::seconds(1));
    json(app.login_from("203.0.113.1", "jbber", PASSWORD).await, 200).await;
}

#[tokio::test]
async fn the_socket_address_counts_when_the_peer_is_no_trusted_proxy() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_LOGIN_PER_IP".into(), "2/15m".into());
    })
    .await;
    for (i, ip) in ["203.0.113.1", "203.0.113.2"].iter().enumerate() {
        problem(
            app.login_from(ip, &format!("user-{i}"), "wrong").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // A forged X-Forwarded-For does not buy a new budget.
    limited(app.login_from("203.0.113.3", "user-3", "wrong").await, 900).await;
}

#[tokio::test]
async fn a_locked_out_account_can_still_reset_its_password_and_file_a_recovery_request() {
    let app = crate::support::spawn_app_with(|env| {
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "3/1h".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", crate::support::PASSWORD)
        .await;
    for _ in 0..3 {
        let res = app
            .post(
                "/api/v1/sessions",
                serde_json::json!({"login": "jbber", "password": "not it at all"}),
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = app
        .post(
            "/api/v1/sessions",
            serde_json::json!({"login": "jbber", "password": crate::support::PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 429, "the account is locked out");

    let res = app
        .post(
            "/api/v1/password-resets",
            serde_json::json!({"login": "jbber"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mail = app.smtp.wait_for_subject("jb@example.com", "eset").await;
    assert!(mail.link_param("reset-password", "token").is_some());

    let res = app
        .post(
            "/api/v1/recovery-requests",
            serde_json::json!({
                "username": "jbber", "contact_email": "jb.new@example.org",
                "reason": "Locked out after too many attempts; I lost my phone too.",
                "recovery_codes_lost": true, "code_of_conduct_accepted": true,
                "processing_time_acknowledged": true
            }),
        )
        .await;
    assert_eq!(res.status(), 202);
}
