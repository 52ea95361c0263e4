//! The account's address as an email change sets it: the switch itself (address, look-alike
//! key, verified), the history of changes in `email_address_changes`, and whether an address is
//! free for an account.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::{naive, utc};
use crate::db::schema::{accounts, email_address_changes, lock_links};
use crate::domain::AccountId;

/// One change of an account's address, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_address_changes)]
struct EmailAddressChangeRow {
    id: String,
    account_id: String,
    old_email: String,
    new_email: String,
    how: String,
    changed_at: NaiveDateTime,
}

/// One change of an account's address.
#[derive(Debug, Clone)]
pub struct EmailAddressChange {
    /// Id (UUID).
    pub id: String,
    /// The account.
    pub account_id: AccountId,
    /// The address before.
    pub old_email: String,
    /// The address after.
    pub new_email: String,
    /// `confirmed` (an email change) or `restored` (an owner's lock put the old one back).
    pub how: String,
    /// When.
    pub changed_at: DateTime<Utc>,
}

/// Records a change.
pub fn insert(conn: &mut DbConnection, change: &EmailAddressChange) -> QueryResult<()> {
    diesel::insert_into(email_address_changes::table)
        .values(EmailAddressChangeRow {
            id: change.id.clone(),
            account_id: change.account_id.as_str().to_owned(),
            old_email: change.old_email.clone(),
            new_email: change.new_email.clone(),
            how: change.how.clone(),
            changed_at: naive(change.changed_at),
        })
        .execute(conn)
        .map(|_| ())
}

/// The account's changes since `since`, newest first.
pub fn since(
    conn: &mut DbConnection,
    account_id: &AccountId,
    since: DateTime<Utc>,
) -> QueryResult<Vec<EmailAddressChange>> {
    email_address_changes::table
        .filter(email_address_changes::account_id.eq(account_id.as_str()))
        .filter(email_address_changes::changed_at.ge(naive(since)))
        .order(email_address_changes::changed_at.desc())
        .select(EmailAddressChangeRow::as_select())
        .load::<EmailAddressChangeRow>(conn)
        .map(|rows| {
            rows.into_iter()
                .map(|r| EmailAddressChange {
                    id: r.id,
                    account_id: AccountId::from_stored(r.account_id),
                    old_email: r.old_email,
                    new_email: r.new_email,
                    how: r.how,
                    changed_at: utc(r.changed_at),
                })
                .collect()
        })
}

/// Sets the account's address (verified at `verified_at`) if it still is `from`; returns
/// whether a row changed. The unique indexes on the address and its look-alike key decide a
/// race with a registration.
pub fn set_address(
    conn: &mut DbConnection,
    account_id: &AccountId,
    from: &str,
    to: &str,
    skeleton: &str,
    verified_at: DateTime<Utc>,
) -> QueryResult<bool> {
    let verified_at = naive(verified_at);
    diesel::update(
        accounts::table
            .filter(accounts::id.eq(account_id.as_str()))
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

/// Whether `email` (or an address that looks like it) belongs to an account other than
/// `account_id`, or is held
/// for another account's undo of an email change (a thief must not take the old address while
/// its owner may still put it back): `(taken, confusable)`.
pub fn in_use_by_other(
    conn: &mut DbConnection,
    account_id: Option<&AccountId>,
    email: &str,
    skeleton: &str,
    now: DateTime<Utc>,
) -> QueryResult<(bool, bool)> {
    // No account (a registration): no row has the empty id, so every account counts.
    let (account_id, now) = (account_id.map_or("", AccountId::as_str), naive(now));
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
