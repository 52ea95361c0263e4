//! Passkeys (WebAuthn) as a second factor, driven by a software authenticator
//! (`support/passkey.rs`): registration, login, list, rename, removal, the refusals an attacker
//! meets, and how passkeys fare through recovery and password reset.

use serde_json::{Value, json};

use crate::support::passkey::SoftAuthenticator;
use crate::support::{PASSWORD, TestApp, Tokens, json, problem, spawn_app};

const NEW_PASSWORD: &str = "quartz meadow falcon 77";

async fn audit_types(app: &TestApp, support: &str, kind: &str) -> Vec<Value> {
    let body = json(
        app.get_auth(&format!("/api/v1/admin/audit-events?type={kind}"), support)
            .await,
        200,
    )
    .await;
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn account(app: &TestApp, tokens: &Tokens) -> Value {
    json(app.get_auth("/api/v1/account", &tokens.access).await, 200).await
}

async fn passkeys(app: &TestApp, tokens: &Tokens) -> Vec<Value> {
    let body = json(
        app.get_auth("/api/v1/account/passkeys", &tokens.access)
            .await,
        200,
    )
    .await;
    body["items"].as_array().cloned().expect("items")
}

/// An account whose only second factor is one passkey: its tokens, authenticator and codes.
async fn passkey_user(app: &TestApp, username: &str) -> (Tokens, SoftAuthenticator, Vec<String>) {
    let tokens = app
        .verified_user(username, &format!("{username}@example.com"), PASSWORD)
        .await;
    let auth = SoftAuthenticator::new();
    let added = app.add_passkey(&tokens, &auth, "YubiKey").await;
    let codes = added["recovery_codes"]
        .as_array()
        .expect("first factor answers codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    (tokens, auth, codes)
}

#[tokio::test]
async fn a_first_passkey_turns_2fa_on_with_codes_and_logs_in() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    problem(
        app.post_auth(
            "/api/v1/account/passkeys/registration-options",
            &tokens.access,
            json!({"password": "not the password"}),
        )
        .await,
        403,
        "invalid_password",
    )
    .await;
    let (id, options) = app.passkey_options(&tokens).await;
    let pk = &options["publicKey"];
    assert_eq!(pk["attestation"], "none", "{options}");
    assert_eq!(pk["rp"]["id"], "frontend.test");
    assert_eq!(
        pk["authenticatorSelection"]["userVerification"],
        "preferred"
    );
    assert_eq!(pk["authenticatorSelection"]["requireResidentKey"], false);
    assert!(pk.get("hints").is_none(), "{options}");
    let challenge = pk["challenge"].as_str().expect("challenge");
    assert!(challenge.len() >= 22, "at least 16 bytes: {challenge}");
    assert!(
        pk["excludeCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );

    let auth = SoftAuthenticator::new();
    let added = json(
        app.finish_passkey(&tokens, &id, "  YubiKey 5C ", auth.register(&options))
            .await,
        201,
    )
    .await;
    assert_eq!(added["passkey"]["name"], "YubiKey 5C");
    assert_eq!(added["passkey"]["last_used_at"], Value::Null);
    assert_eq!(added["passkey"]["backup_eligible"], false);
    assert_eq!(added["recovery_codes"].as_array().map(Vec::len), Some(8));
    assert!(added["generated_at"].is_string());
    assert!(!added.to_string().contains("public"), "no key material");
    app.smtp
        .wait_for_subject("jb@example.com", "A passkey was added")
        .await;

    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_enabled"], true);
    assert_eq!(me["two_factor_methods"], json!(["webauthn"]));
    assert_eq!(me["passkeys"], 1);
    assert_eq!(me["recovery_codes_remaining"], 8);

    // The id worked once.
    problem(
        app.finish_passkey(&tokens, &id, "again", auth.register(&options))
            .await,
        422,
        "invalid_webauthn_response",
    )
    .await;

    let mut auth = auth;
    let mfa = app.mfa_required("jbber").await;
    assert_eq!(mfa["methods"], json!(["webauthn", "recovery_code"]));
    let token = mfa["mfa_token"].as_str().expect("token");
    let options = app.webauthn_options(token).await;
    let allowed = options["publicKey"]["allowCredentials"]
        .as_array()
        .expect("allow list");
    assert_eq!(allowed.len(), 1);
    assert_eq!(allowed[0]["id"], auth.id());
    let session = json(app.webauthn_login(token, auth.assert(&options)).await, 200).await;
    assert_eq!(session["status"], "authenticated", "{session}");
    let sessions = json(
        app.get_auth(
            "/api/v1/account/sessions",
            session["access_token"].as_str().expect("access"),
        )
        .await,
        200,
    )
    .await;
    assert!(
        sessions["items"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|s| s["current"] == true && s["second_factor"] == "webauthn"),
        "{sessions}"
    );
    // The mfa token is spent.
    problem(
        app.webauthn_login(token, auth.assert(&options)).await,
        401,
        "mfa_token_invalid",
    )
    .await;

    let list = passkeys(&app, &tokens).await;
    assert_eq!(list.len(), 1);
    assert!(list[0]["last_used_at"].is_string(), "{list:?}");

    let support = app.support_user("ana").await;
    let added = audit_types(&app, &support.access, "passkey.added").await;
    assert_eq!(added.len(), 1);
}

#[tokio::test]
async fn a_second_passkey_is_listed_renamed_and_leaves_the_codes_alone() {
    let app = spawn_app().await;
    let (tokens, first, codes) = passkey_user(&app, "jbber").await;
    app.clock.advance(chrono::Duration::minutes(1));
    let (id, options) = app.passkey_options(&tokens).await;
    let excluded: Vec<&str> = options["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("exclude list")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(excluded, vec![first.id().as_str()]);
    let mut second = SoftAuthenticator::new();
    second.synced = true;
    let added = json(
        app.finish_passkey(&tokens, &id, "Phone", second.register(&options))
            .await,
        201,
    )
    .await;
    assert!(added.get("recovery_codes").is_none(), "{added}");
    assert_eq!(added["passkey"]["backup_eligible"], true);
    assert_eq!(added["passkey"]["backed_up"], true);
    assert_eq!(account(&app, &tokens).await["passkeys"], 2);
    assert_eq!(
        account(&app, &tokens).await["recovery_codes_remaining"],
        8,
        "codes untouched"
    );

    let list = passkeys(&app, &tokens).await;
    let names: Vec<&str> = list
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["YubiKey", "Phone"]);
    let phone = list[1]["id"].as_str().expect("id").to_string();

    let renamed = json(
        app.http
            .patch(app.url(&format!("/api/v1/account/passkeys/{phone}")))
            .bearer_auth(&tokens.access)
            .json(&json!({"name": "Pixel 9"}))
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(renamed["name"], "Pixel 9");
    for (name, code) in [("", "required"), (&"x".repeat(65) as &str, "too_long")] {
        let body = problem(
            app.http
                .patch(app.url(&format!("/api/v1/account/passkeys/{phone}")))
                .bearer_auth(&tokens.access)
                .json(&json!({"name": name}))
                .send()
                .await
                .expect("request"),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["code"], code);
    }
    // Another account cannot see, rename or remove it.
    let other = app.verified_user("kim", "kim@example.com", PASSWORD).await;
    assert!(passkeys(&app, &other).await.is_empty());
    problem(
        app.http
            .patch(app.url(&format!("/api/v1/account/passkeys/{phone}")))
            .bearer_auth(&other.access)
            .json(&json!({"name": "mine now"}))
            .send()
            .await
            .expect("request"),
        404,
        "not_found",
    )
    .await;
    problem(
        app.post_auth(
            &format!("/api/v1/account/passkeys/{phone}/remove"),
            &other.access,
            json!({"password": PASSWORD, "code": codes[0]}),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // Both passkeys log in.
    let mut second = second;
    json(app.login_with_passkey("jbber", &mut second).await, 200).await;
    let mut first = first;
    json(app.login_with_passkey("jbber", &mut first).await, 200).await;
}

#[tokio::test]
async fn a_registration_id_works_once_even_in_a_burst() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let (id, options) = app.passkey_options(&tokens).await;
    let attempts = (0..6).map(|i| {
        let auth = SoftAuthenticator::new();
        let credential = auth.register(&options);
        let (app, tokens, id) = (&app, &tokens, id.clone());
        async move {
            app.finish_passkey(tokens, &id, &format!("key {i}"), credential)
                .await
                .status()
                .as_u16()
        }
    });
    let mut statuses = futures_util::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 422, 422, 422, 422, 422]);
    assert_eq!(passkeys(&app, &tokens).await.len(), 1);
    assert_eq!(account(&app, &tokens).await["recovery_codes_remaining"], 8);
}

#[tokio::test]
async fn registrations_refuse_other_origins_foreign_ids_and_taken_credentials() {
    let app = spawn_app().await;
    let (tokens, auth, _) = passkey_user(&app, "jbber").await;

    // From another origin, or for another RP id.
    for tweak in [0, 1] {
        let (id, options) = app.passkey_options(&tokens).await;
        let mut evil = SoftAuthenticator::new();
        if tweak == 0 {
            evil.origin = "https://frontend.test.evil.example".into();
        } else {
            evil.rp_id = "evil.example".into();
        }
        problem(
            app.finish_passkey(&tokens, &id, "evil", evil.register(&options))
                .await,
            422,
            "invalid_webauthn_response",
        )
        .await;
    }

    // Another account's registration id.
    let kim = app.verified_user("kim", "kim@example.com", PASSWORD).await;
    let (kims_id, kims_options) = app.passkey_options(&kim).await;
    problem(
        app.finish_passkey(
            &tokens,
            &kims_id,
            "stolen",
            SoftAuthenticator::new().register(&kims_options),
        )
        .await,
        422,
        "invalid_webauthn_response",
    )
    .await;

    // jbber's credential cannot be registered to kim's account.
    let (id, options) = app.passkey_options(&kim).await;
    problem(
        app.finish_passkey(&kim, &id, "copy", auth.register(&options))
            .await,
        422,
        "invalid_webauthn_response",
    )
    .await;
    assert!(passkeys(&app, &kim).await.is_empty());

    // A junk registration id, and a credential that is not one.
    problem(
        app.finish_passkey(&kim, "not-an-id", "x", json!({})).await,
        422,
        "invalid_webauthn_response",
    )
    .await;
    let (id, _) = app.passkey_options(&kim).await;
    problem(
        app.finish_passkey(&kim, &id, "x", json!({"id": 5})).await,
        422,
        "invalid_webauthn_response",
    )
    .await;

    // The ceremony lives five minutes.
    let (id, options) = app.passkey_options(&kim).await;
    app.clock.advance(chrono::Duration::minutes(6));
    problem(
        app.finish_passkey(
            &kim,
            &id,
            "late",
            SoftAuthenticator::new().register(&options),
        )
        .await,
        422,
        "invalid_webauthn_response",
    )
    .await;
}

#[tokio::test]
async fn passkey_logins_refuse_what_an_attacker_can_send() {
    let app = spawn_app().await;
    let (_tokens, mut auth, _) = passkey_user(&app, "jbber").await;
    let (_kim, mut kims_auth, _) = passkey_user(&app, "kim").await;

    let refused = |res: reqwest::Response| problem(res, 401, "invalid_webauthn_assertion");

    // A wrong origin, then a wrong RP id.
    let token = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let options = app.webauthn_options(&token).await;
    auth.origin = "https://evil.example".into();
    refused(app.webauthn_login(&token, auth.assert(&options)).await).await;
    auth.origin = crate::support::passkey::ORIGIN.into();

    let options = app.webauthn_options(&token).await;
    auth.rp_id = "evil.example".into();
    refused(app.webauthn_login(&token, auth.assert(&options)).await).await;
    auth.rp_id = crate::support::passkey::RP_ID.into();

    // A tampered signature.
    let options = app.webauthn_options(&token).await;
    auth.tamper_signature = true;
    refused(app.webauthn_login(&token, auth.assert(&options)).await).await;
    auth.tamper_signature = false;

    // A credential of another account.
    let options = app.webauthn_options(&token).await;
    refused(app.webauthn_login(&token, kims_auth.assert(&options)).await).await;

    // A challenge made for another mfa token (another login of the same account).
    let other = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let others_options = app.webauthn_options(&other).await;
    app.webauthn_options(&token).await;
    refused(
        app.webauthn_login(&token, auth.assert(&others_options))
            .await,
    )
    .await;

    // Assertions without options first, and junk.
    refused(
        app.webauthn_login(&token, auth.assert(&others_options))
            .await,
    )
    .await;
    app.webauthn_options(&token).await;
    refused(app.webauthn_login(&token, json!({"nope": true})).await).await;

    // A good login, then the same assertion replayed on a new login.
    let options = app.webauthn_options(&token).await;
    let good = auth.assert(&options);
    json(app.webauthn_login(&token, good.clone()).await, 200).await;
    let next = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    app.webauthn_options(&next).await;
    refused(app.webauthn_login(&next, good).await).await;

    // A counter that went backwards is refused and audited.
    let options = app.webauthn_options(&next).await;
    let stale = auth.assert_with_counter(&options, 1);
    refused(app.webauthn_login(&next, stale).await).await;
    let support = app.support_user("ana").await;
    let regressions = audit_types(&app, &support.access, "passkey.counter_regressed").await;
    assert_eq!(regressions.len(), 1, "{regressions:?}");

    // The owner's authenticator still works; kim's was never touched.
    let options = app.webauthn_options(&next).await;
    json(app.webauthn_login(&next, auth.assert(&options)).await, 200).await;
    json(app.login_with_passkey("kim", &mut kims_auth).await, 200).await;

    // Failures share the second-factor budget: after enough of them, even a good one waits.
    let token = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut limited = false;
    for _ in 0..20 {
        let options = app.webauthn_options(&token).await;
        auth.tamper_signature = true;
        let res = app.webauthn_login(&token, auth.assert(&options)).await;
        if res.status() == 429 {
            limited = true;
            break;
        }
        refused(res).await;
    }
    assert!(limited, "the second-factor budget ran out");
}

#[tokio::test]
async fn mfa_methods_list_what_the_account_has() {
    let app = spawn_app().await;
    // TOTP only.
    let totp = app.with_two_factor("tina", "tina@example.com").await;
    assert_eq!(
        app.mfa_required("tina").await["methods"],
        json!(["totp", "recovery_code"])
    );
    // Passkey only.
    passkey_user(&app, "pat").await;
    assert_eq!(
        app.mfa_required("pat").await["methods"],
        json!(["webauthn", "recovery_code"])
    );
    // Both: a passkey added beside TOTP leaves its codes alone.
    let mut auth = SoftAuthenticator::new();
    let added = app.add_passkey(&totp.tokens, &auth, "Key").await;
    assert!(added.get("recovery_codes").is_none(), "{added}");
    assert_eq!(
        app.mfa_required("tina").await["methods"],
        json!(["totp", "webauthn", "recovery_code"])
    );
    let me = account(&app, &totp.tokens).await;
    assert_eq!(me["two_factor_methods"], json!(["totp", "webauthn"]));
    assert_eq!(me["recovery_codes_remaining"], 8);
    // The first set still logs in, and so does the passkey.
    let mfa = app.mfa_required("tina").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": totp.codes[0]}),
        )
        .await,
        200,
    )
    .await;
    json(app.login_with_passkey("tina", &mut auth).await, 200).await;
}

#[tokio::test]
async fn removing_the_last_second_factor_needs_a_recovery_code() {
    let app = spawn_app().await;
    let (tokens, _auth, codes) = passkey_user(&app, "jbber").await;
    let id = passkeys(&app, &tokens).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/api/v1/account/passkeys/{id}/remove");
    problem(
        app.post_auth(
            &path,
            &tokens.access,
            json!({"password": "wrong password!"}),
        )
        .await,
        403,
        "invalid_password",
    )
    .await;
    let body = problem(
        app.post_auth(&path, &tokens.access, json!({"password": PASSWORD}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "code");
    let body = problem(
        app.post_auth(
            &path,
            &tokens.access,
            json!({"password": PASSWORD, "code": "aaaa-bbbb-cccc-dddd-eeee"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "invalid_recovery_code");
    assert_eq!(passkeys(&app, &tokens).await.len(), 1);

    let res = app
        .post_auth(
            &path,
            &tokens.access,
            json!({"password": PASSWORD, "code": codes[0]}),
        )
        .await;
    assert_eq!(res.status(), 204);
    app.smtp
        .wait_for_subject("jbber@example.com", "A passkey was removed")
        .await;
    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_enabled"], false);
    assert_eq!(me["passkeys"], 0);
    assert_eq!(me["recovery_codes_remaining"], Value::Null);
    app.login("jbber", PASSWORD).await;
    let support = app.support_user("ana").await;
    assert_eq!(
        audit_types(&app, &support.access, "passkey.removed")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn removing_a_passkey_beside_totp_needs_no_code_and_keeps_2fa() {
    let app = spawn_app().await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;
    app.add_passkey(&user.tokens, &SoftAuthenticator::new(), "Key")
        .await;
    let id = passkeys(&app, &user.tokens).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let res = app
        .post_auth(
            &format!("/api/v1/account/passkeys/{id}/remove"),
            &user.tokens.access,
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let me = account(&app, &user.tokens).await;
    assert_eq!(me["two_factor_enabled"], true);
    assert_eq!(me["two_factor_methods"], json!(["totp"]));
    assert_eq!(me["recovery_codes_remaining"], 8);
    problem(
        app.post_auth(
            &format!("/api/v1/account/passkeys/{id}/remove"),
            &user.tokens.access,
            json!({"password": PASSWORD}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn recovery_completion_removes_passkeys_and_a_password_reset_keeps_them() {
    let app = spawn_app().await;
    let (_tokens, mut auth, _) = passkey_user(&app, "jbber").await;
    let support = app.support_user("ana").await;

    // A password reset keeps the passkey: the next login still asks for it.
    app.reset_password_by_mail("jbber", "jbber@example.com", NEW_PASSWORD)
        .await;
    let body = json(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": NEW_PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body["methods"], json!(["webauthn", "recovery_code"]));
    let token = body["mfa_token"].as_str().expect("token");
    let options = app.webauthn_options(token).await;
    json(app.webauthn_login(token, auth.assert(&options)).await, 200).await;

    // Support sees the passkey on the evidence page, never key material.
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let detail = app.recovery_detail(&support.access, &id).await;
    let evidence = &detail["evidence"]["passkeys"];
    assert_eq!(evidence.as_array().map(Vec::len), Some(1), "{detail}");
    assert_eq!(evidence[0]["name"], "YubiKey");
    assert!(evidence[0]["created_at"].is_string());
    assert!(evidence[0]["last_used_at"].is_string());
    assert_eq!(evidence[0]["backed_up"], false);
    let text = detail.to_string();
    assert!(
        !text.contains(&auth.id()) && !text.contains("public"),
        "{text}"
    );

    // A completed recovery removes it with the codes.
    app.prove_ownership("jbber@example.com").await;
    app.approve_and_complete(
        &support.access,
        &id,
        json!({"deliver_to": "account_email"}),
        "jbber@example.com",
        PASSWORD,
    )
    .await;
    let tokens = app.login("jbber", PASSWORD).await;
    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_enabled"], false);
    assert_eq!(me["passkeys"], 0);
    assert!(passkeys(&app, &tokens).await.is_empty());
}

#[tokio::test]
async fn totp_beside_a_passkey_keeps_the_codes_both_ways() {
    let app = spawn_app().await;
    let (tokens, mut auth, codes) = passkey_user(&app, "jbber").await;
    let enrollment = json(
        app.post_auth(
            "/api/v1/account/totp",
            &tokens.access,
            json!({"password": PASSWORD}),
        )
        .await,
        201,
    )
    .await;
    let secret = account_recovery::security::totp::TotpSecret::from_base32(
        enrollment["secret"].as_str().expect("secret"),
    )
    .expect("secret");
    let confirmed = json(
        app.post_auth(
            "/api/v1/account/totp/confirm",
            &tokens.access,
            json!({"code": app.totp_now(&secret, -30)}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["recovery_codes"], json!([]), "{confirmed}");
    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_methods"], json!(["totp", "webauthn"]));
    assert_eq!(me["recovery_codes_remaining"], 8);

    // Turning TOTP off (with a TOTP code) leaves the passkey, 2FA and the codes.
    let res = app
        .post_auth(
            "/api/v1/account/totp/disable",
            &tokens.access,
            json!({"password": PASSWORD, "code": app.totp_now(&secret, 0)}),
        )
        .await;
    assert_eq!(res.status(), 204);
    // The notice says what happened: TOTP went, 2FA and the codes stayed.
    let notice = app
        .smtp
        .wait_for_subject(
            "jbber@example.com",
            "The authenticator app was removed from your",
        )
        .await;
    for part in [notice.text(), notice.html()] {
        assert!(part.contains("stays on with your passkeys"), "{part}");
        assert!(!part.contains("turned off"), "{part}");
        assert!(!part.contains("were deleted"), "{part}");
    }
    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_enabled"], true);
    assert_eq!(me["two_factor_methods"], json!(["webauthn"]));
    assert_eq!(me["recovery_codes_remaining"], 8);
    json(app.login_with_passkey("jbber", &mut auth).await, 200).await;
    let mfa = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": codes[0]}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn a_burst_of_passkey_logins_on_one_mfa_token_opens_one_session() {
    let app = spawn_app().await;
    let (_tokens, mut auth, _) = passkey_user(&app, "jbber").await;
    let token = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let options = app.webauthn_options(&token).await;
    let assertion = auth.assert(&options);
    let attempts = (0..6).map(|_| {
        let (app, token, assertion) = (&app, token.clone(), assertion.clone());
        async move {
            app.webauthn_login(&token, assertion)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn hostile_ids_and_names_are_refused_cleanly() {
    let app = spawn_app().await;
    let (tokens, _auth, _) = passkey_user(&app, "jbber").await;
    for id in ["nope", "%00", "00000000-0000-0000-0000-000000000000"] {
        let res = app
            .http
            .patch(app.url(&format!("/api/v1/account/passkeys/{id}")))
            .bearer_auth(&tokens.access)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .expect("request");
        problem(res, 404, "not_found").await;
    }
    let id = passkeys(&app, &tokens).await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let res = app
        .http
        .patch(app.url(&format!("/api/v1/account/passkeys/{id}")))
        .bearer_auth(&tokens.access)
        .json(&json!({"name": "a\u{0}b"}))
        .send()
        .await
        .expect("request");
    problem(res, 422, "validation_failed").await;
    // Options need a live mfa token; a junk credential shape is a 401, never a 500.
    problem(
        app.post(
            "/api/v1/sessions/webauthn/options",
            json!({"mfa_token": "junk"}),
        )
        .await,
        401,
        "mfa_token_invalid",
    )
    .await;
    let token = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    app.webauthn_options(&token).await;
    for credential in [
        json!(null),
        json!("x"),
        json!({"id": "AA", "rawId": "!!", "type": "public-key", "response": {}}),
    ] {
        problem(
            app.webauthn_login(&token, credential).await,
            401,
            "invalid_webauthn_assertion",
        )
        .await;
    }
}

/// How many recovery codes of `username`'s live (not superseded) sets exist, read directly:
/// codes left behind without 2FA, or two live sets, are what no endpoint shows.
fn live_codes(app: &TestApp, username: &str) -> usize {
    app.db_texts(&format!(
        "SELECT c.id AS value FROM recovery_codes c \
         JOIN recovery_code_sets s ON s.id = c.set_id \
         JOIN accounts a ON a.id = s.account_id \
         WHERE a.username_key = '{username}' AND s.superseded_at IS NULL"
    ))
    .len()
}

async fn passkey_ids(app: &TestApp, tokens: &Tokens) -> Vec<String> {
    passkeys(app, tokens)
        .await
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_string())
        .collect()
}

/// Changes to an account's second factors run one after the other per account (PostgreSQL
/// locks the account's row): two removals at once of an account's only two passkeys cannot
/// both skip the recovery code and leave it without 2FA.
#[tokio::test]
async fn racing_removals_of_the_only_two_passkeys_leave_one_and_2fa_on() {
    let app = spawn_app().await;
    for round in 0..10 {
        let username = format!("racer{round}");
        let (tokens, _first, _codes) = passkey_user(&app, &username).await;
        app.add_passkey(&tokens, &SoftAuthenticator::new(), "Phone")
            .await;
        let ids = passkey_ids(&app, &tokens).await;
        assert_eq!(ids.len(), 2);
        let removals = ids.iter().map(|id| {
            let (app, tokens) = (&app, &tokens);
            async move {
                app.post_auth(
                    &format!("/api/v1/account/passkeys/{id}/remove"),
                    &tokens.access,
                    json!({"password": PASSWORD}),
                )
                .await
            }
        });
        let mut removed = 0;
        for res in futures_util::future::join_all(removals).await {
            if res.status() == 204 {
                removed += 1;
                continue;
            }
            let body = problem(res, 422, "validation_failed").await;
            assert_eq!(body["errors"][0]["field"], "code", "round {round}: {body}");
        }
        assert_eq!(
            removed, 1,
            "round {round}: exactly one removal went through"
        );
        let me = account(&app, &tokens).await;
        assert_eq!(me["two_factor_enabled"], true, "round {round}: {me}");
        assert_eq!(me["passkeys"], 1, "round {round}: {me}");
        assert_eq!(me["recovery_codes_remaining"], 8, "round {round}: {me}");
    }
}

/// TOTP turned off while the last passkey is removed without a code: either the removal comes
/// first (then turning TOTP off takes 2FA off with every code) or it sees TOTP gone and asks
/// for a recovery code. 2FA never ends off with codes left behind or a factor removed unasked.
#[tokio::test]
async fn totp_disable_racing_the_last_passkeys_removal_never_leaves_2fa_off_unasked() {
    let app = spawn_app().await;
    for round in 0..10 {
        let username = format!("mixer{round}");
        let user = app
            .with_two_factor(&username, &format!("{username}@example.com"))
            .await;
        app.add_passkey(&user.tokens, &SoftAuthenticator::new(), "Key")
            .await;
        let id = passkey_ids(&app, &user.tokens).await.remove(0);
        let disable = app.post_auth(
            "/api/v1/account/totp/disable",
            &user.tokens.access,
            json!({"password": PASSWORD, "code": app.totp_now(&user.secret, 0)}),
        );
        let path = format!("/api/v1/account/passkeys/{id}/remove");
        let remove = app.post_auth(&path, &user.tokens.access, json!({"password": PASSWORD}));
        let (disabled, removed) = tokio::join!(disable, remove);
        assert_eq!(disabled.status(), 204, "round {round}");
        let me = account(&app, &user.tokens).await;
        if removed.status() == 204 {
            // The removal went first, beside TOTP; then TOTP's code took 2FA off entirely.
            assert_eq!(me["two_factor_enabled"], false, "round {round}: {me}");
            assert_eq!(me["passkeys"], 0, "round {round}: {me}");
            assert_eq!(
                live_codes(&app, &username),
                0,
                "round {round}: orphan codes"
            );
        } else {
            let body = problem(removed, 422, "validation_failed").await;
            assert_eq!(body["errors"][0]["field"], "code", "round {round}: {body}");
            assert_eq!(me["two_factor_enabled"], true, "round {round}: {me}");
            assert_eq!(me["two_factor_methods"], json!(["webauthn"]), "{me}");
            assert_eq!(me["recovery_codes_remaining"], 8, "round {round}: {me}");
        }
    }
}

/// Two first passkeys finished at once: one of them turns 2FA on and answers the codes, the
/// other finds 2FA on and answers none; one set of codes is live.
#[tokio::test]
async fn racing_first_passkeys_answer_one_set_of_codes() {
    let app = spawn_app().await;
    for round in 0..5 {
        let username = format!("twins{round}");
        let tokens = app
            .verified_user(&username, &format!("{username}@example.com"), PASSWORD)
            .await;
        let first = app.passkey_options(&tokens).await;
        let second = app.passkey_options(&tokens).await;
        let finishes = [first, second].into_iter().map(|(id, options)| {
            let credential = SoftAuthenticator::new().register(&options);
            let (app, tokens) = (&app, &tokens);
            async move {
                json(
                    app.finish_passkey(tokens, &id, "Key", credential).await,
                    201,
                )
                .await
            }
        });
        let added = futures_util::future::join_all(finishes).await;
        let with_codes = added
            .iter()
            .filter(|a| a.get("recovery_codes").is_some())
            .count();
        assert_eq!(with_codes, 1, "round {round}: {added:?}");
        assert_eq!(
            live_codes(&app, &username),
            8,
            "round {round}: one live set"
        );
        let me = account(&app, &tokens).await;
        assert_eq!(me["passkeys"], 2);
        assert_eq!(me["recovery_codes_remaining"], 8);
    }
}

/// TOTP codes, recovery codes and passkey assertions draw on one second-factor budget: mixed
/// failures reach the 429 together, and past it every method waits, right or wrong.
#[tokio::test]
async fn totp_recovery_code_and_passkey_failures_share_one_budget() {
    let app = spawn_app().await;
    let user = app.with_two_factor("tina", "tina@example.com").await;
    let mut auth = SoftAuthenticator::new();
    app.add_passkey(&user.tokens, &auth, "Key").await;
    app.clock.advance(chrono::Duration::seconds(300));
    let token = app.mfa_required("tina").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let mut refused = 0;
    let mut limited = None;
    for i in 0..20 {
        let res = match i % 3 {
            0 => {
                app.post(
                    "/api/v1/sessions/totp",
                    json!({"mfa_token": token, "code": "000000"}),
                )
                .await
            }
            1 => {
                app.post(
                    "/api/v1/sessions/recovery-code",
                    json!({"mfa_token": token, "code": "zzzz-zzzz-zzzz-zzzz-zzzz"}),
                )
                .await
            }
            _ => {
                let options = app.webauthn_options(&token).await;
                auth.tamper_signature = true;
                let assertion = auth.assert(&options);
                auth.tamper_signature = false;
                app.webauthn_login(&token, assertion).await
            }
        };
        if res.status() == 429 {
            limited = Some(i);
            break;
        }
        assert_eq!(res.status(), 401, "attempt {i}");
        refused += 1;
    }
    // The budget (RATE_LIMIT_SECOND_FACTOR, 10 by default) ran out on the mix, not on one
    // method alone: each kind took at least three attempts.
    assert_eq!(limited, Some(10), "refused {refused} before the 429");
    // Past it, the right passkey and the right TOTP code wait too.
    let options = app.webauthn_options(&token).await;
    problem(
        app.webauthn_login(&token, auth.assert(&options)).await,
        429,
        "rate_limited",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": token, "code": app.totp_now(&user.secret, 0)}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
}

/// The service compares the counter with the one stored now, not only with the snapshot the
/// options were made from: two logins prepared at once, the first one moves the counter, the
/// second one (same counter) is refused and audited.
#[tokio::test]
async fn a_counter_used_by_a_login_prepared_in_parallel_is_refused_and_audited() {
    let app = spawn_app().await;
    let (_tokens, mut auth, _) = passkey_user(&app, "jbber").await;
    let first = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let second = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let first_options = app.webauthn_options(&first).await;
    let second_options = app.webauthn_options(&second).await;
    json(
        app.webauthn_login(&first, auth.assert(&first_options))
            .await,
        200,
    )
    .await;
    // The same counter again, signed for the other login's challenge: newer than the snapshot
    // in the second ceremony, not newer than what is stored now.
    let replayed_counter = auth.assert_with_counter(&second_options, auth.counter);
    problem(
        app.webauthn_login(&second, replayed_counter).await,
        401,
        "invalid_webauthn_assertion",
    )
    .await;
    let support = app.support_user("ana").await;
    let regressions = audit_types(&app, &support.access, "passkey.counter_regressed").await;
    assert_eq!(regressions.len(), 1, "{regressions:?}");
    // A later counter on a fresh login still works.
    let token = app.mfa_required("jbber").await["mfa_token"]
        .as_str()
        .expect("token")
        .to_string();
    let options = app.webauthn_options(&token).await;
    json(app.webauthn_login(&token, auth.assert(&options)).await, 200).await;
}

/// Each use records the backup flags the authenticator reports (a synced passkey may be backed
/// up after it was made) and when it was used.
#[tokio::test]
async fn each_use_records_the_backup_flags_and_the_time() {
    let app = spawn_app().await;
    let tokens = app
        .verified_user("jbber", "jbber@example.com", PASSWORD)
        .await;
    let mut auth = SoftAuthenticator::new();
    auth.synced = true;
    auth.not_backed_up = true;
    let added = app.add_passkey(&tokens, &auth, "Phone").await;
    assert_eq!(added["passkey"]["backup_eligible"], true);
    assert_eq!(added["passkey"]["backed_up"], false);
    assert_eq!(added["passkey"]["last_used_at"], Value::Null);

    auth.not_backed_up = false;
    json(app.login_with_passkey("jbber", &mut auth).await, 200).await;
    let listed = passkeys(&app, &tokens).await;
    assert_eq!(listed[0]["backup_eligible"], true);
    assert_eq!(listed[0]["backed_up"], true, "{listed:?}");
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
    let first_use = listed[0]["last_used_at"].clone();

    app.clock.advance(chrono::Duration::minutes(10));
    auth.not_backed_up = true;
    json(app.login_with_passkey("jbber", &mut auth).await, 200).await;
    let listed = passkeys(&app, &tokens).await;
    assert_eq!(listed[0]["backed_up"], false, "{listed:?}");
    assert_ne!(listed[0]["last_used_at"], first_use, "{listed:?}");
}

/// A completed recovery on an account with TOTP and two passkeys removes all of them and every
/// recovery code: the owner logs in with the password alone and starts 2FA afresh.
#[tokio::test]
async fn recovery_completion_removes_totp_every_passkey_and_the_codes() {
    let app = spawn_app().await;
    let user = app.with_two_factor("tina", "tina@example.com").await;
    app.add_passkey(&user.tokens, &SoftAuthenticator::new(), "Key")
        .await;
    app.add_passkey(&user.tokens, &SoftAuthenticator::new(), "Phone")
        .await;
    let me = account(&app, &user.tokens).await;
    assert_eq!(me["two_factor_methods"], json!(["totp", "webauthn"]));
    assert_eq!(me["passkeys"], 2);
    assert_eq!(live_codes(&app, "tina"), 8);
    let support = app.support_user("ana").await;

    let (id, _) = app.submit_recovery("tina", "tina.new@example.org").await;
    app.prove_ownership("tina@example.com").await;
    app.approve_and_complete(
        &support.access,
        &id,
        json!({"deliver_to": "account_email"}),
        "tina@example.com",
        PASSWORD,
    )
    .await;

    let tokens = app.login("tina", PASSWORD).await;
    let me = account(&app, &tokens).await;
    assert_eq!(me["two_factor_enabled"], false, "{me}");
    assert_eq!(me["two_factor_methods"], json!([]), "{me}");
    assert_eq!(me["passkeys"], 0);
    assert_eq!(me["recovery_codes_remaining"], Value::Null);
    assert!(passkeys(&app, &tokens).await.is_empty());
    assert_eq!(live_codes(&app, "tina"), 0, "every recovery code is gone");
    assert!(
        app.db_texts(
            "SELECT t.account_id AS value FROM totp_credentials t \
             JOIN accounts a ON a.id = t.account_id WHERE a.username_key = 'tina'"
        )
        .is_empty(),
        "the TOTP secret is gone"
    );
    problem(
        app.get_auth("/api/v1/account/recovery-codes", &tokens.access)
            .await,
        409,
        "two_factor_not_enabled",
    )
    .await;
    let completed = audit_types(&app, &support.access, "recovery_request.completed").await;
    assert_eq!(
        completed[0]["details"]["passkeys_removed"], 2,
        "{completed:?}"
    );
    // A new passkey is a first second factor again: it answers a new set of codes.
    let added = app
        .add_passkey(&tokens, &SoftAuthenticator::new(), "New key")
        .await;
    assert_eq!(added["recovery_codes"].as_array().map(Vec::len), Some(8));
}

/// The passkey endpoints that ask for the password spend the re-authentication budget: past
/// it, even the right password waits (429 with Retry-After) until the window has passed.
#[tokio::test]
async fn passkey_password_checks_share_the_reauthentication_budget() {
    let app = spawn_app().await;
    let (tokens, mut auth, codes) = passkey_user(&app, "jbber").await;
    let id = passkey_ids(&app, &tokens).await.remove(0);
    let remove = format!("/api/v1/account/passkeys/{id}/remove");
    let options = "/api/v1/account/passkeys/registration-options";
    for i in 0..10 {
        let (path, body) = if i % 2 == 0 {
            (options, json!({"password": "not the password"}))
        } else {
            (
                remove.as_str(),
                json!({"password": "not the password", "code": codes[0]}),
            )
        };
        problem(
            app.post_auth(path, &tokens.access, body).await,
            403,
            "invalid_password",
        )
        .await;
    }
    for (path, body) in [
        (options, json!({"password": PASSWORD})),
        (
            remove.as_str(),
            json!({"password": PASSWORD, "code": codes[0]}),
        ),
    ] {
        let res = app.post_auth(path, &tokens.access, body).await;
        let retry_after: u64 = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
        problem(res, 429, "rate_limited").await;
    }
    assert_eq!(passkeys(&app, &tokens).await.len(), 1, "nothing removed");
    // After the window the password works again (on a new session: the old token expired).
    app.clock.advance(chrono::Duration::minutes(16));
    let session = json(app.login_with_passkey("jbber", &mut auth).await, 200).await;
    let access = session["access_token"].as_str().expect("access");
    json(
        app.post_auth(options, access, json!({"password": PASSWORD}))
            .await,
        200,
    )
    .await;
}
