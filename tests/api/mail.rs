//! The outbox: mail is never lost when SMTP is down, is sealed at rest and wiped once sent.

use std::time::Duration;

use crate::support::{PASSWORD, spawn_app};

#[tokio::test]
async fn mail_queued_while_smtp_is_down_is_delivered_once_when_it_comes_back() {
    let app = spawn_app().await;
    app.smtp.stop();
    let res = app
        .post(
            "/api/v1/accounts",
            serde_json::json!({"username": "ana", "email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    // The request does not wait for the mail.
    assert_eq!(res.status(), 201);

    // Let the dispatcher fail at least once (bounded wait on the outbox).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempts = app.db_texts("SELECT CAST(attempts AS TEXT) AS value FROM outbox");
        if attempts.iter().any(|a| a != "0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt was made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Pending and carrying a token: sealed at rest.
    let bodies = app.db_texts("SELECT body_text AS value FROM outbox WHERE sent_at IS NULL");
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].starts_with("v1:"), "body is not sealed");
    assert!(!bodies[0].contains("verify-email"));
    assert!(app.smtp.all().is_empty());

    app.smtp.resume().await;
    // The retry is due after its backoff, in app time.
    app.clock.advance(chrono::Duration::minutes(2));
    let mails = app.smtp.wait_for("ana@example.com", 1).await;
    assert!(mails[0].link_param("verify-email", "token").is_some());

    // Delivered once, and its body wiped.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.smtp.to("ana@example.com").len(), 1);
    let left = app.db_texts("SELECT body_text AS value FROM outbox WHERE sent_at IS NOT NULL");
    assert_eq!(left, vec![String::new()]);
    let message_ids = app.db_texts("SELECT message_id AS value FROM outbox");
    assert_eq!(mails[0].header("Message-ID"), Some(message_ids[0].clone()));
}
