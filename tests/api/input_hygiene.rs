//! Input hygiene at the edge (API.md, Conventions; issues 14 and 20): control characters in any
//! text field, query parameter, path id or header the app reads are a 422 naming the field or a
//! 404, never a 500 (PostgreSQL refuses U+0000 in text) and never stored; user agents are
//! cleaned; identities are NFKC-normalised, compared ignoring case and refused when they look
//! like another account's (UTS #39); the support queue's username filter ignores case.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app};

/// Control characters every one-line text field refuses; free text refuses all but the line
/// breaks and the tab.
const CONTROLS: [&str; 7] = [
    "\u{0}", "\u{1}", "\u{7}", "\u{1b}", "\u{7f}", "\u{85}", "\u{9b}",
];
const LINE_BREAKS: [&str; 3] = ["\n", "\r", "\t"];

/// Top-level body fields that are free text: tab and line breaks allowed.
const FREE_TEXT: [(&str, &str); 5] = [
    ("SubmitBody", "reason"),
    ("MessageBody", "body"),
    ("ApproveBody", "comment"),
    ("ApproveBody", "justification"),
    ("DenyBody", "reason"),
];

/// Resolves a `$ref` of the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Whether a (resolved) property schema is a string (possibly nullable).
fn is_string(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "string",
        Value::Array(ts) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// A body of plausible values for every property of `schema` (object).
fn base_body(doc: &Value, schema: &Value) -> Map<String, Value> {
    let mut body = Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, p) in props {
            let p = resolve(doc, p);
            let value = if let Some(first) = p["enum"].as_array().and_then(|e| e.first()) {
                first.clone()
            } else if is_string(p) {
                json!("x")
            } else if p["type"] == "boolean"
                || p["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("boolean")))
            {
                json!(true)
            } else {
                json!(1)
            };
            body.insert(name.clone(), value);
        }
    }
    body
}

/// One operation of the document, with what it needs to get past authentication.
struct Operation {
    method: Method,
    path: String,
    body_schema: Option<(String, Value)>,
    query: Vec<String>,
    has_path_id: bool,
    tracking_header: bool,
    auth: Option<String>,
}

fn operations(doc: &Value, user: &str, support: &str) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !op.is_object() || path == "/api/v1/sessions/current" {
                continue;
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let body_schema = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|_| {
                    let s = &op["requestBody"]["content"]["application/json"]["schema"];
                    let name = s["$ref"]
                        .as_str()
                        .and_then(|r| r.rsplit('/').next())
                        .unwrap_or_default()
                        .to_string();
                    (name, resolve(doc, s).clone())
                });
            let auth = op["security"].as_array().map(|_| {
                if path.starts_with("/api/v1/admin") {
                    support.to_string()
                } else {
                    user.to_string()
                }
            });
            ops.push(Operation {
                method,
                path: path.clone(),
                body_schema,
                query: params
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| p["name"].as_str().unwrap_or_default().to_string())
                    .collect(),
                has_path_id: params.iter().any(|p| p["in"] == "path"),
                tracking_header: params
                    .iter()
                    .any(|p| p["in"] == "header" && p["name"] == "X-Tracking-Token"),
                auth,
            });
        }
    }
    ops
}

impl Operation {
    async fn send(
        &self,
        app: &TestApp,
        id: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> reqwest::Response {
        let path = self.path.replace("{id}", id);
        let mut req = app
            .http
            .request(self.method.clone(), app.url(&path))
            .query(query);
        if let Some(token) = &self.auth {
            req = req.bearer_auth(token);
        }
        if self.tracking_header {
            req = req.header("X-Tracking-Token", "some-tracking-token");
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request")
    }
}

/// Asserts a 422 whose errors name `field` with `control_character`.
async fn refused(res: reqwest::Response, field: &str, what: &str) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 422, "{what}: {text}");
    let body: Value = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(body["code"], "validation_failed", "{what}: {text}");
    let named = body["errors"].as_array().is_some_and(|errs| {
        errs.iter()
            .any(|e| e["field"] == field && e["code"] == "control_character")
    });
    assert!(
        named,
        "{what}: no control_character error for {field}: {text}"
    );
}

#[tokio::test]
async fn control_characters_anywhere_are_422_or_404_never_500() {
    let app = spawn_app().await;
    let user = app
        .verified_user("jbber", "jb@example.com", PASSWORD)
        .await
        .access;
    let support = app.support_user("ana-support").await.access;
    let doc = json(app.get("/api-docs/openapi.json").await, 200).await;
    let ops = operations(&doc, &user, &support);

    let mut fields_checked = Vec::new();
    for op in &ops {
        let what = |x: &str| format!("{} {} {x}", op.method, op.path);
        // Every string field of the body, one at a time.
        if let Some((name, schema)) = &op.body_schema {
            let base = base_body(&doc, schema);
            for (field, p) in &base {
                let prop = resolve(&doc, &schema["properties"][field]);
                if !is_string(prop) && !p.is_string() {
                    continue;
                }
                fields_checked.push(format!("{name}.{field}"));
                let free = FREE_TEXT.contains(&(name.as_str(), field.as_str()));
                for c in CONTROLS {
                    let mut body = base.clone();
                    body.insert(field.clone(), json!(format!("abc{c}def")));
                    let res = op.send(&app, "x", &[], Some(&Value::Object(body))).await;
                    refused(res, field, &what(&format!("{field} with {c:?}"))).await;
                }
                for c in LINE_BREAKS {
                    let mut body = base.clone();
                    body.insert(field.clone(), json!(format!("abc{c}def")));
                    let res = op.send(&app, "x", &[], Some(&Value::Object(body))).await;
                    if free {
                        let status = res.status().as_u16();
                        let text = res.text().await.unwrap_or_default();
                        assert!(status < 500, "{}: {text}", what(field));
                        assert!(
                            !text.contains("control_character"),
                            "{}: {text}",
                            what(field)
                        );
                    } else {
                        refused(res, field, &what(&format!("{field} with {c:?}"))).await;
                    }
                }
            }
        }
        let body = op
            .body_schema
            .as_ref()
            .map(|(_, s)| Value::Object(base_body(&doc, s)));
        // Every query parameter.
        for param in &op.query {
            fields_checked.push(format!("{}?{param}", op.path));
            for c in CONTROLS.iter().chain(LINE_BREAKS.iter()) {
                let value = format!("1{c}2");
                let res = op
                    .send(
                        &app,
                        "x",
                        &[(param.as_str(), value.as_str())],
                        body.as_ref(),
                    )
                    .await;
                refused(res, param, &what(&format!("?{param} with {c:?}"))).await;
            }
        }
        // Every path id, percent-encoded as a client would send it.
        if op.has_path_id {
            fields_checked.push(format!("{} {{id}}", op.path));
            for id in [
                "abc%00def",
                "%00",
                "x%01y",
                "x%1By",
                "x%7F",
                "x%C2%85",
                "x%0Ay",
                "x%09y",
            ] {
                let res = op.send(&app, id, &[], body.as_ref()).await;
                problem(res, 404, "not_found").await;
            }
        }
    }
    // The document drove the test: it saw every kind of input.
    for expected in [
        "RegisterBody.username",
        "RegisterBody.email",
        "RegisterBody.password",
        "LoginBody.login",
        "LoginBody.password",
        "StartPasswordResetBody.login",
        "ConfirmPasswordResetBody.token",
        "ConfirmPasswordResetBody.new_password",
        "SubmitBody.username",
        "SubmitBody.reason",
        "SecondStepBody.mfa_token",
        "ApproveBody.deliver_to",
        "/api/v1/admin/recovery-requests?username",
        "/api/v1/admin/audit-events?type",
        "/api/v1/account/events?page",
        "/api/v1/recovery-requests/{id} {id}",
        "/api/v1/account/sessions/{id} {id}",
    ] {
        assert!(
            fields_checked.iter().any(|f| f == expected),
            "{expected} not checked: {fields_checked:?}"
        );
    }
    // Nothing of it reached the database.
    assert!(
        app.db_texts("SELECT id AS value FROM recovery_requests")
            .is_empty()
    );
    assert_eq!(app.db_texts("SELECT id AS value FROM accounts").len(), 2);
}

#[tokio::test]
async fn the_reported_500s_are_404s_and_422s() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    problem(
        app.get("/api/v1/recovery-requests/abc%00def").await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .http
        .get(app.url("/api/v1/recovery-requests/abc%00def"))
        .header("X-Tracking-Token", "anything")
        .send()
        .await
        .expect("request");
    problem(res, 404, "not_found").await;
    problem(
        app.delete_auth("/api/v1/account/sessions/%00", &tokens.access)
            .await,
        404,
        "not_found",
    )
    .await;
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": "jb\u{0}ber", "password": PASSWORD}),
        )
        .await;
    refused(res, "login", "login").await;
    let res = app
        .post("/api/v1/password-resets", json!({"login": "jbber\u{0}"}))
        .await;
    refused(res, "login", "reset").await;
    // A password with NUL is refused (issue 20), not stored.
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "other", "email": "o@example.com", "password": "orbit\u{0}lantern mosaic 42"}),
        )
        .await;
    refused(res, "password", "registration").await;
    // The recovery form's username lands in mails: no line breaks either.
    let res = app
        .post(
            "/api/v1/recovery-requests",
            json!({
                "username": "jbber\nBcc: victim@example.com", "contact_email": "jb.new@example.org",
                "reason": "Lost my phone.\nAnd my codes.", "recovery_codes_lost": true,
                "code_of_conduct_accepted": true, "processing_time_acknowledged": true
            }),
        )
        .await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["errors"][0]["field"], "username");
}

#[tokio::test]
async fn a_tracking_token_with_a_control_character_is_a_404() {
    let app = spawn_app().await;
    let filed = json(
        app.post(
            "/api/v1/recovery-requests",
            json!({
                "username": "jbber", "contact_email": "jb.new@example.org",
                "reason": "I lost my phone and my recovery codes.", "recovery_codes_lost": true,
                "code_of_conduct_accepted": true, "processing_time_acknowledged": true
            }),
        )
        .await,
        202,
    )
    .await;
    let id = filed["id"].as_str().expect("id");
    let token = filed["tracking_token"].as_str().expect("token");
    let get = |t: String| {
        app.http
            .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", t)
            .send()
    };
    json(get(token.to_string()).await.expect("request"), 200).await;
    let (head, tail) = token.split_at(10);
    problem(
        get(format!("{head}\t{tail}")).await.expect("request"),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_user_agent_with_control_characters_is_recorded_without_them() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let res = app
        .http
        .post(app.url("/api/v1/sessions"))
        .header("User-Agent", "Mozilla/5.0\t(X11;\t\tLinux)")
        .json(&json!({"login": "jbber", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    let access = json(res, 200).await["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let sessions = json(app.get_auth("/api/v1/account/sessions", &access).await, 200).await;
    let agents: Vec<&str> = sessions["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["user_agent"].as_str())
        .collect();
    assert!(agents.contains(&"Mozilla/5.0 (X11; Linux)"), "{sessions}");
    assert!(
        app.db_texts("SELECT user_agent AS value FROM sessions WHERE user_agent IS NOT NULL")
            .iter()
            .all(|ua| !ua.chars().any(char::is_control))
    );
}

// ---------------------------------------------------------------------------------------------
// Identities: NFKC, case, look-alikes.

async fn register(app: &TestApp, username: &str, email: &str) -> reqwest::Response {
    app.post(
        "/api/v1/accounts",
        json!({"username": username, "email": email, "password": PASSWORD}),
    )
    .await
}

/// Asserts a 422 with `field` refused as `confusable`.
async fn confusable(res: reqwest::Response, field: &str) {
    let body = problem(res, 422, "validation_failed").await;
    let named = body["errors"].as_array().is_some_and(|errs| {
        errs.iter()
            .any(|e| e["field"] == field && e["code"] == "confusable")
    });
    assert!(named, "{field} should be confusable: {body}");
}

#[tokio::test]
async fn usernames_that_look_like_another_or_mix_scripts_are_confusable() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com", PASSWORD).await;
    // Cyrillic а (U+0430) among Latin letters: mixed scripts.
    confusable(
        register(&app, "\u{430}lice", "a2@example.com").await,
        "username",
    )
    .await;
    // Capital i for l: the same skeleton.
    confusable(register(&app, "aIice", "a3@example.com").await, "username").await;
    // The same name in other case stays a 409.
    problem(
        register(&app, "ALICE", "a4@example.com").await,
        409,
        "username_taken",
    )
    .await;
    // Wholly Cyrillic, yet like a Latin name that exists.
    app.register("cope", "cope@example.com", PASSWORD).await;
    confusable(
        register(&app, "\u{441}\u{43e}\u{440}\u{435}", "c2@example.com").await,
        "username",
    )
    .await;
    // Email addresses: mixed scripts in a part, or the skeleton of an existing one.
    confusable(
        register(&app, "bob", "\u{430}lice@example.com").await,
        "email",
    )
    .await;
    confusable(register(&app, "bob", "a1ice@example.com").await, "email").await;
    // Nothing was stored for the refused ones.
    assert_eq!(app.db_texts("SELECT id AS value FROM accounts").len(), 2);
}

#[tokio::test]
async fn usernames_are_nfkc_normalised_and_logins_ignore_case() {
    let app = spawn_app().await;
    // Fullwidth letters become ASCII.
    let res = register(&app, "ＪＢｂｅｒ", "jb@example.com").await;
    let body = json(res, 201).await;
    assert_eq!(body["username"], "JBber");
    problem(
        register(&app, "jbber", "jb2@example.com").await,
        409,
        "username_taken",
    )
    .await;
    // A name in another script, of one script, is welcome, and logs in ignoring case.
    let mail = app.register("Élise", "elise@example.com", PASSWORD).await;
    let token = mail.link_param("verify-email", "token").expect("link");
    json(
        app.post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await,
        200,
    )
    .await;
    app.login("ÉLISE", PASSWORD).await;
    app.login("ｅｌｉｓｅ@example.com", PASSWORD).await;
}

#[tokio::test]
async fn older_accounts_get_their_skeletons_at_start() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com", PASSWORD).await;
    // As if the account predated the skeleton columns.
    app.exec("UPDATE accounts SET username_skeleton = NULL, email_skeleton = NULL");
    // Starting an instance migrates, and fills what SQL could not.
    let second = app.spawn_second_instance().await;
    assert_eq!(
        app.db_texts(
            "SELECT username_skeleton AS value FROM accounts WHERE username_skeleton IS NOT NULL \
             AND email_skeleton IS NOT NULL"
        ),
        ["alice"]
    );
    confusable(register(&app, "aIice", "a3@example.com").await, "username").await;
    confusable(register(&app, "bob", "a1ice@example.com").await, "email").await;
    second.handle.stop(true).await;
}

#[tokio::test]
async fn the_support_queue_filter_ignores_case() {
    let app = spawn_app().await;
    let support = app.support_user("ana-support").await.access;
    json(
        app.post(
            "/api/v1/recovery-requests",
            json!({
                "username": "JBber", "contact_email": "jb.new@example.org",
                "reason": "I lost my phone and my recovery codes.", "recovery_codes_lost": true,
                "code_of_conduct_accepted": true, "processing_time_acknowledged": true
            }),
        )
        .await,
        202,
    )
    .await;
    for filter in ["JBber", "jbber", "JBBER"] {
        let page = json(
            app.get_auth(
                &format!("/api/v1/admin/recovery-requests?username={filter}"),
                &support,
            )
            .await,
            200,
        )
        .await;
        assert_eq!(page["total"], 1, "{filter}: {page}");
    }
    let page = json(
        app.get_auth("/api/v1/admin/recovery-requests?username=jbbe", &support)
            .await,
        200,
    )
    .await;
    assert_eq!(page["total"], 0);
}

/// Posts `body` and expects a 422 whose only field error is `field`'s `too_long`.
async fn too_long(res: reqwest::Response, field: &str) {
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["errors"][0]["field"], field, "{body}");
    assert_eq!(body["errors"][0]["code"], "too_long", "{body}");
}

#[tokio::test]
async fn tokens_passwords_and_codes_longer_than_the_stated_maximum_are_422s() {
    // The maxLength of the document (domain/limits.rs): 2048 for tokens, 1024 for a password
    // in use, 64 for a second-factor code. At the limit the answer is the usual refusal.
    let app = spawn_app().await;
    let user = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let token = "t".repeat(2049);
    let password = "p".repeat(1025);
    let code = "1".repeat(65);
    too_long(
        app.post(
            "/api/v1/password-resets/confirm",
            json!({"token": token, "new_password": "orbit lantern mosaic 42"}),
        )
        .await,
        "token",
    )
    .await;
    problem(
        app.post(
            "/api/v1/password-resets/confirm",
            json!({"token": "t".repeat(2048), "new_password": "orbit lantern mosaic 42"}),
        )
        .await,
        400,
        "invalid_token",
    )
    .await;
    too_long(
        app.post("/api/v1/sessions/refresh", json!({"refresh_token": token}))
            .await,
        "refresh_token",
    )
    .await;
    too_long(
        app.post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": "m", "code": code}),
        )
        .await,
        "code",
    )
    .await;
    too_long(
        app.post(
            "/api/v1/sessions/webauthn/options",
            json!({"mfa_token": token}),
        )
        .await,
        "mfa_token",
    )
    .await;
    too_long(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": password}),
        )
        .await,
        "password",
    )
    .await;
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "p".repeat(1024)}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    too_long(
        app.post_auth(
            "/api/v1/account/email-changes",
            &user.access,
            json!({"password": password, "new_email": "new@example.com"}),
        )
        .await,
        "password",
    )
    .await;
    too_long(
        app.post_auth(
            "/api/v1/account/passkeys/registration-options",
            &user.access,
            json!({"password": password}),
        )
        .await,
        "password",
    )
    .await;
}

#[tokio::test]
async fn filters_and_headers_longer_than_the_stated_maximum_are_refused() {
    let app = spawn_app().await;
    let support = app.support_user("ana-support").await.access;
    let long_name = "a".repeat(51);
    too_long(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests?username={long_name}"),
            &support,
        )
        .await,
        "username",
    )
    .await;
    too_long(
        app.get_auth(
            &format!("/api/v1/admin/audit-events?type={}", "a".repeat(101)),
            &support,
        )
        .await,
        "type",
    )
    .await;
    let body = problem(
        app.get_auth("/api/v1/admin/audit-events?account=not-an-id", &support)
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "account", "{body}");
    assert_eq!(body["errors"][0]["code"], "invalid", "{body}");
    for ok in [
        "account=".to_string(),
        "request=9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6".to_string(),
        format!("type={}", "a".repeat(100)),
    ] {
        json(
            app.get_auth(&format!("/api/v1/admin/audit-events?{ok}"), &support)
                .await,
            200,
        )
        .await;
    }

    // A tracking token longer than any is a 404, like a wrong one.
    let filed = json(
        app.post(
            "/api/v1/recovery-requests",
            json!({
                "username": "jbber", "contact_email": "jb.new@example.org",
                "reason": "I lost my phone and my recovery codes.", "recovery_codes_lost": true,
                "code_of_conduct_accepted": true, "processing_time_acknowledged": true
            }),
        )
        .await,
        202,
    )
    .await;
    let id = filed["id"].as_str().expect("id");
    let res = app
        .http
        .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .header("X-Tracking-Token", "t".repeat(2049))
        .send()
        .await
        .expect("request");
    problem(res, 404, "not_found").await;
}
