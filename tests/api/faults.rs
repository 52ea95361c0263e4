//! Faults under a running app: the database goes away and comes back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::relay::TcpRelay;
use crate::support::{PASSWORD, json, problem, spawn_app_with};

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
