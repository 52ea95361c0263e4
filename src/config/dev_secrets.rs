//! Development secrets: generated once and kept in a file beside the SQLite database (or in
//! `data/` for PostgreSQL) when `APP_ENV=development` and no secrets are configured, so a
//! restart neither logs everyone out nor makes encrypted data unreadable.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;

use super::{DatabaseUrl, MIN_SECRET_BYTES};

pub(super) struct DevSecrets {
    pub(super) jwt: Vec<u8>,
    pub(super) dek: Vec<u8>,
}

/// Development secrets live beside the SQLite database (or in `data/` for PostgreSQL), so a
/// restart neither logs everyone out nor makes encrypted data unreadable.
pub(super) fn dev_secrets_path(database_url: &DatabaseUrl) -> PathBuf {
    let dir = match database_url {
        DatabaseUrl::Sqlite(path) => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        DatabaseUrl::Postgres(_) => PathBuf::from("data"),
    };
    dir.join("dev-secrets.env")
}

pub(super) fn load_or_create_dev_secrets(path: &Path) -> Result<DevSecrets, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let mut jwt = None;
        let mut dek = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("JWT_SECRET", v)) => jwt = Some(v.trim().as_bytes().to_vec()),
                Some(("DATA_ENCRYPTION_KEY", v)) => dek = Some(v.trim().as_bytes().to_vec()),
                _ => {}
            }
        }
        if let (Some(jwt), Some(dek)) = (jwt, dek)
            && jwt.len() >= MIN_SECRET_BYTES
            && dek.len() >= MIN_SECRET_BYTES
        {
            return Ok(DevSecrets { jwt, dek });
        }
        return Err(format!(
            "development secrets file {} is damaged: delete it or set JWT_SECRET and DATA_ENCRYPTION_KEY",
            path.display()
        ));
    }
    let random = || {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let (jwt, dek) = (random(), random());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
    }
    let text = format!(
        "# Generated for development by account-recovery. Never use in production.\nJWT_SECRET={jwt}\nDATA_ENCRYPTION_KEY={dek}\n"
    );
    write_private(path, &text).map_err(|e| format!("cannot write {} ({e})", path.display()))?;
    Ok(DevSecrets {
        jwt: jwt.into_bytes(),
        dek: dek.into_bytes(),
    })
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
