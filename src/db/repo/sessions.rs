//! The `sessions` and `refresh_tokens` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{refresh_tokens, sessions};

/// A stored session.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    /// Id (UUID), carried in access tokens as `sid`.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// When it was opened.
    pub created_at: NaiveDateTime,
    /// When it was last used (refreshed or used, at most once a minute).
    pub last_used_at: NaiveDateTime,
    /// When its refresh token chain ends.
    pub expires_at: NaiveDateTime,
    /// When it was revoked.
    pub revoked_at: Option<NaiveDateTime>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// `none`, `totp` or `recovery_code`.
    pub second_factor: String,
    /// The device it was opened from.
    pub device_id: Option<String>,
}

/// A stored refresh token (its hash).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The session it refreshes.
    pub session_id: String,
    /// When it was issued.
    pub created_at: NaiveDateTime,
    /// When it was exchanged for a new one.
    pub rotated_at: Option<NaiveDateTime>,
    /// New pairs it answered after its rotation, inside `REFRESH_REUSE_GRACE`.
    pub grace_uses: i32,
}

/// Opens a session with its first refresh token.
pub fn insert(
    conn: &mut DbConnection,
    session: &SessionRow,
    refresh: &RefreshTokenRow,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values(session)
        .execute(conn)?;
    diesel::insert_into(refresh_tokens::table)
        .values(refresh)
        .execute(conn)?;
    Ok(())
}

/// A session that is neither revoked nor expired.
pub fn find_live(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()
}

/// The account's live sessions, newest first.
pub fn list_live(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(SessionRow::as_select())
        .load(conn)
}

/// Records use, at most once a minute, so reads stay reads.
pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::last_used_at.lt(stale_before)),
    )
    .set(sessions::last_used_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

/// Revokes one live session of an account; returns whether it was live.
pub fn revoke(
    conn: &mut DbConnection,
    account_id: &str,
    id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .filter(sessions::id.eq(id))
            .filter(sessions::account_id.eq(account_id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Revokes every live session of an account except `keep`; returns how many.
pub fn revoke_all(
    conn: &mut DbConnection,
    account_id: &str,
    keep: Option<&str>,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    let target = sessions::table
        .filter(sessions::account_id.eq(account_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::id.ne(keep.unwrap_or("")));
    diesel::update(target)
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(conn)
}

/// A refresh token by hash.
pub fn find_refresh(conn: &mut DbConnection, hash: &str) -> QueryResult<Option<RefreshTokenRow>> {
    refresh_tokens::table
        .find(hash)
        .select(RefreshTokenRow::as_select())
        .get_result(conn)
        .optional()
}

/// Marks a refresh token rotated if it was not yet; the row count decides a race.
pub fn rotate_refresh(
    conn: &mut DbConnection,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        refresh_tokens::table
            .find(hash)
            .filter(refresh_tokens::rotated_at.is_null()),
    )
    .set(refresh_tokens::rotated_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Counts one more answer of a rotated refresh token inside the reuse grace: only if it was
/// rotated after `rotated_after` and has answered fewer than `max` times. The row count decides
/// a burst (the UPDATE re-checks its condition on the row another request just changed).
pub fn take_grace_use(
    conn: &mut DbConnection,
    hash: &str,
    rotated_after: NaiveDateTime,
    max: i32,
) -> QueryResult<bool> {
    diesel::update(
        refresh_tokens::table
            .find(hash)
            .filter(refresh_tokens::rotated_at.gt(rotated_after))
            .filter(refresh_tokens::grace_uses.lt(max)),
    )
    .set(refresh_tokens::grace_uses.eq(refresh_tokens::grace_uses + 1))
    .execute(conn)
    .map(|n| n == 1)
}

/// Stores a new refresh token.
pub fn insert_refresh(conn: &mut DbConnection, row: &RefreshTokenRow) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}
