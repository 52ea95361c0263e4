//! Devices as people see them: a short label made from a user agent ("Firefox on Linux"), and
//! the policy that decides which logins from a device the account does not know wait for an
//! emailed confirmation.

use chrono::{DateTime, Utc};

use crate::domain::{AccountId, DeviceId};

/// A device as stored: found by the SHA-256 hash of its token.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// The account it belongs to.
    pub account_id: AccountId,
    /// SHA-256 of its token, hex.
    pub token_hash: String,
    /// A name for people, from the user agent.
    pub label: String,
    /// When it first signed in.
    pub first_seen_at: DateTime<Utc>,
    /// When it last signed in.
    pub last_seen_at: DateTime<Utc>,
}

/// Which logins from an unknown device wait for a link mailed to the verified address
/// (`NEW_DEVICE_CONFIRMATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewDeviceConfirmation {
    /// Never.
    Off,
    /// Logins finished with a recovery code (the default: a recovery code is phishable and
    /// its use is account recovery).
    RecoveryCode,
    /// Every login finished with a second factor.
    All,
}

impl NewDeviceConfirmation {
    /// Reads `off`, `recovery_code` or `all`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim() {
            "off" => Some(Self::Off),
            "recovery_code" => Some(Self::RecoveryCode),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    /// Whether a login finished with a recovery code (`true`) or another second factor
    /// (`false`) waits for confirmation when the device is unknown.
    pub fn applies(self, with_recovery_code: bool) -> bool {
        match self {
            Self::Off => false,
            Self::RecoveryCode => with_recovery_code,
            Self::All => true,
        }
    }
}

/// A label for a device, from its user agent: the browser and the system when they can be
/// told, else the start of the user agent, else "Unknown device".
pub fn label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.map(str::trim).filter(|u| !u.is_empty()) else {
        return "Unknown device".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Mac OS X", "macOS"),
        ("Windows", "Windows"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(token, _)| ua.contains(token))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_and_systems_are_named() {
        assert_eq!(
            label(Some(
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            )),
            "Firefox on Linux"
        );
        assert_eq!(
            label(Some(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36 Edg/131.0"
            )),
            "Edge on Windows"
        );
        assert_eq!(
            label(Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
            )),
            "Safari on iOS"
        );
    }

    #[test]
    fn anything_else_is_its_start_or_unknown() {
        assert_eq!(label(Some("curl/8.5.0")), "curl/8.5.0");
        assert_eq!(label(Some("   ")), "Unknown device");
        assert_eq!(label(None), "Unknown device");
    }

    #[test]
    fn the_policy_reads_its_three_values() {
        assert_eq!(
            NewDeviceConfirmation::parse("recovery_code"),
            Some(NewDeviceConfirmation::RecoveryCode)
        );
        assert!(NewDeviceConfirmation::RecoveryCode.applies(true));
        assert!(!NewDeviceConfirmation::RecoveryCode.applies(false));
        assert!(NewDeviceConfirmation::All.applies(false));
        assert!(!NewDeviceConfirmation::Off.applies(true));
        assert_eq!(NewDeviceConfirmation::parse("sometimes"), None);
    }
}
