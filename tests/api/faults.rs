//! Faults under a running app: the database goes away and comes back, a graceful stop, and a
//! SIGKILL in the middle of a burst of writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use account_recovery::clock::ManualClock;
use serde_json::{Value, json};

use crate::support::process::{ServerProcess, free_port};
use crate::support::relay::TcpRelay;
use crate::support::{
    PASSWORD, SmtpSink, TestApp, TestDb, base_env, json, problem, spawn_app_with,
    spawn_app_with_handle,
};

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
async fn the_database_goes_away_and_comes_back_without_a_restart() {
    let Some(server) = postgres_server() else {
        eprintln!(
            "skipped: cutting the database connection needs PostgreSQL (set TEST_POSTGRES_URL)"
        );
        return;
    };
    let relay = TcpRelay::start(&server).await;
    let relay_port = relay.port();
    let app = spawn_app_with(|env| {
        let mut url = url::Url::parse(&env["DATABASE_URL"]).expect("database url");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(relay_port)).expect("port");
        env.insert("DATABASE_URL".into(), url.to_string());
        env.insert("DATABASE_TIMEOUT".into(), "1s".into());
    })
    .await;
    app.verified_user("ana", "ana@example.com", PASSWORD).await;
    json(app.get("/health/ready").await, 200).await;

    relay.cut();
    let login = || {
        app.post(
            "/api/v1/sessions",
            json!({"login": "ana", "password": PASSWORD}),
        )
    };
    // Pooled connections that died, then connections that cannot be made: 503 every time,
    // and quickly (bounded by DATABASE_TIMEOUT, not hanging).
    for _ in 0..3 {
        let started = Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(10), login())
            .await
            .expect("an answer while the database is away");
        problem(res, 503, "service_unavailable").await;
        assert!(started.elapsed() < Duration::from_secs(5), "took too long");
    }
    let res = tokio::time::timeout(Duration::from_secs(10), app.get("/health/ready"))
        .await
        .expect("an answer while the database is away");
    problem(res, 503, "service_unavailable").await;
    json(app.get("/health/live").await, 200).await;

    relay.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if app.get("/health/ready").await.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 10 s after the restore"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = json(login().await, 200).await;
    assert_eq!(body["status"], "authenticated");
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_request_in_flight_and_refuses_new_connections() {
    // A real slow request: a login whose password hash is expensive to verify.
    let (app, running) = spawn_app_with_handle(|env| {
        env.insert("ARGON2_MEMORY_KIB".into(), "65536".into());
        env.insert("ARGON2_ITERATIONS".into(), "24".into());
    })
    .await;
    app.verified_user("ana", "ana@example.com", PASSWORD).await;
    let started = Instant::now();
    app.login("ana", PASSWORD).await;
    let cost = started.elapsed();
    assert!(
        cost >= Duration::from_millis(400),
        "a login takes {cost:?}: too fast to be caught in flight"
    );

    let http = app.http.clone();
    let url = app.url("/api/v1/sessions");
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .json(&json!({"login": "ana", "password": PASSWORD}))
            .send()
            .await
    });
    // Let the request reach the handler, well before it can finish.
    tokio::time::sleep(cost / 4).await;
    let stopping = tokio::spawn(running.handle.stop(true));

    // New connections are refused soon after the stop (bounded wait).
    let port = url::Url::parse(&app.address)
        .expect("address")
        .port()
        .expect("port");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                break;
            }
            Ok(_) => {
                assert!(Instant::now() < deadline, "still accepting after the stop");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(
        !in_flight.is_finished(),
        "the request finished before the stop took effect; nothing was in flight"
    );

    // The request in flight still gets its full answer.
    let res = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the request in flight completes")
        .expect("task")
        .expect("an answer, not a dropped connection");
    let body = json(res, 200).await;
    assert_eq!(body["status"], "authenticated", "{body}");
    assert!(body["access_token"].is_string());
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the server stops")
        .expect("task");
    // And a fresh client cannot get in afterwards.
    let fresh = reqwest::Client::new()
        .get(app.url("/health/live"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(fresh.is_err(), "answered after the stop: {fresh:?}");
}

/// The number of writes in the burst, and how many must have answered before the kill.
const BURST: usize = 120;
const KILL_AFTER: usize = 20;

#[tokio::test]
async fn a_sigkill_in_the_middle_of_a_burst_of_writes_leaves_no_half_done_change() {
    let smtp = SmtpSink::start().await;
    let db = TestDb::create();
    let port = free_port();
    let mut env = base_env(&db, smtp.port());
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("RUST_LOG".into(), "warn".into());
    for limit in [
        "RATE_LIMIT_REGISTRATION_PER_IP",
        "RATE_LIMIT_RECOVERY_REQUEST_PER_IP",
    ] {
        env.insert(limit.into(), "100000/1h".into());
    }
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut server = ServerProcess::start(&env);
    assert!(
        server.wait_ready(&http, &address).await,
        "{:?}",
        server.output()
    );

    // A burst of two kinds of writes, each a state change with its mail and audit event:
    // registrations and recovery requests. SIGKILL once some have answered, the rest in flight.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..BURST {
        let (http, address, answered) = (http.clone(), address.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let (path, body) = if i % 2 == 0 {
                (
                    "/api/v1/accounts",
                    json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"), "password": PASSWORD}),
                )
            } else {
                (
                    "/api/v1/recovery-requests",
                    json!({"username": format!("lost{i}"), "contact_email": format!("lost{i}@example.com"),
                        "reason": "Phone and recovery codes both gone in one house move.",
                        "recovery_codes_lost": true, "code_of_conduct_accepted": true,
                        "processing_time_acknowledged": true}),
                )
            };
            let res = http.post(format!("{address}{path}")).json(&body).send().await;
            let answer = match res {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    Some((status, body))
                }
                Err(_) => None,
            };
            answered.fetch_add(1, Ordering::SeqCst);
            (i, answer)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the burst never got answers");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let at_kill = answered.load(Ordering::SeqCst);

    let mut registered = Vec::new();
    let mut requested = Vec::new();
    for task in tasks {
        let (i, answer) = task.await.expect("task");
        match answer {
            Some((201, _)) => registered.push(format!("user{i}")),
            Some((202, body)) => requested.push(body["id"].as_str().expect("id").to_string()),
            Some((status, body)) => panic!("write {i} answered {status}: {body}"),
            None => {}
        }
    }
    assert!(
        at_kill < BURST,
        "every write had answered before the kill; nothing was in flight"
    );
    let app = TestApp {
        address: address.clone(),
        metrics_address: String::new(),
        http: http.clone(),
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
        smtp,
        db,
        env: env.clone(),
    };

    // What was answered survived the crash.
    let accounts = app.db_texts("SELECT username AS value FROM accounts");
    for name in &registered {
        assert!(
            accounts.contains(name),
            "{name} was answered 201 but is gone"
        );
    }
    let requests = app.db_texts("SELECT id AS value FROM recovery_requests");
    for id in &requested {
        assert!(
            requests.contains(id),
            "request {id} was answered 202 but is gone"
        );
    }

    // Nothing half-done: every account has its token, its mail and its event, and every request
    // its tracking mail and event; no token, mail or event exists without what it belongs to.
    let orphans = |sql: &str| app.db_texts(sql);
    for (what, sql) in [
        (
            "account without its verification token",
            "SELECT a.username AS value FROM accounts a WHERE NOT EXISTS \
             (SELECT 1 FROM email_tokens t WHERE t.account_id = a.id)",
        ),
        (
            "account without its verification mail",
            "SELECT a.username AS value FROM accounts a WHERE NOT EXISTS \
             (SELECT 1 FROM outbox o WHERE o.recipient = a.email AND o.kind = 'verify_email')",
        ),
        (
            "account without its event",
            "SELECT a.username AS value FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
             WHERE e.account_id = a.id AND e.event_type = 'account.registered')",
        ),
        (
            "request without its tracking mail",
            "SELECT r.id AS value FROM recovery_requests r WHERE NOT EXISTS (SELECT 1 FROM outbox o \
             WHERE o.recipient = r.contact_email AND o.kind = 'recovery_tracking')",
        ),
        (
            "request without its event",
            "SELECT r.id AS value FROM recovery_requests r WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
             WHERE e.request_id = r.id AND e.event_type = 'recovery_request.submitted')",
        ),
        (
            "mail without its account or request",
            "SELECT o.recipient AS value FROM outbox o WHERE NOT EXISTS \
             (SELECT 1 FROM accounts a WHERE a.email = o.recipient) AND NOT EXISTS \
             (SELECT 1 FROM recovery_requests r WHERE r.contact_email = o.recipient)",
        ),
        (
            "token without its account",
            "SELECT t.email AS value FROM email_tokens t WHERE NOT EXISTS \
             (SELECT 1 FROM accounts a WHERE a.id = t.account_id)",
        ),
        (
            "event without its account or request",
            "SELECT e.event_type AS value FROM audit_events e WHERE \
             (e.event_type = 'account.registered' AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)) \
             OR (e.event_type = 'recovery_request.submitted' AND NOT EXISTS \
             (SELECT 1 FROM recovery_requests r WHERE r.id = e.request_id))",
        ),
    ] {
        let found = orphans(sql);
        assert!(found.is_empty(), "{what}: {found:?}");
    }
    let mails = app.db_texts("SELECT message_id AS value FROM outbox");
    assert_eq!(mails.len(), accounts.len() + requests.len());

    // The process that was killed held leases on the mails it was sending; they run out after
    // two minutes of app time. The binary's clock is the system's, so the lapse is written
    // rather than waited for.
    let interrupted = app.db_texts(
        "SELECT message_id AS value FROM outbox WHERE sent_at IS NULL AND claimed_by IS NOT NULL",
    );
    app.exec("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE sent_at IS NULL");

    // A new process on the same database serves, and delivers every mail: once, or again with
    // the same Message-ID where the kill interrupted its delivery.
    let mut server = ServerProcess::start(&env);
    assert!(
        server.wait_ready(&http, &address).await,
        "{:?}",
        server.output()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = app.db_texts("SELECT id AS value FROM outbox WHERE sent_at IS NULL");
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} mails never went out",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop();
    let mut delivered = std::collections::HashMap::<String, usize>::new();
    for mail in app.smtp.all() {
        let id = mail.header("Message-ID").expect("a Message-ID");
        *delivered.entry(id).or_default() += 1;
    }
    for id in &mails {
        let times = delivered.get(id).copied().unwrap_or(0);
        assert!(times >= 1, "mail {id} was never delivered");
        assert!(
            times == 1 || interrupted.contains(id),
            "mail {id} was delivered {times} times without an interrupted delivery"
        );
    }
    assert_eq!(
        delivered.len(),
        mails.len(),
        "a delivered mail has no outbox row"
    );
}
