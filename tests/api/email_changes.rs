//! Keeping contact details current (issue 17): the email change with its undo, and the owner's
//! "it wasn't me" lock on every security notice.

use serde_json::{Value, json};

use crate::support::{Mail, PASSWORD, TestApp, Tokens, json, problem, spawn_app, spawn_app_with};

const OWNER: &str = "jbber@example.com";
const NEW_PASSWORD: &str = "velvet compass harbor 19";

/// The subjects of the mails of this feature.
const CONFIRM_SUBJECT: &str = "Confirm your new email address";
const REQUESTED_SUBJECT: &str = "A change of your";
const CHANGED_SUBJECT: &str = "was changed";
const LOCKED_SUBJECT: &str = "account is locked";
const UNLOCKED_SUBJECT: &str = "account is unlocked";

impl TestApp {
    async fn request_email_change(
        &self,
        access: &str,
        password: &str,
        new_email: &str,
    ) -> reqwest::Response {
        self.post_auth(
            "/api/v1/account/email-changes",
            access,
            json!({"password": password, "new_email": new_email}),
        )
        .await
    }

    async fn confirm_email_change(&self, token: &str, access: Option<&str>) -> reqwest::Response {
        let body = json!({"token": token});
        match access {
            Some(a) => {
                self.post_auth("/api/v1/account/email-changes/confirm", a, body)
                    .await
            }
            None => {
                self.post("/api/v1/account/email-changes/confirm", body)
                    .await
            }
        }
    }

    async fn lock_with(&self, token: &str) -> reqwest::Response {
        self.post("/api/v1/account-locks", json!({"token": token}))
            .await
    }

    /// Requests a change to `new_email` and returns the confirmation token mailed there.
    async fn change_token(&self, access: &str, new_email: &str) -> String {
        let body = json(
            self.request_email_change(access, PASSWORD, new_email).await,
            202,
        )
        .await;
        assert_eq!(body["pending_email"], new_email, "{body}");
        self.smtp
            .wait_for_subject(new_email, CONFIRM_SUBJECT)
            .await
            .link_param("confirm-email-change", "token")
            .expect("confirmation link")
    }

    async fn account(&self, access: &str) -> Value {
        json(self.get_auth("/api/v1/account", access).await, 200).await
    }

    async fn event_types(&self, access: &str) -> Vec<String> {
        let events = json(self.get_auth("/api/v1/account/events", access).await, 200).await;
        events["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn lock_token(mail: &Mail) -> String {
    mail.link_param("lock-account", "token")
        .unwrap_or_else(|| panic!("no lock link in {:?}: {}", mail.subject(), mail.text()))
}

#[tokio::test]
async fn the_change_story() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", OWNER, PASSWORD).await;
    let second = app.login("jbber", PASSWORD).await;
    app.verified_user("kim", "kim@example.com", PASSWORD).await;

    // A wrong password is a 403, a taken or look-alike address is refused, the same one too.
    problem(
        app.request_email_change(&first.access, "wrong password 1", "jb@new.example")
            .await,
        403,
        "invalid_password",
    )
    .await;
    problem(
        app.request_email_change(&first.access, PASSWORD, "KIM@example.com")
            .await,
        409,
        "email_taken",
    )
    .await;
    let body = problem(
        app.request_email_change(&first.access, PASSWORD, "kim@examp\u{406}e.com")
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "new_email", "{body}");
    problem(
        app.request_email_change(&first.access, PASSWORD, OWNER)
            .await,
        422,
        "validation_failed",
    )
    .await;

    // The request: a link to the new address, a notice with a lock link to the current one.
    let res = app
        .request_email_change(&first.access, PASSWORD, "jb@new.example")
        .await;
    let pending = json(res, 202).await;
    assert_eq!(pending["pending_email"], "jb@new.example");
    assert!(pending["expires_at"].is_string());
    let older = app
        .smtp
        .wait_for_subject("jb@new.example", CONFIRM_SUBJECT)
        .await
        .link_param("confirm-email-change", "token")
        .expect("link");
    let notice = app.smtp.wait_for_subject(OWNER, REQUESTED_SUBJECT).await;
    assert!(
        notice.text().contains("j***@new.example"),
        "{}",
        notice.text()
    );
    assert!(!notice.text().contains("jb@new.example"));
    lock_token(&notice);

    // Until confirmed the current address stays in force.
    let account = app.account(&first.access).await;
    assert_eq!(account["email"], OWNER);
    assert_eq!(account["email_verified"], true);
    app.login(OWNER, PASSWORD).await;

    // A second request voids the first.
    let newer = app.change_token(&first.access, "jb@newer.example").await;
    problem(
        app.confirm_email_change(&older, None).await,
        400,
        "invalid_token",
    )
    .await;

    // Confirming switches the address (verified), keeps the caller's session, ends the others,
    // and tells the old address with a lock link that can put it back.
    let account = json(
        app.confirm_email_change(&newer, Some(&first.access)).await,
        200,
    )
    .await;
    assert_eq!(account["email"], "jb@newer.example");
    assert_eq!(account["email_verified"], true);
    app.assert_session_alive(&first).await;
    app.assert_session_dead(&second).await;
    let told = app.smtp.wait_for_subject(OWNER, CHANGED_SUBJECT).await;
    assert!(
        told.text().contains("j***@newer.example"),
        "{}",
        told.text()
    );
    assert!(told.text().contains("for 7 days"), "{}", told.text());
    lock_token(&told);
    // Single use.
    problem(
        app.confirm_email_change(&newer, None).await,
        400,
        "invalid_token",
    )
    .await;
    // The new address logs in; the old one no longer does.
    app.login("jb@newer.example", PASSWORD).await;
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": OWNER, "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    let types = app.event_types(&first.access).await;
    assert!(
        types.contains(&"account.email_change_requested".to_string()),
        "{types:?}"
    );
    assert!(
        types.contains(&"account.email_changed".to_string()),
        "{types:?}"
    );
}

#[tokio::test]
async fn the_thief_story() {
    let app = spawn_app().await;
    let owner = app.with_two_factor("jbber", OWNER).await;

    // A thief with the password and the second factor signs in and moves the address.
    let mfa = app.mfa_token("jbber").await;
    let code = app.totp_now(&owner.secret, 0);
    let body = json(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": code}),
        )
        .await,
        200,
    )
    .await;
    let thief = Tokens {
        access: body["access_token"].as_str().expect("access").into(),
        refresh: body["refresh_token"].as_str().expect("refresh").into(),
        device: None,
    };
    let token = app.change_token(&thief.access, "thief@evil.example").await;
    json(
        app.confirm_email_change(&token, Some(&thief.access)).await,
        200,
    )
    .await;
    app.assert_session_dead(&owner.tokens).await;
    app.assert_session_alive(&thief).await;

    // Nobody may take the old address while its owner can still put it back.
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "thief2", "email": OWNER, "password": PASSWORD}),
        )
        .await;
    problem(res, 409, "email_taken").await;

    // The owner follows the lock link of the notice sent to the old address.
    let told = app.smtp.wait_for_subject(OWNER, CHANGED_SUBJECT).await;
    let locked = json(app.lock_with(&lock_token(&told)).await, 200).await;
    assert_eq!(
        locked,
        json!({"status": "locked", "address_restored": true})
    );
    app.assert_session_dead(&thief).await;
    app.smtp.wait_for_subject(OWNER, LOCKED_SUBJECT).await;

    // Nobody signs in: the right password is a 403, a wrong one the plain 401.
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        403,
        "account_locked",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "wrong password 1"}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    // The thief's address is gone from the account.
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "thief@evil.example", "password": PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;

    // The owner resets the password through the restored address: unlocked, 2FA intact.
    app.reset_password_by_mail("jbber", OWNER, NEW_PASSWORD)
        .await;
    app.smtp.wait_for_subject(OWNER, UNLOCKED_SUBJECT).await;
    let body = json(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": NEW_PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["status"], "mfa_required", "{body}");
    let code = app.totp_now(&owner.secret, 30);
    let body = json(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": body["mfa_token"], "code": code}),
        )
        .await,
        200,
    )
    .await;
    let access = body["access_token"].as_str().expect("access");
    let account = app.account(access).await;
    assert_eq!(account["email"], OWNER);
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["two_factor_enabled"], true);
    let types = app.event_types(access).await;
    for t in [
        "account.locked",
        "account.unlocked",
        "account.email_changed",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    // The thief cannot take the old address for another account either: it is the owner's.
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "thief2", "email": OWNER, "password": PASSWORD}),
        )
        .await;
    problem(res, 409, "email_taken").await;
}

#[tokio::test]
async fn a_lock_link_from_a_recovery_code_notice_locks_once() {
    let app = spawn_app().await;
    let owner = app.with_two_factor("jbber", OWNER).await;
    let mfa = app.mfa_token("jbber").await;
    let body = json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": owner.codes[0]}),
        )
        .await,
        200,
    )
    .await;
    let session = Tokens {
        access: body["access_token"].as_str().expect("access").into(),
        refresh: body["refresh_token"].as_str().expect("refresh").into(),
        device: None,
    };
    let notice = app
        .smtp
        .wait_for_subject(OWNER, "A recovery code was used")
        .await;
    // The notice names what, when, from where and with what.
    let text = notice.text();
    assert!(text.contains("IP address: 127.0.0.1"), "{text}");
    assert!(text.contains("UTC"), "{text}");
    let token = lock_token(&notice);

    // A burst of the same link: exactly one lock.
    let answers = futures_util::future::join_all((0..5).map(|_| app.lock_with(&token))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        4,
        "{statuses:?}"
    );
    problem(app.lock_with(&token).await, 400, "invalid_token").await;

    app.assert_session_dead(&session).await;
    app.assert_session_dead(&owner.tokens).await;
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD}),
        )
        .await,
        403,
        "account_locked",
    )
    .await;
    app.smtp.wait_for_subject(OWNER, LOCKED_SUBJECT).await;
    assert_eq!(
        app.smtp
            .to(OWNER)
            .iter()
            .filter(|m| m.subject().contains(LOCKED_SUBJECT))
            .count(),
        1
    );
    // The token is stored only as a hash.
    let stored = app.db_texts("SELECT token_hash AS value FROM lock_links");
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|h| h != &token && h.len() == 64));
}

#[tokio::test]
async fn used_expired_or_unknown_lock_links_are_invalid_tokens() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let res = app
        .put_auth(
            "/api/v1/account/password",
            &tokens.access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let notice = app
        .smtp
        .wait_for_subject(OWNER, "password was changed")
        .await;
    let token = lock_token(&notice);
    app.clock
        .advance(chrono::Duration::days(7) + chrono::Duration::minutes(1));
    problem(app.lock_with(&token).await, 400, "invalid_token").await;
    for junk in ["", "nope", "\u{1F512}", &"a".repeat(2048)] {
        problem(app.lock_with(junk).await, 400, "invalid_token").await;
    }
    // Longer than any token (TOKEN_MAX_CHARS): refused at the edge, before any lookup.
    let body = problem(
        app.lock_with(&"a".repeat(2049)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "token");
    assert_eq!(body["errors"][0]["code"], "too_long");
    // Nothing was locked.
    app.login("jbber", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_locked_accounts_mfa_token_reset_link_and_completion_link_stop_working() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    let owner = app.with_two_factor("jbber", OWNER).await;

    // Everything in flight before the lock: an mfa token, a reset link, a completion link.
    let mfa = app.mfa_token("jbber").await;
    let res = app
        .post("/api/v1/password-resets", json!({"login": "jbber"}))
        .await;
    assert_eq!(res.status(), 202);
    let reset = app
        .smtp
        .wait_for_subject(OWNER, "Reset your")
        .await
        .link_param("reset-password", "token")
        .expect("reset link");
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    app.prove_ownership(OWNER).await;
    app.approve(&support.access, &id, json!({"deliver_to": "account_email"}))
        .await;
    let completion = app.completion_token(OWNER, 1).await;

    // The lock link of the "two-factor authentication is on" notice.
    let notice = app
        .smtp
        .wait_for_subject(OWNER, "Two-factor authentication is on")
        .await;
    json(app.lock_with(&lock_token(&notice)).await, 200).await;

    let code = app.totp_now(&owner.secret, 0);
    problem(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": code}),
        )
        .await,
        401,
        "mfa_token_invalid",
    )
    .await;
    problem(
        app.post(
            "/api/v1/password-resets/confirm",
            json!({"token": reset, "new_password": NEW_PASSWORD}),
        )
        .await,
        400,
        "invalid_token",
    )
    .await;
    problem(
        app.complete_recovery(&completion, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;

    // Support sees the lock on the evidence page; the approved request went back to review.
    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["request"]["status"], "in_review", "{detail}");
    assert_eq!(detail["evidence"]["ownership"], "disputed", "{detail}");
    let locks = detail["evidence"]["locks"].as_array().expect("locks");
    assert_eq!(locks.len(), 1, "{detail}");
    assert_eq!(locks[0]["notice"], "totp_enabled");
    assert_eq!(locks[0]["unlocked_at"], Value::Null);
}

#[tokio::test]
async fn a_completed_recovery_request_unlocks() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    app.with_two_factor("jbber", OWNER).await;
    let notice = app
        .smtp
        .wait_for_subject(OWNER, "Two-factor authentication is on")
        .await;
    json(app.lock_with(&lock_token(&notice)).await, 200).await;

    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    app.prove_ownership(OWNER).await;
    app.approve_and_complete(
        &support.access,
        &id,
        json!({"deliver_to": "account_email"}),
        OWNER,
        NEW_PASSWORD,
    )
    .await;
    app.smtp.wait_for_subject(OWNER, UNLOCKED_SUBJECT).await;
    // The recovery removed 2FA: the new password signs in at once.
    app.login("jbber", NEW_PASSWORD).await;
}

#[tokio::test]
async fn support_sees_pending_and_recent_address_changes() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let token = app.change_token(&tokens.access, "jb@new.example").await;
    json(
        app.confirm_email_change(&token, Some(&tokens.access)).await,
        200,
    )
    .await;
    app.change_token(&tokens.access, "jb@third.example").await;

    let (id, _) = app.submit_recovery("jbber", "jb.contact@example.org").await;
    let detail = app.recovery_detail(&support.access, &id).await;
    let evidence = &detail["evidence"];
    assert_eq!(
        evidence["pending_email_changes"][0]["new_email"], "jb@third.example",
        "{evidence}"
    );
    assert_eq!(evidence["email_changes"][0]["old_email"], OWNER);
    assert_eq!(evidence["email_changes"][0]["new_email"], "jb@new.example");
    assert_eq!(evidence["email_changes"][0]["how"], "confirmed");
    assert_eq!(evidence["locks"], json!([]));
}

#[tokio::test]
async fn email_changes_are_limited_per_account_even_in_a_burst() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_EMAIL_CHANGES".into(), "2/1h".into());
    })
    .await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let addresses: Vec<String> = (0..5).map(|i| format!("jb{i}@new.example")).collect();
    let answers = futures_util::future::join_all(
        addresses
            .iter()
            .map(|a| app.request_email_change(&tokens.access, PASSWORD, a)),
    )
    .await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Exactly one pending change survives: the newer voided the older.
    let live = app.db_texts(
        "SELECT email AS value FROM email_tokens WHERE purpose = 'change_email' AND revoked_at IS NULL",
    );
    assert_eq!(live.len(), 1, "{live:?}");
}

#[tokio::test]
async fn an_undo_link_expires_after_the_undo_period_but_still_locks() {
    let app = spawn_app_with(|env| {
        env.insert("EMAIL_CHANGE_UNDO_PERIOD".into(), "1h".into());
    })
    .await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let token = app.change_token(&tokens.access, "jb@new.example").await;
    json(
        app.confirm_email_change(&token, Some(&tokens.access)).await,
        200,
    )
    .await;
    let told = app.smtp.wait_for_subject(OWNER, CHANGED_SUBJECT).await;
    app.clock.advance(chrono::Duration::hours(2));
    let locked = json(app.lock_with(&lock_token(&told)).await, 200).await;
    assert_eq!(locked["address_restored"], false);
    app.assert_session_dead(&tokens).await;
    // The lock mail goes to the verified address the account has now.
    app.smtp
        .wait_for_subject("jb@new.example", LOCKED_SUBJECT)
        .await;
}

#[tokio::test]
async fn a_lock_from_the_request_notice_voids_the_pending_change() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let token = app.change_token(&tokens.access, "jb@new.example").await;
    let notice = app.smtp.wait_for_subject(OWNER, REQUESTED_SUBJECT).await;
    let locked = json(app.lock_with(&lock_token(&notice)).await, 200).await;
    assert_eq!(locked["address_restored"], false);
    problem(
        app.confirm_email_change(&token, None).await,
        400,
        "invalid_token",
    )
    .await;
    app.assert_session_dead(&tokens).await;
    // The lock and the unlock are audited and mailed to the verified address.
    app.smtp.wait_for_subject(OWNER, LOCKED_SUBJECT).await;
    app.reset_password_by_mail("jbber", OWNER, NEW_PASSWORD)
        .await;
    app.smtp.wait_for_subject(OWNER, UNLOCKED_SUBJECT).await;
    let tokens = app.login("jbber", NEW_PASSWORD).await;
    assert_eq!(app.account(&tokens.access).await["email"], OWNER);
}

#[tokio::test]
async fn hostile_email_change_bodies_never_give_a_500() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    for new_email in [
        "",
        "no-at-sign",
        "a@b\u{0}.com",
        &format!("{}@x.example", "a".repeat(300)),
    ] {
        let res = app
            .request_email_change(&tokens.access, PASSWORD, new_email)
            .await;
        assert_eq!(res.status(), 422, "{new_email:?}");
    }
    problem(
        app.post(
            "/api/v1/account/email-changes",
            json!({"password": PASSWORD, "new_email": "x@y.example"}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    for token in ["", "\u{0}", "' OR 1=1 --"] {
        let res = app.confirm_email_change(token, None).await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{token:?}");
    }
}

#[tokio::test]
async fn a_password_change_or_reset_voids_a_pending_email_change() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let token = app.change_token(&tokens.access, "thief@evil.example").await;
    app.reset_password_by_mail("jbber", OWNER, NEW_PASSWORD)
        .await;
    problem(
        app.confirm_email_change(&token, None).await,
        400,
        "invalid_token",
    )
    .await;
    let tokens = app.login("jbber", NEW_PASSWORD).await;
    assert_eq!(app.account(&tokens.access).await["email"], OWNER);
}

#[tokio::test]
async fn a_lock_stops_a_completion_link_still_held_for_the_waiting_period() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    app.verified_user("jbber", OWNER, PASSWORD).await;
    // Ownership unanswered: the approval holds the link for the waiting period.
    let (id, _) = app.submit_recovery("jbber", "someone@example.org").await;
    let approved = app
        .approve(
            &support.access,
            &id,
            json!({"deliver_to": "contact_email", "justification": "Matched the signing key"}),
        )
        .await;
    assert_eq!(approved["request"]["status"], "approved", "{approved}");

    // Any notice's lock link will do: change the password to get one.
    let tokens = app.login("jbber", PASSWORD).await;
    let res = app
        .put_auth(
            "/api/v1/account/password",
            &tokens.access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let changed = app
        .smtp
        .wait_for_subject(OWNER, "password was changed")
        .await;
    json(app.lock_with(&lock_token(&changed)).await, 200).await;

    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["request"]["status"], "in_review", "{detail}");
    let due = app.db_texts(&format!(
        "SELECT status AS value FROM recovery_requests WHERE id = '{id}' AND link_due_at IS NULL"
    ));
    assert_eq!(due, vec!["in_review".to_string()]);
}
