//! The committed OpenAPI document matches the code, and the served one matches both.

use crate::support::{json, spawn_app};

const COMMITTED: &str = "openapi/openapi.json";

#[test]
fn committed_document_matches_the_code() {
    let generated = account_recovery::api::openapi::document_json();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write openapi.json");
            return;
        }
        panic!(
            "{COMMITTED} is out of date: run `cargo run -- openapi --output {COMMITTED}` \
             (or UPDATE_OPENAPI=1 cargo test) and commit it"
        );
    }
}

#[tokio::test]
async fn served_document_is_openapi_3_1_and_equals_the_committed_one() {
    let app = spawn_app().await;
    let served = json(app.get("/api-docs/openapi.json").await, 200).await;
    assert!(served["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("committed document"))
            .expect("committed document is JSON");
    assert_eq!(served, committed);
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = spawn_app().await;
    let res = app.get("/swagger-ui/").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.expect("body");
    assert!(html.contains("swagger-ui"), "{html}");
    let res = app.get("/swagger-ui").await;
    assert!(res.status().is_redirection());
    let res = app.get("/swagger-ui/swagger-initializer.js").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.text()
            .await
            .expect("js")
            .contains("/api-docs/openapi.json")
    );
}
