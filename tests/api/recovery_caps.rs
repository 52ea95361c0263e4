//! Caps on what a recovery request lets anyone write or have mailed: requester replies per
//! request and day, the length of every free text (one rule, shared by replies, support
//! messages and notes, and the approval's comment and justification), and tracking-link
//! resends per contact address, past which the answer stays the same and nothing is mailed.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, json, problem, spawn_app};

/// The text cap of API.md (5000 characters).
const MAX: usize = 5000;

async fn reply(app: &TestApp, id: &str, token: &str, body: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
        .header("X-Tracking-Token", token)
        .json(&json!({ "body": body }))
        .send()
        .await
        .expect("request")
}

fn fields(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_burst_of_replies_stores_twenty_a_day_and_refuses_the_rest() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let (id, token) = app.submit_recovery("jbber", "jb.new@example.org").await;

    let replies = (0..30).map(|i| {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/v1/recovery-requests/{id}/messages")),
            token.clone(),
        );
        async move {
            let res = http
                .post(url)
                .header("X-Tracking-Token", token)
                .json(&json!({ "body": format!("More details, part {i}.") }))
                .send()
                .await
                .expect("request");
            let retry_after = res.headers().get("retry-after").is_some();
            (res.status().as_u16(), retry_after)
        }
    });
    let answers = join_all(replies).await;
    let stored = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused = answers.iter().filter(|(s, r)| *s == 429 && *r).count();
    assert_eq!((stored, refused), (20, 10), "{answers:?}");

    // Only the twenty are stored; the next is refused with the stable code.
    let status = json(
        app.http
            .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", &token)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(status["messages"].as_array().map(Vec::len), Some(20));
    let res = reply(&app, &id, &token, "One more.").await;
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=24 * 3600).contains(&retry_after), "{retry_after}");
    problem(res, 429, "rate_limited").await;

    // The budget is the request's own: a day later the requester may write again.
    app.clock.advance(chrono::Duration::hours(24));
    json(reply(&app, &id, &token, "A day later.").await, 201).await;
}

#[tokio::test]
async fn replies_and_support_messages_share_the_5000_character_cap() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;
    let (id, token) = app.submit_recovery("jbber", "jb.new@example.org").await;

    let too_long = "é".repeat(MAX + 1);
    let body = problem(
        reply(&app, &id, &token, &too_long).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&body), [("body".to_owned(), "too_long".to_owned())]);
    json(reply(&app, &id, &token, &"é".repeat(MAX)).await, 201).await;

    for path in ["notes", "messages"] {
        let res = app
            .post_auth(
                &format!("/api/v1/admin/recovery-requests/{id}/{path}"),
                &support.access,
                json!({ "body": too_long }),
            )
            .await;
        let body = problem(res, 422, "validation_failed").await;
        assert_eq!(fields(&body), [("body".to_owned(), "too_long".to_owned())]);
    }
}

#[tokio::test]
async fn an_approval_comment_or_justification_over_5000_characters_is_refused() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let support = app.support_user("ana").await;
    let (id, _) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let path = format!("/api/v1/admin/recovery-requests/{id}/approve");
    let approve = |body: Value| app.post_auth(&path, &support.access, body);
    let too_long = "x".repeat(MAX + 1);

    let body = problem(
        approve(json!({"comment": too_long, "deliver_to": "account_email"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields(&body),
        [("comment".to_owned(), "too_long".to_owned())]
    );
    let body = problem(
        approve(json!({
            "comment": too_long,
            "deliver_to": "contact_email",
            "justification": too_long,
        }))
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        fields(&body),
        [
            ("comment".to_owned(), "too_long".to_owned()),
            ("justification".to_owned(), "too_long".to_owned()),
        ]
    );
    // Nothing was decided; at the cap the same approval goes through.
    let detail = app.recovery_detail(&support.access, &id).await;
    assert_eq!(detail["request"]["status"], "submitted");
    let detail = app
        .approve(
            &support.access,
            &id,
            json!({
                "comment": "x".repeat(MAX),
                "deliver_to": "contact_email",
                "justification": "y".repeat(MAX),
            }),
        )
        .await;
    assert_eq!(detail["request"]["status"], "approved");
}

#[tokio::test]
async fn tracking_links_are_resent_three_times_an_hour_per_address_then_silently_not() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let (_, token) = app.submit_recovery("jbber", "jb.new@example.org").await;
    app.smtp.wait_for("jb.new@example.org", 1).await;

    // Ten asks in a row, spelled differently: all the same 202, three mails.
    for i in 0..10 {
        let address = if i % 2 == 0 {
            "jb.new@example.org"
        } else {
            "  JB.New@Example.ORG "
        };
        let res = app
            .post(
                "/api/v1/recovery-requests/tracking-links",
                json!({ "contact_email": address }),
            )
            .await;
        json(res, 202).await;
    }
    let mails = app.smtp.wait_for("jb.new@example.org", 4).await;
    assert!(
        mails[1..]
            .iter()
            .all(|m| m.link_param("recovery/status", "token").as_deref() == Some(token.as_str()))
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.smtp.to("jb.new@example.org").len(), 4);

    // The limits table knows the address only by a keyed hash.
    let buckets = app.db_texts("SELECT bucket AS value FROM rate_limit_buckets");
    assert!(buckets.iter().any(|b| b.starts_with("tracking-links:to:")));
    assert!(
        buckets
            .iter()
            .all(|b| !b.to_lowercase().contains("jb.new") && !b.contains("example.org")),
        "{buckets:?}"
    );

    // An hour later the address gets its link again.
    app.clock.advance(chrono::Duration::hours(1));
    json(
        app.post(
            "/api/v1/recovery-requests/tracking-links",
            json!({ "contact_email": "jb.new@example.org" }),
        )
        .await,
        202,
    )
    .await;
    app.smtp.wait_for("jb.new@example.org", 5).await;
}

#[tokio::test]
async fn parallel_replies_to_a_request_waiting_for_the_requester_all_land() {
    let app = spawn_app().await;
    app.with_two_factor("jbber", "jb@example.com").await;
    let (id, token) = app.submit_recovery("jbber", "jb.new@example.org").await;
    let support = app.support_user("ana").await;
    let res = app
        .post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/messages"),
            &support.access,
            json!({"body": "Which country did you register from?"}),
        )
        .await;
    assert_eq!(res.status(), 201);

    // The first reply moves needs_info to in_review; the others, decided after it on the
    // locked row, are replies to a request in review. None may fail on the race.
    let replies = (0..10).map(|i| {
        let (http, url, token) = (
            app.http.clone(),
            app.url(&format!("/api/v1/recovery-requests/{id}/messages")),
            token.clone(),
        );
        async move {
            http.post(url)
                .header("X-Tracking-Token", token)
                .json(&json!({ "body": format!("From Portugal, part {i}.") }))
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    });
    let statuses = join_all(replies).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let status = json(
        app.http
            .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", &token)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(status["status"], "in_review");
}
