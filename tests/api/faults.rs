//! Faults under a running app: the database goes away and comes back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::relay::TcpRelay;
use crate::support::{PASSWORD, json, problem, spawn_app_with, spawn_app_with_handle};

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
    let (app, handle) = spawn_app_with_handle(|env| {
        env.insert("ARGON2_MEMORY_KIB".into(), "65536".into());
        env.insert("ARGON2_ITERATIONS".into(), "12".into());
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
    let stopping = tokio::spawn(handle.stop(true));

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
