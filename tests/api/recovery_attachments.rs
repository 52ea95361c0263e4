//! Documents attached to a recovery request when support asks (issue 18): accepted kinds judged
//! by the bytes, size and count limits, only while `needs_info`, encrypted at rest, downloaded
//! by support as an attachment, and audited.

use serde_json::{Value, json};

use crate::support::{TestApp, json, problem, spawn_app, spawn_app_with};

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj\n<< /Title (MARKER-PASSPORT-SCAN) >>\nendobj\ntrailer\n%%EOF\n";
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00This program cannot be run in DOS mode";

async fn attachments_app() -> TestApp {
    spawn_app_with(|env| {
        env.insert("RECOVERY_ATTACHMENTS".into(), "on".into());
    })
    .await
}

/// A multipart body with one `file` part.
fn multipart(filename: &str, content_type: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----recovery-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    app: &TestApp,
    id: &str,
    token: &str,
    filename: &str,
    content_type: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let (ct, body) = multipart(filename, content_type, bytes);
    app.http
        .post(app.url(&format!("/api/v1/recovery-requests/{id}/attachments")))
        .header("X-Tracking-Token", token)
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .expect("request")
}

/// A request that waits for the requester's answer; returns id, tracking token and support's
/// access token.
async fn asked(app: &TestApp) -> (String, String, String) {
    let support = app.support_user("ana").await.access;
    let (id, token) = app.submit_recovery("someone", "someone@contact.test").await;
    json(
        app.post_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/messages"),
            &support,
            json!({"body": "Please attach a scan of an identity document."}),
        )
        .await,
        201,
    )
    .await;
    (id, token, support)
}

#[tokio::test]
async fn a_pdf_is_accepted_stored_encrypted_and_downloaded_by_support_with_safe_headers() {
    let app = attachments_app().await;
    let (id, token, support) = asked(&app).await;

    let res = upload(
        &app,
        &id,
        &token,
        "../my passport.pdf",
        "application/pdf",
        PDF,
    )
    .await;
    let a = json(res, 201).await;
    assert_eq!(a["filename"], "my_passport.pdf", "{a}");
    assert_eq!(a["content_type"], "application/pdf");
    assert_eq!(a["size"], PDF.len());
    let attachment_id = a["id"].as_str().expect("id").to_string();

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
    assert_eq!(
        status["attachments"][0]["id"],
        attachment_id.as_str(),
        "{status}"
    );

    // At rest: neither the bytes nor their base64 form.
    let stored = app.db_texts("SELECT content AS value FROM recovery_request_attachments");
    assert_eq!(stored.len(), 1);
    use base64::Engine as _;
    let plain_b64 = base64::engine::general_purpose::STANDARD.encode(PDF);
    assert!(!stored[0].contains("MARKER-PASSPORT-SCAN"));
    assert!(!stored[0].contains(&plain_b64[..40]));

    let detail = app.recovery_detail(&support, &id).await;
    assert_eq!(detail["attachments"][0]["filename"], "my_passport.pdf");

    let res = app
        .get_auth(
            &format!("/api/v1/admin/recovery-requests/{id}/attachments/{attachment_id}"),
            &support,
        )
        .await;
    assert_eq!(res.status(), 200);
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"my_passport.pdf\""
    );
    assert_eq!(header("content-security-policy"), "sandbox");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(res.bytes().await.expect("body").as_ref(), PDF);

    let events = json(
        app.get_auth(
            &format!(
                "/api/v1/admin/audit-events?request={id}&type=recovery_request.attachment_viewed"
            ),
            &support,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(events["total"], 1, "{events}");

    // Not the requester's to download, and not another request's attachment.
    let (other, _) = app.submit_recovery("another", "another@contact.test").await;
    problem(
        app.get_auth(
            &format!("/api/v1/admin/recovery-requests/{other}/attachments/{attachment_id}"),
            &support,
        )
        .await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_executable_named_pdf_and_a_mismatched_type_are_refused() {
    let app = attachments_app().await;
    let (id, token, _) = asked(&app).await;
    let body = problem(
        upload(&app, &id, &token, "passport.pdf", "application/pdf", EXE).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "file", "{body}");
    assert_eq!(body["errors"][0]["code"], "unsupported_type", "{body}");
    let body = problem(
        upload(&app, &id, &token, "passport.png", "image/png", PDF).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "type_mismatch", "{body}");
}

#[tokio::test]
async fn six_mebibytes_are_refused_with_413_and_other_routes_keep_64_kib() {
    let app = attachments_app().await;
    let (id, token, _) = asked(&app).await;
    let mut big = PDF.to_vec();
    big.resize(6 * 1024 * 1024, b'x');
    problem(
        upload(&app, &id, &token, "big.pdf", "application/pdf", &big).await,
        413,
        "payload_too_large",
    )
    .await;
    // A reply is still limited to 64 KiB.
    let res = app
        .http
        .post(app.url(&format!("/api/v1/recovery-requests/{id}/messages")))
        .header("X-Tracking-Token", &token)
        .header("Content-Type", "application/json")
        .body(format!("{{\"body\": \"{}\"}}", "a".repeat(100 * 1024)))
        .send()
        .await
        .expect("request");
    problem(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_refused_upload_is_answered_before_its_body_is_read() {
    // Were the body read first, each of these would be a 413: the checks come before it.
    let app = attachments_app().await;
    let (id, token) = app.submit_recovery("someone", "someone@contact.test").await;
    let mut big = PDF.to_vec();
    big.resize(6 * 1024 * 1024, b'x');
    problem(
        upload(&app, &id, &token, "big.pdf", "application/pdf", &big).await,
        409,
        "attachments_not_accepted",
    )
    .await;
    problem(
        upload(&app, &id, "wrong-token", "big.pdf", "application/pdf", &big).await,
        404,
        "not_found",
    )
    .await;
    let off = spawn_app().await;
    let (id, token, _) = asked(&off).await;
    problem(
        upload(&off, &id, &token, "big.pdf", "application/pdf", &big).await,
        409,
        "attachments_not_accepted",
    )
    .await;
    // The next step offers attachments only where they are accepted.
    let next_step = |app: &TestApp, id: String, token: String| {
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/recovery-requests/{id}"));
        async move {
            let s: Value = json(
                http.get(url)
                    .header("X-Tracking-Token", token)
                    .send()
                    .await
                    .expect("request"),
                200,
            )
            .await;
            s["next_step"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert!(!next_step(&off, id, token).await.contains("attach"));
    let (id, token, _) = asked(&app).await;
    assert!(next_step(&app, id, token).await.contains("attach"));
}

#[tokio::test]
async fn a_fourth_attachment_is_refused() {
    let app = attachments_app().await;
    let (id, token, _) = asked(&app).await;
    for n in 0..3 {
        json(
            upload(
                &app,
                &id,
                &token,
                &format!("doc{n}.pdf"),
                "application/pdf",
                PDF,
            )
            .await,
            201,
        )
        .await;
    }
    problem(
        upload(&app, &id, &token, "doc3.pdf", "application/pdf", PDF).await,
        409,
        "attachments_not_accepted",
    )
    .await;
}

#[tokio::test]
async fn attachments_are_refused_outside_needs_info_and_when_off() {
    let app = attachments_app().await;
    let (id, token) = app.submit_recovery("someone", "someone@contact.test").await;
    problem(
        upload(&app, &id, &token, "doc.pdf", "application/pdf", PDF).await,
        409,
        "attachments_not_accepted",
    )
    .await;
    problem(
        upload(&app, &id, "wrong-token", "doc.pdf", "application/pdf", PDF).await,
        404,
        "not_found",
    )
    .await;

    let off = spawn_app().await;
    let (id, token, _) = asked(&off).await;
    problem(
        upload(&off, &id, &token, "doc.pdf", "application/pdf", PDF).await,
        409,
        "attachments_not_accepted",
    )
    .await;
    let s: Value = json(
        off.http
            .get(off.url(&format!("/api/v1/recovery-requests/{id}")))
            .header("X-Tracking-Token", &token)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(s["attachments"], json!([]));
}

#[tokio::test]
async fn a_burst_of_uploads_gets_at_most_three_in() {
    let app = attachments_app().await;
    let (id, token, _) = asked(&app).await;
    let results = futures_util::future::join_all((0..8).map(|n| {
        let (app, id, token) = (&app, id.clone(), token.clone());
        async move {
            upload(
                app,
                &id,
                &token,
                &format!("doc{n}.pdf"),
                "application/pdf",
                PDF,
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|s| **s == 201).count(),
        3,
        "{results:?}"
    );
    assert!(
        results.iter().all(|s| *s == 201 || *s == 409),
        "{results:?}"
    );
    assert_eq!(
        app.db_texts("SELECT id AS value FROM recovery_request_attachments")
            .len(),
        3
    );
}

#[tokio::test]
async fn hostile_multipart_bodies_are_refused_without_a_500() {
    let app = attachments_app().await;
    let (id, token, _) = asked(&app).await;
    let url = app.url(&format!("/api/v1/recovery-requests/{id}/attachments"));
    let send = |content_type: &'static str, body: Vec<u8>| {
        let (app, url, token) = (&app, url.clone(), token.clone());
        async move {
            app.http
                .post(url)
                .header("X-Tracking-Token", token)
                .header("Content-Type", content_type)
                .body(body)
                .send()
                .await
                .expect("request")
        }
    };
    problem(
        send("application/pdf", PDF.to_vec()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    problem(
        send("multipart/form-data", b"\0\0garbage".to_vec()).await,
        400,
        "malformed_request",
    )
    .await;
    problem(
        send(
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhi\r\n--x--\r\n"
                .to_vec(),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        send(
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\0b.pdf\"\r\n\r\n%PDF-1.4".to_vec(),
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
}
