//! Devices (OWASP's device cookies): device tokens, the owner's device list, a lockout that
//! spares the owner's known device, and new-device confirmation after a recovery-code login.
//! These tests run with the service's default `NEW_DEVICE_CONFIRMATION` (`recovery_code`).

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app_with};

/// The service's defaults, not the test harness's: new-device confirmation after recovery
/// codes.
fn defaults(env: &mut std::collections::HashMap<String, String>) {
    env.remove("NEW_DEVICE_CONFIRMATION");
}

/// POSTs `body` to `path` as a client holding `device` (its `X-Device-Token`), if any.
async fn post_from(app: &TestApp, device: Option<&str>, path: &str, body: Value) -> Response {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(token) = device {
        req = req.header("X-Device-Token", token);
    }
    req.send().await.expect("request")
}

fn device_token(body: &Value) -> String {
    body["device_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no device_token in {body}"))
        .to_string()
}

#[tokio::test]
async fn a_login_answers_a_device_token_once_and_the_owner_lists_and_forgets_devices() {
    let app = spawn_app_with(defaults).await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let login = json!({"login": "jbber", "password": PASSWORD});

    let first = json(
        post_from(&app, None, "/api/v1/sessions", login.clone()).await,
        200,
    )
    .await;
    let device = device_token(&first);
    assert!(device.len() >= 22, "at least 128 bits: {device}");
    // Presented again, the device is known: no new token.
    let again = json(
        post_from(&app, Some(&device), "/api/v1/sessions", login.clone()).await,
        200,
    )
    .await;
    assert!(again.get("device_token").is_none(), "{again}");
    // A token of another account, or garbage, is no device of this one.
    let other = json(
        post_from(
            &app,
            Some("not-a-device"),
            "/api/v1/sessions",
            login.clone(),
        )
        .await,
        200,
    )
    .await;
    device_token(&other);

    let access = again["access_token"].as_str().expect("access");
    let list = json(app.get_auth("/api/v1/account/devices", access).await, 200).await;
    let items = list["items"].as_array().expect("items");
    // verified_user's own login, the first login here, and the garbage one: three devices.
    assert_eq!(items.len(), 3, "{list}");
    let current: Vec<&Value> = items.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1, "{list}");
    let id = current[0]["id"].as_str().expect("id").to_string();

    // Forgotten, it becomes a new device on its next login.
    let res = app
        .delete_auth(&format!("/api/v1/account/devices/{id}"), access)
        .await;
    assert_eq!(res.status(), 204);
    problem(
        app.delete_auth(&format!("/api/v1/account/devices/{id}"), access)
            .await,
        404,
        "not_found",
    )
    .await;
    let after = json(
        post_from(&app, Some(&device), "/api/v1/sessions", login).await,
        200,
    )
    .await;
    assert_ne!(device_token(&after), device);
    // Another account's device ids are not found either.
    let stranger = app
        .verified_user("stranger", "st@example.com", PASSWORD)
        .await;
    let list = json(
        app.get_auth("/api/v1/account/devices", &stranger.access)
            .await,
        200,
    )
    .await;
    let theirs = list["items"][0]["id"].as_str().expect("id").to_string();
    problem(
        app.delete_auth(&format!("/api/v1/account/devices/{theirs}"), access)
            .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_attackers_failures_never_lock_the_owners_known_device_out() {
    let app = spawn_app_with(|env| {
        defaults(env);
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "5/1h".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let owner = device_token(
        &json(
            post_from(
                &app,
                None,
                "/api/v1/sessions",
                json!({"login": "jbber", "password": PASSWORD}),
            )
            .await,
            200,
        )
        .await,
    );

    // The attacker, from devices the account does not know, spends the untrusted budget.
    for i in 0..5 {
        problem(
            post_from(
                &app,
                None,
                "/api/v1/sessions",
                json!({"login": "jbber", "password": format!("guess {i}")}),
            )
            .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        post_from(
            &app,
            None,
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    // The owner's device logs in at once.
    let body = json(
        post_from(
            &app,
            Some(&owner),
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "authenticated");
    // A stolen device token buys no more guesses than the device's own budget.
    for i in 0..5 {
        problem(
            post_from(
                &app,
                Some(&owner),
                "/api/v1/sessions",
                json!({"login": "jbber", "password": format!("device guess {i}")}),
            )
            .await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    problem(
        post_from(
            &app,
            Some(&owner),
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "one more"}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn a_recovery_code_login_from_a_new_device_waits_for_the_emailed_link() {
    let app = spawn_app_with(defaults).await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let mfa = app.mfa_token("jbber").await;

    let body = json(
        post_from(
            &app,
            None,
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[0]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "email_confirmation_required", "{body}");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("access_token").is_none(), "no tokens yet: {body}");
    assert_eq!(body["recovery_codes_remaining"], 7, "the code is spent");

    let mail = app
        .smtp
        .wait_for_subject("jb@example.com", "Confirm a new sign-in")
        .await;
    let token = mail.link_param("confirm-login", "token").expect("link");
    let session = json(
        post_from(
            &app,
            None,
            "/api/v1/sessions/confirm",
            json!({"token": token}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(session["status"], "authenticated");
    let device = device_token(&session);
    json(
        app.get_auth(
            "/api/v1/account",
            session["access_token"].as_str().expect("access"),
        )
        .await,
        200,
    )
    .await;
    // Single use.
    problem(
        post_from(
            &app,
            None,
            "/api/v1/sessions/confirm",
            json!({"token": token}),
        )
        .await,
        400,
        "invalid_token",
    )
    .await;

    // From the device it now knows, a recovery-code login signs in at once.
    let mfa = app.mfa_token("jbber").await;
    let body = json(
        post_from(
            &app,
            Some(&device),
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[1]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "authenticated", "{body}");
    assert!(body.get("device_token").is_none(), "{body}");

    // A TOTP login from a new device is not held under the default policy.
    let mfa = app.mfa_token("jbber").await;
    let body = json(
        post_from(
            &app,
            None,
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": app.totp_now(&user.secret, 0)}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "authenticated", "{body}");
}

#[tokio::test]
async fn an_expired_confirmation_link_is_refused() {
    let app = spawn_app_with(defaults).await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let mfa = app.mfa_token("jbber").await;
    json(
        post_from(
            &app,
            None,
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[0]}),
        )
        .await,
        200,
    )
    .await;
    let mail = app
        .smtp
        .wait_for_subject("jb@example.com", "Confirm a new sign-in")
        .await;
    let token = mail.link_param("confirm-login", "token").expect("link");
    app.clock.advance(chrono::Duration::minutes(16));
    problem(
        post_from(
            &app,
            None,
            "/api/v1/sessions/confirm",
            json!({"token": token}),
        )
        .await,
        400,
        "invalid_token",
    )
    .await;
}
