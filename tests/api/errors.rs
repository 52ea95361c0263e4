//! Every general error status answers problem+json with API.md's code.

use serde_json::json;

use crate::support::{json, problem, spawn_app};

#[tokio::test]
async fn unknown_route_is_404() {
    let app = spawn_app().await;
    problem(app.get("/api/v1/nothing-here").await, 404, "not_found").await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let app = spawn_app().await;
    let res = app
        .http
        .delete(app.url("/health/live"))
        .send()
        .await
        .expect("request");
    let allow = res
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    problem(res, 405, "method_not_allowed").await;
    assert_eq!(allow, "GET");
}

#[tokio::test]
async fn unparseable_json_is_400() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    problem(res, 400, "malformed_request").await;
}

#[tokio::test]
async fn wrong_json_type_is_400_and_missing_field_is_422() {
    let app = spawn_app().await;
    let res = app
        .post("/test/echo", json!({"name": "x", "count": "seven"}))
        .await;
    problem(res, 400, "malformed_request").await;

    let res = app.post("/test/echo", json!({"name": "x"})).await;
    let body = problem(res, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "count");
    assert_eq!(body["errors"][0]["code"], "required");

    let ok = json(
        app.post("/test/echo", json!({"name": "x", "count": 7}))
            .await,
        200,
    )
    .await;
    assert_eq!(ok["count"], 7);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/test/echo"))
        .header("content-type", "text/plain")
        .body(r#"{"name":"x","count":1}"#)
        .send()
        .await
        .expect("request");
    problem(res, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn body_over_64_kib_is_413() {
    let app = spawn_app().await;
    let big = "x".repeat(65 * 1024);
    let res = app
        .post("/test/echo", json!({"name": big, "count": 1}))
        .await;
    problem(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_panic_is_a_500_without_details_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let res = app.get("/test/panic").await;
        let body = problem(res, 500, "internal_error").await;
        let text = body.to_string();
        assert!(
            !text.contains("s3cr3t") && !text.contains("panic"),
            "{text}"
        );
    }
    json(app.get("/health/live").await, 200).await;
}
