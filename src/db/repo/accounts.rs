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
