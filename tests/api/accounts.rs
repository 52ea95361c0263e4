//! Registration, email verification, the account, password change, sessions and events.

use serde_json::json;

use crate::support::{PASSWORD, json, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_sends_a_verification_mail_whose_link_verifies_once() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "JBber", "email": "JB@Example.com", "password": PASSWORD}),
        )
        .await;
    let account = json(res, 201).await;
    assert_eq!(account["username"], "JBber");
    assert_eq!(account["email"], "jb@example.com");
    assert_eq!(account["email_verified"], false);
    assert_eq!(account["role"], "user");

    let mail = app
        .smtp
        .wait_for_subject("jb@example.com", "Confirm your email address")
        .await;
    let link = mail.link("verify-email").expect("link");
    assert!(
        link.starts_with("https://frontend.test/verify-email?token="),
        "{link}"
    );
    let token = mail.link_param("verify-email", "token").expect("token");
    assert!(token.len() >= 43);
    assert!(mail.header("Message-ID").is_some());
    assert!(mail.html().contains("Confirm my email address"));

    let verified = json(
        app.post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await,
        200,
    )
    .await;
    assert_eq!(verified["email_verified"], true);
    problem(
        app.post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await,
        400,
        "invalid_token",
    )
    .await;
    problem(
        app.post("/api/v1/accounts/verify-email", json!({"token": "made-up"}))
            .await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn an_expired_verification_link_is_refused() {
    let app = spawn_app().await;
    let mail = app.register("ana", "ana@example.com", PASSWORD).await;
    let token = mail.link_param("verify-email", "token").expect("token");
    app.clock.advance(chrono::Duration::hours(49));
    problem(
        app.post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn duplicate_username_or_email_in_any_case_is_409() {
    let app = spawn_app().await;
    app.register("jbber", "jb@example.com", PASSWORD).await;
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "JBBER", "email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    problem(res, 409, "username_taken").await;
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "someone", "email": "JB@EXAMPLE.COM", "password": PASSWORD}),
        )
        .await;
    problem(res, 409, "email_taken").await;
}

#[tokio::test]
async fn invalid_fields_are_422_with_one_error_each() {
    let app = spawn_app().await;
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "a b", "email": "nope", "password": "password"}),
        )
        .await;
    let body = problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, ["username", "email", "password"]);

    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "jbber", "email": "jb@example.com", "password": "jbber2024"}),
        )
        .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "contains_personal_info");
    assert!(
        !body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );

    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "jbber", "email": "jb@example.com"}),
        )
        .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(body["errors"][0]["code"], "required");
}

#[tokio::test]
async fn get_account_needs_a_token_and_shows_the_account() {
    let app = spawn_app().await;
    problem(app.get("/api/v1/account").await, 401, "unauthorized").await;
    problem(
        app.get_auth("/api/v1/account", "not-a-jwt").await,
        401,
        "unauthorized",
    )
    .await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let account = json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await;
    assert_eq!(account["username"], "jbber");
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["two_factor_enabled"], false);
    assert_eq!(account["recovery_codes_low"], false);
    assert!(account["password_changed_at"].is_string());
}

#[tokio::test]
async fn verification_mail_can_be_resent_three_times_an_hour() {
    let app = spawn_app().await;
    app.register("ana", "ana@example.com", PASSWORD).await;
    let tokens = app.login("ana", PASSWORD).await;
    for _ in 0..3 {
        json(
            app.post_auth(
                "/api/v1/account/email-verification",
                &tokens.access,
                json!({}),
            )
            .await,
            202,
        )
        .await;
    }
    let res = app
        .post_auth(
            "/api/v1/account/email-verification",
            &tokens.access,
            json!({}),
        )
        .await;
    assert!(res.headers().get("retry-after").is_some());
    problem(res, 429, "rate_limited").await;
    let mails = app.smtp.wait_for("ana@example.com", 4).await;
    // Only the newest link works: each new one voided the ones before.
    let mut verified = 0;
    for mail in &mails {
        let token = mail.link_param("verify-email", "token").expect("token");
        let res = app
            .post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await;
        if res.status() == 200 {
            verified += 1;
        } else {
            problem(res, 400, "invalid_token").await;
        }
    }
    assert_eq!(verified, 1);
    problem(
        app.post_auth(
            "/api/v1/account/email-verification",
            &tokens.access,
            json!({}),
        )
        .await,
        409,
        "email_already_verified",
    )
    .await;
}

#[tokio::test]
async fn password_change_revokes_other_sessions_and_mails_a_notice() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = app.login("jb@example.com", PASSWORD).await;

    let res = app
        .put_auth(
            "/api/v1/account/password",
            &second.access,
            json!({"current_password": "wrong password here", "new_password": "velvet compass harbor 19"}),
        )
        .await;
    problem(res, 403, "invalid_password").await;
    let res = app
        .put_auth(
            "/api/v1/account/password",
            &second.access,
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "new_password");

    let res = app
        .put_auth(
            "/api/v1/account/password",
            &second.access,
            json!({"current_password": PASSWORD, "new_password": "velvet compass harbor 19"}),
        )
        .await;
    assert_eq!(res.status(), 204);

    // The other session is dead, this one lives.
    app.assert_session_dead(&first).await;
    app.assert_session_alive(&second).await;

    let notice = app
        .smtp
        .wait_for_subject("jb@example.com", "password was changed")
        .await;
    assert!(notice.text().contains("signed out"));
    // Old password no longer works, the new one does.
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
    app.login("jbber", "velvet compass harbor 19").await;

    let events = json(
        app.get_auth("/api/v1/account/events?per_page=2", &second.access)
            .await,
        200,
    )
    .await;
    assert_eq!(events["per_page"], 2);
    assert_eq!(events["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(events["items"][0]["type"], "session.login_succeeded");
    assert_eq!(events["items"][1]["type"], "session.login_failed");
    let all = json(
        app.get_auth("/api/v1/account/events", &second.access).await,
        200,
    )
    .await;
    let types: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    for t in [
        "account.registered",
        "account.email_verified",
        "password.changed",
        "session.login_failed",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    problem(
        app.get_auth("/api/v1/account/events?per_page=101", &second.access)
            .await,
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = app.login("jbber", PASSWORD).await;
    let list = json(
        app.get_auth("/api/v1/account/sessions", &second.access)
            .await,
        200,
    )
    .await;
    let items = list["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2);
    let current: Vec<bool> = items.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current.iter().filter(|c| **c).count(), 1);
    let other = items
        .iter()
        .find(|s| s["current"] == false)
        .expect("other session");
    assert_eq!(other["second_factor"], "none");
    let other_id = other["id"].as_str().expect("id");

    let res = app
        .delete_auth(
            &format!("/api/v1/account/sessions/{other_id}"),
            &second.access,
        )
        .await;
    assert_eq!(res.status(), 204);
    problem(
        app.get_auth("/api/v1/account", &first.access).await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        app.delete_auth(
            &format!("/api/v1/account/sessions/{other_id}"),
            &second.access,
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn page_numbers_out_of_range_are_422_and_unreadable_ones_400() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let events = |query: &'static str| {
        let app = &app;
        let access = tokens.access.clone();
        async move {
            app.get_auth(&format!("/api/v1/account/events{query}"), &access)
                .await
        }
    };
    for query in [
        "?per_page=9223372036854775808",
        "?per_page=101",
        "?per_page=0",
        "?page=0",
        "?page=-99999999999999999999",
    ] {
        problem(events(query).await, 422, "validation_failed").await;
    }
    problem(events("?per_page=ten").await, 400, "malformed_request").await;
    // Far beyond the last page: empty, not an overflow.
    let body = json(events("?page=2147483647&per_page=100").await, 200).await;
    assert_eq!(body["items"], serde_json::json!([]));
    // An empty parameter is ignored.
    let body = json(events("?page=&per_page=").await, 200).await;
    assert_eq!(body["per_page"], 50);
}

#[tokio::test]
async fn page_numbers_beyond_32_bits_are_refused_on_every_list_naming_the_field() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    for list in [
        "/api/v1/account/events",
        "/api/v1/admin/recovery-requests",
        "/api/v1/admin/audit-events",
    ] {
        for (query, field) in [
            ("page=2147483648", "page"),
            ("page=9223372036854775808", "page"),
            ("page=99999999999999999999999999999999999999999999", "page"),
            ("page=-9223372036854775809", "page"),
            ("per_page=9223372036854775808", "per_page"),
            ("per_page=-1", "per_page"),
            ("page=9223372036854775808&per_page=101", "page"),
        ] {
            let res = app
                .get_auth(&format!("{list}?{query}"), &support.access)
                .await;
            let body = problem(res, 422, "validation_failed").await;
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert!(fields.contains(&field), "{list}?{query}: {body}");
        }
        // The largest page the document allows (int32) is a page, far beyond the last one: empty.
        let body = json(
            app.get_auth(&format!("{list}?page=2147483647"), &support.access)
                .await,
            200,
        )
        .await;
        assert_eq!(body["items"], serde_json::json!([]), "{list}");
    }
}

#[tokio::test]
async fn registrations_per_client_address_are_limited() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_REGISTRATION_PER_IP".into(), "2/1h".into());
    })
    .await;
    let register = |name: &str| {
        app.post(
            "/api/v1/accounts",
            serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
        )
    };
    assert_eq!(register("ana").await.status(), 201);
    // A refused registration (taken name) counts too: otherwise the 409s would tell, without
    // limit, which names and addresses have accounts.
    assert_eq!(register("ana").await.status(), 409);

    let res = register("cid").await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(
        (1..=3600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    problem(res, 429, "rate_limited").await;
    assert!(app.smtp.to("cid@example.com").is_empty());

    // The window slides in app time.
    app.clock.advance(chrono::Duration::minutes(61));
    assert_eq!(register("cid").await.status(), 201);
}
