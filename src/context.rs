//! The state every handler and service shares: configuration, database, clock and the
//! security and mail components built from them once at start.

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::security::crypto::DataCipher;
use crate::security::jwt::JwtKeys;
use crate::security::password::PasswordHasher;
use crate::security::webauthn::RelyingParty;

/// How long a WebAuthn ceremony waits for the authenticator (and its state is kept).
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The app's shared state, handed to handlers as `web::Data<Ctx>`.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Db,
    /// The clock every service reads time from.
    pub clock: SharedClock,
    /// Argon2id on a bounded pool.
    pub passwords: PasswordHasher,
    /// JWT signing and checks.
    pub jwt: JwtKeys,
    /// Encryption at rest.
    pub cipher: DataCipher,
    /// The outbox writer.
    pub mailer: Mailer,
    /// The WebAuthn relying party (`WEBAUTHN_RP_ID`, `WEBAUTHN_ORIGINS`).
    pub webauthn: RelyingParty,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Wakes the password-reset worker when a request has recorded its job.
    pub reset_jobs: Arc<tokio::sync::Notify>,
}

impl Ctx {
    /// Builds the state from the configuration (no connection is made yet).
    pub fn new(config: Config, clock: SharedClock) -> anyhow::Result<Self> {
        load_password_lists(&config)?;
        let db = Db::new(&config)?;
        let passwords = PasswordHasher::new(config.argon2, config.argon2_max_concurrent)?;
        let jwt = JwtKeys::new(
            config.jwt_secret.expose(),
            config.public_url.as_str().trim_end_matches('/'),
        );
        let cipher = DataCipher::new(config.data_encryption_key.expose());
        let mailer = Mailer::new(&config, cipher.clone());
        let metrics = Metrics::new()?;
        let webauthn = RelyingParty::new(
            &config.webauthn_rp_id,
            &config.webauthn_origins,
            &config.service_name,
            CEREMONY_TTL,
        )?;
        Ok(Self {
            config: Arc::new(config),
            db,
            clock,
            passwords,
            jwt,
            cipher,
            mailer,
            webauthn,
            metrics,
            reset_jobs: Arc::default(),
        })
    }
}

/// Decompresses the common-password list now, so that no request pays for it, and adds the
/// service's name and the operator's list (`PASSWORD_BLOCKLIST_FILE`) to what new passwords are
/// checked against.
fn load_password_lists(config: &Config) -> anyhow::Result<()> {
    use crate::domain::password_lists;
    password_lists::load_common()
        .map_err(|e| anyhow::anyhow!("the compiled-in password list is damaged: {e}"))?;
    password_lists::add_service_name(&config.service_name);
    if let Some(path) = &config.password_blocklist_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "PASSWORD_BLOCKLIST_FILE: cannot read {}: {e}",
                path.display()
            )
        })?;
        let words = password_lists::add_operator_words(&text);
        tracing::info!(words, "refusing the passwords of PASSWORD_BLOCKLIST_FILE");
    }
    Ok(())
}
