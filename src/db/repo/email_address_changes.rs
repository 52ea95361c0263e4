//! The account's address as an email change sets it: the switch itself (address, look-alike
//! key, verified), the history of changes in `email_address_changes`, and whether an address is
//! free for an account.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{accounts, email_address_changes, lock_links};

/// One change of an account's address.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_address_changes)]
pub struct EmailAddressChangeRow {
    /// Id (UUID).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The address before.
    pub old_email: String,
    /// The address after.
    pub new_email: String,
    /// `confirmed` (an email change) or `restored` (an owner's lock put the old one back).
    pub how: String,
    /// When.
    pub changed_at: NaiveDateTime,
}

/// Records a change.
pub fn insert(conn: &mut DbConnection, row: &EmailAddressChangeRow) -> QueryResult<()> {
    diesel::insert_into(email_address_changes::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The account's changes since `since`, newest first.
pub fn since(
    conn: &mut DbConnection,
    account_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<EmailAddressChangeRow>> {
    email_address_changes::table
        .filter(email_address_changes::account_id.eq(account_id))
        .filter(email_address_changes::changed_at.ge(since))
        .order(email_address_changes::changed_at.desc())
        .select(EmailAddressChangeRow::as_select())
        .load(conn)
}

/// Sets the account's address (verified at `verified_at`) if it still is `from`; returns
/// whether a row changed. The unique indexes on the address and its look-alike key decide a
/// race with a registration.
pub fn set_address(
    conn: &mut DbConnection,
    account_id: &str,
    from: &str,
    to: &str,
    skeleton: &str,
    verified_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        accounts::table
            .filter(accounts::id.eq(account_id))
            .filter(accounts::email.eq(from)),
    )
    .set((
        accounts::email.eq(to),
        accounts::email_skeleton.eq(skeleton),
        accounts::email_verified_at.eq(Some(verified_at)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Whether `email` (or an address that looks like it) belongs to another account, or is held
/// for another account's undo of an email change (a thief must not take the old address while
/// its owner may still put it back): `(taken, confusable)`.
pub fn in_use_by_other(
    conn: &mut DbConnection,
    account_id: &str,
    email: &str,
    skeleton: &str,
    now: NaiveDateTime,
) -> QueryResult<(bool, bool)> {
    let taken: i64 = accounts::table
        .filter(accounts::email.eq(email))
        .filter(accounts::id.ne(account_id))
        .count()
        .get_result(conn)?;
    let held: i64 = lock_links::table
        .filter(lock_links::restore_email.eq(email))
        .filter(lock_links::account_id.ne(account_id))
        .filter(lock_links::used_at.is_null())
        .filter(lock_links::restore_until.gt(now))
        .count()
        .get_result(conn)?;
    let alike: i64 = accounts::table
        .filter(accounts::email_skeleton.eq(skeleton))
        .filter(accounts::id.ne(account_id))
        .count()
        .get_result(conn)?;
    let alike_held: i64 = lock_links::table
        .filter(lock_links::restore_skeleton.eq(skeleton))
        .filter(lock_links::account_id.ne(account_id))
        .filter(lock_links::used_at.is_null())
        .filter(lock_links::restore_until.gt(now))
        .count()
        .get_result(conn)?;
    Ok((taken + held > 0, alike + alike_held > 0))
}
