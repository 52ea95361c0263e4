//! No secret in logs, none in the database in the clear.
//!
//! One story (register, verify the email from the mail's link, log in, a wrong password, enable
//! TOTP, log in with a recovery code, change the password) is driven through HTTP, collecting
//! every secret it uses. Then the logs of the real binary (JSON, `RUST_LOG=debug`) and every
//! column of every table of the in-process app are searched for each of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use account_recovery::clock::{Clock as _, ManualClock};
use account_recovery::security::totp::TotpSecret;
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, free_port};
use crate::support::{PASSWORD, SmtpSink, TestApp, TestDb, json, problem, spawn_app};

const USERNAME: &str = "jbber";
const EMAIL: &str = "jb@example.com";
const NEW_PASSWORD: &str = "velvet compass harbor 97";
const WRONG_PASSWORD: &str = "quartz meadow wrong 13";

/// Every secret the story used, with a name for the failure message.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        assert!(value.len() >= 8, "a secret too short to search for");
        self.0.push((name.into(), value));
    }

    /// The names of the secrets found in `text`.
    fn found_in(&self, text: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| text.contains(v.as_str()))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

fn str_field(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_string()
}

/// Drives the story; `unix_now` is the server's time (for TOTP codes).
async fn story(app: &TestApp, unix_now: impl Fn() -> i64) -> Secrets {
    let mut s = Secrets::default();
    s.add("password", PASSWORD);
    s.add("new password", NEW_PASSWORD);
    s.add("wrong password", WRONG_PASSWORD);

    let mail = app.register(USERNAME, EMAIL, PASSWORD).await;
    let token = mail
        .link_param("verify-email", "token")
        .expect("verification link");
    s.add("verification token", token.clone());
    json(
        app.post("/api/v1/accounts/verify-email", json!({"token": token}))
            .await,
        200,
    )
    .await;

    let tokens = app.login(USERNAME, PASSWORD).await;
    s.add("access token", tokens.access.clone());
    s.add("refresh token", tokens.refresh.clone());
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": USERNAME, "password": WRONG_PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;
    // People type their password into the login field: it must not be kept either (the
    // rate-limit bucket of a login text is a keyed hash).
    problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": NEW_PASSWORD, "password": NEW_PASSWORD}),
        )
        .await,
        401,
        "invalid_credentials",
    )
    .await;

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
    let secret = str_field(&enrollment, "secret");
    s.add("TOTP secret", secret.clone());
    s.add("TOTP secret (lower case)", secret.to_lowercase());
    s.add("otpauth URI", str_field(&enrollment, "otpauth_uri"));
    let totp = TotpSecret::from_base32(&secret).expect("base32 secret");
    let code = totp.code_at(unix_now()).expect("code");
    let confirmed = json(
        app.post_auth(
            "/api/v1/account/totp/confirm",
            &tokens.access,
            json!({"code": code}),
        )
        .await,
        200,
    )
    .await;
    let codes: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert!(codes.len() >= 4);
    for (i, code) in codes.iter().enumerate() {
        s.add(format!("recovery code {i}"), code.clone());
        s.add(
            format!("recovery code {i} (compact)"),
            code.replace('-', ""),
        );
    }

    let mfa = json(
        app.post(
            "/api/v1/sessions",
            json!({"login": EMAIL, "password": PASSWORD}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(mfa["status"], "mfa_required", "{mfa}");
    let mfa_token = str_field(&mfa, "mfa_token");
    s.add("mfa token", mfa_token.clone());
    // A wrong recovery code first, then a right one.
    problem(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa_token, "code": "zzzz-zzzz-zzzz-zzzz-zzzz"}),
        )
        .await,
        401,
        "invalid_recovery_code",
    )
    .await;
    let recovered = json(
        app.post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa_token, "code": codes[0]}),
        )
        .await,
        200,
    )
    .await;
    let access = str_field(&recovered, "access_token");
    s.add("access token (recovery-code login)", access.clone());
    s.add(
        "refresh token (recovery-code login)",
        str_field(&recovered, "refresh_token"),
    );
    s.add(
        "device token (recovery-code login)",
        str_field(&recovered, "device_token"),
    );

    let res = app
        .put_auth(
            "/api/v1/account/password",
            &access,
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(
        res.status(),
        204,
        "{}",
        res.text().await.unwrap_or_default()
    );
    app.smtp.wait_for_subject(EMAIL, "password").await;

    // An email change (issue 17): its confirmation token, and the lock link of every notice.
    let res = app
        .post_auth(
            "/api/v1/account/email-changes",
            &access,
            json!({"password": NEW_PASSWORD, "new_email": "jb.moved@example.org"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let confirm = app
        .smtp
        .wait_for_subject("jb.moved@example.org", "Confirm your new email address")
        .await
        .link_param("confirm-email-change", "token")
        .expect("confirmation link");
    s.add("email change token", confirm);
    let notice = app.smtp.wait_for_subject(EMAIL, "A change of your").await;
    for (i, mail) in app.smtp.to(EMAIL).iter().enumerate() {
        if let Some(token) = mail.link_param("lock-account", "token") {
            s.add(format!("lock token {i}"), token);
        }
    }
    let lock = notice
        .link_param("lock-account", "token")
        .expect("lock link");
    let res = app
        .post("/api/v1/account-locks", json!({"token": lock}))
        .await;
    assert_eq!(res.status(), 200);
    s
}

// ---------------------------------------------------------------------------------------------
// Logs of the real binary.

#[tokio::test]
async fn the_binarys_json_logs_carry_request_ids_and_no_secret() {
    let smtp = SmtpSink::start().await;
    let db = TestDb::create();
    let port = free_port();
    let jwt_secret = "jwt-secret-for-the-log-test-0123456789";
    let data_key = "data-key-for-the-log-test-9876543210";
    let env: HashMap<String, String> = [
        ("APP_ENV", "production".to_string()),
        ("ALLOW_INSECURE_HTTP", "true".into()),
        ("RUST_LOG", "debug".into()),
        ("DATABASE_URL", db.url()),
        ("DATABASE_POOL_SIZE", "4".into()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("METRICS_BIND_ADDR", "127.0.0.1:0".into()),
        ("WORKERS", "2".into()),
        ("FRONTEND_URL", "https://frontend.test".into()),
        ("JWT_SECRET", jwt_secret.into()),
        ("DATA_ENCRYPTION_KEY", data_key.into()),
        ("MAIL_TRANSPORT", "smtp".into()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port())),
        (
            "MAIL_FROM",
            "Account Recovery <no-reply@service.test>".into(),
        ),
        ("ARGON2_MEMORY_KIB", "64".into()),
        ("ARGON2_ITERATIONS", "1".into()),
        ("NEW_DEVICE_CONFIRMATION", "off".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut server = ServerProcess::start(&env);

    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address: String::new(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client"),
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
        smtp,
        db,
        env,
    };
    let ready = server.wait_ready(&app.http, &app.address).await;
    let secrets = if ready {
        Some(story(&app, || chrono::Utc::now().timestamp()).await)
    } else {
        None
    };
    server.stop();
    let (stdout, stderr) = server.output();
    let Some(mut secrets) = secrets else {
        panic!("the binary did not become ready\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    secrets.add("JWT_SECRET", jwt_secret);
    secrets.add("DATA_ENCRYPTION_KEY", data_key);
    secrets.add("email address", EMAIL);

    let output = format!("{stdout}\n{stderr}");
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{output}");
    }
    let leaked = secrets.found_in(&output);
    assert!(leaked.is_empty(), "logs contain {leaked:?}:\n{output}");

    // Production logs are JSON, one object a line; lines inside a request carry its id.
    let mut finished = 0;
    let mut request_ids = std::collections::HashSet::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("a log line is not JSON: {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
        let in_request = entry["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["name"] == "HTTP request"));
        if entry["message"] == "request finished" {
            finished += 1;
            assert!(in_request, "{line}");
        }
        if in_request {
            let id = entry["span"]["request_id"]
                .as_str()
                .or_else(|| entry["spans"][0]["request_id"].as_str())
                .unwrap_or_else(|| panic!("no request_id: {line}"));
            request_ids.insert(id.to_string());
        }
    }
    assert!(finished >= 10, "{finished} requests logged:\n{output}");
    assert!(request_ids.len() >= finished, "request ids are not unique");
}

// ---------------------------------------------------------------------------------------------
// The database at rest.

/// Every non-null value of every column of every table, as text, named `table.column`.
fn every_value(app: &TestApp) -> Vec<(String, String)> {
    let columns = if app.db.is_postgres() {
        app.db_texts(
            "SELECT table_name || '.' || column_name AS value FROM information_schema.columns \
             WHERE table_schema = 'public'",
        )
    } else {
        app.db_texts(
            "SELECT m.name || '.' || p.name AS value FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
    };
    assert!(columns.len() > 30, "{columns:?}");
    let mut values = Vec::new();
    for column in columns {
        let (table, name) = column.split_once('.').expect("table.column");
        let sql = format!(
            "SELECT CAST(\"{name}\" AS TEXT) AS value FROM \"{table}\" WHERE \"{name}\" IS NOT NULL"
        );
        for value in app.db_texts(&sql) {
            values.push((column.clone(), value));
        }
    }
    values
}

fn assert_no_secret(values: &[(String, String)], secrets: &Secrets, when: &str) {
    let mut leaks = Vec::new();
    for (column, value) in values {
        for name in secrets.found_in(value) {
            leaks.push(format!("{name} in {column}"));
        }
    }
    assert!(leaks.is_empty(), "{when}: secrets in the clear: {leaks:?}");
}

#[tokio::test]
async fn no_secret_is_stored_in_the_clear() {
    let app = spawn_app().await;

    // The verification mail waits in the outbox while SMTP is down: sealed there.
    app.smtp.stop();
    let res = app
        .post(
            "/api/v1/accounts",
            json!({"username": "waiting", "email": "waiting@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .db_texts("SELECT CAST(attempts AS TEXT) AS value FROM outbox")
        .iter()
        .all(|a| a == "0")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = every_value(&app);
    app.smtp.resume().await;
    app.clock.advance(chrono::Duration::minutes(2));
    let mail = app
        .smtp
        .wait_for_subject("waiting@example.com", "Confirm your email address")
        .await;
    let mut early = Secrets::default();
    early.add(
        "pending verification token",
        mail.link_param("verify-email", "token").expect("link"),
    );
    early.add(
        "pending verification link",
        mail.link("verify-email").expect("link"),
    );
    assert_no_secret(&pending, &early, "while the mail was pending");

    let mut secrets = story(&app, || app.clock.now().timestamp()).await;
    for (name, value) in early.0 {
        secrets.add(name, value);
    }
    secrets.add("JWT_SECRET", app.env["JWT_SECRET"].clone());
    secrets.add(
        "DATA_ENCRYPTION_KEY",
        app.env["DATA_ENCRYPTION_KEY"].clone(),
    );
    let values = every_value(&app);
    assert_no_secret(&values, &secrets, "after the story");

    // Sanity: the search does see what is stored in the clear.
    assert!(
        values
            .iter()
            .any(|(c, v)| c == "accounts.email" && v == EMAIL)
    );
    // Sent mails keep no body.
    let bodies = app
        .db_texts("SELECT body_text || body_html AS value FROM outbox WHERE sent_at IS NOT NULL");
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(String::is_empty), "{bodies:?}");
}
