//! Mail: templates, the outbox writer, the dispatcher and its transports.
//!
//! A service queues a mail with [`Mailer::queue`] inside the transaction of the change that
//! causes it; the [`dispatcher`] delivers it later with retries. Mails that carry a link token
//! are sealed with the data key until delivered, then wiped. Links are built only from
//! `FRONTEND_URL`, never from the request's Host header.

pub mod dispatcher;
pub mod templates;
pub mod transport;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use url::Url;

use crate::config::Config;
use crate::db::DbConnection;
use crate::db::repo::{self, outbox::OutboxRow};
use crate::security::crypto::{DataCipher, SealError};

pub use templates::{Rendered, Templates};

/// A mail to queue: a template, its recipient and its values.
#[derive(Debug)]
pub struct OutgoingMail<C: Serialize> {
    /// The recipient's address.
    pub to: String,
    /// The template (`verify_email`, `password_changed`, …).
    pub template: &'static str,
    /// The template's values; `service` is added.
    pub context: C,
    /// True when the body carries a link token: sealed at rest, wiped once sent.
    pub carries_token: bool,
}

/// Queuing failed: a template error or encryption failure (both are bugs, answered as 500).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The template did not render.
    #[error("mail template failed: {0}")]
    Template(#[from] minijinja::Error),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The outbox insert failed.
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// Writes mails to the outbox and wakes the dispatcher.
#[derive(Clone)]
pub struct Mailer {
    templates: Arc<Templates>,
    cipher: DataCipher,
    frontend_url: Url,
    service_name: String,
    message_id_domain: String,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("frontend_url", &self.frontend_url.as_str())
            .finish()
    }
}

impl Mailer {
    /// Builds the mailer from the configuration.
    pub fn new(config: &Config, cipher: DataCipher) -> Self {
        let message_id_domain = config
            .mail_from
            .email
            .domain()
            .trim_matches(['[', ']'])
            .to_owned();
        Self {
            templates: Arc::new(Templates::new()),
            cipher,
            frontend_url: config.frontend_url.clone(),
            service_name: config.service_name.clone(),
            message_id_domain,
            wake: Arc::new(Notify::new()),
        }
    }

    /// `{FRONTEND_URL}/<page>?<params>`: the only way links are built.
    pub fn link(&self, page: &str, params: &[(&str, &str)]) -> String {
        let mut url = self.frontend_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/{page}"));
        url.set_query(None);
        if !params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    /// Renders `mail` and writes it to the outbox, in the caller's transaction.
    pub fn queue<C: Serialize>(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
        mail: OutgoingMail<C>,
    ) -> Result<(), MailError> {
        self.queue_about(conn, now, None, mail)
    }

    /// Like [`Mailer::queue`], for a mail about recovery request `request_id` (listed in the
    /// request's status and evidence).
    pub fn queue_about<C: Serialize>(
        &self,
        conn: &mut DbConnection,
        now: DateTime<Utc>,
        request_id: Option<&str>,
        mail: OutgoingMail<C>,
    ) -> Result<(), MailError> {
        let rendered = self
            .templates
            .render(mail.template, &self.service_name, &mail.context)?;
        let (text, html, sealed) = if mail.carries_token {
            (
                self.cipher.seal(&rendered.text)?,
                self.cipher.seal(&rendered.html)?,
                1,
            )
        } else {
            (rendered.text, rendered.html, 0)
        };
        let id = uuid::Uuid::new_v4();
        let row = OutboxRow {
            id: id.to_string(),
            message_id: format!("<{}@{}>", id.simple(), self.message_id_domain),
            kind: mail.template.to_owned(),
            recipient: mail.to,
            subject: rendered.subject,
            body_text: text,
            body_html: html,
            sealed,
            created_at: repo::naive(now),
            next_attempt_at: repo::naive(now),
            attempts: 0,
            last_error: None,
            claimed_by: None,
            claimed_until: None,
            sent_at: None,
            request_id: request_id.map(str::to_owned),
            failed_at: None,
        };
        repo::outbox::insert(conn, &row)?;
        Ok(())
    }

    /// Tells the dispatcher that mail is waiting (call after the transaction committed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn cipher(&self) -> &DataCipher {
        &self.cipher
    }
}

/// A duration as people read it in a mail: "1 hour", "48 hours", "15 minutes".
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs.is_multiple_of(3600) && secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A time as people read it in a mail.
pub fn human_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(48 * 3600)), "48 hours");
        assert_eq!(human_duration(Duration::from_secs(900)), "15 minutes");
    }
}
