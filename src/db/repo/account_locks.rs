//! The owner's lock: `lock_links` (the single-use "it wasn't me" links of security notices,
//! stored as SHA-256 hashes) and `account_locks` (one open row while an account is locked).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::{naive, utc};
use crate::db::schema::{account_locks, accounts, lock_links};
use crate::domain::AccountId;

/// A lock link, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = lock_links)]
struct LockLinkRow {
    token_hash: String,
    account_id: String,
    notice: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    restore_email: Option<String>,
    restore_skeleton: Option<String>,
    restore_until: Option<NaiveDateTime>,
}

/// A stored lock link.
#[derive(Debug, Clone)]
pub struct LockLink {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The account.
    pub account_id: AccountId,
    /// The notice that carried it (its mail template).
    pub notice: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was used.
    pub used_at: Option<DateTime<Utc>>,
    /// The address to put back (a link from an email-change notice).
    pub restore_email: Option<String>,
    /// That address's look-alike key.
    pub restore_skeleton: Option<String>,
    /// Until when the address may be put back.
    pub restore_until: Option<DateTime<Utc>>,
}

impl LockLinkRow {
    fn from_domain(l: &LockLink) -> Self {
        Self {
            token_hash: l.token_hash.clone(),
            account_id: l.account_id.as_str().to_owned(),
            notice: l.notice.clone(),
            created_at: naive(l.created_at),
            expires_at: naive(l.expires_at),
            used_at: l.used_at.map(naive),
            restore_email: l.restore_email.clone(),
            restore_skeleton: l.restore_skeleton.clone(),
            restore_until: l.restore_until.map(naive),
        }
    }

    fn into_domain(self) -> LockLink {
        LockLink {
            token_hash: self.token_hash,
            account_id: AccountId::from_stored(self.account_id),
            notice: self.notice,
            created_at: utc(self.created_at),
            expires_at: utc(self.expires_at),
            used_at: self.used_at.map(utc),
            restore_email: self.restore_email,
            restore_skeleton: self.restore_skeleton,
            restore_until: self.restore_until.map(utc),
        }
    }
}

/// Stores a link.
pub fn insert_link(conn: &mut DbConnection, link: &LockLink) -> QueryResult<()> {
    diesel::insert_into(lock_links::table)
        .values(LockLinkRow::from_domain(link))
        .execute(conn)
        .map(|_| ())
}

/// Consumes a live link: one conditional UPDATE whose row count decides, so racing requests
/// get exactly one winner. Returns the link's row when this call consumed it.
pub fn consume_link(
    conn: &mut DbConnection,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<LockLink>> {
    let now = naive(now);
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
        .map(|row| row.map(LockLinkRow::into_domain))
}

/// Ends the undo of every live link of the account that would put `email` back (the address
/// was put back, or the owner changed it again).
pub fn end_restores(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let now = naive(now);
    diesel::update(
        lock_links::table
            .filter(lock_links::account_id.eq(account_id.as_str()))
            .filter(lock_links::restore_until.gt(now)),
    )
    .set(lock_links::restore_until.eq(Some(now)))
    .execute(conn)
}

/// A lock, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_locks)]
struct AccountLockRow {
    id: String,
    account_id: String,
    notice: String,
    locked_at: NaiveDateTime,
    restored_email: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    unlocked_at: Option<NaiveDateTime>,
    unlocked_by: Option<String>,
}

/// A lock.
#[derive(Debug, Clone)]
pub struct AccountLock {
    /// Id (UUID).
    pub id: String,
    /// The account.
    pub account_id: AccountId,
    /// The notice whose link locked it.
    pub notice: String,
    /// When.
    pub locked_at: DateTime<Utc>,
    /// The address the lock put back, if any.
    pub restored_email: Option<String>,
    /// From where.
    pub ip: Option<String>,
    /// With what.
    pub user_agent: Option<String>,
    /// When it was unlocked.
    pub unlocked_at: Option<DateTime<Utc>>,
    /// How: `password_reset` or `recovery_request`.
    pub unlocked_by: Option<String>,
}

impl AccountLockRow {
    fn from_domain(l: &AccountLock) -> Self {
        Self {
            id: l.id.clone(),
            account_id: l.account_id.as_str().to_owned(),
            notice: l.notice.clone(),
            locked_at: naive(l.locked_at),
            restored_email: l.restored_email.clone(),
            ip: l.ip.clone(),
            user_agent: l.user_agent.clone(),
            unlocked_at: l.unlocked_at.map(naive),
            unlocked_by: l.unlocked_by.clone(),
        }
    }

    fn into_domain(self) -> AccountLock {
        AccountLock {
            id: self.id,
            account_id: AccountId::from_stored(self.account_id),
            notice: self.notice,
            locked_at: utc(self.locked_at),
            restored_email: self.restored_email,
            ip: self.ip,
            user_agent: self.user_agent,
            unlocked_at: self.unlocked_at.map(utc),
            unlocked_by: self.unlocked_by,
        }
    }
}

/// Takes the account's row lock for the rest of the transaction, so two locks, confirmations
/// or requests of one account queue; returns whether the account exists. PostgreSQL: `FOR NO
/// KEY UPDATE`, the lock an update of the row would take, without writing a row version.
/// SQLite: a read, as `BEGIN IMMEDIATE` already serialises writers. (It used to update the
/// primary key to itself, which makes SQLite check every table that refers to accounts:
/// 50 ms per login once one of them had 100,000 rows.)
pub fn hold_account(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<bool> {
    let row = accounts::table
        .find(account_id.as_str())
        .select(accounts::id);
    let found: Option<String> = match conn {
        DbConnection::Pg(pg) => row.for_no_key_update().get_result(pg).optional()?,
        DbConnection::Sqlite(lite) => row.get_result(lite).optional()?,
    };
    Ok(found.is_some())
}

/// The account's open lock, if it is locked.
pub fn open_lock(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> QueryResult<Option<AccountLock>> {
    account_locks::table
        .filter(account_locks::account_id.eq(account_id.as_str()))
        .filter(account_locks::unlocked_at.is_null())
        .select(AccountLockRow::as_select())
        .get_result(conn)
        .optional()
        .map(|row| row.map(AccountLockRow::into_domain))
}

/// Whether the account is locked.
pub fn is_locked(conn: &mut DbConnection, account_id: &AccountId) -> QueryResult<bool> {
    let n: i64 = account_locks::table
        .filter(account_locks::account_id.eq(account_id.as_str()))
        .filter(account_locks::unlocked_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Records a lock.
pub fn insert_lock(conn: &mut DbConnection, lock: &AccountLock) -> QueryResult<()> {
    diesel::insert_into(account_locks::table)
        .values(AccountLockRow::from_domain(lock))
        .execute(conn)
        .map(|_| ())
}

/// Ends the account's open lock; returns whether there was one.
pub fn unlock(
    conn: &mut DbConnection,
    account_id: &AccountId,
    by: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        account_locks::table
            .filter(account_locks::account_id.eq(account_id.as_str()))
            .filter(account_locks::unlocked_at.is_null()),
    )
    .set((
        account_locks::unlocked_at.eq(Some(naive(now))),
        account_locks::unlocked_by.eq(Some(by)),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// The account's locks since `since` (and any still open), newest first.
pub fn since(
    conn: &mut DbConnection,
    account_id: &AccountId,
    since: DateTime<Utc>,
) -> QueryResult<Vec<AccountLock>> {
    account_locks::table
        .filter(account_locks::account_id.eq(account_id.as_str()))
        .filter(
            account_locks::locked_at
                .ge(naive(since))
                .or(account_locks::unlocked_at.is_null()),
        )
        .order(account_locks::locked_at.desc())
        .select(AccountLockRow::as_select())
        .load(conn)
        .map(|rows| rows.into_iter().map(AccountLockRow::into_domain).collect())
}
