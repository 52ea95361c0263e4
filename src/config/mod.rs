//! Settings from the environment, validated once at start.
//!
//! Every variable is listed, with a comment, in `.env.example`. A bad value is reported as one
//! [`ConfigError`] naming the variable; `main` prints it and exits with status 2. Nothing here
//! talks to the database or the network; the only I/O is the development-secrets file kept
//! beside the SQLite database when `APP_ENV=development` and no secrets are configured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

mod dev_secrets;
mod env;
mod values;

pub use values::*;

use dev_secrets::{dev_secrets_path, load_or_create_dev_secrets};
pub use env::parse_duration;
use env::{Env, parse_base_url, webauthn_party};

/// Everything the service needs to start, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: connections per process.
    pub database_pool_size: u32,
    /// `DATABASE_TIMEOUT`: how long a request waits for a connection before a 503.
    pub database_timeout: Duration,
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `METRICS_BIND_ADDR`: where Prometheus metrics are served (never on `BIND_ADDR`); `off`
    /// serves none.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// `PASSWORD_BLOCKLIST_FILE`: the operator's own refused passwords, one per line.
    pub password_blocklist_file: Option<PathBuf>,
    /// `WORKERS`: HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// `BODY_READ_TIMEOUT`: how long a request body may take to arrive before a 408.
    pub body_read_timeout: Duration,
    /// `MAX_CONNECTIONS_PER_IP`: open connections per client address (peers in
    /// `TRUSTED_PROXIES` are not limited).
    pub max_connections_per_ip: usize,
    /// `PUBLIC_URL`: where clients reach the API; https turns on HSTS.
    pub public_url: Url,
    /// `FRONTEND_URL`: the base of every link in an email.
    pub frontend_url: Url,
    /// `WEBAUTHN_RP_ID`: the WebAuthn relying party id passkeys are bound to (default: the
    /// host of `FRONTEND_URL`). Changing it orphans every registered passkey.
    pub webauthn_rp_id: String,
    /// `WEBAUTHN_ORIGINS`: the origins a passkey ceremony may come from, comma-separated
    /// (default: the origin of `FRONTEND_URL`); each on the relying party id or a subdomain.
    pub webauthn_origins: Vec<Url>,
    /// `SERVICE_NAME`: shown in mails and as the TOTP issuer.
    pub service_name: String,
    /// `JWT_SECRET`.
    pub jwt_secret: Secret,
    /// `DATA_ENCRYPTION_KEY`.
    pub data_encryption_key: Secret,
    /// `ACCESS_TOKEN_TTL`.
    pub access_token_ttl: Duration,
    /// `REFRESH_TOKEN_TTL`.
    pub refresh_token_ttl: Duration,
    /// `REFRESH_TOKEN_IDLE_TTL`: a refresh token unused this long dies.
    pub refresh_token_idle_ttl: Duration,
    /// `REFRESH_REUSE_GRACE`: a rotated refresh token presented again this soon after its
    /// rotation gets a new pair on the same session (two tabs refreshing at once) instead of
    /// revoking it; `0s` turns the grace off.
    pub refresh_reuse_grace: Duration,
    /// `MFA_TOKEN_TTL`.
    pub mfa_token_ttl: Duration,
    /// `EMAIL_VERIFICATION_TTL`.
    pub email_verification_ttl: Duration,
    /// `RESET_TOKEN_TTL`.
    pub reset_token_ttl: Duration,
    /// `EMAIL_CHANGE_TTL`: how long a `confirm-email-change` link works.
    pub email_change_ttl: Duration,
    /// `EMAIL_CHANGE_UNDO_PERIOD`: how long the lock link of an email-change notice also puts
    /// the old address back.
    pub email_change_undo_period: Duration,
    /// `LOCK_LINK_TTL`: how long the "it wasn't me" link of a security notice works.
    pub lock_link_ttl: Duration,
    /// `RECOVERY_CODES_PER_SET`.
    pub recovery_codes_per_set: u32,
    /// `RECOVERY_WAITING_PERIOD`.
    pub recovery_waiting_period: Duration,
    /// `RECOVERY_COMPLETION_TTL`.
    pub recovery_completion_ttl: Duration,
    /// `RECOVERY_AUTO_APPROVE_AFTER` (off when unset).
    pub recovery_auto_approve_after: Option<Duration>,
    /// `RECOVERY_NEEDS_INFO_REMINDER_AFTER`: a request waiting this long for the requester's
    /// answer gets one reminder.
    pub recovery_needs_info_reminder_after: Duration,
    /// `RECOVERY_NEEDS_INFO_CLOSE_AFTER`: a request waiting this long for the requester's
    /// answer becomes `abandoned`.
    pub recovery_needs_info_close_after: Duration,
    /// `OUTBOX_MAX_ATTEMPTS`: a mail that failed this many times (temporarily) is given up.
    pub outbox_max_attempts: u32,
    /// `OUTBOX_MAX_AGE`: a mail still undelivered this long after it was queued is given up.
    pub outbox_max_age: Duration,
    /// `RECOVERY_ATTACHMENTS`: whether requesters may upload documents while support waits
    /// for their answer (off by default).
    pub recovery_attachments: bool,
    /// `RECOVERY_ATTACHMENT_MAX_BYTES`: the largest attachment accepted.
    pub recovery_attachment_max_bytes: u64,
    /// `RECOVERY_DATA_RETENTION`: how long after a final status a request keeps its personal
    /// data.
    pub recovery_data_retention: Duration,
    /// `NEW_DEVICE_CONFIRMATION`: which logins from an unknown device wait for an emailed link.
    pub new_device_confirmation: crate::domain::device::NewDeviceConfirmation,
    /// `MAIL_TRANSPORT` and `SMTP_URL`.
    pub mail_transport: MailTransport,
    /// `MAIL_FROM`.
    pub mail_from: lettre::message::Mailbox,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`.
    pub argon2: Argon2Params,
    /// `ARGON2_MAX_CONCURRENT`: hashes computed at once (default: one per core).
    pub argon2_max_concurrent: usize,
    /// `CORS_ALLOWED_ORIGINS`.
    pub cors_allowed_origins: Vec<String>,
    /// `TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The rate limits.
    pub rate_limits: RateLimits,
    /// Set when development secrets were generated or read from a file: `main` warns once.
    pub dev_secrets_file: Option<PathBuf>,
}

/// The default SQLite database of a configuration-free start.
pub const DEFAULT_DATABASE_URL: &str = "data/account-recovery.db";

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads first).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings from a map, as the tests do; unset keys take their defaults.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|key| map.get(key).cloned())
    }

    /// Reads settings through `lookup`; an empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let app_env = match env.get("APP_ENV").as_deref() {
            None | Some("development") | Some("dev") => AppEnv::Development,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("`{other}` is neither development nor production"),
                ));
            }
        };
        let database_url = DatabaseUrl::parse(
            &env.get("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
        )
        .map_err(|m| ConfigError::new("DATABASE_URL", m))?;
        let bind_addr: SocketAddr = env.parse_or("BIND_ADDR", "127.0.0.1:8080".parse().ok())?;
        let metrics_bind_addr = match env.get("METRICS_BIND_ADDR").as_deref().map(str::trim) {
            Some("off") => None,
            _ => Some(env.parse_or("METRICS_BIND_ADDR", "127.0.0.1:9464".parse().ok())?),
        };
        let public_url = match env.get("PUBLIC_URL") {
            Some(raw) => parse_base_url("PUBLIC_URL", &raw)?,
            None => parse_base_url("PUBLIC_URL", &format!("http://{bind_addr}"))?,
        };
        let frontend_url = match env.get("FRONTEND_URL") {
            Some(raw) => parse_base_url("FRONTEND_URL", &raw)?,
            None => parse_base_url("FRONTEND_URL", "http://localhost:3000")?,
        };

        let jwt = env.get("JWT_SECRET");
        let dek = env.get("DATA_ENCRYPTION_KEY");
        for (name, value) in [("JWT_SECRET", &jwt), ("DATA_ENCRYPTION_KEY", &dek)] {
            match value {
                Some(v) if v.len() < MIN_SECRET_BYTES => {
                    return Err(ConfigError::new(
                        name,
                        format!(
                            "must be at least {MIN_SECRET_BYTES} bytes (got {})",
                            v.len()
                        ),
                    ));
                }
                None if app_env == AppEnv::Production => {
                    return Err(ConfigError::new(
                        name,
                        format!(
                            "required when APP_ENV=production (at least {MIN_SECRET_BYTES} random bytes)"
                        ),
                    ));
                }
                _ => {}
            }
        }
        let (jwt_secret, data_encryption_key, dev_secrets_file) = match (jwt, dek) {
            (Some(j), Some(d)) => (Secret(j.into_bytes()), Secret(d.into_bytes()), None),
            (j, d) => {
                let path = dev_secrets_path(&database_url);
                let stored = load_or_create_dev_secrets(&path)
                    .map_err(|m| ConfigError::new("JWT_SECRET", m))?;
                (
                    Secret(j.map(String::into_bytes).unwrap_or(stored.jwt)),
                    Secret(d.map(String::into_bytes).unwrap_or(stored.dek)),
                    Some(path),
                )
            }
        };

        let mail_transport = match env.get("MAIL_TRANSPORT").as_deref() {
            None | Some("log") => MailTransport::Log,
            Some("smtp") => {
                let url = env.get("SMTP_URL").ok_or_else(|| {
                    ConfigError::new("SMTP_URL", "required when MAIL_TRANSPORT=smtp")
                })?;
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&url).map_err(
                    |_| {
                        ConfigError::new(
                            "SMTP_URL",
                            "not a valid SMTP URL (smtp://host:port, smtps://user:pass@host)",
                        )
                    },
                )?;
                MailTransport::Smtp {
                    url: Secret(url.into_bytes()),
                }
            }
            Some(other) => {
                return Err(ConfigError::new(
                    "MAIL_TRANSPORT",
                    format!("`{other}` is neither log nor smtp"),
                ));
            }
        };
        // Production refuses what is only safe on a developer's machine (issue 14): mail
        // printed to stdout (live reset links in the logs), and plain http without saying so.
        if app_env == AppEnv::Production {
            if mail_transport == MailTransport::Log {
                return Err(ConfigError::new(
                    "MAIL_TRANSPORT",
                    "must be smtp when APP_ENV=production (log prints live links to the console)",
                ));
            }
            let insecure_ok = match env.get("ALLOW_INSECURE_HTTP").as_deref().map(str::trim) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "ALLOW_INSECURE_HTTP",
                        format!("`{other}` is neither true nor false"),
                    ));
                }
            };
            if public_url.scheme() != "https" && !insecure_ok {
                return Err(ConfigError::new(
                    "PUBLIC_URL",
                    "must be an https URL when APP_ENV=production \
                     (set ALLOW_INSECURE_HTTP=true to run on http on purpose)",
                ));
            }
        }
        let mail_from = env
            .get("MAIL_FROM")
            .unwrap_or_else(|| "account-recovery <no-reply@localhost>".into())
            .parse()
            .map_err(|_| {
                ConfigError::new(
                    "MAIL_FROM",
                    "not a mailbox (`Name <addr@example.com>` or `addr@example.com`)",
                )
            })?;

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let argon2 = Argon2Params {
            memory_kib: env.parse_in("ARGON2_MEMORY_KIB", 19_456, 8..=4_194_304)?,
            iterations: env.parse_in("ARGON2_ITERATIONS", 2, 1..=100)?,
            parallelism: env.parse_in("ARGON2_PARALLELISM", 1, 1..=64)?,
        };
        if argon2.memory_kib < 8 * argon2.parallelism {
            return Err(ConfigError::new(
                "ARGON2_MEMORY_KIB",
                "must be at least 8 × ARGON2_PARALLELISM",
            ));
        }

        let rate_limits = RateLimits {
            login_per_account: env.limit("RATE_LIMIT_LOGIN_PER_ACCOUNT", "20/1h")?,
            login_per_ip: env.limit("RATE_LIMIT_LOGIN_PER_IP", "100/15m")?,
            second_factor: env.limit("RATE_LIMIT_SECOND_FACTOR", "10/15m")?,
            reauth: env.limit("RATE_LIMIT_REAUTH", "10/15m")?,
            password_reset_per_ip: env.limit("RATE_LIMIT_PASSWORD_RESET_PER_IP", "30/1h")?,
            password_reset_emails: env.limit("RATE_LIMIT_PASSWORD_RESET_EMAILS", "3/1h")?,
            verification_emails: env.limit("RATE_LIMIT_VERIFICATION_EMAILS", "3/1h")?,
            recovery_request_per_ip: env.limit("RATE_LIMIT_RECOVERY_REQUEST_PER_IP", "30/1h")?,
            ownership_emails: env.limit("RATE_LIMIT_OWNERSHIP_EMAILS", "3/24h")?,
            registration_per_ip: env.limit("RATE_LIMIT_REGISTRATION_PER_IP", "30/1h")?,
            recovery_replies: env.limit("RATE_LIMIT_RECOVERY_REPLIES", "20/24h")?,
            tracking_link_emails: env.limit("RATE_LIMIT_TRACKING_LINK_EMAILS", "3/1h")?,
            email_changes: env.limit("RATE_LIMIT_EMAIL_CHANGES", "5/24h")?,
        };

        let trusted_proxies = match env.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse().map_err(|_| {
                        ConfigError::new("TRUSTED_PROXIES", format!("`{s}` is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let cors_allowed_origins = match env.get("CORS_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let url = Url::parse(s).map_err(|_| {
                        ConfigError::new("CORS_ALLOWED_ORIGINS", format!("`{s}` is not an origin"))
                    })?;
                    let origin = url.origin();
                    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") {
                        return Err(ConfigError::new(
                            "CORS_ALLOWED_ORIGINS",
                            format!("`{s}` is not an http or https origin"),
                        ));
                    }
                    Ok(origin.ascii_serialization())
                })
                .collect::<Result<_, ConfigError>>()?,
        };
        let (webauthn_rp_id, webauthn_origins) = webauthn_party(&env, &frontend_url)?;

        Ok(Self {
            app_env,
            database_url,
            database_pool_size: env.parse_in("DATABASE_POOL_SIZE", 10, 1..=1000)?,
            database_timeout: env.duration("DATABASE_TIMEOUT", "5s")?,
            bind_addr,
            metrics_bind_addr,
            password_blocklist_file: match env.get("PASSWORD_BLOCKLIST_FILE") {
                Some(path) if !Path::new(&path).is_file() => {
                    return Err(ConfigError::new(
                        "PASSWORD_BLOCKLIST_FILE",
                        format!("{path} is not a readable file"),
                    ));
                }
                path => path.map(PathBuf::from),
            },
            workers: match env.get("WORKERS") {
                None => None,
                Some(_) => Some(env.parse_in("WORKERS", 1, 1..=1024)?),
            },
            body_read_timeout: env.duration("BODY_READ_TIMEOUT", "5s")?,
            max_connections_per_ip: env.parse_in("MAX_CONNECTIONS_PER_IP", 128, 1..=100_000)?,
            public_url,
            frontend_url,
            webauthn_rp_id,
            webauthn_origins,
            service_name: env
                .get("SERVICE_NAME")
                .unwrap_or_else(|| "account-recovery".into()),
            jwt_secret,
            data_encryption_key,
            access_token_ttl: env.duration("ACCESS_TOKEN_TTL", "15m")?,
            refresh_token_ttl: env.duration("REFRESH_TOKEN_TTL", "30d")?,
            refresh_token_idle_ttl: env.duration("REFRESH_TOKEN_IDLE_TTL", "7d")?,
            refresh_reuse_grace: {
                let grace = env.duration("REFRESH_REUSE_GRACE", "10s")?;
                // A long grace would make a stolen, rotated refresh token a way in again.
                if grace > Duration::from_secs(60) {
                    return Err(ConfigError::new(
                        "REFRESH_REUSE_GRACE",
                        "must be at most 60s (0s turns it off)".to_string(),
                    ));
                }
                grace
            },
            mfa_token_ttl: env.duration("MFA_TOKEN_TTL", "5m")?,
            email_verification_ttl: env.duration("EMAIL_VERIFICATION_TTL", "48h")?,
            reset_token_ttl: env.duration("RESET_TOKEN_TTL", "30m")?,
            email_change_ttl: env.duration("EMAIL_CHANGE_TTL", "48h")?,
            email_change_undo_period: env.duration("EMAIL_CHANGE_UNDO_PERIOD", "7d")?,
            lock_link_ttl: env.duration("LOCK_LINK_TTL", "7d")?,
            recovery_codes_per_set: env.parse_in("RECOVERY_CODES_PER_SET", 8, 4..=32)?,
            recovery_waiting_period: env.duration("RECOVERY_WAITING_PERIOD", "72h")?,
            recovery_needs_info_reminder_after: env
                .duration("RECOVERY_NEEDS_INFO_REMINDER_AFTER", "7d")?,
            recovery_needs_info_close_after: env
                .duration("RECOVERY_NEEDS_INFO_CLOSE_AFTER", "30d")?,
            recovery_data_retention: env.duration("RECOVERY_DATA_RETENTION", "90d")?,
            recovery_attachments: match env.get("RECOVERY_ATTACHMENTS").as_deref().map(str::trim) {
                None | Some("off") => false,
                Some("on") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "RECOVERY_ATTACHMENTS",
                        format!("`{other}`: expected on or off"),
                    ));
                }
            },
            recovery_attachment_max_bytes: env.parse_in(
                "RECOVERY_ATTACHMENT_MAX_BYTES",
                5 * 1024 * 1024,
                1024..=50 * 1024 * 1024,
            )?,
            outbox_max_attempts: env.parse_in("OUTBOX_MAX_ATTEMPTS", 12, 1..=1000)?,
            outbox_max_age: env.duration("OUTBOX_MAX_AGE", "48h")?,
            recovery_completion_ttl: env.duration("RECOVERY_COMPLETION_TTL", "24h")?,
            recovery_auto_approve_after: match env.get("RECOVERY_AUTO_APPROVE_AFTER").as_deref() {
                None | Some("off") => None,
                Some(_) => Some(env.duration("RECOVERY_AUTO_APPROVE_AFTER", "0s")?),
            },
            new_device_confirmation: {
                let raw = env
                    .get("NEW_DEVICE_CONFIRMATION")
                    .unwrap_or_else(|| "recovery_code".into());
                crate::domain::device::NewDeviceConfirmation::parse(&raw).ok_or_else(|| {
                    ConfigError::new(
                        "NEW_DEVICE_CONFIRMATION",
                        "expected off, recovery_code or all".to_string(),
                    )
                })?
            },
            mail_transport,
            mail_from,
            argon2,
            argon2_max_concurrent: env.parse_in("ARGON2_MAX_CONCURRENT", cores, 1..=1024)?,
            cors_allowed_origins,
            trusted_proxies,
            rate_limits,
            dev_secrets_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError::new("TEST", e.to_string()))?;
        let db = dir.path().join("x.db").display().to_string();
        let mut map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("DATABASE_URL".into()).or_insert(db);
        Config::from_map(&map)
    }

    #[test]
    fn defaults_are_development_on_sqlite_with_generated_secrets() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.app_env, AppEnv::Development);
        assert_eq!(config.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.metrics_bind_addr.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        assert_eq!(
            with(&[("METRICS_BIND_ADDR", "off")])
                .expect("off is valid")
                .metrics_bind_addr,
            None
        );
        assert!(config.dev_secrets_file.is_some());
        assert!(config.jwt_secret.expose().len() >= MIN_SECRET_BYTES);
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.mail_transport, MailTransport::Log);
    }

    #[test]
    fn production_requires_both_secrets() {
        let err = with(&[("APP_ENV", "production")]).expect_err("must refuse");
        assert_eq!(err.variable, "JWT_SECRET");
        let err = with(&[("APP_ENV", "production"), ("JWT_SECRET", &"j".repeat(32))])
            .expect_err("must refuse");
        assert_eq!(err.variable, "DATA_ENCRYPTION_KEY");
        let ok = with(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET", &"j".repeat(32)),
            ("DATA_ENCRYPTION_KEY", &"k".repeat(32)),
            ("MAIL_TRANSPORT", "smtp"),
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("PUBLIC_URL", "https://api.example.com"),
        ])
        .expect("valid");
        assert!(ok.dev_secrets_file.is_none());
    }

    #[test]
    fn production_refuses_printed_mail_and_plain_http() {
        let base = [
            ("APP_ENV", "production"),
            ("JWT_SECRET", "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj"),
            ("DATA_ENCRYPTION_KEY", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"),
            ("MAIL_TRANSPORT", "smtp"),
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("PUBLIC_URL", "https://api.example.com"),
        ];
        let but = |changes: &[(&'static str, &'static str)]| {
            let mut pairs: Vec<(&str, &str)> = base
                .iter()
                .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
                .copied()
                .collect();
            pairs.extend(changes.iter().filter(|(_, v)| !v.is_empty()));
            with(&pairs)
        };
        for transport in ["log", ""] {
            let err = but(&[("MAIL_TRANSPORT", transport)]).expect_err("log mail");
            assert_eq!(err.variable, "MAIL_TRANSPORT");
        }
        for public in ["http://api.example.com", ""] {
            let err = but(&[("PUBLIC_URL", public)]).expect_err("plain http");
            assert_eq!(err.variable, "PUBLIC_URL");
        }
        assert!(
            but(&[
                ("PUBLIC_URL", "http://api.example.com"),
                ("ALLOW_INSECURE_HTTP", "true")
            ])
            .is_ok()
        );
        let err = but(&[("ALLOW_INSECURE_HTTP", "maybe")]).expect_err("not a boolean");
        assert_eq!(err.variable, "ALLOW_INSECURE_HTTP");
        // Development keeps its conveniences.
        assert!(with(&[("PUBLIC_URL", "http://127.0.0.1:8080")]).is_ok());
    }

    #[test]
    fn reset_links_live_30_minutes_by_default() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.reset_token_ttl, Duration::from_secs(30 * 60));
    }

    #[test]
    fn short_secret_is_refused() {
        let err = with(&[("JWT_SECRET", "short")]).expect_err("must refuse");
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (key, value) in [
            ("APP_ENV", "staging"),
            ("BIND_ADDR", "nowhere"),
            ("METRICS_BIND_ADDR", "nowhere"),
            ("ACCESS_TOKEN_TTL", "soon"),
            ("MAIL_TRANSPORT", "pigeon"),
            ("MAIL_FROM", "not a mailbox"),
            ("ARGON2_ITERATIONS", "0"),
            ("RATE_LIMIT_LOGIN_PER_IP", "many"),
            ("FRONTEND_URL", "ftp://x"),
            ("DATABASE_URL", "mysql://x"),
            ("CORS_ALLOWED_ORIGINS", "file:///tmp/x"),
            ("CORS_ALLOWED_ORIGINS", "https://ok.test, *"),
        ] {
            let err = with(&[(key, value)]).expect_err(key);
            assert_eq!(err.variable, key, "{value}");
        }
    }

    #[test]
    fn refresh_reuse_grace_defaults_to_ten_seconds_and_is_bounded() {
        let config = with(&[]).expect("defaults are valid");
        assert_eq!(config.refresh_reuse_grace, Duration::from_secs(10));
        let off = with(&[("REFRESH_REUSE_GRACE", "0s")]).expect("0s is valid");
        assert_eq!(off.refresh_reuse_grace, Duration::ZERO);
        let err = with(&[("REFRESH_REUSE_GRACE", "5m")]).expect_err("too long");
        assert!(err.to_string().contains("REFRESH_REUSE_GRACE"), "{err}");
    }

    #[test]
    fn cors_origins_are_normalised() {
        let config = with(&[(
            "CORS_ALLOWED_ORIGINS",
            "https://App.example.com/, http://localhost:3000/path",
        )])
        .expect("valid");
        assert_eq!(
            config.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://a/b.db"),
            Ok(DatabaseUrl::Sqlite("a/b.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("x.db"),
            Ok(DatabaseUrl::Sqlite("x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u:p@h/d"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let debug = format!("{:?}", DatabaseUrl::parse("postgres://u:secret@h/d"));
        assert!(!debug.contains("secret"));
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("20/1h"),
            Ok(Limit {
                max: 20,
                window: Duration::from_secs(3600)
            })
        );
        assert!(Limit::parse("0/1h").is_err());
        assert!(Limit::parse("20").is_err());
    }
}
