//! `GET /metrics` on the metrics listener only: Prometheus text with requests per route and
//! status, rate-limit refusals per limit, the outbox backlog, mails sent and failed, the
//! database pool, the argon2 queue, the build and the process. The API listener answers 404.

use std::time::Duration;

use crate::support::{PASSWORD, TestApp, problem, spawn_app, spawn_app_with};

async fn scrape(app: &TestApp) -> String {
    let res = app
        .http
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    res.text().await.expect("body")
}

/// The value of the sample line that starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_per_route_pattern_method_and_status() {
    let app = spawn_app().await;
    for _ in 0..2 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
    let id = uuid::Uuid::new_v4();
    let res = app
        .http
        .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
        .header("X-Tracking-Token", "not-a-token")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    assert_eq!(app.get("/scanner/probe-4711").await.status(), 404);

    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_requests_total{endpoint="/health/live",method="GET",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // Path parameters stay patterns, so ids never become series.
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_requests_total{endpoint="/api/v1/recovery-requests/{id}",method="GET",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains(&id.to_string()));
    // Unknown paths share one label.
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_requests_total{endpoint="unmatched",method="GET",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("probe-4711"));
    // Latencies are a histogram with the same labels.
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_request_duration_seconds_count{endpoint="/health/live",method="GET",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_refusals_are_counted_per_limit_without_the_key() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "2/1h".into());
    })
    .await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(
            &before,
            r#"account_recovery_rate_limit_refusals_total{limit="login"}"#
        ),
        None
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = app
            .post(
                "/api/v1/sessions",
                serde_json::json!({"login": "nobody-here", "password": "wrong password"}),
            )
            .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, vec![401, 401, 429, 429]);

    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_rate_limit_refusals_total{limit="login"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("nobody-here"));
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_requests_total{endpoint="/api/v1/sessions",method="POST",status="429"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn outbox_backlog_rises_while_smtp_stalls_and_drains_when_it_answers() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "account_recovery_outbox_pending"), Some(0.0));

    // The SMTP server keeps the first delivery waiting for its answer: nothing is sent meanwhile.
    app.smtp.hold();
    for name in ["ana", "bob"] {
        let res = app
            .post(
                "/api/v1/accounts",
                serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    app.smtp.wait_until_holding(1).await;
    app.clock.advance(chrono::Duration::seconds(90));
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "account_recovery_outbox_pending"), Some(2.0));
    let age = sample(&text, "account_recovery_outbox_oldest_pending_age_seconds").unwrap_or(0.0);
    assert!((90.0..=100.0).contains(&age), "age {age}");

    app.smtp.release();
    app.smtp.wait_for("bob@example.com", 1).await;
    app.smtp.wait_for("ana@example.com", 1).await;
    // Bounded wait for the dispatcher to record both deliveries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&app).await;
        if sample(&text, "account_recovery_outbox_pending") == Some(0.0) {
            assert_eq!(
                sample(&text, "account_recovery_outbox_oldest_pending_age_seconds"),
                Some(0.0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog never drained: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_api_listener_does_not_serve_metrics_and_the_metrics_listener_serves_nothing_else() {
    let app = spawn_app().await;
    assert_ne!(app.metrics_address, app.address);
    let body = problem(app.get("/metrics").await, 404, "not_found").await;
    assert!(!body.to_string().contains("account_recovery_"), "{body}");
    let openapi = app
        .get("/api-docs/openapi.json")
        .await
        .text()
        .await
        .expect("body");
    assert!(
        !openapi.contains("\"/metrics\""),
        "the API documents /metrics"
    );

    // The metrics listener answers only /metrics: no API, no documentation.
    for path in ["/health/live", "/api/v1/account", "/swagger-ui/"] {
        let res = app
            .http
            .get(format!("{}{path}", app.metrics_address))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404, "{path}");
    }
    // And what the API listener answered is counted there, not served there.
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"account_recovery_http_requests_total{endpoint="unmatched",method="GET",status="404"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn build_process_pool_and_hasher_gauges_are_exposed() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    let build = format!(
        r#"account_recovery_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), Some(1.0), "{text}");
    for series in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(sample(&text, series).is_some(), "{series} missing: {text}");
    }
    // The test configuration's pool of 4; the scrape's own query opened one at least.
    assert_eq!(
        sample(&text, "account_recovery_db_pool_max_connections"),
        Some(4.0)
    );
    let open = sample(&text, "account_recovery_db_pool_connections").unwrap_or(-1.0);
    let idle = sample(&text, "account_recovery_db_pool_idle_connections").unwrap_or(-1.0);
    assert!((1.0..=4.0).contains(&open), "{text}");
    assert!((0.0..=open).contains(&idle), "{text}");
    // Nothing hashes between requests.
    for state in ["waiting", "in_flight"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"account_recovery_argon2_hashes{{state="{state}"}}"#)
            ),
            Some(0.0),
            "{text}"
        );
    }
}

#[tokio::test]
async fn mails_sent_and_failed_are_counted_per_kind() {
    let app = spawn_app().await;
    app.smtp.stop();
    let res = app
        .post(
            "/api/v1/accounts",
            serde_json::json!({"username": "ana", "email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let kind = app.db_texts("SELECT kind AS value FROM outbox");
    assert_eq!(kind.len(), 1);
    let failed = format!(
        r#"account_recovery_mail_failed_total{{kind="{}"}}"#,
        kind[0]
    );
    let sent = format!(r#"account_recovery_mail_sent_total{{kind="{}"}}"#, kind[0]);
    // Bounded wait for the dispatcher's first, failed attempt.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&app).await;
        if sample(&text, &failed) == Some(1.0) {
            assert_eq!(sample(&text, &sent), None, "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure counted: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.smtp.resume().await;
    app.clock.advance(chrono::Duration::minutes(2));
    app.smtp.wait_for("ana@example.com", 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(&app).await;
        if sample(&text, &sent) == Some(1.0) {
            assert_eq!(sample(&text, &failed), Some(1.0), "{text}");
            assert!(!text.contains("ana@example.com"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery counted: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
