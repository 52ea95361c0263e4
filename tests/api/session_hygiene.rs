//! What a change to the account's credentials does to the sessions and logins around it: other
//! sessions die when a second factor changes, a half-finished 2FA login dies when the password
//! changes, a recovery-code login asks for a new set, and an unused refresh token dies.

use serde_json::json;

use crate::support::two_factor::TwoFactorUser;
use crate::support::{PASSWORD, TestApp, Tokens, json, problem, spawn_app};

const NEW_PASSWORD: &str = "velvet compass harbor 19";

/// Logs in with the password and a TOTP code of the app's clock, then moves the clock one step
/// on, so that the next TOTP login has a fresh code.
async fn totp_login(app: &TestApp, user: &TwoFactorUser, login: &str) -> Tokens {
    let mfa = app.mfa_token(login).await;
    let body = json(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": app.totp_now(&user.secret, 0)}),
        )
        .await,
        200,
    )
    .await;
    app.clock.advance(chrono::Duration::seconds(30));
    Tokens {
        access: body["access_token"].as_str().expect("access").to_string(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        device: body["device_token"].as_str().map(str::to_string),
    }
}

#[tokio::test]
async fn regenerating_codes_and_disabling_totp_end_every_other_session() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let here = &user.tokens;

    let elsewhere = totp_login(&app, &user, "jbber").await;
    let codes = json(
        app.post_auth(
            "/api/v1/account/recovery-codes",
            &here.access,
            json!({"password": PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    app.assert_session_dead(&elsewhere).await;
    app.assert_session_alive(here).await;

    let elsewhere = totp_login(&app, &user, "jbber").await;
    let code = codes["recovery_codes"][0].as_str().expect("code");
    let res = app
        .post_auth(
            "/api/v1/account/totp/disable",
            &here.access,
            json!({"password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!(res.status(), 204);
    app.assert_session_dead(&elsewhere).await;
    app.assert_session_alive(here).await;

    // Both changes say how many sessions they ended.
    let revoked = app.db_texts(
        "SELECT details AS value FROM audit_events \
         WHERE event_type IN ('recovery_codes.generated', 'totp.disabled') ORDER BY id",
    );
    assert_eq!(revoked.len(), 3, "{revoked:?}");
    assert!(revoked[1].contains("\"sessions_revoked\":1"), "{revoked:?}");
    assert!(revoked[2].contains("\"sessions_revoked\":1"), "{revoked:?}");
}

#[tokio::test]
async fn an_mfa_token_from_before_a_password_change_or_reset_is_refused_after_it() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;

    // Changed by the owner (from a session): a login that waited for its second factor dies.
    let pending = app.mfa_token("jbber").await;
    let res = app
        .put_auth(
            "/api/v1/account/password",
            &user.tokens.access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": pending, "code": app.totp_now(&user.secret, 0)}),
        )
        .await,
        401,
        "mfa_token_invalid",
    )
    .await;

    // Reset through the email link: the same.
    let mfa = json(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": NEW_PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    let pending = mfa["mfa_token"].as_str().expect("mfa token").to_string();
    app.reset_password_by_mail("jbber", "jb@example.com", "another fine passphrase 77")
        .await;
    problem(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": pending, "code": user.codes[0]}),
        )
        .await,
        401,
        "mfa_token_invalid",
    )
    .await;
    // The code was not spent by the refused attempt: a fresh login still takes it.
    let mfa = json(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "another fine passphrase 77"}),
        )
        .await,
        200,
    )
    .await;
    json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa["mfa_token"], "code": user.codes[0]}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn a_recovery_code_login_asks_for_a_new_set_until_one_is_made() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let account = json(
        app.get_auth("/api/v1/account", &user.tokens.access).await,
        200,
    )
    .await;
    assert_eq!(account["recovery_codes_should_regenerate"], false);

    let mfa = app.mfa_token("jbber").await;
    let body = json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[0]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["recovery_codes_should_regenerate"], true, "{body}");
    let access = body["access_token"].as_str().expect("access").to_string();
    let account = json(app.get_auth("/api/v1/account", &access).await, 200).await;
    assert_eq!(account["recovery_codes_should_regenerate"], true);

    json(
        app.post_auth(
            "/api/v1/account/recovery-codes",
            &access,
            json!({"password": PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    let account = json(app.get_auth("/api/v1/account", &access).await, 200).await;
    assert_eq!(account["recovery_codes_should_regenerate"], false);
}

#[tokio::test]
async fn a_refresh_token_unused_for_the_idle_limit_dies() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;

    // Used within the idle limit (7 days by default), the session goes on, twice over.
    app.clock.advance(chrono::Duration::days(6));
    let body = json(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": tokens.refresh}),
        )
        .await,
        200,
    )
    .await;
    app.clock.advance(chrono::Duration::days(6));
    let body = json(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": body["refresh_token"]}),
        )
        .await,
        200,
    )
    .await;

    // Left unused past it, the refresh token is dead.
    app.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
    problem(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": body["refresh_token"]}),
        )
        .await,
        401,
        "invalid_refresh_token",
    )
    .await;
}
