//! The owner's lock: `lock_links` (the single-use "it wasn't me" links of security notices,
//! stored as SHA-256 hashes) and `account_locks` (one open row while an account is locked).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{account_locks, accounts, lock_links};

/// A stored lock link.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = lock_links)]
pub struct LockLinkRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The account.
    pub account_id: String,
    /// The notice that carried it (its mail template).
    pub notice: String,
    /// When it was issued.
    pub created_at: NaiveDateTime,
    /// When it stops working.
    pub expires_at: NaiveDateTime,
    /// When it was used.
    pub used_at: Option<NaiveDateTime>,
    /// The address to put back (a link from an email-change notice).
    pub restore_email: Option<String>,
    /// That address's look-alike key.
    pub restore_skeleton: Option<String>,
    /// Until when the address may be put back.
    pub restore_until: Option<NaiveDateTime>,
}

/// Stores a link.
pub fn insert_link(conn: &mut DbConnection, row: &LockLinkRow) -> QueryResult<()> {
    diesel::insert_into(lock_links::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Consumes a live link: one conditional UPDATE whose row count decides, so racing requests
/// get exactly one winner. Returns the link's row when this call consumed it.
pub fn consume_link(
    conn: &mut DbConnection,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<LockLinkRow>> {
    let consumed = diesel::update(
        lock_links::table
            .filter(lock_links::token_hash.eq(hash))
            .filter(lock_links::used_at.is_null())
            .filter(lock_links::expires_at.gt(now)),
    )
    .set(lock_links::used_at.eq(now))
    .execute(conn)?;
    if consumed != 1 {
        return Ok(None);
    }
    lock_links::table
        .find(hash)
        .select(LockLinkRow::as_select())
        .get_result(conn)
        .optional()
}

/// Ends the undo of every live link of the account that would put `email` back (the address
/// was put back, or the owner changed it again).
pub fn end_restores(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        lock_links::table
            .filter(lock_links::account_id.eq(account_id))
            .filter(lock_links::restore_until.gt(now)),
    )
    .set(lock_links::restore_until.eq(Some(now)))
    .execute(conn)
}

/// A lock.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_locks)]
pub struct AccountLockRow {
    /// Id (UUID).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The notice whose link locked it.
    pub notice: String,
    /// When.
    pub locked_at: NaiveDateTime,
    /// The address the lock put back, if any.
    pub restored_email: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// When it was unlocked.
    pub unlocked_at: Option<NaiveDateTime>,
    /// How: `password_reset` or `recovery_request`.
    pub unlocked_by: Option<String>,
}

/// Takes the account's row lock for the rest of the transaction (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers), so two locks, confirmations or requests of
/// one account queue.
pub fn hold_account(conn: &mut DbConnection, account_id: &str) -> QueryResult<bool> {
    diesel::update(accounts::table.find(account_id))
        .set(accounts::id.eq(account_id))
        .execute(conn)
        .map(|n| n == 1)
}

/// The account's open lock, if it is locked.
pub fn open_lock(conn: &mut DbConnection, account_id: &str) -> QueryResult<Option<AccountLockRow>> {
    account_locks::table
        .filter(account_locks::account_id.eq(account_id))
        .filter(account_locks::unlocked_at.is_null())
        .select(AccountLockRow::as_select())
        .get_result(conn)
        .optional()
}

/// Whether the account is locked.
pub fn is_locked(conn: &mut DbConnection, account_id: &str) -> QueryResult<bool> {
    let n: i64 = account_locks::table
        .filter(account_locks::account_id.eq(account_id))
        .filter(account_locks::unlocked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records a lock.
pub fn insert_lock(conn: &mut DbConnection, row: &AccountLockRow) -> QueryResult<()> {
    diesel::insert_into(account_locks::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Ends the account's open lock; returns whether there was one.
pub fn unlock(
    conn: &mut DbConnection,
    account_id: &str,
    by: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        account_locks::table
            .filter(account_locks::account_id.eq(account_id))
            .filter(account_locks::unlocked_at.is_null()),
    )
    .set((
        account_locks::unlocked_at.eq(Some(now)),
        account_locks::unlocked_by.eq(Some(by)),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// The account's locks since `since` (and any still open), newest first.
pub fn since(
    conn: &mut DbConnection,
    account_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<AccountLockRow>> {
    account_locks::table
        .filter(account_locks::account_id.eq(account_id))
        .filter(
            account_locks::locked_at
                .ge(since)
                .or(account_locks::unlocked_at.is_null()),
        )
        .order(account_locks::locked_at.desc())
        .select(AccountLockRow::as_select())
        .load(conn)
}
