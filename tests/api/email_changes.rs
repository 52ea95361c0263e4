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
    // The "recovery completed" notice says from where, like every other notice.
    let notice = app
        .smtp
        .wait_for_subject(OWNER, "account was recovered")
        .await;
    assert!(
        notice.text().contains("IP address: 127.0.0.1"),
        "{}",
        notice.text()
    );
    assert!(
        notice.html().contains("IP address: 127.0.0.1"),
        "{}",
        notice.html()
    );
    lock_token(&notice);
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

/// Gap 1 of the audit: an owner who registered with a mistyped address and never verified it
/// fixes it. Whoever reads the old address gets nothing: no notice, so no lock link that could
/// lock the account or put that address back (verified), and a reset through it sends no link.
#[tokio::test]
async fn a_never_verified_old_address_gets_no_lock_link_and_cannot_come_back() {
    let app = spawn_app().await;
    let typo = "jbber@exmaple.com";
    app.register("jbber", typo, PASSWORD).await;
    let tokens = app.login("jbber", PASSWORD).await;
    let before = app.account(&tokens.access).await;
    assert_eq!(before["email_verified"], false, "{before}");

    let token = app.change_token(&tokens.access, OWNER).await;
    let account = json(
        app.confirm_email_change(&token, Some(&tokens.access)).await,
        200,
    )
    .await;
    assert_eq!(account["email"], OWNER, "{account}");
    assert_eq!(account["email_verified"], true, "{account}");

    // Both notices (request and change) were skipped: the typo got only its verification mail,
    // and no lock link of the account can restore it.
    let kinds = app.db_texts(&format!(
        "SELECT kind AS value FROM outbox WHERE recipient = '{typo}'"
    ));
    assert_eq!(kinds, ["verify_email"], "{kinds:?}");
    assert!(
        app.db_texts(&format!(
            "SELECT token_hash AS value FROM lock_links WHERE restore_email = '{typo}'"
        ))
        .is_empty()
    );
    assert!(
        app.smtp
            .to(typo)
            .iter()
            .all(|m| m.link("lock-account").is_none())
    );

    // A reset asked for through the old address sends no link there; the owner's own reset
    // goes to the new, verified address.
    assert_eq!(
        app.post("/api/v1/password-resets", json!({"login": typo}))
            .await
            .status(),
        202
    );
    app.reset_password_by_mail("jbber", OWNER, NEW_PASSWORD)
        .await;
    assert_eq!(app.smtp.to(typo).len(), 1, "only the verification mail");
    assert!(
        app.db_texts(&format!(
            "SELECT token_hash AS value FROM email_tokens WHERE email = '{typo}' AND purpose = 'reset_password'"
        ))
        .is_empty()
    );
    let tokens = app.login(OWNER, NEW_PASSWORD).await;
    let after = app.account(&tokens.access).await;
    assert_eq!(after["email"], OWNER, "{after}");
    assert_eq!(after["email_verified"], true, "{after}");
}

/// Audit gap 4: a login refused because the account is locked leaves its
/// `session.login_failed` event (it used to be rolled back with the refusal), so support sees
/// who tries to get into a locked account.
#[tokio::test]
async fn a_login_refused_for_a_lock_is_audited() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let id = app.account(&tokens.access).await["id"]
        .as_str()
        .expect("id")
        .to_string();
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
    json(app.lock_with(&lock_token(&notice)).await, 200).await;

    let res = app
        .http
        .post(app.url("/api/v1/sessions"))
        .header("User-Agent", "LockedOutProbe/2.0")
        .json(&json!({"login": "jbber", "password": NEW_PASSWORD}))
        .send()
        .await
        .expect("request");
    problem(res, 403, "account_locked").await;

    let events = json(
        app.get_auth(
            &format!("/api/v1/admin/audit-events?account={id}&type=session.login_failed"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    let items = events["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(items[0]["details"]["reason"], "account_locked", "{events}");
    assert_eq!(items[0]["user_agent"], "LockedOutProbe/2.0", "{events}");
    assert_eq!(items[0]["ip"], "127.0.0.1", "{events}");
}

/// Audit gap 5: a thief who moved the address files a recovery request and "proves" ownership
/// through their own address. The owner's lock puts the old address back, and with it that
/// proof stops counting: the request shows ownership disputed, says why on its timeline, and
/// the ownership link in the thief's mailbox is dead.
#[tokio::test]
async fn a_lock_that_restores_the_address_disputes_open_requests_proven_through_the_thief() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    app.verified_user("jbber", OWNER, PASSWORD).await;
    let thief = app.login("jbber", PASSWORD).await;
    let token = app.change_token(&thief.access, "thief@evil.example").await;
    json(
        app.confirm_email_change(&token, Some(&thief.access)).await,
        200,
    )
    .await;

    let (id, _) = app
        .submit_recovery("jbber", "thief.contact@evil.example")
        .await;
    let ownership_token = app.prove_ownership("thief@evil.example").await;
    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["evidence"]["ownership"], "proven", "{detail}");

    let told = app.smtp.wait_for_subject(OWNER, CHANGED_SUBJECT).await;
    let locked = json(app.lock_with(&lock_token(&told)).await, 200).await;
    assert_eq!(locked["address_restored"], true, "{locked}");

    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["request"]["status"], "submitted", "{detail}");
    assert_eq!(detail["evidence"]["ownership"], "disputed", "{detail}");
    let rejudged: Vec<&Value> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| {
            e["type"] == "recovery_request.ownership_disputed"
                && e["details"]["by"] == "account_lock"
        })
        .collect();
    assert_eq!(rejudged.len(), 1, "{detail}");
    assert_eq!(rejudged[0]["details"]["ownership_from"], "proven");
    // The link the thief holds no longer answers anything.
    assert_eq!(
        app.post(
            "/api/v1/recovery-requests/verify-email",
            json!({"token": ownership_token, "confirm": true}),
        )
        .await
        .status(),
        400
    );
    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["evidence"]["ownership"], "disputed", "{detail}");
}

/// Audit gap 3: the `confirm-email-change` link dies after 48 h (`EMAIL_CHANGE_TTL`), and the
/// current address stays the account's.
#[tokio::test]
async fn a_confirmation_link_expires_after_48_hours() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    let token = app.change_token(&tokens.access, "jb@new.example").await;
    app.clock
        .advance(chrono::Duration::hours(48) + chrono::Duration::minutes(1));
    problem(
        app.confirm_email_change(&token, None).await,
        400,
        "invalid_token",
    )
    .await;
    // The access token expired meanwhile: sign in again, with the current address.
    let tokens = app.login(OWNER, PASSWORD).await;
    let account = app.account(&tokens.access).await;
    assert_eq!(account["email"], OWNER, "{account}");
    assert_eq!(account["email_verified"], true, "{account}");
}

/// Audit gap 3: while a change waits for its link, the ownership mail of a recovery request goes
/// to the current address, never to the pending one.
#[tokio::test]
async fn a_pending_change_leaves_the_ownership_mail_at_the_current_address() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", OWNER, PASSWORD).await;
    app.change_token(&tokens.access, "jb@new.example").await;
    app.submit_recovery("jbber", "jb.contact@example.org").await;
    let mail = app.smtp.wait_for_subject(OWNER, "Did you ask").await;
    assert!(mail.link_param("recovery/verify", "token").is_some());
    assert!(
        app.smtp
            .to("jb@new.example")
            .iter()
            .all(|m| m.subject().contains(CONFIRM_SUBJECT)),
        "only the confirmation link goes to the pending address"
    );
}

/// The security notices API.md lists, each triggered on a fresh app.
#[derive(Debug, Clone, Copy)]
enum Notice {
    PasswordChanged,
    PasswordReset,
    EmailChangeRequested,
    EmailChanged,
    TotpOn,
    TotpOff,
    PasskeyAdded,
    PasskeyRemoved,
    CodesRegenerated,
    RecoveryCodeUsed,
    NewDeviceSignIn,
    RecoveryCompleted,
}

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Triggers `notice` for `jbber` (address OWNER); answers its mail and the password the
/// account has afterwards.
async fn trigger(app: &TestApp, notice: Notice) -> (Mail, &'static str) {
    use crate::support::passkey::SoftAuthenticator;
    let wait = |subject: &'static str| app.smtp.wait_for_subject(OWNER, subject);
    match notice {
        Notice::PasswordChanged => {
            let t = app.verified_user("jbber", OWNER, PASSWORD).await;
            let res = app
                .put_auth(
                    "/api/v1/account/password",
                    &t.access,
                    json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
                )
                .await;
            assert_eq!(res.status(), 204);
            (wait("password was changed").await, NEW_PASSWORD)
        }
        Notice::PasswordReset => {
            app.verified_user("jbber", OWNER, PASSWORD).await;
            app.reset_password_by_mail("jbber", OWNER, NEW_PASSWORD)
                .await;
            (wait("password was changed").await, NEW_PASSWORD)
        }
        Notice::EmailChangeRequested => {
            let t = app.verified_user("jbber", OWNER, PASSWORD).await;
            app.change_token(&t.access, "jb@new.example").await;
            (wait(REQUESTED_SUBJECT).await, PASSWORD)
        }
        Notice::EmailChanged => {
            let t = app.verified_user("jbber", OWNER, PASSWORD).await;
            let token = app.change_token(&t.access, "jb@new.example").await;
            json(app.confirm_email_change(&token, Some(&t.access)).await, 200).await;
            (wait(CHANGED_SUBJECT).await, PASSWORD)
        }
        Notice::TotpOn => {
            app.with_two_factor("jbber", OWNER).await;
            (wait("Two-factor authentication is on").await, PASSWORD)
        }
        Notice::TotpOff => {
            let u = app.with_two_factor("jbber", OWNER).await;
            let res = app
                .post_auth(
                    "/api/v1/account/totp/disable",
                    &u.tokens.access,
                    json!({"password": PASSWORD, "code": u.codes[0]}),
                )
                .await;
            assert_eq!(res.status(), 204);
            (wait("was turned off").await, PASSWORD)
        }
        Notice::PasskeyAdded => {
            let t = app.verified_user("jbber", OWNER, PASSWORD).await;
            app.add_passkey(&t, &SoftAuthenticator::new(), "Key").await;
            (wait("A passkey was added").await, PASSWORD)
        }
        Notice::PasskeyRemoved => {
            let u = app.with_two_factor("jbber", OWNER).await;
            app.add_passkey(&u.tokens, &SoftAuthenticator::new(), "Key")
                .await;
            let list = json(
                app.get_auth("/api/v1/account/passkeys", &u.tokens.access)
                    .await,
                200,
            )
            .await;
            let id = list["items"][0]["id"].as_str().expect("id").to_string();
            let res = app
                .post_auth(
                    &format!("/api/v1/account/passkeys/{id}/remove"),
                    &u.tokens.access,
                    json!({"password": PASSWORD}),
                )
                .await;
            assert_eq!(res.status(), 204);
            (wait("A passkey was removed").await, PASSWORD)
        }
        Notice::CodesRegenerated => {
            let u = app.with_two_factor("jbber", OWNER).await;
            json(
                app.post_auth(
                    "/api/v1/account/recovery-codes",
                    &u.tokens.access,
                    json!({"password": PASSWORD}),
                )
                .await,
                201,
            )
            .await;
            (wait("New recovery codes").await, PASSWORD)
        }
        Notice::RecoveryCodeUsed => {
            let u = app.with_two_factor("jbber", OWNER).await;
            let mfa = app.mfa_token("jbber").await;
            json(
                app.post(
                    "/api/v1/sessions/recovery-code",
                    json!({"mfa_token": mfa, "code": u.codes[0]}),
                )
                .await,
                200,
            )
            .await;
            (wait("A recovery code was used").await, PASSWORD)
        }
        Notice::NewDeviceSignIn => {
            let u = app.with_two_factor("jbber", OWNER).await;
            let mfa = app.mfa_token("jbber").await;
            let code = app.totp_now(&u.secret, 0);
            let body = json(
                app.post(
                    "/api/v1/sessions/totp",
                    json!({"mfa_token": mfa, "code": code}),
                )
                .await,
                200,
            )
            .await;
            assert_eq!(body["status"], "email_confirmation_required", "{body}");
            (wait("Confirm a new sign-in").await, PASSWORD)
        }
        Notice::RecoveryCompleted => {
            let support = app.support_user("ana").await;
            app.verified_user("jbber", OWNER, PASSWORD).await;
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
            (wait("account was recovered").await, NEW_PASSWORD)
        }
    }
}

/// Audit gap 3: every notice API.md lists says when, from which IP and with what, and its
/// `lock-account` link locks the account.
#[tokio::test]
async fn every_notice_names_when_where_and_what_and_its_lock_link_locks() {
    for notice in [
        Notice::PasswordChanged,
        Notice::PasswordReset,
        Notice::EmailChangeRequested,
        Notice::EmailChanged,
        Notice::TotpOn,
        Notice::TotpOff,
        Notice::PasskeyAdded,
        Notice::PasskeyRemoved,
        Notice::CodesRegenerated,
        Notice::RecoveryCodeUsed,
        Notice::NewDeviceSignIn,
        Notice::RecoveryCompleted,
    ] {
        let confirm = if matches!(notice, Notice::NewDeviceSignIn) {
            "all"
        } else {
            "off"
        };
        let mut app = spawn_app_with(|env| {
            env.insert("NEW_DEVICE_CONFIRMATION".into(), confirm.into());
        })
        .await;
        app.http = reqwest::Client::builder()
            .user_agent(BROWSER)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let (mail, password) = trigger(&app, notice).await;
        let text = mail.text();
        assert!(text.contains("UTC"), "{notice:?}: {text}");
        assert!(text.contains("IP address: 127.0.0.1"), "{notice:?}: {text}");
        if matches!(notice, Notice::NewDeviceSignIn) {
            // This notice names the device by a label made from the User-Agent.
            assert!(text.contains("Firefox"), "{notice:?}: {text}");
        } else {
            assert!(
                text.contains(&format!("Browser or app: {BROWSER}")),
                "{notice:?}: {text}"
            );
        }
        let link = mail.link("lock-account").unwrap_or_default();
        assert!(
            link.starts_with("https://frontend.test/lock-account?token="),
            "{notice:?}: {text}"
        );
        json(app.lock_with(&lock_token(&mail)).await, 200).await;
        problem(
            app.post(
                "/api/v1/sessions",
                json!({"login": "jbber", "password": password}),
            )
            .await,
            403,
            "account_locked",
        )
        .await;
    }
}
