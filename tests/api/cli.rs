//! The binary itself: configuration errors and `migrate`.

use std::process::Command;

use crate::support::TestDb;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_account-recovery"));
    // Only what the test sets: no inherited configuration, no .env from the working folder.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn a_configuration_error_stops_the_binary_with_one_clear_line() {
    let out = binary()
        .args(["serve"])
        .env("ACCESS_TOKEN_TTL", "soon")
        .env("DATABASE_URL", "/nonexistent/never.db")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("ACCESS_TOKEN_TTL"), "{stderr}");
}

#[test]
fn production_without_secrets_refuses_to_start() {
    let out = binary()
        .env("APP_ENV", "production")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

/// A production configuration that passes, but for what a test changes.
fn production(db: &TestDb) -> Command {
    let mut cmd = binary();
    cmd.arg("migrate")
        .env("APP_ENV", "production")
        .env("DATABASE_URL", db.url())
        .env("JWT_SECRET", "x".repeat(32))
        .env("DATA_ENCRYPTION_KEY", "y".repeat(32))
        .env("MAIL_TRANSPORT", "smtp")
        .env("SMTP_URL", "smtp://127.0.0.1:2525")
        .env("PUBLIC_URL", "https://api.example.com");
    cmd
}

/// Asserts exit status 2 with one line naming `variable`.
fn refused(out: &std::process::Output, variable: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!("error: {variable}:")),
        "{stderr}"
    );
}

#[test]
fn production_refuses_mail_printed_to_the_console() {
    let db = TestDb::create();
    let out = production(&db)
        .env("MAIL_TRANSPORT", "log")
        .output()
        .expect("run binary");
    refused(&out, "MAIL_TRANSPORT");
    // Unset, the transport is `log` too.
    let out = production(&db)
        .env_remove("MAIL_TRANSPORT")
        .output()
        .expect("run binary");
    refused(&out, "MAIL_TRANSPORT");
}

#[test]
fn production_refuses_plain_http_unless_told_so_on_purpose() {
    let db = TestDb::create();
    let out = production(&db)
        .env("PUBLIC_URL", "http://api.example.com")
        .output()
        .expect("run binary");
    refused(&out, "PUBLIC_URL");
    // Unset, PUBLIC_URL is http://BIND_ADDR.
    let out = production(&db)
        .env_remove("PUBLIC_URL")
        .output()
        .expect("run binary");
    refused(&out, "PUBLIC_URL");
    let out = production(&db)
        .env("PUBLIC_URL", "http://api.example.com")
        .env("ALLOW_INSECURE_HTTP", "maybe")
        .output()
        .expect("run binary");
    refused(&out, "ALLOW_INSECURE_HTTP");
    let out = production(&db)
        .env("PUBLIC_URL", "http://api.example.com")
        .env("ALLOW_INSECURE_HTTP", "true")
        .output()
        .expect("run binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the https configuration itself starts.
    let out = production(&db).output().expect("run binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn migrate_applies_once_then_is_a_no_op() {
    let db = TestDb::create();
    let run = || {
        binary()
            .arg("migrate")
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", "x".repeat(32))
            .env("DATA_ENCRYPTION_KEY", "y".repeat(32))
            .output()
            .expect("run binary")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied"));
    let second = run();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

#[test]
fn openapi_prints_the_document() {
    let out = binary().arg("openapi").output().expect("run binary");
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3.1"));
}

#[test]
fn help_describes_every_command() {
    let out = binary().arg("--help").output().expect("run binary");
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "openapi"] {
        assert!(text.contains(cmd), "{text}");
    }
}

#[test]
fn support_user_create_makes_a_verified_support_account_once() {
    use std::io::Write as _;
    let db = TestDb::create();
    let create = |username: &str| {
        let mut child = binary()
            .args([
                "support-user",
                "create",
                "--username",
                username,
                "--email",
                "ana.support@example.com",
                "--password-stdin",
            ])
            .env("DATABASE_URL", db.url())
            .env("JWT_SECRET", "x".repeat(32))
            .env("DATA_ENCRYPTION_KEY", "y".repeat(32))
            .env("ARGON2_MEMORY_KIB", "64")
            .env("ARGON2_ITERATIONS", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run binary");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"orbit lantern mosaic 42\n")
            .expect("write password");
        child.wait_with_output().expect("wait")
    };
    let out = create("ana-support");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created support user ana-support"));
    let again = create("ANA-support");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("username is already taken"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
