//! The account-recovery steps tests repeat: file a request, answer the ownership mail, approve
//! as support, read support's view of a request, and complete with the mailed link.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Mail, TestApp, json};

/// The subject of the mail that carries a completion link.
pub const LINK_SUBJECT: &str = "Recover your";

/// A complete, valid submission for `username`, answered at `contact`.
pub fn submission(username: &str, contact: &str) -> Value {
    json!({
        "username": username,
        "contact_email": contact,
        "reason": "I lost my phone with the authenticator app and never saved my recovery codes.",
        "recovery_codes_lost": true,
        "code_of_conduct_accepted": true,
        "processing_time_acknowledged": true
    })
}

impl TestApp {
    /// Files a request; returns its id and tracking token.
    pub async fn submit_recovery(&self, username: &str, contact: &str) -> (String, String) {
        self.submit_recovery_from(None, username, contact).await
    }

    /// Files a request from a browser holding `device` (its `X-Device-Token`), if any.
    pub async fn submit_recovery_from(
        &self,
        device: Option<&str>,
        username: &str,
        contact: &str,
    ) -> (String, String) {
        let mut req = self
            .http
            .post(self.url("/api/v1/recovery-requests"))
            .json(&submission(username, contact));
        if let Some(token) = device {
            req = req.header("X-Device-Token", token);
        }
        let body = json(req.send().await.expect("request"), 202).await;
        assert_eq!(body["status"], "submitted");
        (
            body["id"].as_str().expect("id").to_string(),
            body["tracking_token"].as_str().expect("token").to_string(),
        )
    }

    /// Answers the ownership mail sent to `owner_email` with "it was me"; returns the link's
    /// token (which also answers "it was not me" later).
    pub async fn prove_ownership(&self, owner_email: &str) -> String {
        let mail = self.smtp.wait_for_subject(owner_email, "Did you ask").await;
        let token = mail
            .link_param("recovery/verify", "token")
            .expect("ownership token");
        self.answer_ownership(&token, true).await;
        token
    }

    /// Answers an ownership link: `confirm` is "it was me".
    pub async fn answer_ownership(&self, token: &str, confirm: bool) -> Value {
        json(
            self.post(
                "/api/v1/recovery-requests/verify-email",
                json!({"token": token, "confirm": confirm}),
            )
            .await,
            200,
        )
        .await
    }

    /// Support approves request `id` with `body`; returns the support view it answers.
    pub async fn approve(&self, support: &str, id: &str, body: Value) -> Value {
        json(
            self.post_auth(
                &format!("/api/v1/admin/recovery-requests/{id}/approve"),
                support,
                body,
            )
            .await,
            200,
        )
        .await
    }

    /// Support's view of request `id` (`GET /api/v1/admin/recovery-requests/{id}`).
    pub async fn recovery_detail(&self, support: &str, id: &str) -> Value {
        json(
            self.get_auth(&format!("/api/v1/admin/recovery-requests/{id}"), support)
                .await,
            200,
        )
        .await
    }

    /// Waits (at most 10 s) until `to` has received `count` completion-link mails; returns the
    /// token of the newest.
    pub async fn completion_token(&self, to: &str, count: usize) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let links: Vec<Mail> = self
                .smtp
                .to(to)
                .into_iter()
                .filter(|m| m.subject().contains(LINK_SUBJECT))
                .collect();
            if links.len() >= count {
                let newest = links.last().expect("a link mail");
                return newest
                    .link_param("recovery/complete", "token")
                    .expect("completion token");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{to} got {} completion link(s), expected {count}",
                links.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts the completion form with `token` and `new_password`.
    pub async fn complete_recovery(&self, token: &str, new_password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/account-recovery/complete",
            json!({"token": token, "new_password": new_password}),
        )
        .await
    }

    /// Approves request `id` with `body` (ownership proven, so the link goes out at once),
    /// completes the recovery with the link mailed to `link_to`, and returns the completion's
    /// answer.
    pub async fn approve_and_complete(
        &self,
        support: &str,
        id: &str,
        body: Value,
        link_to: &str,
        new_password: &str,
    ) -> Value {
        let approved = self.approve(support, id, body).await;
        assert_eq!(approved["request"]["status"], "approved", "{approved}");
        let token = self.completion_token(link_to, 1).await;
        let done = json(self.complete_recovery(&token, new_password).await, 200).await;
        assert_eq!(done["status"], "completed", "{done}");
        done
    }
}
