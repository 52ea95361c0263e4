//! The `devices` table: the browsers and app installs an account has signed in from, found by
//! the SHA-256 hash of their device token.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::{naive, utc};
use crate::db::schema::{devices, sessions};
use crate::domain::{AccountId, Device, DeviceId};

/// A stored device, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
struct DeviceRow {
    id: String,
    account_id: String,
    token_hash: String,
    label: String,
    first_seen_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
}

impl DeviceRow {
    fn into_domain(self) -> Device {
        Device {
            id: DeviceId::from_stored(self.id),
            account_id: AccountId::from_stored(self.account_id),
            token_hash: self.token_hash,
            label: self.label,
            first_seen_at: utc(self.first_seen_at),
            last_seen_at: utc(self.last_seen_at),
        }
    }
}

/// Stores a device.
pub fn insert(conn: &mut DbConnection, device: &Device) -> QueryResult<()> {
    diesel::insert_into(devices::table)
        .values(DeviceRow {
            id: device.id.as_str().to_owned(),
            account_id: device.account_id.as_str().to_owned(),
            token_hash: device.token_hash.clone(),
            label: device.label.clone(),
            first_seen_at: naive(device.first_seen_at),
            last_seen_at: naive(device.last_seen_at),
        })
        .execute(conn)
        .map(|_| ())
}

/// The device whose token hashes to `hash`, if it belongs to `account_id`.
pub fn find_for_account(
    conn: &mut DbConnection,
    hash: &str,
    account_id: &AccountId,
) -> QueryResult<Option<Device>> {
    devices::table
        .filter(devices::token_hash.eq(hash))
        .filter(devices::account_id.eq(account_id.as_str()))
        .select(DeviceRow::as_select())
        .get_result(conn)
        .optional()
        .map(|row| row.map(DeviceRow::into_domain))
}

/// A device by id.
pub fn find(conn: &mut DbConnection, id: &DeviceId) -> QueryResult<Option<Device>> {
    devices::table
        .find(id.as_str())
        .select(DeviceRow::as_select())
        .get_result(conn)
        .optional()
        .map(|row| row.map(DeviceRow::into_domain))
}

/// Records a sign-in from the device.
pub fn touch(conn: &mut DbConnection, id: &DeviceId, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(devices::table.find(id.as_str()))
        .set(devices::last_seen_at.eq(naive(now)))
        .execute(conn)
        .map(|_| ())
}

/// The account's devices, most recently seen first.
pub fn list(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<Vec<Device>> {
    devices::table
        .filter(devices::account_id.eq(account_id.as_str()))
        .order((devices::last_seen_at.desc(), devices::id))
        .select(DeviceRow::as_select())
        .load(conn)
        .map(|rows| rows.into_iter().map(DeviceRow::into_domain).collect())
}

/// Forgets one of the account's devices (its sessions stay, no longer tied to it); returns
/// whether it existed.
pub fn delete(conn: &mut DbConnection, account_id: &AccountId, id: &DeviceId) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::account_id.eq(account_id.as_str()))
            .filter(sessions::device_id.eq(id.as_str())),
    )
    .set(sessions::device_id.eq(None::<String>))
    .execute(conn)?;
    diesel::delete(
        devices::table
            .filter(devices::account_id.eq(account_id.as_str()))
            .filter(devices::id.eq(id.as_str())),
    )
    .execute(conn)
    .map(|n| n == 1)
}
