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

/// Sending failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The mail server refused the message for good (an SMTP 5xx answer), or the recipient is
    /// not an address at all: the mail is given up at once.
    #[error("{0}")]
    Refused(String),
    /// The message could not be built: retried rarely (a configuration fix may help).
    #[error("message rejected before sending: {0}")]
    Permanent(String),
    /// The server answered "try later" (SMTP 4xx) or could not be reached: retried with
    /// back-off.
    #[error("{0}")]
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
            .map_err(|e| SendError::Refused(format!("recipient: {e}")))?;
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
            Self::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                // lettre's text carries the server's code and answer, e.g.
                // "permanent error (550): 5.1.1 mailbox unavailable".
                if e.is_permanent() {
                    SendError::Refused(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
        }
    }
}
