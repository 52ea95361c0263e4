//! Two-factor login: TOTP and recovery codes, the jbber story, races, drift and the budget.

use account_recovery::clock::Clock as _;
use account_recovery::security::totp::TotpSecret;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app};

async fn recovery_login(app: &TestApp, mfa: &str, code: &str) -> reqwest::Response {
    app.post(
        "/api/v1/sessions/recovery-code",
        json!({"mfa_token": mfa, "code": code}),
    )
    .await
}

#[tokio::test]
async fn enrollment_needs_the_password_and_a_confirmed_code() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    problem(
        app.post_auth(
            "/api/v1/account/totp",
            &tokens.access,
            json!({"password": "wrong one!"}),
        )
        .await,
        403,
        "invalid_password",
    )
    .await;
    problem(
        app.post_auth(
            "/api/v1/account/totp/confirm",
            &tokens.access,
            json!({"code": "123456"}),
        )
        .await,
        409,
        "two_factor_not_enabled",
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/account/totp",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let enrollment = json(res, 201).await;
    let uri = enrollment["otpauth_uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("otpauth://totp/account-recovery:jbber?"),
        "{uri}"
    );
    assert!(uri.contains("issuer=account-recovery"));
    assert!(
        uri.contains("digits=6") || !uri.contains("digits="),
        "{uri}"
    );
    assert!(enrollment["secret"].as_str().is_some_and(|s| s.len() >= 32));
    // Still off until confirmed: logging in needs no second factor.
    app.login("jbber", PASSWORD).await;
    let account = json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await;
    assert_eq!(account["two_factor_enabled"], false);

    let secret =
        TotpSecret::from_base32(enrollment["secret"].as_str().expect("secret")).expect("secret");
    let wrong = if app.totp_now(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let body = problem(
        app.post_auth(
            "/api/v1/account/totp/confirm",
            &tokens.access,
            json!({"code": wrong}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "invalid_totp_code");
    let confirmed = json(
        app.post_auth(
            "/api/v1/account/totp/confirm",
            &tokens.access,
            json!({"code": app.totp_now(&secret, 0)}),
        )
        .await,
        200,
    )
    .await;
    let codes = confirmed["recovery_codes"].as_array().expect("codes");
    assert_eq!(codes.len(), 8);
    for c in codes {
        let c = c.as_str().expect("code");
        assert_eq!(c.len(), 24, "{c}");
        assert_eq!(c.matches('-').count(), 4);
    }
    let account = json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await;
    assert_eq!(account["two_factor_enabled"], true);
    assert_eq!(account["recovery_codes_remaining"], 8);
    app.smtp
        .wait_for_subject("jb@example.com", "Two-factor authentication is on")
        .await;
    problem(
        app.post_auth(
            "/api/v1/account/totp",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await,
        409,
        "two_factor_already_enabled",
    )
    .await;
}

#[tokio::test]
async fn the_jbber_story_superseded_invalid_used_and_remaining() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let old_codes = user.codes.clone();

    // Regenerate ("renewed the recovery codes at some point and forgot to save the new ones").
    problem(
        app.post_auth(
            "/api/v1/account/recovery-codes",
            &user.tokens.access,
            json!({"password": "wrong password"}),
        )
        .await,
        403,
        "invalid_password",
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/account/recovery-codes",
            &user.tokens.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let fresh = json(res, 201).await;
    let new_codes: Vec<String> = fresh["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(new_codes.len(), 8);
    app.smtp
        .wait_for_subject("jb@example.com", "New recovery codes")
        .await;

    let mfa = app.mfa_token("jbber").await;
    // An old code: superseded, with the date of the replacement.
    let body = problem(
        recovery_login(&app, &mfa, &old_codes[0]).await,
        401,
        "recovery_code_superseded",
    )
    .await;
    let today = app.clock.now().format("%Y-%m-%d").to_string();
    assert!(
        body["detail"].as_str().unwrap_or("").contains(&today),
        "{body}"
    );
    // A wrong one: invalid, in the words people search for.
    let body = problem(
        recovery_login(&app, &mfa, "zzzz-zzzz-zzzz-zzzz-zzzz").await,
        401,
        "invalid_recovery_code",
    )
    .await;
    assert_eq!(body["detail"], "Invalid recovery code");
    // An authenticator code typed in the wrong field.
    let body = problem(
        recovery_login(&app, &mfa, "492 039").await,
        401,
        "invalid_recovery_code",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("authenticator")
    );
    // Empty: 422.
    problem(
        recovery_login(&app, &mfa, " ").await,
        422,
        "validation_failed",
    )
    .await;

    // A current code, typed loosely: logs in with the remaining count and an email.
    let typed = new_codes[0].to_uppercase().replace('-', " ");
    let ok = json(recovery_login(&app, &mfa, &typed).await, 200).await;
    assert_eq!(ok["status"], "authenticated");
    assert_eq!(ok["recovery_codes_remaining"], 7);
    let mail = app
        .smtp
        .wait_for_subject("jb@example.com", "A recovery code was used")
        .await;
    assert!(
        mail.text().contains("7 unused recovery codes left"),
        "{}",
        mail.text()
    );
    // The mfa token was spent with it.
    problem(
        recovery_login(&app, &mfa, &new_codes[1]).await,
        401,
        "mfa_token_invalid",
    )
    .await;

    // Its reuse: already used.
    let mfa = app.mfa_token("jbber").await;
    let body = problem(
        recovery_login(&app, &mfa, &new_codes[0]).await,
        401,
        "recovery_code_already_used",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("Recovery code has been previously used")
    );

    // The status shows counts and where the code was used, never a code.
    let access = ok["access_token"].as_str().expect("access");
    let status = json(
        app.get_auth("/api/v1/account/recovery-codes", access).await,
        200,
    )
    .await;
    assert_eq!(status["total"], 8);
    assert_eq!(status["remaining"], 7);
    assert_eq!(status["used"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["used"][0]["ip"], "127.0.0.1");
    assert!(status["last_used_at"].is_string());
    let text = status.to_string();
    for c in new_codes.iter().chain(old_codes.iter()) {
        assert!(!text.contains(c.as_str()));
    }
    let sessions = json(app.get_auth("/api/v1/account/sessions", access).await, 200).await;
    assert!(
        sessions["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|s| s["current"] == true && s["second_factor"] == "recovery_code")
    );
}

#[tokio::test]
async fn few_codes_left_are_flagged_and_the_mail_urges_regeneration() {
    let app = spawn_app().await;
    let user = app.with_two_factor("ana", "ana@example.com").await;
    let mut last: Value = Value::Null;
    for code in &user.codes[..6] {
        let mfa = app.mfa_token("ana").await;
        last = json(recovery_login(&app, &mfa, code).await, 200).await;
    }
    assert_eq!(last["recovery_codes_remaining"], 2);
    let access = last["access_token"].as_str().expect("access");
    let account = json(app.get_auth("/api/v1/account", access).await, 200).await;
    assert_eq!(account["recovery_codes_low"], true);
    let mail = app
        .smtp
        .wait_for_subject("ana@example.com", "Only 2 recovery codes left")
        .await;
    assert!(mail.text().contains("Generate a new set now"));
}

#[tokio::test]
async fn eight_concurrent_logins_with_one_code_have_exactly_one_winner() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(app.mfa_token("jbber").await);
    }
    let code = user.codes[3].clone();
    let attempts = tokens.iter().map(|mfa| recovery_login(&app, mfa, &code));
    let results = futures_util::future::join_all(attempts).await;
    let mut winners = 0;
    for res in results {
        match res.status().as_u16() {
            200 => winners += 1,
            401 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["code"], "recovery_code_already_used", "{body}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners, 1);
    let used = app.db_texts("SELECT id AS value FROM recovery_codes WHERE used_at IS NOT NULL");
    assert_eq!(used.len(), 1);
}

#[tokio::test]
async fn totp_login_accepts_one_step_of_drift_and_refuses_replays() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let totp = |mfa: String, code: String| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/sessions/totp",
                json!({"mfa_token": mfa, "code": code}),
            )
            .await
        }
    };
    // Move to a fresh step well past the confirmation's.
    app.clock.advance(chrono::Duration::seconds(300));
    let mfa = app.mfa_token("jbber").await;
    for offset in [60, -60] {
        let code = app.totp_now(&user.secret, offset);
        problem(totp(mfa.clone(), code).await, 401, "invalid_totp_code").await;
    }
    let behind = app.totp_now(&user.secret, -30);
    let ok = json(totp(mfa.clone(), behind.clone()).await, 200).await;
    assert_eq!(ok["status"], "authenticated");
    assert!(ok.get("recovery_codes_remaining").is_none());

    // The same code again, in a new login: a replay.
    let mfa = app.mfa_token("jbber").await;
    let body = problem(totp(mfa.clone(), behind).await, 401, "invalid_totp_code").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("already used")
    );
    let ahead = app.totp_now(&user.secret, 30);
    json(totp(mfa, ahead).await, 200).await;

    // An mfa token is no access token, and expires after 5 minutes.
    let mfa = app.mfa_token("jbber").await;
    problem(
        app.get_auth("/api/v1/account", &mfa).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        totp(user.tokens.access.clone(), app.totp_now(&user.secret, 0)).await,
        401,
        "mfa_token_invalid",
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(6));
    problem(
        totp(mfa, app.totp_now(&user.secret, 0)).await,
        401,
        "mfa_token_invalid",
    )
    .await;
}

#[tokio::test]
async fn the_second_factor_budget_gives_429_and_resets_after_its_window() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    app.clock.advance(chrono::Duration::seconds(300));
    let mfa = app.mfa_token("jbber").await;
    for i in 0..10 {
        let res = if i % 2 == 0 {
            app.post(
                "/api/v1/sessions/totp",
                json!({"mfa_token": mfa, "code": "000000"}),
            )
            .await
        } else {
            recovery_login(&app, &mfa, "zzzz-zzzz-zzzz-zzzz-zzzz").await
        };
        assert_eq!(res.status(), 401, "attempt {i}");
    }
    // Past the budget, even the right code is refused.
    let res = recovery_login(&app, &mfa, &user.codes[0]).await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry_after > 0 && retry_after <= 900);
    problem(res, 429, "rate_limited").await;
    let res = app
        .post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": app.totp_now(&user.secret, 0)}),
        )
        .await;
    problem(res, 429, "rate_limited").await;
    let events = app.db_texts(
        "SELECT event_type AS value FROM audit_events WHERE event_type = 'second_factor.rate_limited'",
    );
    assert!(!events.is_empty());

    // After the window, the right code works (the mfa token expired meanwhile: log in again).
    app.clock.advance(chrono::Duration::minutes(16));
    let mfa = app.mfa_token("jbber").await;
    json(recovery_login(&app, &mfa, &user.codes[0]).await, 200).await;
}

#[tokio::test]
async fn disabling_with_a_recovery_code_removes_totp_and_every_code() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    // The owner lost the phone: logs in with a recovery code, then moves to a new phone.
    let mfa = app.mfa_token("jbber").await;
    let session = json(recovery_login(&app, &mfa, &user.codes[0]).await, 200).await;
    let access = session["access_token"]
        .as_str()
        .expect("access")
        .to_string();

    let body = problem(
        app.post_auth(
            "/api/v1/account/totp/disable",
            &access,
            json!({"password": PASSWORD, "code": user.codes[0]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "recovery_code_already_used");
    problem(
        app.post_auth(
            "/api/v1/account/totp/disable",
            &access,
            json!({"password": "wrong password", "code": user.codes[1]}),
        )
        .await,
        403,
        "invalid_password",
    )
    .await;
    let res = app
        .post_auth(
            "/api/v1/account/totp/disable",
            &access,
            json!({"password": PASSWORD, "code": user.codes[1]}),
        )
        .await;
    assert_eq!(res.status(), 204);
    app.smtp
        .wait_for_subject("jb@example.com", "Two-factor authentication was turned off")
        .await;

    let account = json(app.get_auth("/api/v1/account", &access).await, 200).await;
    assert_eq!(account["two_factor_enabled"], false);
    assert_eq!(account["recovery_codes_remaining"], Value::Null);
    problem(
        app.get_auth("/api/v1/account/recovery-codes", &access)
            .await,
        409,
        "two_factor_not_enabled",
    )
    .await;
    assert!(
        app.db_texts("SELECT id AS value FROM recovery_codes")
            .is_empty()
    );
    assert!(
        app.db_texts("SELECT account_id AS value FROM totp_credentials")
            .is_empty()
    );
    // Login needs the password alone again.
    app.login("jbber", PASSWORD).await;
    problem(
        app.post_auth(
            "/api/v1/account/totp/disable",
            &access,
            json!({"password": PASSWORD, "code": user.codes[2]}),
        )
        .await,
        409,
        "two_factor_not_enabled",
    )
    .await;
    // And 2FA can be set up again on the new phone.
    json(
        app.post_auth(
            "/api/v1/account/totp",
            &access,
            json!({"password": PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    let _ = user.tokens;
}

#[tokio::test]
async fn disabling_with_a_current_totp_code_works_too() {
    let app = spawn_app().await;
    let user = app.with_two_factor("ana", "ana@example.com").await;
    let res = app
        .post_auth(
            "/api/v1/account/totp/disable",
            &user.tokens.access,
            json!({"password": PASSWORD, "code": app.totp_now(&user.secret, 0)}),
        )
        .await;
    assert_eq!(res.status(), 204);
}
