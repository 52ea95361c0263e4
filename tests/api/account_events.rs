//! The owner's own event log (`GET /api/v1/account/events`) never shows support's internal
//! text (an approval's comment and justification, a denial's reason, notes) nor where support
//! worked from; support's audit log keeps all of it.

use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, spawn_app};

const SUPPORT_AGENT: &str = "SupportConsole/9.9 (internal)";

async fn support_post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let res = app
        .http
        .post(app.url(&format!("/api/v1/admin/recovery-requests/{path}")))
        .bearer_auth(token)
        .header("User-Agent", SUPPORT_AGENT)
        .json(&body)
        .send()
        .await
        .expect("request");
    json(res, if path.ends_with("/notes") { 201 } else { 200 }).await
}

async fn submit(app: &TestApp, username: &str) -> String {
    let body = json(
        app.post(
            "/api/v1/recovery-requests",
            json!({
                "username": username,
                "contact_email": "someone@example.org",
                "reason": "I lost my phone and my recovery codes.",
                "recovery_codes_lost": true,
                "code_of_conduct_accepted": true,
                "processing_time_acknowledged": true
            }),
        )
        .await,
        202,
    )
    .await;
    body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn the_owners_events_never_show_supports_internal_text() {
    let app = spawn_app().await;
    let owner = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await;

    // One request gets a note and is denied; another is approved with a comment and a
    // justification (required to send the link to the contact address).
    let denied = submit(&app, "jbber").await;
    support_post(
        &app,
        &support.access,
        &format!("{denied}/notes"),
        json!({"body": "NOTE-7731 the IP is unusual"}),
    )
    .await;
    support_post(
        &app,
        &support.access,
        &format!("{denied}/deny"),
        json!({"reason": "DENY-7731 could not verify"}),
    )
    .await;
    let approved = submit(&app, "jbber").await;
    let body = support_post(
        &app,
        &support.access,
        &format!("{approved}/approve"),
        json!({
            "comment": "COMMENT-7731 looks legitimate",
            "deliver_to": "contact_email",
            "justification": "JUSTIFICATION-7731 old address bounced",
        }),
    )
    .await;
    assert_eq!(body["request"]["status"], "approved", "{body}");

    // Support's audit log has all of it.
    let audit = json(
        app.get_auth(
            &format!("/api/v1/admin/audit-events?request={approved}"),
            &support.access,
        )
        .await,
        200,
    )
    .await
    .to_string();
    assert!(audit.contains("COMMENT-7731") && audit.contains("JUSTIFICATION-7731"));
    assert!(audit.contains(SUPPORT_AGENT));

    // The owner sees that it happened, not what support wrote nor from where.
    let events = json(
        app.get_auth("/api/v1/account/events?per_page=100", &owner.access)
            .await,
        200,
    )
    .await;
    let types: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "recovery_request.note_added",
        "recovery_request.denied",
        "recovery_request.approved",
    ] {
        assert!(types.contains(&t), "{t} missing: {types:?}");
    }
    let approval = events["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|e| e["type"] == "recovery_request.approved")
        })
        .expect("approval event");
    assert_eq!(approval["details"]["deliver_to"], "contact_email");
    let text = events.to_string();
    for internal in [
        "COMMENT-7731",
        "JUSTIFICATION-7731",
        "DENY-7731",
        "NOTE-7731",
        SUPPORT_AGENT,
        "duplicate_of",
    ] {
        assert!(!text.contains(internal), "{internal} shown: {text}");
    }
}
