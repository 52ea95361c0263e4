//! Limits under an adversary: bursts of parallel requests at every guessing limit get at most
//! the limit's worth of evaluations and 429s for the rest; the re-authentication budget; a
//! completed password reset ends a lockout; a client behind a trusted proxy cannot pick its
//! address with a header line of its own.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with};

/// Sends `bodies` to `path` all at once; answers the status codes, in any order.
async fn burst(app: &TestApp, path: &str, bodies: Vec<Value>) -> Vec<u16> {
    let requests = bodies.into_iter().map(|body| {
        let (http, url) = (app.http.clone(), app.url(path));
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    });
    join_all(requests).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_hundred_parallel_wrong_passwords_get_the_limits_worth_of_verifications() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let bodies = (0..100)
        .map(|i| json!({"login": "jbber", "password": format!("wrong password {i}")}))
        .collect();
    let statuses = burst(&app, "/api/v1/sessions", bodies).await;
    // RATE_LIMIT_LOGIN_PER_ACCOUNT is 20/1h by default.
    assert_eq!(count(&statuses, 401), 20, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 80, "{statuses:?}");
}

#[tokio::test]
async fn parallel_wrong_logins_from_one_address_stop_at_the_address_limit() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_LOGIN_PER_IP".into(), "10/15m".into());
    })
    .await;
    let bodies = (0..60)
        .map(|i| json!({"login": format!("user-{i}"), "password": "wrong password"}))
        .collect();
    let statuses = burst(&app, "/api/v1/sessions", bodies).await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 50, "{statuses:?}");
}

#[tokio::test]
async fn parallel_wrong_totp_and_recovery_codes_stop_at_the_second_factor_budget() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let mfa = app.mfa_token("jbber").await;
    // One mfa token serves every attempt: a wrong code does not use it up.
    let bodies = (0..100)
        .map(|i| json!({"mfa_token": mfa, "code": format!("{:06}", (i * 7919) % 1_000_000)}))
        .collect();
    let statuses = burst(&app, "/api/v1/sessions/totp", bodies).await;
    // RATE_LIMIT_SECOND_FACTOR is 10/15m by default; a code that happened to be right would
    // have been a 200, which the test would see.
    assert_eq!(
        count(&statuses, 401) + count(&statuses, 200),
        10,
        "{statuses:?}"
    );
    assert_eq!(count(&statuses, 429), 90, "{statuses:?}");

    // The budget is per account and shared by both factors: a quarter of an hour later it is
    // full again, and recovery codes get no more than TOTP codes did.
    app.clock.advance(chrono::Duration::minutes(16));
    let mfa = app.mfa_token("jbber").await;
    let bodies = (0..100)
        .map(|i| json!({"mfa_token": mfa, "code": format!("zzzz-zzzz-zzzz-zzzz-{i:04}")}))
        .collect();
    let statuses = burst(&app, "/api/v1/sessions/recovery-code", bodies).await;
    assert_eq!(count(&statuses, 401), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 90, "{statuses:?}");
    // Past the budget even a right code waits, and it is not spent.
    problem(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[0]}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn the_eleventh_wrong_current_password_is_a_429_and_failures_are_audited() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for i in 0..10 {
        problem(
            app.put_auth(
                "/api/v1/account/password",
                &tokens.access,
                json!({"current_password": format!("guess {i}"), "new_password": "velvet compass harbor 19"}),
            )
            .await,
            403,
            "invalid_password",
        )
        .await;
    }
    // The budget is shared by every re-authentication: TOTP enrollment with the right
    // password is refused too, without the password being looked at.
    problem(
        app.post_auth(
            "/api/v1/account/totp",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    problem(
        app.put_auth(
            "/api/v1/account/password",
            &tokens.access,
            json!({"current_password": "guess 10", "new_password": "velvet compass harbor 19"}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    let failures = app
        .db_texts("SELECT details AS value FROM audit_events WHERE event_type = 'reauth.failed'");
    assert_eq!(failures.len(), 10, "{failures:?}");
    assert!(failures.iter().all(|d| d.contains("password")));

    // A burst from a stolen token gets no more: after the window, 30 parallel guesses get the
    // budget's 10 verifications.
    app.clock.advance(chrono::Duration::minutes(16));
    let tokens = app.login("jbber", PASSWORD).await;
    let guesses = (0..30).map(|i| {
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/v1/account/password"),
            tokens.access.clone(),
        );
        async move {
            http.put(url)
                .bearer_auth(token)
                .json(&json!({"current_password": format!("burst {i}"), "new_password": "velvet compass harbor 19"}))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(guesses).await;
    assert_eq!(count(&statuses, 403), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 20, "{statuses:?}");
}

#[tokio::test]
async fn a_completed_password_reset_ends_the_lockout() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "3/1h".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for _ in 0..3 {
        problem(
            app.post(
                "/api/v1/sessions",
                json!({"login": "jbber", "password": "an attacker's guess"}),
            )
            .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;

    app.reset_password_by_mail(
        "jb@example.com",
        "jb@example.com",
        "velvet compass harbor 19",
    )
    .await;
    // At once, by username and by email.
    app.login("jbber", "velvet compass harbor 19").await;
    app.login("jb@example.com", "velvet compass harbor 19")
        .await;
}

#[tokio::test]
async fn a_client_behind_a_trusted_proxy_cannot_choose_its_address_with_a_header_line() {
    let app = spawn_app_with(|env| {
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
        env.insert("RATE_LIMIT_PASSWORD_RESET_PER_IP".into(), "5/1h".into());
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        // The client sends a line of its own; the proxy appends the address it saw as a
        // second line. Only the rightmost untrusted entry over all lines counts.
        let res = app
            .http
            .post(app.url("/api/v1/password-resets"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .header("X-Forwarded-For", "203.0.113.9")
            .json(&json!({"login": format!("user-{i}")}))
            .send()
            .await
            .expect("request");
        statuses.push(res.status().as_u16());
    }
    assert_eq!(count(&statuses, 202), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 7, "{statuses:?}");
    // Another real client behind the same proxy is not affected.
    let res = app
        .http
        .post(app.url("/api/v1/password-resets"))
        .header("X-Forwarded-For", "203.0.113.10")
        .json(&json!({"login": "someone"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
}

/// SQLite's writer runs the writes waiting at once in one transaction, each in a savepoint of
/// its own: the refused ones (429, rolled back) must leave nothing and take nothing of the
/// others with them, and every answered one must be stored. (PostgreSQL runs each in its own
/// transaction; the same must hold.)
#[tokio::test]
async fn a_burst_of_resets_past_the_address_limit_stores_exactly_the_answered_ones() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_PASSWORD_RESET_PER_IP".into(), "12/1h".into());
    })
    .await;
    let bodies = (0..80)
        .map(|i| json!({"login": format!("nobody-{i}")}))
        .collect();
    let statuses = burst(&app, "/api/v1/password-resets", bodies).await;
    assert_eq!(count(&statuses, 202), 12, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 68, "{statuses:?}");
    let events = app.db_texts(
        "SELECT event_type AS value FROM audit_events WHERE event_type = 'password.reset_requested'",
    );
    assert_eq!(
        events.len(),
        12,
        "one event per answered request: {events:?}"
    );
    // The bucket holds the twelve: the next request from the address is refused too.
    let res = app
        .post("/api/v1/password-resets", json!({"login": "nobody-else"}))
        .await;
    problem(res, 429, "rate_limited").await;
}

/// The address's counter of recovery requests is taken last in the request's transaction: a
/// burst past it must still store exactly the answered requests, each with its tracking mail,
/// and nothing of the refused ones.
#[tokio::test]
async fn a_burst_of_recovery_requests_past_the_address_limit_stores_exactly_the_answered_ones() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_RECOVERY_REQUEST_PER_IP".into(), "7/1h".into());
    })
    .await;
    let bodies = (0..40)
        .map(|i| {
            crate::support::recovery::submission(
                &format!("someone{i}"),
                &format!("someone{i}@example.net"),
            )
        })
        .collect();
    let statuses = burst(&app, "/api/v1/recovery-requests", bodies).await;
    assert_eq!(count(&statuses, 202), 7, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 33, "{statuses:?}");
    assert_eq!(
        app.db_texts("SELECT id AS value FROM recovery_requests")
            .len(),
        7
    );
    assert_eq!(
        app.db_texts("SELECT id AS value FROM outbox WHERE kind = 'recovery_tracking'")
            .len(),
        7,
        "one tracking mail per stored request"
    );
    let res = app
        .post(
            "/api/v1/recovery-requests",
            crate::support::recovery::submission("someone-else", "else@example.net"),
        )
        .await;
    problem(res, 429, "rate_limited").await;
}
