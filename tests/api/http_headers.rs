//! Headers on every answer: `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`,
//! HSTS when `PUBLIC_URL` is https, `X-Request-Id`; and CORS for the configured origins only.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{TestApp, problem, spawn_app, spawn_app_with};

const FRONTEND: &str = "https://app.example.test";
const STRANGER: &str = "https://evil.example.test";

fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The comma-separated values of a header, lower-cased.
fn list(res: &Response, name: &str) -> Vec<String> {
    header(res, name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One request of each kind of answer: success, documentation, redirect and errors made by
/// handlers, extractors, the router, actix itself and a panic.
async fn one_of_each(app: &TestApp) -> Vec<(&'static str, Response)> {
    let send = |method: Method, path: &str| app.http.request(method, app.url(path));
    vec![
        ("health", app.get("/health/live").await),
        ("openapi", app.get("/api-docs/openapi.json").await),
        ("swagger ui", app.get("/swagger-ui/").await),
        ("swagger redirect", app.get("/swagger-ui").await),
        ("401", app.get("/api/v1/account").await),
        ("404", app.get("/nothing/here").await),
        (
            "405",
            send(Method::PATCH, "/api/v1/sessions")
                .send()
                .await
                .expect("request"),
        ),
        (
            "400",
            send(Method::POST, "/api/v1/sessions")
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .expect("request"),
        ),
        (
            "415",
            send(Method::POST, "/api/v1/sessions")
                .body("login=x")
                .send()
                .await
                .expect("request"),
        ),
        (
            "422",
            app.post("/api/v1/sessions", json!({"password": "x"})).await,
        ),
        (
            "401 credentials",
            app.post("/api/v1/sessions", json!({"login": "x", "password": "y"}))
                .await,
        ),
        ("panic", app.get("/test/panic").await),
    ]
}

#[tokio::test]
async fn every_answer_forbids_caching_and_sniffing_and_http_has_no_hsts() {
    let app = spawn_app().await;
    for (name, res) in one_of_each(&app).await {
        assert_eq!(
            header(&res, "cache-control").as_deref(),
            Some("no-store"),
            "{name}"
        );
        assert_eq!(
            header(&res, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{name}"
        );
        assert!(
            header(&res, "x-request-id").is_some_and(|id| !id.is_empty()),
            "{name}"
        );
        assert_eq!(header(&res, "strict-transport-security"), None, "{name}");
    }
}

#[tokio::test]
async fn an_https_public_url_turns_on_hsts_everywhere() {
    let app = spawn_app_with(|env| {
        env.insert("PUBLIC_URL".into(), "https://api.example.test".into());
    })
    .await;
    for (name, res) in one_of_each(&app).await {
        assert_eq!(
            header(&res, "strict-transport-security").as_deref(),
            Some("max-age=31536000; includeSubDomains"),
            "{name}"
        );
        assert_eq!(
            header(&res, "cache-control").as_deref(),
            Some("no-store"),
            "{name}"
        );
    }
}

async fn cors_app() -> TestApp {
    spawn_app_with(|env| {
        env.insert(
            "CORS_ALLOWED_ORIGINS".into(),
            format!("{FRONTEND}, http://localhost:3000"),
        );
        env.insert("RATE_LIMIT_LOGIN_PER_ACCOUNT".into(), "1/1h".into());
    })
    .await
}

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: &str) -> Response {
    app.http
        .request(Method::OPTIONS, app.url("/api/v1/sessions"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_the_allow_headers() {
    let app = cors_app().await;
    let res = preflight(&app, FRONTEND, "POST", "authorization, content-type").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    let methods = list(&res, "access-control-allow-methods");
    // Every method the document uses (PATCH: a passkey's rename), nothing else.
    for m in ["get", "post", "put", "patch", "delete"] {
        assert!(methods.contains(&m.to_string()), "{methods:?}");
    }
    assert!(!methods.contains(&"trace".to_string()), "{methods:?}");
    let allowed = list(&res, "access-control-allow-headers");
    for h in ["authorization", "content-type", "x-tracking-token"] {
        assert!(allowed.contains(&h.to_string()), "{allowed:?}");
    }
    assert_eq!(
        header(&res, "access-control-max-age").as_deref(),
        Some("3600")
    );
    // Credentials (cookie sessions) for the allowed origins only.
    assert_eq!(
        header(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
    assert!(header(&res, "x-request-id").is_some());

    // The tracking-token header of the recovery-request pages is allowed too.
    let res = preflight(&app, "http://localhost:3000", "DELETE", "x-tracking-token").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
}

#[tokio::test]
async fn a_preflight_from_a_refused_origin_gets_a_problem_and_no_allow_origin() {
    let app = cors_app().await;
    for (origin, method, headers) in [
        (STRANGER, "POST", "content-type"),
        // The same host on another scheme or port is another origin.
        ("http://app.example.test", "POST", "content-type"),
        ("null", "POST", "content-type"),
        // An allowed origin, but a method or a header the API does not take.
        (FRONTEND, "TRACE", "content-type"),
        (FRONTEND, "POST", "x-evil"),
    ] {
        let res = preflight(&app, origin, method, headers).await;
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            None,
            "{origin} {method} {headers}"
        );
        assert_eq!(header(&res, "cache-control").as_deref(), Some("no-store"));
        let body = problem(res, 400, "malformed_request").await;
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("CORS")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn answers_to_an_allowed_origin_expose_the_request_id_and_retry_after() {
    let app = cors_app().await;
    let res = app
        .http
        .get(app.url("/health/live"))
        .header("Origin", FRONTEND)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    let exposed = list(&res, "access-control-expose-headers");
    for h in ["x-request-id", "retry-after"] {
        assert!(exposed.contains(&h.to_string()), "{exposed:?}");
    }
    assert!(list(&res, "vary").contains(&"origin".to_string()));
    assert!(header(&res, "x-request-id").is_some());

    // Errors too, so the frontend can read the problem and the Retry-After of a 429.
    let login = |password: &'static str| {
        app.http
            .post(app.url("/api/v1/sessions"))
            .header("Origin", FRONTEND)
            .json(&json!({"login": "nobody", "password": password}))
            .send()
    };
    let res = login("wrong").await.expect("request");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    problem(res, 401, "invalid_credentials").await;
    let res = login("wrong again").await.expect("request");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    assert!(header(&res, "retry-after").is_some());
    problem(res, 429, "rate_limited").await;
    let res = app
        .http
        .get(app.url("/nothing/here"))
        .header("Origin", FRONTEND)
        .send()
        .await
        .expect("request");
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn a_simple_request_from_a_refused_origin_is_served_without_cors_headers() {
    let app = cors_app().await;
    let res = app
        .http
        .get(app.url("/health/live"))
        .header("Origin", STRANGER)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    let body: Value = res.json().await.expect("json");
    assert!(body.is_object());
}

#[tokio::test]
async fn without_configured_origins_no_origin_is_allowed() {
    let app = spawn_app().await;
    let res = preflight(&app, FRONTEND, "POST", "content-type").await;
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    problem(res, 400, "malformed_request").await;
}
