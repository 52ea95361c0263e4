//! The value types of the configuration: the environment, the database URL, secrets, mail
//! transport, argon2 cost and abuse limits, each parsed and checked once.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::parse_duration;

/// The minimum length of `JWT_SECRET` and `DATA_ENCRYPTION_KEY`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration value that is wrong, with the variable it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong with it, in a few words.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}

/// Where the service runs: development generates missing secrets, production refuses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local use: secrets are generated when missing, logs are human-readable.
    Development,
    /// Real deployments: secrets are required, logs are JSON.
    Production,
}

/// The database, chosen from the scheme of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file (a path, or `sqlite://path`).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `DATABASE_URL`: `postgres://…`, `postgresql://…`, `sqlite://path` or a bare path.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            return Ok(Self::Postgres(raw.to_owned()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("sqlite URL has no path".into());
        }
        if path.contains("://") {
            return Err("unsupported scheme: use a path, sqlite://path or postgres://…".into());
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            // The URL may carry a password: show only where it points.
            Self::Postgres(url) => match Url::parse(url) {
                Ok(u) => write!(
                    f,
                    "Postgres({}:{}{})",
                    u.host_str().unwrap_or(""),
                    u.port().unwrap_or(5432),
                    u.path()
                ),
                Err(_) => f.write_str("Postgres(…)"),
            },
        }
    }
}

/// Key material that must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) Vec<u8>);

impl Secret {
    /// Wraps raw key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The raw bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How mail leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// Print every mail to the log (development default).
    Log,
    /// Deliver over SMTP; the URL is lettre's (`smtp://host:port`, `smtps://user:pass@host`,
    /// `smtp://host?tls=required` for STARTTLS).
    Smtp {
        /// The connection URL, possibly with credentials: never logged.
        url: Secret,
    },
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (`ARGON2_MEMORY_KIB`).
    pub memory_kib: u32,
    /// Passes (`ARGON2_ITERATIONS`).
    pub iterations: u32,
    /// Lanes (`ARGON2_PARALLELISM`).
    pub parallelism: u32,
}

/// A limit of `max` events per sliding `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// How many events the window allows.
    pub max: u32,
    /// The length of the sliding window.
    pub window: Duration,
}

impl Limit {
    /// Parses `20/1h` (count, slash, duration).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (count, window) = raw
            .trim()
            .split_once('/')
            .ok_or_else(|| "expected COUNT/DURATION, for example 20/1h".to_string())?;
        let max: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("`{count}` is not a whole number"))?;
        if max == 0 {
            return Err("the count must be at least 1".into());
        }
        let window = parse_duration(window)?;
        Ok(Self { max, window })
    }
}

/// The configurable abuse limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed logins per normalised login text (`RATE_LIMIT_LOGIN_PER_ACCOUNT`).
    pub login_per_account: Limit,
    /// Failed logins per client IP (`RATE_LIMIT_LOGIN_PER_IP`).
    pub login_per_ip: Limit,
    /// Failed second-factor attempts per account (`RATE_LIMIT_SECOND_FACTOR`).
    pub second_factor: Limit,
    /// Failed re-authentications per account (`RATE_LIMIT_REAUTH`): the password checks of
    /// signed-in calls and TOTP confirmation codes, together.
    pub reauth: Limit,
    /// Password-reset requests per client IP (`RATE_LIMIT_PASSWORD_RESET_PER_IP`).
    pub password_reset_per_ip: Limit,
    /// Password-reset emails per account (`RATE_LIMIT_PASSWORD_RESET_EMAILS`).
    pub password_reset_emails: Limit,
    /// Verification emails per account (`RATE_LIMIT_VERIFICATION_EMAILS`).
    pub verification_emails: Limit,
    /// Recovery-request submissions per client IP (`RATE_LIMIT_RECOVERY_REQUEST_PER_IP`).
    pub recovery_request_per_ip: Limit,
    /// Ownership emails per account (`RATE_LIMIT_OWNERSHIP_EMAILS`).
    pub ownership_emails: Limit,
    /// Registrations per client IP (`RATE_LIMIT_REGISTRATION_PER_IP`).
    pub registration_per_ip: Limit,
    /// Requester replies per recovery request (`RATE_LIMIT_RECOVERY_REPLIES`).
    pub recovery_replies: Limit,
    /// Tracking-link resend mails per contact address (`RATE_LIMIT_TRACKING_LINK_EMAILS`).
    pub tracking_link_emails: Limit,
    /// `RATE_LIMIT_EMAIL_CHANGES`: email-change requests per account.
    pub email_changes: Limit,
}

impl RateLimits {
    /// The longest window of any limit: older counted events can be forgotten.
    pub fn longest_window(&self) -> Duration {
        [
            self.login_per_account,
            self.login_per_ip,
            self.second_factor,
            self.reauth,
            self.password_reset_per_ip,
            self.password_reset_emails,
            self.verification_emails,
            self.recovery_request_per_ip,
            self.ownership_emails,
            self.registration_per_ip,
            self.recovery_replies,
            self.tracking_link_emails,
            self.email_changes,
        ]
        .iter()
        .map(|l| l.window)
        .max()
        .unwrap_or(Duration::from_secs(3600))
    }
}
