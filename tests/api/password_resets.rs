//! Password reset by email: the same answer for known and unknown logins, links only to
//! verified addresses, single-use expiring tokens, sessions revoked, and the limits.

use serde_json::{Value, json};

use crate::support::{Mail, PASSWORD, TestApp, json, problem, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "velvet compass harbor 19";
const RESET_SUBJECT: &str = "Reset your";

async fn request_reset(app: &TestApp, login: &str) -> reqwest::Response {
    app.post("/api/v1/password-resets", json!({"login": login}))
        .await
}

async fn confirm(app: &TestApp, token: &str, new_password: &str) -> reqwest::Response {
    app.post(
        "/api/v1/password-resets/confirm",
        json!({"token": token, "new_password": new_password}),
    )
    .await
}

/// Waits until `to` has `count` reset-link mails and returns them, oldest first.
async fn reset_mails(app: &TestApp, to: &str, count: usize) -> Vec<Mail> {
    let mut seen = 0;
    loop {
        let all = app.smtp.wait_for(to, seen + 1).await;
        seen = all.len();
        let resets: Vec<Mail> = all
            .into_iter()
            .filter(|m| m.subject().contains(RESET_SUBJECT))
            .collect();
        if resets.len() >= count {
            return resets;
        }
    }
}

fn token_of(mail: &Mail) -> String {
    mail.link_param("reset-password", "token")
        .expect("the mail has a reset-password link with a token")
}

/// Requests a reset for a verified account and returns the token of its (first new) mail.
async fn reset_token(app: &TestApp, login: &str, email: &str) -> String {
    let before = app
        .smtp
        .to(email)
        .iter()
        .filter(|m| m.subject().contains(RESET_SUBJECT))
        .count();
    assert_eq!(request_reset(app, login).await.status(), 202);
    let mails = reset_mails(app, email, before + 1).await;
    token_of(&mails[before])
}

/// The outbox rows of a mail kind (written in the request's transaction, so no waiting).
fn outbox_kinds(app: &TestApp, kind: &str) -> Vec<String> {
    app.db_texts(&format!(
        "SELECT recipient AS value FROM outbox WHERE kind = '{kind}'"
    ))
}

fn event_types(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn known_and_unknown_logins_get_byte_identical_answers_and_only_the_known_gets_mail() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;

    let known = request_reset(&app, "JB@example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    let header = |r: &reqwest::Response| {
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header(&known), header(&unknown));
    let (a, b) = (
        known.bytes().await.expect("body"),
        unknown.bytes().await.expect("body"),
    );
    assert_eq!(a, b);
    let body: Value = serde_json::from_slice(&a).expect("json");
    assert_eq!(body, json!({"status": "accepted"}));

    let mails = reset_mails(&app, "jb@example.com", 1).await;
    assert_eq!(mails.len(), 1);
    let link = mails[0].link("reset-password").expect("link");
    assert!(
        link.starts_with("https://frontend.test/reset-password?token="),
        "{link}"
    );
    let token = token_of(&mails[0]);
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert!(mails[0].text().contains("expires in 30 minutes"));
    // Only the hash is stored; the pending mail was sealed.
    let hashes = app
        .db_texts("SELECT token_hash AS value FROM email_tokens WHERE purpose = 'reset_password'");
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], token);
    assert_eq!(
        app.db_texts(
            "SELECT CAST(sealed AS TEXT) AS value FROM outbox WHERE kind = 'password_reset'"
        ),
        vec!["1".to_string()]
    );
    // Nothing was written for the unknown login's address.
    assert_eq!(outbox_kinds(&app, "password_reset"), vec!["jb@example.com"]);
    assert!(
        app.db_texts("SELECT recipient AS value FROM outbox")
            .iter()
            .all(|r| r != "nobody@example.com")
    );

    // Both were audited: with the account when known, without one otherwise.
    let accounts = app.db_texts(
        "SELECT COALESCE(account_id, 'none') AS value FROM audit_events \
         WHERE event_type = 'password.reset_requested' ORDER BY id",
    );
    assert_eq!(accounts.len(), 2);
    assert_ne!(accounts[0], "none");
    assert_eq!(accounts[1], "none");
}

#[tokio::test]
async fn the_link_sets_a_new_password_once_revokes_every_session_and_logs_nobody_in() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = app.login("jb@example.com", PASSWORD).await;
    let token = reset_token(&app, "jbber", "jb@example.com").await;

    let res = confirm(&app, &token, NEW_PASSWORD).await;
    assert_eq!(res.status(), 204);
    assert!(
        res.bytes().await.expect("body").is_empty(),
        "no tokens back"
    );

    // Single use.
    problem(
        confirm(&app, &token, "another fine passphrase 77").await,
        400,
        "invalid_token",
    )
    .await;

    // Every session is gone: access tokens and refresh tokens alike.
    for tokens in [&first, &second] {
        app.assert_session_dead(tokens).await;
    }

    // The old password is dead, the new one works.
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    let fresh = app.login("jbber", NEW_PASSWORD).await;

    let notice = app
        .smtp
        .wait_for_subject("jb@example.com", "password was changed")
        .await;
    assert!(notice.text().contains("reset with an emailed link"));
    assert!(notice.link_param("reset-password", "token").is_none());

    let events = json(
        app.get_auth("/api/v1/account/events", &fresh.access).await,
        200,
    )
    .await;
    let types = event_types(&events);
    for t in ["password.reset_requested", "password.reset"] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    let reset = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["type"] == "password.reset")
        .expect("reset event");
    assert_eq!(reset["details"]["sessions_revoked"], 2);
    let actors =
        app.db_texts("SELECT actor AS value FROM audit_events WHERE event_type = 'password.reset'");
    assert_eq!(actors.len(), 1);
    assert!(actors[0].starts_with("account:"), "{actors:?}");
}

#[tokio::test]
async fn racing_confirmations_have_exactly_one_winner() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let token = reset_token(&app, "jbber", "jb@example.com").await;
    let (a, b) = tokio::join!(
        confirm(&app, &token, NEW_PASSWORD),
        confirm(&app, &token, "another fine passphrase 77"),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 400]);
    assert_eq!(
        app.db_texts("SELECT actor AS value FROM audit_events WHERE event_type = 'password.reset'")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_newer_request_voids_the_older_link() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let older = reset_token(&app, "jbber", "jb@example.com").await;
    let newer = reset_token(&app, "jb@example.com", "jb@example.com").await;
    assert_ne!(older, newer);
    problem(
        confirm(&app, &older, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;
    assert_eq!(confirm(&app, &newer, NEW_PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn a_password_change_voids_pending_links() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let token = reset_token(&app, "jbber", "jb@example.com").await;
    let res = app
        .put_auth(
            "/api/v1/account/password",
            &tokens.access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(
        confirm(&app, &token, "another fine passphrase 77").await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_link_expires_after_30_minutes_by_default() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let expired = reset_token(&app, "jbber", "jb@example.com").await;
    app.clock.advance(chrono::Duration::minutes(31));
    problem(
        confirm(&app, &expired, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;

    // Just inside the 30 minutes it still works.
    let fresh = reset_token(&app, "jbber", "jb@example.com").await;
    app.clock.advance(chrono::Duration::minutes(29));
    assert_eq!(confirm(&app, &fresh, NEW_PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn at_most_three_reset_mails_an_hour_per_account() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let mut bodies = Vec::new();
    for login in ["jbber", "JBBER", "jb@example.com", "jbber"] {
        let res = request_reset(&app, login).await;
        assert_eq!(res.status(), 202);
        bodies.push(res.bytes().await.expect("body"));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    let mails = reset_mails(&app, "jb@example.com", 3).await;
    assert_eq!(mails.len(), 3);
    // The fourth was never queued (the cap is decided before the 202).
    assert_eq!(outbox_kinds(&app, "password_reset").len(), 3);
    let outcomes = app.db_texts(
        "SELECT details AS value FROM audit_events \
         WHERE event_type = 'password.reset_requested' ORDER BY id",
    );
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes[3].contains("capped"), "{outcomes:?}");
    // Mails queued at one frozen instant may arrive in any order: compare sets, not positions.
    let earlier: Vec<String> = mails.iter().map(token_of).collect();

    // After the hour, a mail goes out again, and it voids every earlier link.
    app.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(request_reset(&app, "jbber").await.status(), 202);
    let mails = reset_mails(&app, "jb@example.com", 4).await;
    assert_eq!(mails.len(), 4);
    assert_eq!(outbox_kinds(&app, "password_reset").len(), 4);
    let newest: Vec<String> = mails
        .iter()
        .map(token_of)
        .filter(|t| !earlier.contains(t))
        .collect();
    assert_eq!(newest.len(), 1);
    for token in &earlier {
        problem(
            confirm(&app, token, NEW_PASSWORD).await,
            400,
            "invalid_token",
        )
        .await;
    }
    assert_eq!(confirm(&app, &newest[0], NEW_PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn an_unverified_address_is_told_why_no_link_came() {
    let app = spawn_app().await;
    app.register("ana", "ana@example.com", PASSWORD).await;
    let res = request_reset(&app, "ana").await;
    assert_eq!(res.status(), 202);
    let mail = app
        .smtp
        .wait_for_subject("ana@example.com", "password reset request")
        .await;
    let text = mail.text();
    let html = mail.html();
    assert!(text.contains("never verified"), "{text}");
    assert!(
        mail.link("recovery")
            .is_some_and(|l| l == "https://frontend.test/recovery"),
        "{text}"
    );
    assert!(mail.link("reset-password").is_none(), "{text}");
    assert!(!text.contains("token="), "{text}");
    assert!(!html.contains("token="), "{html}");
    assert!(html.contains("Ask for account recovery"), "{html}");
    // No reset token exists at all.
    assert!(
        app.db_texts(
            "SELECT token_hash AS value FROM email_tokens WHERE purpose = 'reset_password'"
        )
        .is_empty()
    );
    assert!(outbox_kinds(&app, "password_reset").is_empty());
    let outcomes = app.db_texts(
        "SELECT details AS value FROM audit_events WHERE event_type = 'password.reset_requested'",
    );
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].contains("unverified_notice"), "{outcomes:?}");
}

#[tokio::test]
async fn forged_host_headers_do_not_change_the_links() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let res = app
        .http
        .post(app.url("/api/v1/password-resets"))
        .header("Host", "evil.test")
        .header("X-Forwarded-Host", "evil.test")
        .header("X-Forwarded-Proto", "http")
        .header("Forwarded", "host=evil.test;proto=http")
        .json(&json!({"login": "jbber"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 202);
    let mails = reset_mails(&app, "jb@example.com", 1).await;
    let link = mails[0].link("reset-password").expect("link");
    assert!(
        link.starts_with("https://frontend.test/reset-password?token="),
        "{link}"
    );
    assert!(!mails[0].raw.contains("evil.test"));
    assert!(!mails[0].html().contains("evil.test"));
}

#[tokio::test]
async fn a_weak_new_password_is_422_and_the_link_still_works() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let token = reset_token(&app, "jbber", "jb@example.com").await;

    let body = problem(
        confirm(&app, &token, "short").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "too_short");
    // The policy knows the account: its username and email are refused.
    let body = problem(
        confirm(&app, &token, "jbber lantern 2024").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "contains_personal_info");
    assert!(
        !body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    let body = problem(
        confirm(&app, &token, "password123").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "breached");

    // Nothing changed: the old password still works and the token is still usable.
    let session = app.login("jbber", PASSWORD).await;
    assert!(
        app.db_texts("SELECT actor AS value FROM audit_events WHERE event_type = 'password.reset'")
            .is_empty()
    );
    assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
    problem(
        app.get_auth("/api/v1/account", &session.access).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn unknown_foreign_and_malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let verification = app.register("ana", "ana@example.com", PASSWORD).await;
    let verify_token = verification
        .link_param("verify-email", "token")
        .expect("token");
    for token in ["made-up", "", verify_token.as_str()] {
        problem(
            confirm(&app, token, NEW_PASSWORD).await,
            400,
            "invalid_token",
        )
        .await;
    }
    // The verification token was not spent by the attempt.
    json(
        app.post(
            "/api/v1/accounts/verify-email",
            json!({"token": verify_token}),
        )
        .await,
        200,
    )
    .await;

    let body = problem(
        app.post("/api/v1/password-resets/confirm", json!({"token": "x"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(body["errors"][0]["code"], "required");
    problem(
        app.post(
            "/api/v1/password-resets/confirm",
            json!({"token": 5, "new_password": NEW_PASSWORD}),
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn an_empty_or_missing_login_is_422() {
    let app = spawn_app().await;
    for body in [json!({}), json!({"login": "   "})] {
        let body = problem(
            app.post("/api/v1/password-resets", body).await,
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "login");
        assert_eq!(body["errors"][0]["code"], "required");
    }
    problem(
        app.post("/api/v1/password-resets", json!({"login": 5}))
            .await,
        400,
        "malformed_request",
    )
    .await;
}

#[tokio::test]
async fn requests_are_limited_per_client_ip_for_known_and_unknown_logins_alike() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_PASSWORD_RESET_PER_IP".into(), "3/1h".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for login in ["jbber", "nobody", "someone@example.com"] {
        assert_eq!(request_reset(&app, login).await.status(), 202);
    }
    let mut answers = Vec::new();
    for login in ["jbber", "nobody"] {
        let res = request_reset(&app, login).await;
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .expect("Retry-After");
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
        answers.push(problem(res, 429, "rate_limited").await);
    }
    assert_eq!(answers[0], answers[1]);
    // The refused requests changed nothing: one mail, three audit events.
    reset_mails(&app, "jb@example.com", 1).await;
    assert_eq!(outbox_kinds(&app, "password_reset").len(), 1);
    assert_eq!(
        app.db_texts(
            "SELECT actor AS value FROM audit_events WHERE event_type = 'password.reset_requested'"
        )
        .len(),
        3
    );

    app.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(request_reset(&app, "jbber").await.status(), 202);
    reset_mails(&app, "jb@example.com", 2).await;
}
