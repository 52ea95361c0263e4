//! The outbox: mail is never lost when SMTP is down, is sealed at rest and wiped once sent.

use std::time::Duration;

use crate::support::{PASSWORD, spawn_app, spawn_app_with_handle};

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

#[tokio::test]
async fn a_graceful_stop_lets_the_dispatcher_finish_its_mail_and_hand_back_the_rest() {
    let (app, running) = spawn_app_with_handle(|_| {}).await;
    // Three mails due at the same moment, so that one round claims them all: queued while
    // SMTP is down, each fails once and is retried 30 s later in app time.
    app.smtp.stop();
    for name in ["ana", "bob", "cid"] {
        let res = app
            .post(
                "/api/v1/accounts",
                serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .db_texts("SELECT id AS value FROM outbox WHERE attempts = 1 AND claimed_by IS NULL")
        .len()
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first attempts did not fail"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.smtp.hold();
    app.smtp.resume().await;
    app.clock.advance(chrono::Duration::minutes(1));

    // The dispatcher is in the middle of one delivery, with the other mails claimed behind it.
    app.smtp.wait_until_holding(1).await;
    let claimed = app.db_texts("SELECT id AS value FROM outbox WHERE claimed_by IS NOT NULL");
    assert_eq!(claimed.len(), 3);

    // SIGTERM's path: the HTTP server stops, then the dispatcher is told to stop. Only then
    // does the SMTP server answer the delivery in hand.
    tokio::time::timeout(Duration::from_secs(30), running.handle.stop(true))
        .await
        .expect("the HTTP server stops");
    app.smtp.release();
    tokio::time::timeout(Duration::from_secs(30), running.task)
        .await
        .expect("the dispatcher stops after its current mail")
        .expect("task")
        .expect("clean exit");

    // That one mail was delivered and recorded; no other was started, and none is left
    // claimed by the stopped process.
    assert_eq!(app.smtp.all().len(), 1);
    let sent = app.db_texts("SELECT message_id AS value FROM outbox WHERE sent_at IS NOT NULL");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        app.smtp.all()[0].header("Message-ID"),
        Some(sent[0].clone())
    );
    let unsent = app.db_texts("SELECT id AS value FROM outbox WHERE sent_at IS NULL");
    assert_eq!(unsent.len(), 2);
    let still_claimed = app.db_texts(
        "SELECT id AS value FROM outbox WHERE sent_at IS NULL AND claimed_by IS NOT NULL",
    );
    assert!(still_claimed.is_empty(), "{still_claimed:?}");

    // Another instance takes them at once, without waiting for a lease to run out.
    let _other = app.spawn_second_instance().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.smtp.all().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handed-back mails were not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids: Vec<_> = app
        .smtp
        .all()
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each mail once");
}
