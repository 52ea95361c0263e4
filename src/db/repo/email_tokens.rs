//! The `email_tokens` table: single-use tokens sent by email (verify-email, reset-password),
//! stored as SHA-256 hashes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::email_tokens;

/// A stored email token.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_tokens)]
pub struct EmailTokenRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// `verify_email` or `reset_password`.
    pub purpose: String,
    /// The account.
    pub account_id: String,
    /// The address the link went to.
    pub email: String,
    /// When it was issued.
    pub created_at: NaiveDateTime,
    /// When it stops working.
    pub expires_at: NaiveDateTime,
    /// When it was used.
    pub used_at: Option<NaiveDateTime>,
    /// When a newer token or a password change voided it.
    pub revoked_at: Option<NaiveDateTime>,
}

/// Stores a token.
pub fn insert(conn: &mut DbConnection, row: &EmailTokenRow) -> QueryResult<()> {
    diesel::insert_into(email_tokens::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Voids every live token of `purpose` for the account; returns how many.
pub fn revoke_all(
    conn: &mut DbConnection,
    account_id: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::account_id.eq(account_id))
            .filter(email_tokens::purpose.eq(purpose))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::revoked_at.is_null()),
    )
    .set(email_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// A live token of `purpose` (unused, not voided, not expired), read without consuming it: for
/// checks that must pass before the token is spent (a refused request leaves it usable).
pub fn find_live(
    conn: &mut DbConnection,
    hash: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<EmailTokenRow>> {
    email_tokens::table
        .filter(email_tokens::token_hash.eq(hash))
        .filter(email_tokens::purpose.eq(purpose))
        .filter(email_tokens::used_at.is_null())
        .filter(email_tokens::revoked_at.is_null())
        .filter(email_tokens::expires_at.gt(now))
        .select(EmailTokenRow::as_select())
        .get_result(conn)
        .optional()
}

/// Consumes a live token of `purpose`: one conditional UPDATE whose row count decides, so
/// racing requests get exactly one winner. Returns the token's row when this call consumed it.
pub fn consume(
    conn: &mut DbConnection,
    hash: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<EmailTokenRow>> {
    let consumed = diesel::update(
        email_tokens::table
            .filter(email_tokens::token_hash.eq(hash))
            .filter(email_tokens::purpose.eq(purpose))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::revoked_at.is_null())
            .filter(email_tokens::expires_at.gt(now)),
    )
    .set(email_tokens::used_at.eq(now))
    .execute(conn)?;
    if consumed != 1 {
        return Ok(None);
    }
    email_tokens::table
        .find(hash)
        .select(EmailTokenRow::as_select())
        .get_result(conn)
        .optional()
}

/// Voids every live token of the account, whatever its purpose (an owner's lock); returns how
/// many.
pub fn revoke_every(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::account_id.eq(account_id))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::revoked_at.is_null()),
    )
    .set(email_tokens::revoked_at.eq(now))
    .execute(conn)
}

/// The account's live tokens of `purpose`, newest first (the pending email change that
/// support sees).
pub fn live_of(
    conn: &mut DbConnection,
    account_id: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<EmailTokenRow>> {
    email_tokens::table
        .filter(email_tokens::account_id.eq(account_id))
        .filter(email_tokens::purpose.eq(purpose))
        .filter(email_tokens::used_at.is_null())
        .filter(email_tokens::revoked_at.is_null())
        .filter(email_tokens::expires_at.gt(now))
        .order(email_tokens::created_at.desc())
        .select(EmailTokenRow::as_select())
        .load(conn)
}
