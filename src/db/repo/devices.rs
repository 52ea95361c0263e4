//! The `devices` table: the browsers and app installs an account has signed in from, found by
//! the SHA-256 hash of their device token.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{devices, sessions};

/// A stored device.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = devices)]
pub struct DeviceRow {
    /// Id (UUID).
    pub id: String,
    /// The account it belongs to.
    pub account_id: String,
    /// SHA-256 of its token, hex.
    pub token_hash: String,
    /// A name for people, from the user agent.
    pub label: String,
    /// When it first signed in.
    pub first_seen_at: NaiveDateTime,
    /// When it last signed in.
    pub last_seen_at: NaiveDateTime,
}

/// Stores a device.
pub fn insert(conn: &mut DbConnection, row: &DeviceRow) -> QueryResult<()> {
    diesel::insert_into(devices::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The device whose token hashes to `hash`, if it belongs to `account_id`.
pub fn find_for_account(
    conn: &mut DbConnection,
    hash: &str,
    account_id: &str,
) -> QueryResult<Option<DeviceRow>> {
    devices::table
        .filter(devices::token_hash.eq(hash))
        .filter(devices::account_id.eq(account_id))
        .select(DeviceRow::as_select())
        .get_result(conn)
        .optional()
}

/// A device by id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<DeviceRow>> {
    devices::table
        .find(id)
        .select(DeviceRow::as_select())
        .get_result(conn)
        .optional()
}

/// Records a sign-in from the device.
pub fn touch(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(devices::table.find(id))
        .set(devices::last_seen_at.eq(now))
        .execute(conn)
        .map(|_| ())
}

/// The account's devices, most recently seen first.
pub fn list(conn: &mut DbConnection, account_id: &str) -> QueryResult<Vec<DeviceRow>> {
    devices::table
        .filter(devices::account_id.eq(account_id))
        .order((devices::last_seen_at.desc(), devices::id))
        .select(DeviceRow::as_select())
        .load(conn)
}

/// Forgets one of the account's devices (its sessions stay, no longer tied to it); returns
/// whether it existed.
pub fn delete(conn: &mut DbConnection, account_id: &str, id: &str) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::account_id.eq(account_id))
            .filter(sessions::device_id.eq(id)),
    )
    .set(sessions::device_id.eq(None::<String>))
    .execute(conn)?;
    diesel::delete(
        devices::table
            .filter(devices::account_id.eq(account_id))
            .filter(devices::id.eq(id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}
