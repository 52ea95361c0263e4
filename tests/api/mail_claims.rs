//! Mail claimed by a dispatcher whose database calls fail in the middle of a batch: the
//! claims are given back or run out within seconds, and another instance sends the rest.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::relay::TcpRelay;
use crate::support::{PASSWORD, json, spawn_app_with};

/// Mails queued before the fault: more than one batch (`dispatcher::BATCH`, 16).
const MAILS: usize = 20;

/// `host:port` of the PostgreSQL server the tests use, or `None` on SQLite.
fn postgres_server() -> Option<String> {
    let raw = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let url = url::Url::parse(&raw).expect("TEST_POSTGRES_URL is a URL");
    Some(format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    ))
}

#[tokio::test]
async fn a_dispatcher_failing_mid_batch_leaves_the_rest_to_another_instance_within_seconds() {
    // The first instance reaches PostgreSQL through a relay the test can cut; on SQLite its
    // calls fail on a write lock the test holds past the busy timeout.
    let relay = match postgres_server() {
        Some(server) => Some(TcpRelay::start(&server).await),
        None => None,
    };
    let relay_port = relay.as_ref().map(TcpRelay::port);
    let direct_url = std::sync::Mutex::new(None::<String>);
    let app = spawn_app_with(|env| {
        *direct_url.lock().expect("lock") = Some(env["DATABASE_URL"].clone());
        if let Some(port) = relay_port {
            let mut url = url::Url::parse(&env["DATABASE_URL"]).expect("database url");
            url.set_host(Some("127.0.0.1")).expect("host");
            url.set_port(Some(port)).expect("port");
            env.insert("DATABASE_URL".into(), url.to_string());
        }
        env.insert("DATABASE_TIMEOUT".into(), "1s".into());
        env.insert("RATE_LIMIT_REGISTRATION_PER_IP".into(), "1000/1h".into());
    })
    .await;
    let direct_url = direct_url.into_inner().expect("lock").expect("url");

    // Every mail fails once while SMTP is down, so all are due together later.
    app.smtp.stop();
    for i in 0..MAILS {
        let body = json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"),
            "password": PASSWORD});
        json(app.post("/api/v1/accounts", body).await, 201).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app
        .db_texts("SELECT id AS value FROM outbox WHERE attempts = 0")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the first attempts never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The first instance claims a batch and is caught sending its first mail.
    app.smtp.resume().await;
    app.smtp.hold();
    app.clock.advance(chrono::Duration::seconds(31));
    app.smtp.wait_until_holding(1).await;
    let claimed = app.db_texts(
        "SELECT id AS value FROM outbox WHERE claimed_by IS NOT NULL AND sent_at IS NULL",
    );
    assert!(!claimed.is_empty());

    // Its database calls now fail: marking the mail sent, renewing, giving the batch back.
    let lock = match &relay {
        Some(relay) => {
            relay.cut();
            None
        }
        None => {
            let url = direct_url.clone();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel();
            let holder = std::thread::spawn(move || {
                use diesel::Connection as _;
                use diesel::connection::SimpleConnection as _;
                let mut conn = diesel::SqliteConnection::establish(&url).expect("connect");
                conn.batch_execute("BEGIN IMMEDIATE").expect("lock");
                let _ = locked_tx.send(());
                // Past the app's 5 s busy timeout.
                std::thread::sleep(Duration::from_secs(7));
                conn.batch_execute("ROLLBACK").expect("unlock");
            });
            locked_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("locked");
            Some(holder)
        }
    };
    app.smtp.release();

    // Another instance, with a working database, sends everything within seconds: what was
    // never claimed at once, what the first held once its claims are given back or their
    // short lease has run out.
    if let Some(holder) = lock {
        tokio::task::spawn_blocking(move || holder.join())
            .await
            .expect("join")
            .expect("lock holder");
    }
    let second = app
        .spawn_second_instance_with(|env| {
            env.insert("DATABASE_URL".into(), direct_url.clone());
        })
        .await;
    app.clock.advance(chrono::Duration::seconds(16));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let missing: Vec<usize> = (0..MAILS)
            .filter(|i| app.smtp.to(&format!("user{i}@example.com")).is_empty())
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} mails still not sent 10 s after the fault: users {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.handle.stop(true).await;
}
