//! The devices an account knows (OWASP's device cookies): every completed login hands the
//! client a device token unless it presented a valid one for that account; the client sends it
//! back as `X-Device-Token`. A known device keeps its own failed-login budget, skips new-device
//! confirmation, and counts as evidence in a recovery request. The owner lists and forgets
//! devices.

use chrono::{DateTime, Utc};

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo;
use crate::domain::{AccountId, Device, DeviceId, device};
use crate::failure_conversions;
use crate::security::tokens;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// A device as its owner sees it.
#[derive(Debug, Clone)]
pub struct DeviceView {
    /// Id.
    pub id: DeviceId,
    /// "Firefox on Linux", from the user agent of its first sign-in.
    pub label: String,
    /// First sign-in.
    pub first_seen_at: DateTime<Utc>,
    /// Latest sign-in.
    pub last_seen_at: DateTime<Utc>,
    /// Whether the caller's session came from it.
    pub current: bool,
}

/// Why a device could not be forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// No device of this account has that id.
    #[error("device not found")]
    NotFound,
    /// Infrastructure.
    #[error(transparent)]
    Failure(Failure),
}
failure_conversions!(ForgetError);

/// The account's device that `presented` (a device token) names, if any.
pub fn known(
    conn: &mut DbConnection,
    account_id: &AccountId,
    presented: Option<&str>,
) -> diesel::QueryResult<Option<Device>> {
    match presented.filter(|t| !t.is_empty()) {
        Some(token) => {
            repo::devices::find_for_account(conn, &tokens::hash_token(token), account_id)
        }
        None => Ok(None),
    }
}

/// Records a completed login from a device, inside the login's unit of work: the presented
/// device when the account knows it, else a new one. Answers the device's id and, for a new
/// device, its token (shown this once).
pub fn sign_in(
    w: &mut Work<'_>,
    account_id: &AccountId,
    presented: Option<&str>,
    client: &ClientInfo,
) -> Result<(DeviceId, Option<String>), Failure> {
    let now = w.now;
    if let Some(device) = known(w.conn, account_id, presented)? {
        repo::devices::touch(w.conn, &device.id, now)?;
        return Ok((device.id, None));
    }
    let token = tokens::new_token();
    let id = DeviceId::generate();
    repo::devices::insert(
        w.conn,
        &Device {
            id: id.clone(),
            account_id: account_id.clone(),
            token_hash: token.hash,
            label: device::label(client.user_agent.as_deref()),
            first_seen_at: now,
            last_seen_at: now,
        },
    )?;
    Ok((id, Some(token.value)))
}

/// The account's devices, most recently seen first; `current` is the caller's.
pub async fn list(
    ctx: &Ctx,
    account_id: &AccountId,
    current: Option<&DeviceId>,
) -> Result<Vec<DeviceView>, Failure> {
    let (account_id, current) = (account_id.clone(), current.cloned());
    unit_of_work::read(ctx, move |conn| {
        Ok(repo::devices::list(conn, &account_id)?
            .into_iter()
            .map(|d| DeviceView {
                current: current.as_ref() == Some(&d.id),
                id: d.id,
                label: d.label,
                first_seen_at: d.first_seen_at,
                last_seen_at: d.last_seen_at,
            })
            .collect())
    })
    .await
}

/// Forgets one of the account's devices: it becomes a new device on its next login.
pub async fn forget(ctx: &Ctx, account_id: &AccountId, id: &str) -> Result<(), ForgetError> {
    let Some(id) = DeviceId::parse(id) else {
        return Err(ForgetError::NotFound);
    };
    let account_id = account_id.clone();
    unit_of_work::write(ctx, move |w: &mut Work<'_>| -> Result<(), ForgetError> {
        if repo::devices::delete(w.conn, &account_id, &id)? {
            Ok(())
        } else {
            Err(ForgetError::NotFound)
        }
    })
    .await
}
