//! The `email_tokens` table: single-use tokens sent by email (verify-email, reset-password),
//! stored as SHA-256 hashes.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::email_tokens;
use crate::db::{DbConnection, fixed, on_backend};
use crate::domain::{AccountId, EmailToken, TokenPurpose};

/// A stored email token, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_tokens)]
struct EmailTokenRow {
    token_hash: String,
    purpose: String,
    account_id: String,
    email: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

impl EmailTokenRow {
    fn into_domain(self) -> QueryResult<EmailToken> {
        let purpose = TokenPurpose::parse(&self.purpose).ok_or_else(|| {
            tracing::error!(purpose = %self.purpose, "stored email_tokens.purpose does not parse");
            diesel::result::Error::DeserializationError(
                format!(
                    "email_tokens.purpose holds an unknown value: {}",
                    self.purpose
                )
                .into(),
            )
        })?;
        Ok(EmailToken {
            token_hash: self.token_hash,
            purpose,
            account_id: AccountId::from_stored(self.account_id),
            email: self.email,
            created_at: utc(self.created_at),
            expires_at: utc(self.expires_at),
            used_at: self.used_at.map(utc),
            revoked_at: self.revoked_at.map(utc),
        })
    }
}

/// Stores a token.
pub fn insert(conn: &mut DbConnection, token: &EmailToken) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(email_tokens::table)
            .values(EmailTokenRow {
                token_hash: token.token_hash.clone(),
                purpose: token.purpose.as_str().to_owned(),
                account_id: token.account_id.as_str().to_owned(),
                email: token.email.clone(),
                created_at: naive(token.created_at),
                expires_at: naive(token.expires_at),
                used_at: token.used_at.map(naive),
                revoked_at: token.revoked_at.map(naive),
            })
            .execute(conn)
            .map(|_| ())
    })
}

/// Voids every live token of `purpose` for the account; returns how many.
pub fn revoke_all(
    conn: &mut DbConnection,
    account_id: &AccountId,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    // A fixed text, loaded (see [`fixed`]): this runs for every link issued, and diesel would
    // prepare its own `UPDATE` anew each time.
    struct RevokeAll;
    const SQL: &str = "UPDATE email_tokens SET revoked_at = $1 \
         WHERE account_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL \
         RETURNING 1 AS revoked";
    on_backend!(conn, |c| fixed::<RevokeAll, _>(
        diesel::sql_query(SQL)
            .bind::<diesel::sql_types::Timestamp, _>(naive(now))
            .bind::<diesel::sql_types::Text, _>(account_id.as_str())
            .bind::<diesel::sql_types::Text, _>(purpose.as_str())
    )
    .load::<Revoked>(c))
    .map(|rows| rows.len())
}

/// A token [`revoke_all`] voided.
#[derive(QueryableByName)]
#[expect(dead_code, reason = "only how many rows the update returns matters")]
struct Revoked {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    revoked: i32,
}

/// A live token of `purpose` (unused, not voided, not expired), read without consuming it: for
/// checks that must pass before the token is spent (a refused request leaves it usable).
pub fn find_live(
    conn: &mut DbConnection,
    hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<EmailToken>> {
    on_backend!(conn, |conn| {
        email_tokens::table
            .filter(email_tokens::token_hash.eq(hash))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::revoked_at.is_null())
            .filter(email_tokens::expires_at.gt(naive(now)))
            .select(EmailTokenRow::as_select())
            .get_result(conn)
            .optional()?
            .map(EmailTokenRow::into_domain)
            .transpose()
    })
}

/// Consumes a live token of `purpose`: one conditional UPDATE whose row count decides, so
/// racing requests get exactly one winner. Returns the token's row when this call consumed it.
pub fn consume(
    conn: &mut DbConnection,
    hash: &str,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> QueryResult<Option<EmailToken>> {
    on_backend!(conn, |conn| {
        let now = naive(now);
        let consumed = diesel::update(
            email_tokens::table
                .filter(email_tokens::token_hash.eq(hash))
                .filter(email_tokens::purpose.eq(purpose.as_str()))
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
            .optional()?
            .map(EmailTokenRow::into_domain)
            .transpose()
    })
}

/// Voids every live token of the account, whatever its purpose (an owner's lock); returns how
/// many.
pub fn revoke_every(
    conn: &mut DbConnection,
    account_id: &AccountId,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::update(
            email_tokens::table
                .filter(email_tokens::account_id.eq(account_id.as_str()))
                .filter(email_tokens::used_at.is_null())
                .filter(email_tokens::revoked_at.is_null()),
        )
        .set(email_tokens::revoked_at.eq(naive(now)))
        .execute(conn)
    })
}

/// The account's live tokens of `purpose`, newest first (the pending email change that
/// support sees).
pub fn live_of(
    conn: &mut DbConnection,
    account_id: &AccountId,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> QueryResult<Vec<EmailToken>> {
    on_backend!(conn, |conn| {
        email_tokens::table
            .filter(email_tokens::account_id.eq(account_id.as_str()))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::revoked_at.is_null())
            .filter(email_tokens::expires_at.gt(naive(now)))
            .order(email_tokens::created_at.desc())
            .select(EmailTokenRow::as_select())
            .load::<EmailTokenRow>(conn)?
            .into_iter()
            .map(EmailTokenRow::into_domain)
            .collect()
    })
}
