use crate::support::{json, problem, spawn_app};

#[tokio::test]
async fn live_answers_200() {
    let app = spawn_app().await;
    let body = json(app.get("/health/live").await, 200).await;
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_answers_200_then_503_when_the_database_is_gone() {
    let app = spawn_app().await;
    let body = json(app.get("/health/ready").await, 200).await;
    assert_eq!(body["status"], "ready");

    app.db.destroy();
    let res = app.get("/health/ready").await;
    problem(res, 503, "service_unavailable").await;
    // Still serving: liveness is unaffected.
    json(app.get("/health/live").await, 200).await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    for path in ["/health/live", "/nowhere", "/test/panic"] {
        let res = app.get(path).await;
        let id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(id.len(), 36, "{path} has no request id");
    }
}
