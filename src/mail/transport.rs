//! Where mail goes: SMTP through lettre, or the console in development.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::config::{Config, MailTransport};

/// A message ready to send.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// `Message-ID`, kept across resends.
    pub message_id: &'a str,
    /// Recipient.
    pub to: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// Plain-text body.
    pub text: &'a str,
    /// HTML body.
    pub html: &'a str,
}

/// Sending failed; the dispatcher retries later.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message could not be built (a bad address): retrying will not help.
    #[error("message rejected before sending: {0}")]
    Permanent(String),
    /// The server refused or could not be reached.
    #[error("delivery failed: {0}")]
    Transient(String),
}

/// The configured transport.
#[derive(Clone)]
pub enum Transport {
    /// Prints each mail to standard output.
    Log,
    /// Delivers over SMTP.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Log => "Transport::Log",
            Self::Smtp(_) => "Transport::Smtp",
        })
    }
}

impl Transport {
    /// Builds the transport of the configuration.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.mail_transport {
            MailTransport::Log => Ok(Self::Log),
            MailTransport::Smtp { url } => {
                let url = std::str::from_utf8(url.expose())?;
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("SMTP_URL: {e}"))?
                    .timeout(Some(Duration::from_secs(15)))
                    .build();
                Ok(Self::Smtp(transport))
            }
        }
    }

    /// Sends one message.
    pub async fn send(&self, from: &Mailbox, mail: &Envelope<'_>) -> Result<(), SendError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(mail.message_id.to_owned()))
            .date_now()
            .multipart(MultiPart::alternative_plain_html(
                mail.text.to_owned(),
                mail.html.to_owned(),
            ))
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        match self {
            Self::Log => {
                // Development only: the console is the mailbox.
                println!(
                    "----- mail {} to {} -----\nSubject: {}\n\n{}\n----- end of mail -----",
                    mail.message_id, mail.to, mail.subject, mail.text
                );
                Ok(())
            }
            Self::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(e.to_string())),
        }
    }
}
