//! The `accounts` table. Accounts come out as the domain's [`Account`]; the role is stored as
//! its stable string and times as naive UTC, converted here.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::two_factor::{CountsRow, SecondFactorCounts, second_factor_counts};
use crate::db::repo::{naive, utc};
use crate::db::schema::accounts;
use crate::db::{DbConnection, fixed, on_backend};
use crate::domain::{Account, AccountId, LiveSession, Role, SessionId};

/// A stored account, as the table has it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = accounts)]
struct AccountRow {
    id: String,
    username: String,
    username_key: String,
    email: String,
    email_verified_at: Option<NaiveDateTime>,
    password_hash: String,
    password_changed_at: NaiveDateTime,
    role: String,
    created_at: NaiveDateTime,
    last_login_at: Option<NaiveDateTime>,
}

impl AccountRow {
    fn into_domain(self) -> Account {
        Account {
            id: AccountId::from_stored(self.id),
            username: self.username,
            username_key: self.username_key,
            email: self.email,
            email_verified_at: self.email_verified_at.map(utc),
            password_hash: self.password_hash,
            password_changed_at: utc(self.password_changed_at),
            role: Role::from_stored(&self.role),
            created_at: utc(self.created_at),
            last_login_at: self.last_login_at.map(utc),
        }
    }
}

/// A new account.
#[derive(Debug)]
pub struct NewAccount<'a> {
    /// Its id.
    pub id: &'a AccountId,
    /// Username as chosen.
    pub username: &'a str,
    /// Folded username.
    pub username_key: &'a str,
    /// Normalised email.
    pub email: &'a str,
    /// Verified at creation (support users) or not.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
    /// What it may do.
    pub role: Role,
    /// Now: its creation and its password's time.
    pub created_at: DateTime<Utc>,
    /// The username's look-alike key (unique).
    pub username_skeleton: &'a str,
    /// The email's look-alike key (unique).
    pub email_skeleton: &'a str,
}

/// Inserts an account.
pub fn insert(conn: &mut DbConnection, new: &NewAccount<'_>) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(new.id.as_str()),
                accounts::username.eq(new.username),
                accounts::username_key.eq(new.username_key),
                accounts::email.eq(new.email),
                accounts::email_verified_at.eq(new.email_verified_at.map(naive)),
                accounts::password_hash.eq(new.password_hash),
                accounts::password_changed_at.eq(naive(new.created_at)),
                accounts::role.eq(new.role.as_str()),
                accounts::created_at.eq(naive(new.created_at)),
                accounts::username_skeleton.eq(new.username_skeleton),
                accounts::email_skeleton.eq(new.email_skeleton),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

/// Whether a username key or an email is already taken: `(username_taken, email_taken)`.
pub fn taken(
    conn: &mut DbConnection,
    username_key: &str,
    email: &str,
) -> QueryResult<(bool, bool)> {
    on_backend!(conn, |conn| {
        let by_name: i64 = accounts::table
            .filter(accounts::username_key.eq(username_key))
            .count()
            .get_result(conn)?;
        let by_email: i64 = accounts::table
            .filter(accounts::email.eq(email))
            .count()
            .get_result(conn)?;
        Ok((by_name > 0, by_email > 0))
    })
}

/// Whether another account's username or email has the same look-alike key:
/// `(username_confusable, email_confusable)`. One indexed lookup each.
pub fn confusable(
    conn: &mut DbConnection,
    username_skeleton: &str,
    email_skeleton: &str,
) -> QueryResult<(bool, bool)> {
    on_backend!(conn, |conn| {
        let by_name: i64 = accounts::table
            .filter(accounts::username_skeleton.eq(username_skeleton))
            .count()
            .get_result(conn)?;
        let by_email: i64 = accounts::table
            .filter(accounts::email_skeleton.eq(email_skeleton))
            .count()
            .get_result(conn)?;
        Ok((by_name > 0, by_email > 0))
    })
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
    on_backend!(conn, |conn| {
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
    })
}

/// Locks the account's row until the transaction ends. Every transaction that changes an
/// account's second factors (TOTP, passkeys, recovery codes) takes it first, so that its
/// decisions ("is this the last factor?", "does 2FA need a first set of codes?") are made on
/// the newest state: on PostgreSQL, at READ COMMITTED, two such transactions would otherwise
/// both read the old state. SQLite's write transactions already run one at a time (one writer
/// thread, `BEGIN IMMEDIATE`), so nothing is sent there.
pub fn lock_for_update(conn: &mut DbConnection, id: &AccountId) -> QueryResult<()> {
    if let DbConnection::Pg(c) = conn {
        diesel::sql_query("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id.as_str())
            .execute(c)?;
    }
    Ok(())
}

/// Finds an account by id.
pub fn find(conn: &mut DbConnection, id: &AccountId) -> QueryResult<Option<Account>> {
    on_backend!(conn, |conn| {
        accounts::table
            .find(id.as_str())
            .select(AccountRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(AccountRow::into_domain))
    })
}

/// A live session's account with its second factors counted, as
/// [`find_by_session_with_counts`] reads it.
#[derive(QueryableByName)]
struct SessionAccountWithCounts {
    #[diesel(embed)]
    account: AccountRow,
    #[diesel(embed)]
    counts: CountsRow,
    #[diesel(sql_type = diesel::sql_types::Text)]
    session_id: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    session_last_used_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    session_device_id: Option<String>,
}

/// The live session `id` (neither revoked nor expired at `now`) with its account and the
/// account's [`SecondFactorCounts`]: everything `GET /account` needs, authentication included,
/// in one statement and one round trip (one read lock on SQLite), instead of the session's
/// statement and then the account's. Diesel's query builder cannot put subqueries beside a
/// table's columns, so this one is written out, with the counts of
/// [`super::two_factor::counts`]; the session's columns are renamed, as the tables share
/// column names.
pub fn find_by_session_with_counts(
    conn: &mut DbConnection,
    id: &SessionId,
    now: DateTime<Utc>,
) -> QueryResult<Option<(LiveSession, Account, SecondFactorCounts)>> {
    const SQL: &str = concat!(
        "SELECT accounts.*, ",
        second_factor_counts!("accounts.id"),
        ", sessions.id AS session_id, sessions.last_used_at AS session_last_used_at, \
         sessions.device_id AS session_device_id \
         FROM sessions JOIN accounts ON accounts.id = sessions.account_id \
         WHERE sessions.id = $1 AND sessions.revoked_at IS NULL AND sessions.expires_at > $2"
    );
    struct FindBySessionWithCounts;
    on_backend!(conn, |c| fixed::<FindBySessionWithCounts, _>(
        diesel::sql_query(SQL)
            .bind::<diesel::sql_types::Text, _>(id.as_str())
            .bind::<diesel::sql_types::Timestamp, _>(naive(now))
    )
    .get_result::<SessionAccountWithCounts>(c))
    .optional()
    .map(|found| {
        found.map(|row| {
            let session = super::sessions::live_session(
                row.session_id,
                row.account.id.clone(),
                &row.account.role,
                row.session_last_used_at,
                row.session_device_id,
            );
            (session, row.account.into_domain(), row.counts.into())
        })
    })
}

/// Finds an account by a normalised login text: its username key or its email.
pub fn find_by_login(conn: &mut DbConnection, login: &str) -> QueryResult<Option<Account>> {
    on_backend!(conn, |conn| {
        accounts::table
            .filter(
                accounts::username_key
                    .eq(login)
                    .or(accounts::email.eq(login)),
            )
            .select(AccountRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(AccountRow::into_domain))
    })
}

/// Finds an account by its username key.
pub fn find_by_username_key(
    conn: &mut DbConnection,
    username_key: &str,
) -> QueryResult<Option<Account>> {
    on_backend!(conn, |conn| {
        accounts::table
            .filter(accounts::username_key.eq(username_key))
            .select(AccountRow::as_select())
            .get_result(conn)
            .optional()
            .map(|row| row.map(AccountRow::into_domain))
    })
}

/// Marks the email verified, if it still is `email`; returns whether a row changed.
pub fn mark_email_verified(
    conn: &mut DbConnection,
    id: &AccountId,
    email: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            accounts::table
                .filter(accounts::id.eq(id.as_str()))
                .filter(accounts::email.eq(email))
                .filter(accounts::email_verified_at.is_null()),
        )
        .set(accounts::email_verified_at.eq(naive(now)))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Sets a new password hash.
pub fn set_password(
    conn: &mut DbConnection,
    id: &AccountId,
    hash: &str,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::update(accounts::table.find(id.as_str()))
            .set((
                accounts::password_hash.eq(hash),
                accounts::password_changed_at.eq(naive(now)),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

/// Records a successful login.
pub fn touch_last_login(
    conn: &mut DbConnection,
    id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::update(accounts::table.find(id.as_str()))
            .set(accounts::last_login_at.eq(naive(now)))
            .execute(conn)
            .map(|_| ())
    })
}
