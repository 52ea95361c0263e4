//! The `accounts` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::accounts;

/// A stored account.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct AccountRow {
    /// Id (UUID).
    pub id: String,
    /// Username as chosen.
    pub username: String,
    /// Lower-cased username (unique).
    pub username_key: String,
    /// Normalised email (unique).
    pub email: String,
    /// When the email was verified.
    pub email_verified_at: Option<NaiveDateTime>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the password was last set.
    pub password_changed_at: NaiveDateTime,
    /// `user` or `support`.
    pub role: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Last successful login.
    pub last_login_at: Option<NaiveDateTime>,
}

/// A new account.
#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccountRow<'a> {
    /// Id (UUID).
    pub id: &'a str,
    /// Username as chosen.
    pub username: &'a str,
    /// Lower-cased username.
    pub username_key: &'a str,
    /// Normalised email.
    pub email: &'a str,
    /// Verified at creation (support users) or not.
    pub email_verified_at: Option<NaiveDateTime>,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
    /// Now.
    pub password_changed_at: NaiveDateTime,
    /// `user` or `support`.
    pub role: &'a str,
    /// Now.
    pub created_at: NaiveDateTime,
    /// The username's look-alike key (unique).
    pub username_skeleton: &'a str,
    /// The email's look-alike key (unique).
    pub email_skeleton: &'a str,
}

/// Inserts an account.
pub fn insert(conn: &mut DbConnection, row: &NewAccountRow<'_>) -> QueryResult<()> {
    diesel::insert_into(accounts::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Whether a username key or an email is already taken: `(username_taken, email_taken)`.
pub fn taken(
    conn: &mut DbConnection,
    username_key: &str,
    email: &str,
) -> QueryResult<(bool, bool)> {
    let by_name: i64 = accounts::table
        .filter(accounts::username_key.eq(username_key))
        .count()
        .get_result(conn)?;
    let by_email: i64 = accounts::table
        .filter(accounts::email.eq(email))
        .count()
        .get_result(conn)?;
    Ok((by_name > 0, by_email > 0))
}

/// Whether another account's username or email has the same look-alike key:
/// `(username_confusable, email_confusable)`. One indexed lookup each.
pub fn confusable(
    conn: &mut DbConnection,
    username_skeleton: &str,
    email_skeleton: &str,
) -> QueryResult<(bool, bool)> {
    let by_name: i64 = accounts::table
        .filter(accounts::username_skeleton.eq(username_skeleton))
        .count()
        .get_result(conn)?;
    let by_email: i64 = accounts::table
        .filter(accounts::email_skeleton.eq(email_skeleton))
        .count()
        .get_result(conn)?;
    Ok((by_name > 0, by_email > 0))
}

/// An account's id, username, email and look-alike keys, as the fill reads them.
type KeyRow = (String, String, String, Option<String>, Option<String>);

/// Fills the look-alike keys of accounts made before they existed (SQL cannot compute a
/// skeleton, so the migration leaves them empty and this runs after migrating). Walks the rows
/// once in id order, `BATCH` at a time; an account that looks like an older one keeps an empty
/// key (and a warning names it), since the unique index cannot hold both. Returns the
/// number of keys set.
pub fn fill_missing_skeletons(conn: &mut DbConnection) -> QueryResult<usize> {
    const BATCH: i64 = 500;
    let mut after = String::new();
    let mut filled = 0;
    loop {
        let rows: Vec<KeyRow> = accounts::table
            .filter(accounts::id.gt(&after))
            .filter(
                accounts::username_skeleton
                    .is_null()
                    .or(accounts::email_skeleton.is_null()),
            )
            .order(accounts::id.asc())
            .limit(BATCH)
            .select((
                accounts::id,
                accounts::username,
                accounts::email,
                accounts::username_skeleton,
                accounts::email_skeleton,
            ))
            .load(conn)?;
        let Some(last) = rows.last().map(|r| r.0.clone()) else {
            return Ok(filled);
        };
        for (id, username, email, username_skeleton, email_skeleton) in &rows {
            if username_skeleton.is_none() {
                let key = crate::domain::account::confusable_key(username);
                filled += fill_one(conn, id, Key::Username, &key)?;
            }
            if email_skeleton.is_none() {
                let key = crate::domain::account::confusable_key(email);
                filled += fill_one(conn, id, Key::Email, &key)?;
            }
        }
        if rows.len() < BATCH as usize {
            return Ok(filled);
        }
        after = last;
    }
}

/// Which look-alike key of an account.
#[derive(Debug, Clone, Copy)]
enum Key {
    Username,
    Email,
}

fn fill_one(conn: &mut DbConnection, id: &str, which: Key, key: &str) -> QueryResult<usize> {
    use diesel::result::{DatabaseErrorKind, Error};
    let row = accounts::table.find(id);
    let result = match which {
        Key::Username => diesel::update(row)
            .set(accounts::username_skeleton.eq(key))
            .execute(conn),
        Key::Email => diesel::update(row)
            .set(accounts::email_skeleton.eq(key))
            .execute(conn),
    };
    match result {
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            tracing::warn!(
                account.id = id,
                key = ?which,
                "an account looks like an older one; its look-alike key stays empty"
            );
            Ok(0)
        }
        other => other,
    }
}

/// Finds an account by id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()
}

/// Finds an account by a normalised login text: its username key or its email.
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(
            accounts::username_key
                .eq(login)
                .or(accounts::email.eq(login)),
        )
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()
}

/// Finds an account by its username key.
pub fn find_by_username_key(
    conn: &mut DbConnection,
    username_key: &str,
) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(accounts::username_key.eq(username_key))
        .select(AccountRow::as_select())
        .get_result(conn)
        .optional()
}

/// Marks the email verified, if it still is `email`; returns whether a row changed.
pub fn mark_email_verified(
    conn: &mut DbConnection,
    id: &str,
    email: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::email.eq(email))
            .filter(accounts::email_verified_at.is_null()),
    )
    .set(accounts::email_verified_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Sets a new password hash.
pub fn set_password(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set((
            accounts::password_hash.eq(hash),
            accounts::password_changed_at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Records a successful login.
pub fn touch_last_login(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(accounts::table.find(id))
        .set(accounts::last_login_at.eq(now))
        .execute(conn)
        .map(|_| ())
}
