//! Account-recovery requests and the support review API: both seed stories, field errors,
//! roles, invalid transitions, the waiting period, disputes, expiry, where the completion link
//! goes, and a link replaced while it was being used.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::recovery::submission;
use crate::support::{Mail, PASSWORD, TestApp, json, problem, spawn_app, spawn_app_with};

const NEW_PASSWORD: &str = "velvet compass harbor 19";

async fn tracked(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .header("X-Tracking-Token", token)
        .send()
        .await
        .expect("request")
}

async fn admin_post(app: &TestApp, support: &str, path: &str, body: Value) -> reqwest::Response {
    app.post_auth(
        &format!("/api/v1/admin/recovery-requests/{path}"),
        support,
        body,
    )
    .await
}

/// Waits (bounded) for a mail whose subject contains `subject`, beyond those already counted.
async fn mail_with(app: &TestApp, to: &str, subject: &str) -> Mail {
    app.smtp.wait_for_subject(to, subject).await
}

fn count(app: &TestApp, to: &str, subject: &str) -> usize {
    app.smtp
        .to(to)
        .iter()
        .filter(|m| m.subject().contains(subject))
        .count()
}

#[tokio::test]
async fn the_owner_who_still_reads_the_account_email_gets_back_in() {
    let app = spawn_app().await;
    let owner = app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;

    let (id, token) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let tracking = mail_with(
        &app,
        "jb.new@example.org",
        "We received your account-recovery request",
    )
    .await;
    let link = tracking.link("recovery/status").expect("tracking link");
    assert!(
        link.contains(&format!("id={id}")) && link.contains("token="),
        "{link}"
    );

    // "It was me", through the account's verified email.
    let ownership = mail_with(&app, "jb@example.com", "Did you ask to recover").await;
    let verify = ownership
        .link_param("recovery/verify", "token")
        .expect("ownership token");
    let answer = json(
        app.post(
            "/api/v1/recovery-requests/verify-email",
            json!({"token": verify, "confirm": true}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(answer["ownership"], "proven");

    // Support sees the request with its evidence.
    let queue = json(
        app.get_auth(
            "/api/v1/admin/recovery-requests?status=submitted",
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(queue["total"], 1);
    assert_eq!(queue["items"][0]["id"], id.as_str());
    assert!(queue["items"][0]["age_seconds"].is_number());
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    let evidence = &detail["evidence"];
    assert_eq!(evidence["exists"], true);
    assert_eq!(evidence["email_verified"], true);
    assert_eq!(evidence["two_factor_enabled"], true);
    assert_eq!(evidence["recovery_codes"]["remaining"], 8);
    assert_eq!(evidence["ownership"], "proven");
    assert!(evidence["last_login_at"].is_string());

    // Approval: ownership proven, so the link goes out now, to the account's email.
    let approved = app
        .approve(&support.access, &id, json!({"comment": "proven"}))
        .await;
    assert_eq!(approved["request"]["status"], "approved");
    let complete = app.completion_token("jb@example.com", 1).await;

    // The password policy applies, and a refusal leaves the link usable.
    let res = app.complete_recovery(&complete, "password1").await;
    problem(res, 422, "validation_failed").await;
    let done = json(app.complete_recovery(&complete, NEW_PASSWORD).await, 200).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["username"], "jbber");
    problem(
        app.complete_recovery(&complete, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;

    // Old sessions are dead; the password alone logs in; 2FA is gone and the owner is told.
    problem(
        app.get_auth("/api/v1/account", &owner.tokens.access).await,
        401,
        "unauthorized",
    )
    .await;
    let tokens = app.login("jbber", NEW_PASSWORD).await;
    let account = json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await;
    assert_eq!(account["two_factor_enabled"], false);
    mail_with(&app, "jb@example.com", "was recovered").await;

    let status = json(tracked(&app, &id, &token).await, 200).await;
    assert_eq!(status["status"], "completed");
    assert!(
        status["next_step"]
            .as_str()
            .unwrap_or("")
            .contains("two-factor")
    );

    let audit = json(
        app.get_auth(
            &format!("/api/v1/admin/audit-events?request={id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    let types: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    for t in [
        "recovery_request.submitted",
        "recovery_request.ownership_proven",
        "recovery_request.approved",
        "recovery_request.link_sent",
        "recovery_request.completed",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
}

#[tokio::test]
async fn the_owner_who_does_not_read_it_is_asked_answers_and_is_denied() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;
    let (id, token) = app.submit_recovery("jbber", "someone@example.org").await;

    // An internal note moves it to review and never reaches the requester.
    json(
        admin_post(
            &app,
            &support.access,
            &format!("{id}/notes"),
            json!({"body": "INTERNAL: the IP is unusual"}),
        )
        .await,
        201,
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(1));
    json(
        admin_post(
            &app,
            &support.access,
            &format!("{id}/messages"),
            json!({"body": "Which package did you release last?"}),
        )
        .await,
        201,
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(1));
    let mail = mail_with(&app, "someone@example.org", "needs more information").await;
    assert!(mail.text().contains("Which package did you release last?"));
    assert!(!mail.text().contains("INTERNAL"));

    let status = json(tracked(&app, &id, &token).await, 200).await;
    assert_eq!(status["status"], "needs_info");
    assert_eq!(status["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(status["messages"][0]["from"], "support");
    assert!(!status.to_string().contains("INTERNAL"));

    let reply = app
        .http
        .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
        .header("X-Tracking-Token", &token)
        .json(&json!({"body": "I think it was foo 1.0, years ago."}))
        .send()
        .await
        .expect("request");
    json(reply, 201).await;
    let status = json(tracked(&app, &id, &token).await, 200).await;
    assert_eq!(status["status"], "in_review");
    app.clock.advance(chrono::Duration::minutes(1));

    let denied = json(
        admin_post(
            &app,
            &support.access,
            &format!("{id}/deny"),
            json!({"reason": "We could not verify ownership."}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(denied["request"]["status"], "denied");
    let mail = mail_with(&app, "someone@example.org", "was denied").await;
    assert!(mail.text().contains("We could not verify ownership."));
    let status = json(tracked(&app, &id, &token).await, 200).await;
    assert_eq!(status["status"], "denied");

    // Nothing changed on the account: the password still leads to the second factor.
    app.mfa_token("jbber").await;
    // Support's detail has the note; the requester never saw it.
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    let kinds: Vec<&str> = detail["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["note", "support", "requester"]);
}

#[tokio::test]
async fn every_field_is_checked_and_an_unknown_username_gets_the_same_answer() {
    let app = spawn_app().await;
    let mut body = submission("jbber", "jb.new@example.org");
    for flag in [
        "recovery_codes_lost",
        "code_of_conduct_accepted",
        "processing_time_acknowledged",
    ] {
        body[flag] = json!(false);
    }
    body["reason"] = json!("short");
    let res = app.post("/api/v1/recovery-requests", body).await;
    let problem_body = problem(res, 422, "validation_failed").await;
    let errors: Vec<(String, String)> = problem_body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or("").to_string(),
                e["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for expected in [
        ("reason", "too_short"),
        ("recovery_codes_lost", "must_be_true"),
        ("code_of_conduct_accepted", "must_be_true"),
        ("processing_time_acknowledged", "must_be_true"),
    ] {
        assert!(
            errors.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {errors:?}"
        );
    }
    let res = app
        .post("/api/v1/recovery-requests", json!({"username": "jbber"}))
        .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(5));

    // Unknown and known usernames: the same answer shape.
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let known = json(
        app.post(
            "/api/v1/recovery-requests",
            submission("jbber", "a@example.org"),
        )
        .await,
        202,
    )
    .await;
    let unknown = json(
        app.post(
            "/api/v1/recovery-requests",
            submission("nobody-here", "b@example.org"),
        )
        .await,
        202,
    )
    .await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&known), keys(&unknown));
    assert_eq!(known["status"], unknown["status"]);
    mail_with(&app, "b@example.org", "We received").await;

    // Support sees which; there is nothing to approve for an unknown username.
    let support = app.support_user("ana").await;
    let id = unknown["id"].as_str().expect("id");
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail["evidence"]["exists"], false);
    problem(
        admin_post(&app, &support.access, &format!("{id}/approve"), json!({})).await,
        409,
        "invalid_transition",
    )
    .await;
}

#[tokio::test]
async fn support_endpoints_refuse_other_accounts() {
    let app = spawn_app().await;
    let user = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for path in [
        "/api/v1/admin/recovery-requests",
        "/api/v1/admin/audit-events",
    ] {
        problem(app.get_auth(path, &user.access).await, 403, "forbidden").await;
        problem(app.get(path).await, 401, "unauthorized").await;
    }
    problem(
        admin_post(
            &app,
            &user.access,
            "00000000-0000-0000-0000-000000000000/approve",
            json!({}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn closed_requests_refuse_every_change_and_wrong_tokens_see_nothing() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await;
    let (id, token) = app.submit_recovery("jbber", "jb.new@example.org").await;
    problem(tracked(&app, &id, "wrong").await, 404, "not_found").await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .send()
        .await
        .expect("request");
    problem(res, 404, "not_found").await;

    let res = app
        .http
        .delete(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .header("X-Tracking-Token", &token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 204);
    assert_eq!(
        json(tracked(&app, &id, &token).await, 200).await["status"],
        "withdrawn"
    );

    for (path, body) in [
        (format!("{id}/approve"), json!({})),
        (format!("{id}/deny"), json!({"reason": "no"})),
        (format!("{id}/messages"), json!({"body": "hello?"})),
    ] {
        problem(
            admin_post(&app, &support.access, &path, body).await,
            409,
            "invalid_transition",
        )
        .await;
    }
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .header("X-Tracking-Token", &token)
        .send()
        .await
        .expect("request");
    problem(res, 409, "invalid_transition").await;
    let reply = app
        .http
        .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
        .header("X-Tracking-Token", &token)
        .json(&json!({"body": "wait"}))
        .send()
        .await
        .expect("request");
    problem(reply, 409, "invalid_transition").await;
}

#[tokio::test]
async fn the_waiting_period_holds_the_link_and_a_dispute_stops_it() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;

    // Ownership never answered: approval holds the link for 72 hours and tells the owner.
    let (id, _) = app.submit_recovery("jbber", "attacker@example.org").await;
    json(
        admin_post(&app, &support.access, &format!("{id}/approve"), json!({})).await,
        200,
    )
    .await;
    let pending = mail_with(&app, "jb@example.com", "under way").await;
    let stop = pending
        .link_param("recovery/verify", "token")
        .expect("stop link");
    app.clock.advance(chrono::Duration::hours(71));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count(&app, "jb@example.com", "Recover your"), 0);

    // "It was not me" before the link goes out: back to review, and no link ever comes.
    let answer = json(
        app.post(
            "/api/v1/recovery-requests/verify-email",
            json!({"token": stop, "confirm": false}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(answer["ownership"], "disputed");
    app.clock.advance(chrono::Duration::hours(2));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count(&app, "jb@example.com", "Recover your"), 0);
    let support = app.login("ana", PASSWORD).await;
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail["request"]["status"], "in_review");
    assert_eq!(detail["evidence"]["ownership"], "disputed");

    // Without a dispute, the held link goes out when the waiting period ends.
    let (second, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    json(
        admin_post(
            &app,
            &support.access,
            &format!("{second}/approve"),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    app.clock.advance(chrono::Duration::hours(73));
    let link = mail_with(&app, "jb@example.com", "Recover your").await;
    let token = link
        .link_param("recovery/complete", "token")
        .expect("token");
    // Unused for longer than its lifetime: it expires.
    app.clock.advance(chrono::Duration::hours(25));
    let support = app.login("ana", PASSWORD).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = json(
            app.get_auth(
                &format!("/api/v1/admin/recovery-requests/{second}"),
                &support.access,
            )
            .await,
            200,
        )
        .await;
        if d["request"]["status"] == "expired" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "request never expired: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    problem(
        app.post(
            "/api/v1/account-recovery/complete",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        )
        .await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_dispute_after_the_link_was_sent_kills_it() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let verify = app.prove_ownership("jb@example.com").await;
    app.approve(&support.access, &id, json!({})).await;
    let token = app.completion_token("jb@example.com", 1).await;
    app.answer_ownership(&verify, false).await;
    problem(
        app.complete_recovery(&token, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_second_request_is_a_duplicate_and_lost_links_are_sent_again() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await;
    let (first, token) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let (second, _) = app.submit_recovery("jbber", "other@example.org").await;
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{second}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail["evidence"]["duplicate_of"], first.as_str());
    assert_eq!(
        detail["evidence"]["earlier_requests"][0]["id"],
        first.as_str()
    );

    for address in ["jb.new@example.org", "nobody@example.org"] {
        json(
            app.post(
                "/api/v1/recovery-requests/tracking-links",
                json!({"contact_email": address}),
            )
            .await,
            202,
        )
        .await;
    }
    let again = mail_with(&app, "jb.new@example.org", "Your recovery request link").await;
    assert_eq!(
        again.link_param("recovery/status", "token").as_deref(),
        Some(token.as_str())
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(app.smtp.to("nobody@example.org").is_empty());
}

#[tokio::test]
async fn the_auto_approval_policy_approves_a_proven_request_in_the_owners_name() {
    let app = spawn_app_with(|env| {
        env.insert("RECOVERY_AUTO_APPROVE_AFTER".into(), "48h".into());
    })
    .await;
    let owner = app.with_two_factor("jbber", "jb@example.com").await;
    // Filed from the browser the owner signed in with: a device the account knows.
    let device = owner.tokens.device.clone().expect("a device token");
    let (id, token) = app
        .submit_recovery_from(Some(&device), "jbber", "jb.new@example.org")
        .await;
    let ownership = mail_with(&app, "jb@example.com", "Did you ask").await;
    assert!(
        ownership
            .text()
            .contains("approved automatically after 48 hours")
    );
    let verify = ownership
        .link_param("recovery/verify", "token")
        .expect("token");
    json(
        app.post(
            "/api/v1/recovery-requests/verify-email",
            json!({"token": verify, "confirm": true}),
        )
        .await,
        200,
    )
    .await;
    app.clock.advance(chrono::Duration::hours(47));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(count(&app, "jb@example.com", "Recover your"), 0);
    app.clock.advance(chrono::Duration::hours(2));
    let link = mail_with(&app, "jb@example.com", "Recover your").await;
    assert!(link.text().contains("automatically"));
    assert!(
        link.link("recovery/verify").is_some(),
        "the mail carries the link to stop it"
    );
    assert_eq!(
        json(tracked(&app, &id, &token).await, 200).await["status"],
        "approved"
    );
    let support = app.support_user("ana").await;
    let audit = json(
        app.get_auth(
            &format!("/api/v1/admin/audit-events?request={id}&type=recovery_request.approved"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(audit["items"][0]["actor"], "system");
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail["evidence"]["submitted_from_known_device"], true);
    assert!(detail["evidence"]["known_device_first_seen_at"].is_string());
}

#[tokio::test]
async fn auto_approval_never_fires_without_a_known_device() {
    let app = spawn_app_with(|env| {
        env.insert("RECOVERY_AUTO_APPROVE_AFTER".into(), "48h".into());
    })
    .await;
    let mallory = app
        .verified_user("mallory", "mallory@example.com", PASSWORD)
        .await;
    let mallorys_device = mallory.device.clone().expect("a device token");
    // Someone with each owner's mailbox files a request and proves ownership through the email:
    // from a browser the account does not know, with a device of another account, with a
    // made-up token, and (the control) from the owner's own device.
    let mut filed = Vec::new();
    for (i, device) in [
        Some(None),
        Some(Some(mallorys_device.as_str())),
        Some(Some("not-a-device-token")),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let (name, email) = (format!("owner{i}"), format!("owner{i}@example.com"));
        let owner = app.verified_user(&name, &email, PASSWORD).await;
        let device = device.unwrap_or(owner.device.as_deref());
        let (id, token) = app
            .submit_recovery_from(device, &name, &format!("new{i}@example.org"))
            .await;
        app.prove_ownership(&email).await;
        filed.push((id, token));
    }
    app.clock.advance(chrono::Duration::hours(49));
    let (control_id, control_token) = filed.pop().expect("the control");
    // The maintenance loop runs twice a second: wait (bounded) for the control's approval.
    let mut status = String::new();
    for _ in 0..40 {
        status = json(tracked(&app, &control_id, &control_token).await, 200).await["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "approved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "approved", "the owner's own device is approved");
    for (id, token) in &filed {
        assert_eq!(
            json(tracked(&app, id, token).await, 200).await["status"],
            "submitted",
            "auto-approved without a known device"
        );
    }
    let support = app.support_user("ana").await;
    let detail = json(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{}", filed[1].0),
            &support.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(detail["evidence"]["submitted_from_known_device"], false);
    assert!(detail["evidence"]["known_device_first_seen_at"].is_null());
}

#[tokio::test]
async fn without_a_verified_email_the_link_goes_to_the_contact_email_with_a_justification() {
    let app = spawn_app().await;
    app.register("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await;
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    problem(
        admin_post(&app, &support.access, &format!("{id}/approve"), json!({})).await,
        409,
        "no_verified_email",
    )
    .await;
    problem(
        admin_post(
            &app,
            &support.access,
            &format!("{id}/approve"),
            json!({"deliver_to": "contact_email"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let approved = app
        .approve(
            &support.access,
            &id,
            json!({"deliver_to": "contact_email", "justification": "Matched the signing key of their last release."}),
        )
        .await;
    assert_eq!(approved["request"]["deliver_to"], "contact_email");
    // Ownership could not be proven: the link waits out the period, then goes to the contact.
    app.clock.advance(chrono::Duration::hours(73));
    let token = app.completion_token("jb.new@example.org", 1).await;
    assert!(
        app.smtp
            .to("jb@example.com")
            .iter()
            .all(|m| !m.subject().contains("Recover your"))
    );
    // The link mailed to the contact email completes the recovery.
    let done = json(app.complete_recovery(&token, NEW_PASSWORD).await, 200).await;
    assert_eq!(done["username"], "jbber");
}

#[tokio::test]
async fn repeated_requests_never_flood_the_owners_inbox() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    for i in 0..5 {
        app.submit_recovery("jbber", &format!("c{i}@example.org"))
            .await;
    }
    app.smtp.wait_for("c4@example.org", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count(&app, "jb@example.com", "Did you ask"), 3);
}

/// The approval event's details in a support view's timeline.
fn approval_details(detail: &Value) -> Value {
    detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|e| e["type"] == "recovery_request.approved")
        .map(|e| e["details"].clone())
        .expect("an approval in the timeline")
}

#[tokio::test]
async fn the_support_view_reads_back_where_the_link_goes_for_both_choices() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    for (username, choice, body, link_to) in [
        (
            "jbber",
            "account_email",
            json!({"deliver_to": "account_email"}),
            "jbber@example.com",
        ),
        (
            "kim",
            "contact_email",
            json!({"deliver_to": "contact_email", "justification": "Matched: the signing key"}),
            "kim.new@example.org",
        ),
    ] {
        let owner = format!("{username}@example.com");
        app.verified_user(username, &owner, PASSWORD).await;
        let (id, _) = app
            .submit_recovery(username, &format!("{username}.new@example.org"))
            .await;
        app.prove_ownership(&owner).await;
        // Ownership proven: the link goes out now, to the chosen address, and works.
        let done = app
            .approve_and_complete(&support.access, &id, body, link_to, NEW_PASSWORD)
            .await;
        assert_eq!(done["username"], username);

        let detail = app.recovery_detail(&support.access, &id).await;
        assert_eq!(detail["request"]["status"], "completed");
        assert_eq!(detail["request"]["deliver_to"], choice, "{detail}");
        let details = approval_details(&detail);
        assert_eq!(details["deliver_to"], choice);
        if choice == "contact_email" {
            // Split on nothing: the justification keeps its own ": ".
            assert_eq!(details["justification"], "Matched: the signing key");
        } else {
            assert_eq!(details["justification"], Value::Null);
        }
        // The queue shows the same.
        let queue = json(
            app.get_auth(
                &format!("/api/v1/admin/recovery-requests?username={username}"),
                &support.access,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(queue["items"][0]["deliver_to"], choice);
    }
    // Each link went only where it was meant to.
    assert_eq!(count(&app, "jbber.new@example.org", "Recover your"), 0);
    assert_eq!(count(&app, "kim@example.com", "Recover your"), 0);
}

#[tokio::test]
async fn a_link_replaced_while_it_was_being_used_does_not_complete_the_request() {
    // One hash at a time, each slow enough that queued logins hold the completion's hashing
    // back while the request is disputed and approved again.
    let app = spawn_app_with(|env| {
        env.insert("ARGON2_MAX_CONCURRENT".into(), "1".into());
        env.insert("ARGON2_MEMORY_KIB".into(), "32768".into());
        env.insert("ARGON2_ITERATIONS".into(), "3".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await;
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let verify = app.prove_ownership("jb@example.com").await;
    app.approve(&support.access, &id, json!({})).await;
    let old = app.completion_token("jb@example.com", 1).await;

    // The old link is presented; while its password is hashed (behind 24 logins), the owner
    // says "it was not me", then "it was me" after all, and support approves again, which
    // mails a new link at once. (Behind eight, a fast machine finished the completion first
    // about once in six runs.)
    let logins = futures_util::future::join_all((0..24).map(|_| {
        app.post(
            "/api/v1/sessions",
            json!({"login": "ana", "password": PASSWORD}),
        )
    }));
    let completion = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let res = app.complete_recovery(&old, NEW_PASSWORD).await;
        (res, tokio::time::Instant::now())
    };
    let replace = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.answer_ownership(&verify, false).await;
        app.answer_ownership(&verify, true).await;
        let again = app.approve(&support.access, &id, json!({})).await;
        assert_eq!(again["request"]["status"], "approved");
        tokio::time::Instant::now()
    };
    let (_, (res, completed_at), replaced_at) = tokio::join!(logins, completion, replace);
    assert!(
        replaced_at < completed_at,
        "the dispute and new approval were to land while the old link was in use"
    );
    problem(res, 400, "invalid_token").await;

    // The request is still approved, and the new link works.
    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["request"]["status"], "approved");
    let new = app.completion_token("jb@example.com", 2).await;
    assert_ne!(new, old);
    let done = json(app.complete_recovery(&new, NEW_PASSWORD).await, 200).await;
    assert_eq!(done["status"], "completed");
    problem(
        app.complete_recovery(&old, NEW_PASSWORD).await,
        400,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_stored_value_that_does_not_parse_is_an_internal_error_not_a_default() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await;
    let (id, token) = app.submit_recovery("nobody-here", "c@example.org").await;
    app.exec(&format!(
        "UPDATE recovery_requests SET status = 'lost_in_space' WHERE id = '{id}'"
    ));
    problem(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}"),
            &support.access,
        )
        .await,
        500,
        "internal_error",
    )
    .await;
    problem(tracked(&app, &id, &token).await, 500, "internal_error").await;
    problem(
        app.get_auth("/api/v1/admin/recovery-requests", &support.access)
            .await,
        500,
        "internal_error",
    )
    .await;
}
