//! Use cases: one module each. A service validates with domain types, runs its reads and
//! writes (and the mails they cause) in one transaction through `db`, and returns its own
//! error enum. Services know nothing of HTTP.

pub mod account_lock;
pub mod accounts;
pub mod audit;
pub mod devices;
pub mod email_change;
pub mod health;
pub mod login;
pub mod metrics;
pub mod passkeys;
pub mod password_reset;
pub mod rate_limit;
pub mod reauth;
pub mod recovery_requests;
pub mod registration;
pub mod second_factor;
pub mod sessions;
pub mod two_factor;
pub mod unit_of_work;

use crate::db::DbError;
use crate::mail::MailError;
use crate::security::jwt::JwtError;
use crate::security::password::HashError;

/// Where a request came from, as services record it (never a secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent, shortened.
    pub user_agent: Option<String>,
}

/// A failure of the infrastructure under a use case: the database is unreachable (503) or
/// something broke (500). Every service error enum carries one.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The database does not answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(m) => Self::Unavailable(m),
            DbError::Query(q) => Self::Internal(anyhow::Error::new(q).context("database query")),
        }
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        Self::from(DbError::from(e))
    }
}

impl From<HashError> for Failure {
    fn from(e: HashError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<MailError> for Failure {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Db(d) => Self::from(d),
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<JwtError> for Failure {
    fn from(e: JwtError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

/// Implements the conversions from infrastructure errors into a service error enum that has a
/// `Failure(Failure)` variant, so `?` works inside transactions.
#[macro_export]
macro_rules! failure_conversions {
    ($error:ty) => {
        impl From<$crate::services::Failure> for $error {
            fn from(e: $crate::services::Failure) -> Self {
                Self::Failure(e)
            }
        }
        impl From<diesel::result::Error> for $error {
            fn from(e: diesel::result::Error) -> Self {
                Self::Failure(e.into())
            }
        }
        impl From<$crate::db::DbError> for $error {
            fn from(e: $crate::db::DbError) -> Self {
                Self::Failure(e.into())
            }
        }
        impl From<$crate::security::password::HashError> for $error {
            fn from(e: $crate::security::password::HashError) -> Self {
                Self::Failure(e.into())
            }
        }
        impl From<$crate::mail::MailError> for $error {
            fn from(e: $crate::mail::MailError) -> Self {
                Self::Failure(e.into())
            }
        }
        impl From<$crate::security::jwt::JwtError> for $error {
            fn from(e: $crate::security::jwt::JwtError) -> Self {
                Self::Failure(e.into())
            }
        }
    };
}

/// A field that failed validation: the field, a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// The request field.
    pub field: &'static str,
    /// `required`, `too_short`, `too_long`, `invalid`, `weak`, `must_be_true`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl FieldIssue {
    /// A field issue.
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

/// Truncates a user agent to what is worth keeping.
pub fn short_user_agent(ua: &str) -> String {
    ua.chars().take(256).collect()
}
