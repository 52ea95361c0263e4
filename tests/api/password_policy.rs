//! New passwords are refused, each rule with its own field-error code, wherever one is set
//! (registration and password change here; reset and recovery use the same policy): the
//! most common breached passwords (a list compiled into the binary), the username, the
//! email's local part, the service's name, and the operator's own list.

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app_with};

/// The service name every app in this file runs under.
const SERVICE: &str = "Harborlight Vault";

/// Each refused password with the code that must refuse it, for the account `marisol` /
/// `quentin.vale@example.com`. None of them is refused by another rule first.
const REFUSED: &[(&str, &str)] = &[
    // In the compiled-in list only: zxcvbn alone would take twelve random-looking letters.
    ("rdewulzvchjz", "breached"),
    ("Password123", "breached"),
    ("marisol copper tundra 64", "contains_personal_info"),
    ("Quentin-Vale copper tundra 64", "contains_personal_info"),
    ("harborlight-VAULT copper 64", "contains_service_name"),
    ("Tangerine Orbit Violin 88", "blocklisted"),
];

async fn app_with_blocklist() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("refused.txt");
    std::fs::write(&file, "# ours\ntangerine orbit violin 88\n\n").expect("write list");
    let app = spawn_app_with(|env| {
        env.insert("SERVICE_NAME".into(), SERVICE.into());
        env.insert("PASSWORD_BLOCKLIST_FILE".into(), file.display().to_string());
    })
    .await;
    (app, dir)
}

fn field_error<'a>(body: &'a Value, field: &str) -> &'a Value {
    body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn registration_refuses_each_rule_with_its_own_code() {
    let (app, _dir) = app_with_blocklist().await;
    let mut messages = Vec::new();
    for (password, code) in REFUSED {
        let res = app
            .post(
                "/api/v1/accounts",
                json!({"username": "marisol", "email": "quentin.vale@example.com", "password": password}),
            )
            .await;
        let body = problem(res, 422, "validation_failed").await;
        let error = field_error(&body, "password");
        assert_eq!(error["code"], *code, "{password}: {body}");
        let message = error["message"].as_str().unwrap_or("").to_string();
        assert!(!message.is_empty() && !message.contains(password), "{body}");
        messages.push(message);
    }
    // Each rule says why in its own words (the two of each rule come one after the other).
    messages.dedup();
    assert_eq!(messages.len(), 4, "{messages:?}");
    // A password no rule refuses is taken.
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "marisol", "email": "quentin.vale@example.com", "password": PASSWORD}),
        )
        .await;
    json(res, 201).await;
}

#[tokio::test]
async fn a_password_change_refuses_each_rule_with_its_own_code() {
    let (app, _dir) = app_with_blocklist().await;
    let tokens = app
        .verified_user("marisol", "quentin.vale@example.com", PASSWORD)
        .await;
    for (password, code) in REFUSED {
        let res = app
            .put_auth(
                "/api/v1/account/password",
                &tokens.access,
                json!({"current_password": PASSWORD, "new_password": password}),
            )
            .await;
        let body = problem(res, 422, "validation_failed").await;
        assert_eq!(
            field_error(&body, "new_password")["code"],
            *code,
            "{password}: {body}"
        );
    }
    // Nothing changed: the old password still logs in.
    app.login("marisol", PASSWORD).await;
}

#[tokio::test]
async fn an_unreadable_blocklist_file_stops_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.txt").display().to_string();
    let err = account_recovery::config::Config::from_map(
        &[("PASSWORD_BLOCKLIST_FILE".to_string(), missing)]
            .into_iter()
            .chain([(
                "DATABASE_URL".to_string(),
                dir.path().join("x.db").display().to_string(),
            )])
            .collect(),
    )
    .expect_err("a missing file is refused");
    assert_eq!(err.variable, "PASSWORD_BLOCKLIST_FILE");
}
