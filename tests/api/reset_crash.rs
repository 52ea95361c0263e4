//! A SIGKILL in the middle of a burst of password-reset requests: every request answered 202
//! for a real account still gets its mail after a restart (the 202 waits for the request's
//! job to be committed, and the worker of the next process carries the job out).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use account_recovery::clock::ManualClock;
use serde_json::json;

use crate::support::process::{ServerProcess, free_port};
use crate::support::{PASSWORD, SmtpSink, TestApp, TestDb, base_env};

/// Accounts that ask for a reset, and as many unknown logins mixed in.
const ACCOUNTS: usize = 60;
/// How many requests must have answered before the kill.
const KILL_AFTER: usize = 20;

#[tokio::test]
async fn a_sigkill_in_a_burst_of_resets_loses_no_acknowledged_reset_mail() {
    let smtp = SmtpSink::start().await;
    let db = TestDb::create();
    let port = free_port();
    let mut env = base_env(&db, smtp.port());
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("RUST_LOG".into(), "warn".into());
    for limit in [
        "RATE_LIMIT_REGISTRATION_PER_IP",
        "RATE_LIMIT_PASSWORD_RESET_PER_IP",
        "RATE_LIMIT_PASSWORD_RESET_EMAILS",
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
    let app = TestApp {
        address: address.clone(),
        http: http.clone(),
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
        smtp,
        db,
        env: env.clone(),
        metrics_address: String::new(),
    };
    for i in 0..ACCOUNTS {
        let res = http
            .post(format!("{address}/api/v1/accounts"))
            .json(
                &json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"),
                "password": PASSWORD}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), 201);
    }
    app.exec("UPDATE accounts SET email_verified_at = created_at");

    // The burst: a known and an unknown login in turn; SIGKILL once some have answered.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..2 * ACCOUNTS {
        let (http, address, answered) = (http.clone(), address.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let login = if i % 2 == 0 {
                format!("user{}", i / 2)
            } else {
                format!("nobody{i}@example.com")
            };
            let res = http
                .post(format!("{address}/api/v1/password-resets"))
                .json(&json!({"login": login}))
                .send()
                .await;
            let status = match res {
                Ok(res) => Some(res.status().as_u16()),
                Err(_) => None,
            };
            answered.fetch_add(1, Ordering::SeqCst);
            (i, status)
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "the burst never got answers");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let at_kill = answered.load(Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for task in tasks {
        let (i, status) = task.await.expect("task");
        match status {
            Some(202) if i % 2 == 0 => acknowledged.push(format!("user{}@example.com", i / 2)),
            Some(202) | None => {}
            Some(other) => panic!("reset {i} answered {other}"),
        }
    }
    assert!(
        at_kill < 2 * ACCOUNTS,
        "every request had answered before the kill; nothing was in flight"
    );
    assert!(!acknowledged.is_empty());

    // The killed process's mail leases would run out in seconds; written rather than waited.
    app.exec("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE sent_at IS NULL");
    let mut server = ServerProcess::start(&env);
    assert!(
        server.wait_ready(&http, &address).await,
        "{:?}",
        server.output()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = app.db_texts("SELECT id AS value FROM password_reset_jobs");
        let pending = app.db_texts("SELECT id AS value FROM outbox WHERE sent_at IS NULL");
        if jobs.is_empty() && pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} jobs and {} mails still waiting",
            jobs.len(),
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|to| {
            !app.smtp
                .to(to)
                .iter()
                .any(|m| m.subject().contains("Reset your"))
        })
        .collect();
    eprintln!(
        "resets answered 202 for real accounts: {}, without a mail after the restart: {} \
         (requests answered before the kill: {at_kill} of {})",
        acknowledged.len(),
        lost.len(),
        2 * ACCOUNTS
    );
    assert!(
        lost.is_empty(),
        "{} of {} resets answered 202 got no mail: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    assert!(
        app.smtp
            .all()
            .iter()
            .all(|m| !m.to.iter().any(|r| r.starts_with("nobody"))),
        "a mail went to an unknown login"
    );
}

#[tokio::test]
async fn reset_jobs_taken_by_two_instances_at_once_mail_each_account_once() {
    const USERS: usize = 16;
    let app = crate::support::spawn_app_with(|env| {
        for limit in [
            "RATE_LIMIT_REGISTRATION_PER_IP",
            "RATE_LIMIT_PASSWORD_RESET_PER_IP",
        ] {
            env.insert(limit.into(), "100000/1h".into());
        }
    })
    .await;
    let second = app.spawn_second_instance().await;
    for i in 0..USERS {
        app.register(
            &format!("user{i}"),
            &format!("user{i}@example.com"),
            PASSWORD,
        )
        .await;
    }
    app.exec("UPDATE accounts SET email_verified_at = created_at");
    let bases = [app.address.clone(), second.address.clone()];
    let requests = (0..USERS).map(|i| {
        app.http
            .post(format!("{}/api/v1/password-resets", bases[i % 2]))
            .json(&json!({"login": format!("user{i}")}))
            .send()
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.expect("answer").status(), 202);
    }
    for i in 0..USERS {
        app.smtp
            .wait_for_subject(&format!("user{i}@example.com"), "Reset your")
            .await;
    }
    assert!(
        app.db_texts("SELECT id AS value FROM password_reset_jobs")
            .is_empty()
    );
    // Give a second mail a moment to show up before counting (a bounded pause, not business
    // time).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for i in 0..USERS {
        let resets = app
            .smtp
            .to(&format!("user{i}@example.com"))
            .into_iter()
            .filter(|m| m.subject().contains("Reset your"))
            .count();
        assert_eq!(resets, 1, "user{i} got {resets} reset mails");
    }
    second.handle.stop(true).await;
}
