//! Reading the environment: the typed getters every setting goes through (a bad value names
//! its variable), and the settings whose check spans more than one value (base URLs, the
//! WebAuthn relying party).

use std::fmt;
use std::time::Duration;

use url::Url;

use super::{ConfigError, Limit};

/// Parses the `72h` / `15m` / `30d` duration form of the configuration.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|_| format!("`{}` is not a duration like 15m, 1h or 72h", raw.trim()))
}

/// `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGINS`, defaulting to `FRONTEND_URL`'s host and origin.
/// Every origin must be an http(s) origin on a domain name that is the relying party id or one
/// of its subdomains (the rule WebAuthn clients apply).
pub(super) fn webauthn_party(
    env: &Env<'_>,
    frontend_url: &Url,
) -> Result<(String, Vec<Url>), ConfigError> {
    let rp_id = match env.get("WEBAUTHN_RP_ID") {
        Some(raw) => raw.trim().to_ascii_lowercase(),
        None => frontend_url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    if rp_id.is_empty() || rp_id.contains(['/', ':', ' ']) {
        return Err(ConfigError::new(
            "WEBAUTHN_RP_ID",
            "must be a domain name such as example.com",
        ));
    }
    let raw_origins = env
        .get("WEBAUTHN_ORIGINS")
        .unwrap_or_else(|| frontend_url.origin().ascii_serialization());
    let mut origins = Vec::new();
    for s in raw_origins
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let url = Url::parse(s)
            .map_err(|_| ConfigError::new("WEBAUTHN_ORIGINS", format!("`{s}` is not an origin")))?;
        let on_party = url
            .domain()
            .is_some_and(|d| d == rp_id || d.ends_with(&format!(".{rp_id}")));
        if !matches!(url.scheme(), "http" | "https") || !on_party {
            return Err(ConfigError::new(
                "WEBAUTHN_ORIGINS",
                format!(
                    "`{s}` is not an http(s) origin on WEBAUTHN_RP_ID ({rp_id}) or a subdomain"
                ),
            ));
        }
        origins.push(url);
    }
    if origins.is_empty() {
        return Err(ConfigError::new(
            "WEBAUTHN_ORIGINS",
            "needs at least one origin",
        ));
    }
    Ok((rp_id, origins))
}

pub(super) fn parse_base_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(variable, format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(variable, "must be an http or https URL"));
    }
    Ok(url)
}

/// The variables, read through a lookup (the process environment, or a map in tests); a blank
/// value counts as unset.
pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(super) fn get(&self, key: &str) -> Option<String> {
        (self.0)(key).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn parse_or<T: std::str::FromStr>(
        &self,
        key: &'static str,
        default: Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::new(key, format!("`{}` is not valid", raw.trim()))),
            None => default.ok_or_else(|| ConfigError::new(key, "is required")),
        }
    }

    pub(super) fn parse_in<T>(
        &self,
        key: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let value = self.parse_or(key, Some(default))?;
        if !range.contains(&value) {
            return Err(ConfigError::new(
                key,
                format!(
                    "{value} is out of range ({} to {})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(value)
    }

    pub(super) fn duration(
        &self,
        key: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        parse_duration(&self.get(key).unwrap_or_else(|| default.to_string()))
            .map_err(|m| ConfigError::new(key, m))
    }

    pub(super) fn limit(&self, key: &'static str, default: &str) -> Result<Limit, ConfigError> {
        Limit::parse(&self.get(key).unwrap_or_else(|| default.to_string()))
            .map_err(|m| ConfigError::new(key, m))
    }
}
