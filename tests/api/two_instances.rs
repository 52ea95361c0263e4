//! Two app processes on one database and one SMTP sink: single-use secrets stay single-use
//! across instances, and the outbox is delivered exactly once in total.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "velvet compass harbor 19";

/// POSTs JSON to `path` on the instance at `base`.
async fn post_at(app: &TestApp, base: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn one_recovery_code_raced_through_two_instances_has_one_winner() {
    let app = spawn_app().await;
    let second = app.spawn_second_instance().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(app.mfa_token("jbber").await);
    }
    let code = user.codes[2].clone();
    let bases = [app.address.clone(), second.address.clone()];
    let attempts = tokens.iter().enumerate().map(|(i, mfa)| {
        post_at(
            &app,
            &bases[i % 2],
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": code}),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut winners = 0;
    for res in results {
        match res.status().as_u16() {
            200 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["status"], "authenticated", "{body}");
                winners += 1;
            }
            401 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["code"], "recovery_code_already_used", "{body}");
            }
            other => panic!("unexpected status {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!(winners, 1);
    let used = app.db_texts("SELECT id AS value FROM recovery_codes WHERE used_at IS NOT NULL");
    assert_eq!(used.len(), 1);
}

#[tokio::test]
async fn one_reset_token_confirmed_through_two_instances_has_one_winner() {
    let app = spawn_app().await;
    let second = app.spawn_second_instance().await;
    app.verified_user("ana", "ana@example.com", PASSWORD).await;
    json(
        post_at(
            &app,
            &second.address,
            "/api/v1/password-resets",
            json!({"login": "ana"}),
        )
        .await,
        202,
    )
    .await;
    let mail = app
        .smtp
        .wait_for_subject("ana@example.com", "Reset your")
        .await;
    let token = mail
        .link_param("reset-password", "token")
        .expect("reset link");
    let bases = [app.address.clone(), second.address.clone()];
    let attempts = (0..6).map(|i| {
        post_at(
            &app,
            &bases[i % 2],
            "/api/v1/password-resets/confirm",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut winners = 0;
    for res in results {
        match res.status().as_u16() {
            204 => winners += 1,
            400 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["code"], "invalid_token", "{body}");
            }
            other => panic!("unexpected status {other}: {}", res.text().await.unwrap()),
        }
    }
    assert_eq!(winners, 1);
    // The new password works on both instances.
    app.login("ana", NEW_PASSWORD).await;
    json(
        post_at(
            &app,
            &second.address,
            "/api/v1/sessions",
            json!({"login": "ana", "password": NEW_PASSWORD}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_mail_from_two_instances_is_delivered_exactly_once() {
    const USERS: usize = 30;
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_REGISTRATION_PER_IP".into(), "1000/1h".into());
    })
    .await;
    let second = app.spawn_second_instance().await;
    let bases = [app.address.clone(), second.address.clone()];
    let registrations = (0..USERS).map(|i| {
        post_at(
            &app,
            &bases[i % 2],
            "/api/v1/accounts",
            json!({
                "username": format!("burst{i}"),
                "email": format!("burst{i}@example.com"),
                "password": PASSWORD,
            }),
        )
    });
    for res in futures_util::future::join_all(registrations).await {
        json(res, 201).await;
    }
    // Bounded wait until the outbox is drained.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pending = app.db_texts("SELECT id AS value FROM outbox WHERE sent_at IS NULL");
        if pending.is_empty() && app.smtp.all().len() >= USERS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "outbox not drained: {} unsent, {} delivered",
            pending.len(),
            app.smtp.all().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give a duplicate delivery a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..USERS {
        let got = app.smtp.to(&format!("burst{i}@example.com"));
        assert_eq!(got.len(), 1, "burst{i} got {} mails", got.len());
        assert!(got[0].subject().contains("Confirm your email address"));
    }
    assert_eq!(app.smtp.all().len(), USERS);
    let rows = app.db_texts("SELECT id AS value FROM outbox WHERE sent_at IS NOT NULL");
    assert_eq!(rows.len(), USERS);
    second.handle.stop(true).await;
}

#[tokio::test]
async fn one_completion_token_raced_through_two_instances_has_one_winner() {
    let app = spawn_app().await;
    let second = app.spawn_second_instance().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    app.prove_ownership("jb@example.com").await;
    app.approve(&support.access, &id, json!({})).await;
    let token = app.completion_token("jb@example.com", 1).await;
    let bases = [app.address.clone(), second.address.clone()];
    let attempts = (0..6).map(|i| {
        post_at(
            &app,
            &bases[i % 2],
            "/api/v1/account-recovery/complete",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
    });
    let mut winners = 0;
    for res in futures_util::future::join_all(attempts).await {
        match res.status().as_u16() {
            200 => winners += 1,
            400 => {
                let body: Value = res.json().await.expect("json");
                assert_eq!(body["code"], "invalid_token", "{body}");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners, 1);
    let completed =
        app.db_texts("SELECT id AS value FROM recovery_requests WHERE status = 'completed'");
    assert_eq!(completed, vec![id]);
}
