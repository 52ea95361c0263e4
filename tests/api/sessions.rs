//! Login, refresh rotation and reuse detection, logout, and tokens that must be refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app};

#[tokio::test]
async fn login_with_username_or_email_in_any_case() {
    let app = spawn_app().await;
    app.verified_user("JBber", "jb@example.com", PASSWORD).await;
    for login in ["jbber", "JBBER", "jb@example.com", " JB@example.COM "] {
        let body = json(
            app.post(
                "/api/v1/sessions",
                json!({"login": login, "password": PASSWORD}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(body["status"], "authenticated");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert!(
            body["refresh_token"]
                .as_str()
                .is_some_and(|t| t.len() >= 43)
        );
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_login_answer_byte_identical_bodies() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let wrong = app
        .post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post(
            "/api/v1/sessions",
            json!({"login": "nobody", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let (a, b) = (
        wrong.bytes().await.expect("body"),
        unknown.bytes().await.expect("body"),
    );
    assert_eq!(a, b);
    let body: Value = serde_json::from_slice(&a).expect("json");
    assert_eq!(body["code"], "invalid_credentials");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = json(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": first.refresh}),
        )
        .await,
        200,
    )
    .await;
    let new_refresh = second["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let new_access = second["access_token"].as_str().expect("access").to_string();
    assert_ne!(new_refresh, first.refresh);
    json(app.get_auth("/api/v1/account", &new_access).await, 200).await;

    // The old one again, after the reuse grace: refused, and the whole session dies.
    app.clock.advance(chrono::Duration::seconds(11));
    problem(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": first.refresh}),
        )
        .await,
        401,
        "invalid_refresh_token",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": new_refresh}),
        )
        .await,
        401,
        "invalid_refresh_token",
    )
    .await;
    problem(
        app.get_auth("/api/v1/account", &new_access).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": "unknown"}),
        )
        .await,
        401,
        "invalid_refresh_token",
    )
    .await;
}

#[tokio::test]
async fn logout_revokes_the_access_and_refresh_token() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let res = app
        .delete_auth("/api/v1/sessions/current", &tokens.access)
        .await;
    assert_eq!(res.status(), 204);
    problem(
        app.get_auth("/api/v1/account", &tokens.access).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": tokens.refresh}),
        )
        .await,
        401,
        "invalid_refresh_token",
    )
    .await;
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

fn sign(app: &TestApp, claims: &Value) -> String {
    let secret = app.env["JWT_SECRET"].as_bytes();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

#[tokio::test]
async fn forged_expired_and_wrongly_typed_tokens_are_refused() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let claims = claims_of(&tokens.access);
    // Sanity: the same claims re-signed with the real key are accepted.
    json(
        app.get_auth("/api/v1/account", &sign(&app, &claims)).await,
        200,
    )
    .await;

    // alg=none.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let none = format!("{header}.{body}.");
    // A tampered payload keeps the old signature.
    let mut escalated = claims.clone();
    escalated["sub"] = json!("someone-else");
    let sig = tokens.access.split('.').nth(2).expect("sig");
    let head = tokens.access.split('.').next().expect("head");
    let tampered = format!(
        "{head}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(escalated.to_string())
    );
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("another-service");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    let mut mfa = claims.clone();
    mfa["typ"] = json!("mfa");
    let mut no_iat = claims.clone();
    no_iat.as_object_mut().expect("object").remove("iat");

    for (name, token) in [
        ("alg=none", none),
        ("tampered", tampered),
        ("wrong audience", sign(&app, &wrong_aud)),
        ("wrong issuer", sign(&app, &wrong_iss)),
        ("mfa-typed", sign(&app, &mfa)),
        ("without iat", sign(&app, &no_iat)),
    ] {
        let res = app.get_auth("/api/v1/account", &token).await;
        assert_eq!(res.status(), 401, "{name} was accepted");
        problem(res, 401, "unauthorized").await;
    }

    // Expired: the app's clock moves past the 15 minutes.
    app.clock.advance(chrono::Duration::minutes(16));
    problem(
        app.get_auth("/api/v1/account", &tokens.access).await,
        401,
        "unauthorized",
    )
    .await;
    // The refresh token still opens a new access token.
    json(
        app.post(
            "/api/v1/sessions/refresh",
            json!({"refresh_token": tokens.refresh}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn tokens_signed_otherwise_or_from_the_future_and_other_token_kinds_are_refused() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let claims = claims_of(&tokens.access);
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
    )
    .expect("sign");
    // The right key, another algorithm of the same family.
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims,
        &EncodingKey::from_secret(app.env["JWT_SECRET"].as_bytes()),
    )
    .expect("sign");
    // Issued an hour from now (by the app's clock), so still "valid" for a while after that.
    let now = claims["iat"].as_i64().expect("iat");
    let mut future = claims.clone();
    future["iat"] = json!(now + 3600);
    future["exp"] = json!(now + 7200);
    let mut no_session = claims.clone();
    no_session["sid"] = json!("00000000-0000-0000-0000-000000000000");

    for (name, token) in [
        ("another key", other_key),
        ("HS512", hs512),
        ("issued in the future", sign(&app, &future)),
        ("unknown session", sign(&app, &no_session)),
        ("the refresh token", tokens.refresh.clone()),
        ("garbage", "not.a.token".to_string()),
        ("empty", String::new()),
    ] {
        let res = app.get_auth("/api/v1/account", &token).await;
        assert_eq!(res.status(), 401, "{name} was accepted");
        problem(res, 401, "unauthorized").await;
    }
    // Another scheme than Bearer.
    let res = app
        .http
        .get(app.url("/api/v1/account"))
        .header("Authorization", format!("Basic {}", tokens.access))
        .send()
        .await
        .expect("request");
    problem(res, 401, "unauthorized").await;
    // The real token still works: nothing above revoked it.
    json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await;
}

/// `GET /account` authenticates in the statement that reads its answer; it must refuse what
/// every other endpoint refuses, and record use the same way.
#[tokio::test]
async fn get_account_checks_the_session_like_every_endpoint_and_records_its_use() {
    let app = spawn_app().await;
    let alice = app
        .verified_user("alice", "alice@example.com", PASSWORD)
        .await;
    let bob = app
        .verified_user("bobby", "bob@example.com", PASSWORD)
        .await;

    // Correctly signed, but naming Alice's live session with Bob's account.
    let mut claims = claims_of(&alice.access);
    claims["sub"] = claims_of(&bob.access)["sub"].clone();
    let crossed = sign(&app, &claims);
    for path in ["/api/v1/account", "/api/v1/account/sessions"] {
        problem(app.get_auth(path, &crossed).await, 401, "unauthorized").await;
    }
    let account = json(app.get_auth("/api/v1/account", &bob.access).await, 200).await;
    assert_eq!(account["username"], "bobby");

    // Use is recorded at most once a minute, by GET /account as by any other call. Read from
    // a second session, whose own calls record only its own use.
    let other = app.login("alice", PASSWORD).await;
    let first_session_used = || async {
        let list = json(
            app.get_auth("/api/v1/account/sessions", &other.access)
                .await,
            200,
        )
        .await;
        let items = list["items"].as_array().expect("items").clone();
        let first = items
            .iter()
            .find(|s| s["current"] == false)
            .expect("the first session");
        first["last_used_at"]
            .as_str()
            .expect("last_used_at")
            .to_owned()
    };
    let before = first_session_used().await;
    app.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(first_session_used().await, before);
    json(app.get_auth("/api/v1/account", &alice.access).await, 200).await;
    let after = first_session_used().await;
    assert!(after > before, "last use {before} not moved to {after}");
}
