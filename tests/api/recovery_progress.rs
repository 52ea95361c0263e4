//! What keeps a requester informed (issue 18): the place in the queue, the estimated decision
//! time, reminders and closing of unanswered requests, and four eyes on staff accounts.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app};

async fn status(app: &TestApp, id: &str, token: &str) -> Value {
    json(
        app.http
            .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", token)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await
}

async fn deny(app: &TestApp, support: &str, id: &str) {
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/deny"),
            support,
            json!({"reason": "We could not confirm that the account is yours."}),
        )
        .await,
        200,
    )
    .await;
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

#[tokio::test]
async fn queue_positions_count_the_waiting_requests_filed_earlier() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let mut filed = Vec::new();
    for name in ["first", "second", "third"] {
        filed.push(
            app.submit_recovery(name, &format!("{name}@contact.test"))
                .await,
        );
        app.clock.advance(Duration::minutes(1));
    }
    for (n, (id, token)) in filed.iter().enumerate() {
        let s = status(&app, id, token).await;
        assert_eq!(s["queue_position"], json!(n + 1), "{s}");
        assert_eq!(s["estimated_decision_at"], Value::Null, "{s}");
    }

    // A note moves the first to review: still waiting, still first.
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{}/notes", filed[0].0),
            &support,
            json!({"body": "Looking at it."}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        status(&app, &filed[0].0, &filed[0].1).await["queue_position"],
        1
    );

    deny(&app, &support, &filed[0].0).await;
    let s = status(&app, &filed[0].0, &filed[0].1).await;
    assert_eq!(s["queue_position"], Value::Null, "{s}");
    assert_eq!(
        status(&app, &filed[1].0, &filed[1].1).await["queue_position"],
        1
    );
    assert_eq!(
        status(&app, &filed[2].0, &filed[2].1).await["queue_position"],
        2
    );
}

/// Requests filed in the same instant still get one place each (ties go by id, as the queue
/// orders them), and a request support asked for information leaves the queue: the ones
/// behind it move up.
#[tokio::test]
async fn requests_filed_in_one_instant_get_distinct_places_and_an_asked_one_leaves_the_queue() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let mut filed = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        filed.push(
            app.submit_recovery(name, &format!("{name}@contact.test"))
                .await,
        );
    }
    let mut places = Vec::new();
    for (id, token) in &filed {
        let place = status(&app, id, token).await["queue_position"].as_i64();
        places.push((place.expect("a queued request has a place"), id.clone()));
    }
    places.sort();
    let in_order: Vec<i64> = places.iter().map(|(place, _)| *place).collect();
    assert_eq!(in_order, [1, 2, 3]);
    let by_id: Vec<&String> = places.iter().map(|(_, id)| id).collect();
    let mut ids = by_id.clone();
    ids.sort();
    assert_eq!(by_id, ids, "ties are not broken by id");

    let first = &places[0].1;
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{first}/messages"),
            &support,
            json!({"body": "Which email address did the account use?"}),
        )
        .await,
        201,
    )
    .await;
    for (id, token) in &filed {
        let s = status(&app, id, token).await;
        if id == first {
            assert_eq!(s["status"], "needs_info", "{s}");
            assert_eq!(s["queue_position"], Value::Null, "{s}");
        } else {
            let behind = places.iter().position(|(_, p)| p == id).expect("filed");
            assert_eq!(s["queue_position"], json!(behind), "{s}");
        }
    }
}

#[tokio::test]
async fn the_decision_estimate_needs_five_recent_decisions() {
    let app = spawn_app().await;
    app.support_user("ana").await;
    let (id, token) = app.submit_recovery("waiting", "waiting@contact.test").await;
    let submitted_at = time(&status(&app, &id, &token).await["submitted_at"]);

    let mut decided = Vec::new();
    for n in 0..5 {
        decided.push(
            app.submit_recovery(&format!("user{n}"), &format!("user{n}@contact.test"))
                .await
                .0,
        );
    }
    app.clock.advance(Duration::hours(2));
    // Access tokens live 15 minutes: log in again after moving the clock.
    let support = app.login("ana", PASSWORD).await.access;
    for (n, other) in decided.iter().enumerate() {
        let before = status(&app, &id, &token).await;
        assert_eq!(before["estimated_decision_at"], Value::Null, "after {n}");
        deny(&app, &support, other).await;
    }
    // Five decisions, each two hours after its submission: the median is two hours.
    let s = status(&app, &id, &token).await;
    let estimate = time(&s["estimated_decision_at"]);
    let expected = submitted_at + Duration::hours(2);
    assert!(
        (estimate - expected).num_seconds().abs() <= 1,
        "estimate {estimate}, expected about {expected}"
    );

    // Decisions older than 30 days no longer count.
    app.clock.advance(Duration::days(31));
    let s = status(&app, &id, &token).await;
    assert_eq!(s["estimated_decision_at"], Value::Null, "{s}");
}

#[tokio::test]
async fn a_wrong_token_still_reveals_nothing_about_the_queue() {
    let app = spawn_app().await;
    let (id, _) = app.submit_recovery("someone", "someone@contact.test").await;
    problem(
        app.http
            .get(app.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", "wrong")
            .send()
            .await
            .expect("request"),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_support_accounts_request_needs_two_different_approvers() {
    let app = spawn_app().await;
    app.support_user("staff").await;
    let ana = app.support_user("ana").await.access;
    let bob = app.support_user("bob").await.access;
    let (id, token) = app
        .submit_recovery("staff", "staff.home@contact.test")
        .await;
    let approve = |who: String| {
        let path = format!("/api/v1/admin/recovery-requests/{id}/approve");
        let app = &app;
        async move { app.post_auth(&path, &who, json!({})).await }
    };

    let first = json(approve(ana.clone()).await, 200).await;
    assert_eq!(first["approvals"], 1, "{first}");
    assert_eq!(first["approvals_needed"], 2, "{first}");
    assert_eq!(first["request"]["status"], "submitted", "{first}");
    assert_eq!(status(&app, &id, &token).await["status"], "submitted");

    // The same support account cannot give the second approval.
    problem(approve(ana.clone()).await, 403, "forbidden").await;
    assert_eq!(status(&app, &id, &token).await["status"], "submitted");

    let second = json(approve(bob.clone()).await, 200).await;
    assert_eq!(second["request"]["status"], "approved", "{second}");
    assert_eq!(second["approvals"], 2, "{second}");
    let types: Vec<&str> = second["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        types.contains(&"recovery_request.first_approval"),
        "{types:?}"
    );
    assert!(types.contains(&"recovery_request.approved"), "{types:?}");
}

#[tokio::test]
async fn an_ordinary_request_needs_one_approval() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let ana = app.support_user("ana").await.access;
    let (id, _) = app.submit_recovery("jbber", "jb.new@contact.test").await;
    let approved = app.approve(&ana, &id, json!({})).await;
    assert_eq!(approved["request"]["status"], "approved", "{approved}");
    assert_eq!(approved["approvals"], 1);
    assert_eq!(approved["approvals_needed"], 1);
}

#[tokio::test]
async fn no_support_account_acts_on_its_own_request() {
    let app = spawn_app().await;
    let staff = app.support_user("Staff").await.access;
    app.support_user("ana").await;
    // Filed under another spelling of the same username.
    let (id, _) = app
        .submit_recovery("STAFF", "staff.home@contact.test")
        .await;
    let base = format!("/api/v1/admin/recovery-requests/{id}");
    problem(app.get_auth(&base, &staff).await, 403, "forbidden").await;
    for (path, body) in [
        ("notes", json!({"body": "Looks fine to me."})),
        ("messages", json!({"body": "Please confirm."})),
        ("approve", json!({})),
        ("deny", json!({"reason": "no"})),
    ] {
        problem(
            app.post_auth(&format!("{base}/{path}"), &staff, body).await,
            403,
            "forbidden",
        )
        .await;
    }
    // Another support account still can.
    let ana = app.login("ana", PASSWORD).await.access;
    let detail = app.recovery_detail(&ana, &id).await;
    assert_eq!(detail["request"]["status"], "submitted");
    assert_eq!(detail["approvals_needed"], 2);
}

/// Waits (at most 10 s) until the maintenance loop moved the request to `want`.
async fn status_becomes(app: &TestApp, id: &str, token: &str, want: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = status(app, id, token).await;
        if s["status"] == want {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} instead of {want}: {s}",
            s["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn ask(app: &TestApp, support: &str, id: &str) {
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/messages"),
            support,
            json!({"body": "Which packages did you publish last?"}),
        )
        .await,
        201,
    )
    .await;
}

fn count(app: &TestApp, to: &str, subject: &str) -> usize {
    app.smtp
        .to(to)
        .iter()
        .filter(|m| m.subject().contains(subject))
        .count()
}

#[tokio::test]
async fn an_unanswered_question_is_reminded_once_then_the_request_is_abandoned() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let support = app.support_user("ana").await.access;
    let contact = "jb.new@contact.test";
    let (id, token) = app.submit_recovery("jbber", contact).await;
    ask(&app, &support, &id).await;
    app.smtp
        .wait_for_subject(contact, "Support needs more information")
        .await;
    // The status page says until when an answer is awaited.
    let s = status(&app, &id, &token).await;
    let closes_at = time(&s["closes_at"]);
    assert_eq!(
        closes_at - time(&s["updated_at"]),
        Duration::days(30),
        "{s}"
    );
    let said = closes_at.format("%Y-%m-%d %H:%M UTC").to_string();
    assert!(
        s["next_step"].as_str().is_some_and(|t| t.contains(&said)),
        "{s}"
    );
    assert!(
        s["next_step"]
            .as_str()
            .is_some_and(|t| !t.contains("attach")),
        "attachments are off: {s}"
    );

    app.clock.advance(Duration::days(6));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(count(&app, contact, "Reminder"), 0, "too early");

    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    let reminder = app.smtp.wait_for_subject(contact, "Reminder").await;
    let link = reminder.link("recovery/status").expect("tracking link");
    assert!(link.contains(&format!("id={id}")), "{link}");
    assert_eq!(status(&app, &id, &token).await["status"], "needs_info");

    // Only one reminder, however long the wait.
    app.clock.advance(Duration::days(10));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(count(&app, contact, "Reminder"), 1);
    assert_eq!(status(&app, &id, &token).await["status"], "needs_info");

    app.clock.advance(Duration::days(13) + Duration::minutes(1));
    let s = status_becomes(&app, &id, &token, "abandoned").await;
    assert!(
        s["next_step"]
            .as_str()
            .is_some_and(|t| t.contains("file a new request")),
        "{s}"
    );
    assert_eq!(s["queue_position"], Value::Null);
    app.smtp
        .wait_for_subject(contact, "Your recovery request was closed")
        .await;

    // Final: no reply, no withdrawal, no approval.
    problem(
        app.http
            .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
            .header("X-Tracking-Token", &token)
            .json(&json!({"body": "Sorry, here is my answer."}))
            .send()
            .await
            .expect("request"),
        409,
        "invalid_transition",
    )
    .await;
    let support = app.login("ana", PASSWORD).await.access;
    problem(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/approve"),
            &support,
            json!({}),
        )
        .await,
        409,
        "invalid_transition",
    )
    .await;
    let detail = app.recovery_detail(&support, &id).await;
    let types: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        types.contains(&"recovery_request.reminder_sent"),
        "{types:?}"
    );
    assert!(types.contains(&"recovery_request.abandoned"), "{types:?}");

    // The requester may file again: the new request is no duplicate of the closed one.
    let (again, _) = app.submit_recovery("jbber", contact).await;
    let detail = app.recovery_detail(&support, &again).await;
    assert_eq!(detail["request"]["duplicate_of"], Value::Null, "{detail}");
}

#[tokio::test]
async fn a_denial_is_readable_on_the_status_page_when_its_mail_never_arrives() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let contact = "lost.mailbox@contact.test";
    app.smtp
        .refuse(contact, "550 5.1.1 mailbox unavailable", None);
    let (id, token) = app.submit_recovery("someone", contact).await;
    let open = status(&app, &id, &token).await;
    assert_eq!(open["decision_reason"], Value::Null, "{open}");
    assert_eq!(open["closes_at"], Value::Null, "{open}");
    deny(&app, &support, &id).await;
    mail_becomes(&app, &id, &token, "recovery_denied", "failed").await;
    let s = status(&app, &id, &token).await;
    assert_eq!(s["status"], "denied");
    assert_eq!(
        s["decision_reason"],
        "We could not confirm that the account is yours."
    );
    assert!(
        s["next_step"]
            .as_str()
            .is_some_and(|t| t.contains("file a new request")),
        "{s}"
    );
}

/// Waits (bounded, with room for a loaded machine: the job runs every half second) until the
/// audit trail holds `n` erasures.
async fn erasures_become(app: &TestApp, support: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = json(
            app.get_auth(
                "/api/v1/admin/audit-events?type=recovery_request.erased&per_page=100",
                support,
            )
            .await,
            200,
        )
        .await;
        if page["total"] == n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not erased: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_note_after_the_decision_does_not_postpone_erasure() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let (id, token) = app
        .submit_recovery("someone", "late.note@contact.test")
        .await;
    deny(&app, &support, &id).await;
    let denied_at = time(&status(&app, &id, &token).await["updated_at"]);

    app.clock.advance(Duration::days(60));
    let support = app.login("ana", PASSWORD).await.access;
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/notes"),
            &support,
            json!({"body": "Looked at it again: the denial stands."}),
        )
        .await,
        201,
    )
    .await;
    // The note is on the thread, and the request still closed when it was denied.
    assert_eq!(
        time(&status(&app, &id, &token).await["updated_at"]),
        denied_at
    );

    // 90 days after the denial, not after the note.
    app.clock.advance(Duration::days(31));
    let support = app.login("ana", PASSWORD).await.access;
    erasures_become(&app, &support, 1).await;
}

#[tokio::test]
async fn an_answered_question_is_never_abandoned() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let (id, token) = app.submit_recovery("someone", "someone@contact.test").await;
    ask(&app, &support, &id).await;
    app.clock.advance(Duration::days(3));
    json(
        app.http
            .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
            .header("X-Tracking-Token", &token)
            .json(&json!({"body": "My last release was mypkg 2.3.1."}))
            .send()
            .await
            .expect("request"),
        201,
    )
    .await;
    app.clock.advance(Duration::days(40));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(status(&app, &id, &token).await["status"], "in_review");
    assert_eq!(count(&app, "someone@contact.test", "Reminder"), 0);
}

/// Waits (at most 10 s) until the requester's status lists a mail of `kind` in `state`.
async fn mail_becomes(app: &TestApp, id: &str, token: &str, kind: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = status(app, id, token).await;
        let found = s["mails"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["kind"] == kind && m["status"] == state))
            .cloned();
        if let Some(mail) = found {
            return mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} mail {state}: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn support_mail<'a>(detail: &'a Value, kind: &str) -> &'a Value {
    detail["mails"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} mail: {detail}"))
}

#[tokio::test]
async fn a_mail_refused_for_good_shows_failed_at_once() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let contact = "jane.doe@contact.test";
    app.smtp
        .refuse(contact, "550 5.1.1 mailbox unavailable", None);
    let (id, token) = app.submit_recovery("someone", contact).await;

    let mail = mail_becomes(&app, &id, &token, "recovery_tracking", "failed").await;
    assert_eq!(mail["to"], "j***@contact.test", "{mail}");
    assert_eq!(mail["sent_at"], Value::Null);
    assert!(mail.get("last_answer").is_none(), "{mail}");
    // The request goes on: its status page says everything the mail did.
    let s = status(&app, &id, &token).await;
    assert_eq!(s["status"], "submitted");
    assert!(s["next_step"].is_string());

    let detail = app.recovery_detail(&support, &id).await;
    let mail = support_mail(&detail, "recovery_tracking");
    assert_eq!(mail["to"], contact, "{mail}");
    assert_eq!(mail["status"], "failed", "{mail}");
    assert_eq!(mail["attempts"], 1, "{mail}");
    let answer = mail["last_answer"].as_str().expect("the server's answer");
    assert!(answer.contains("550"), "{answer}");

    // Not tried again, however long we wait.
    app.clock.advance(Duration::days(2));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let support = app.login("ana", PASSWORD).await.access;
    let detail = app.recovery_detail(&support, &id).await;
    assert_eq!(support_mail(&detail, "recovery_tracking")["attempts"], 1);
    assert!(app.smtp.to(contact).is_empty());
}

#[tokio::test]
async fn a_mail_deferred_with_451_is_retried_and_sent() {
    let app = spawn_app().await;
    let support = app.support_user("ana").await.access;
    let contact = "jane.doe@contact.test";
    app.smtp
        .refuse(contact, "451 4.3.0 try again later", Some(1));
    let (id, token) = app.submit_recovery("someone", contact).await;

    // The first attempt fails; the mail stays queued and remembers the answer.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let detail = app.recovery_detail(&support, &id).await;
        let mail = support_mail(&detail, "recovery_tracking");
        if mail["attempts"] == 1 {
            assert_eq!(mail["status"], "queued", "{mail}");
            let answer = mail["last_answer"].as_str().expect("answer");
            assert!(answer.contains("451"), "{answer}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{mail}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        mail_becomes(&app, &id, &token, "recovery_tracking", "queued").await["sent_at"],
        Value::Null
    );

    // After the back-off, the next attempt goes through.
    app.clock.advance(Duration::seconds(31));
    let mail = mail_becomes(&app, &id, &token, "recovery_tracking", "sent").await;
    assert!(mail["sent_at"].is_string(), "{mail}");
    app.smtp
        .wait_for_subject(contact, "We received your account-recovery request")
        .await;
}

#[tokio::test]
async fn temporary_failures_are_given_up_after_the_attempts_allowed() {
    let app = crate::support::spawn_app_with(|env| {
        env.insert("OUTBOX_MAX_ATTEMPTS".into(), "2".into());
    })
    .await;
    let contact = "jane.doe@contact.test";
    app.smtp.refuse(contact, "421 4.7.0 too busy", None);
    let (id, token) = app.submit_recovery("someone", contact).await;
    // Each round moves the clock past the back-off; the second failure gives up.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = status(&app, &id, &token).await;
        if s["mails"][0]["status"] == "failed" {
            break;
        }
        assert_eq!(s["mails"][0]["status"], "queued", "{s}");
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        app.clock.advance(Duration::seconds(61));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(app.smtp.to(contact).is_empty());
}

/// Every place in the database (table and column) whose text holds `needle`.
fn found_anywhere(app: &TestApp, needle: &str) -> Vec<String> {
    let pg = app.db.is_postgres();
    let tables = if pg {
        app.db_texts(
            "SELECT table_name::text AS value FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
    } else {
        app.db_texts(
            "SELECT name AS value FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
    };
    let mut hits = Vec::new();
    for table in tables {
        let columns = if pg {
            app.db_texts(&format!(
                "SELECT column_name::text AS value FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{table}'"
            ))
        } else {
            app.db_texts(&format!(
                "SELECT name AS value FROM pragma_table_info('{table}')"
            ))
        };
        for column in columns {
            let rows = app.db_texts(&format!(
                "SELECT CAST(\"{column}\" AS TEXT) AS value FROM \"{table}\" \
                 WHERE CAST(\"{column}\" AS TEXT) LIKE '%{needle}%'"
            ));
            if !rows.is_empty() {
                hits.push(format!("{table}.{column}"));
            }
        }
    }
    hits
}

#[tokio::test]
async fn personal_data_is_erased_after_retention_and_the_status_still_answers() {
    let app = crate::support::spawn_app_with(|env| {
        env.insert("RECOVERY_ATTACHMENTS".into(), "on".into());
    })
    .await;
    let support = app.support_user("ana").await.access;
    let contact = "retention.person@contact.test";
    let res = app
        .http
        .post(app.url("/api/v1/recovery-requests"))
        .header("User-Agent", "RetentionAgent/1.0")
        .json(&json!({
            "username": "ghost",
            "contact_email": contact,
            "reason": "I lost my phone on the Zanzibar ferry last week.",
            "recovery_codes_lost": true,
            "code_of_conduct_accepted": true,
            "processing_time_acknowledged": true
        }))
        .send()
        .await
        .expect("request");
    let filed = json(res, 202).await;
    let id = filed["id"].as_str().expect("id").to_string();
    let token = filed["tracking_token"].as_str().expect("token").to_string();
    let admin = |path: &str| format!("/api/v1/admin/recovery-requests/{id}/{path}");
    json(
        app.post_auth(
            &admin("notes"),
            &support,
            json!({"body": "Note about Wombat"}),
        )
        .await,
        201,
    )
    .await;
    ask(&app, &support, &id).await;
    let boundary = "retention-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"Kangaroo.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.4\n%%EOF\n"
    );
    form.push_str(&format!("\r\n--{boundary}--\r\n"));
    json(
        app.http
            .post(app.url(&format!("/api/v1/recovery-requests/{id}/attachments")))
            .header("X-Tracking-Token", &token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(form)
            .send()
            .await
            .expect("request"),
        201,
    )
    .await;
    json(
        app.http
            .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
            .header("X-Tracking-Token", &token)
            .json(&json!({"body": "My answer mentions Quokka."}))
            .send()
            .await
            .expect("request"),
        201,
    )
    .await;
    json(
        app.post_auth(
            &admin("deny"),
            &support,
            json!({"reason": "Denied: Platypus"}),
        )
        .await,
        200,
    )
    .await;
    app.smtp
        .wait_for_subject(contact, "Your recovery request was denied")
        .await;
    let needles = [
        contact,
        "Zanzibar",
        "Wombat",
        "Quokka",
        "Platypus",
        "RetentionAgent",
    ];
    for needle in needles {
        assert!(
            !found_anywhere(&app, needle).is_empty(),
            "the scan must see {needle} before retention"
        );
    }

    // Not yet: 89 days after the decision.
    app.clock.advance(Duration::days(89));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(!found_anywhere(&app, "Zanzibar").is_empty());

    app.clock.advance(Duration::days(2));
    // Bounded, with room for a loaded machine: the job runs every half second.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !found_anywhere(&app, "Zanzibar").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "not erased");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for needle in needles {
        let hits = found_anywhere(&app, needle);
        assert!(hits.is_empty(), "{needle} is still in {hits:?}");
    }

    // The request still answers its tracking link with its status.
    let s = status(&app, &id, &token).await;
    assert_eq!(s["status"], "denied", "{s}");
    assert_eq!(s["messages"], json!([]), "{s}");
    assert_eq!(s["attachments"], json!([]), "{s}");
    assert!(
        app.db_texts("SELECT id AS value FROM recovery_request_attachments")
            .is_empty()
    );
    let support = app.login("ana", PASSWORD).await.access;
    let detail = app.recovery_detail(&support, &id).await;
    assert_eq!(detail["request"]["username"], "ghost");
    // No free text comes back after the erasure.
    problem(
        app.post_auth(&admin("notes"), &support, json!({"body": "Wombat again"}))
            .await,
        409,
        "invalid_transition",
    )
    .await;
    assert_eq!(detail["request"]["submitted_ip"], Value::Null);
    let types: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "recovery_request.submitted",
        "recovery_request.denied",
        "recovery_request.erased",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }
}

#[tokio::test]
async fn two_instances_erase_each_request_once() {
    let app = spawn_app().await;
    let _second = app.spawn_second_instance().await;
    let support = app.support_user("ana").await.access;
    for n in 0..6 {
        let (id, _) = app
            .submit_recovery(&format!("user{n}"), &format!("user{n}@contact.test"))
            .await;
        deny(&app, &support, &id).await;
    }
    app.clock.advance(Duration::days(91));
    let support = app.login("ana", PASSWORD).await.access;
    erasures_become(&app, &support, 6).await;
    // Both instances keep running their loops: still exactly one erasure per request.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let page = json(
        app.get_auth(
            "/api/v1/admin/audit-events?type=recovery_request.erased&per_page=100",
            &support,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page["total"], 6, "{page}");
}
