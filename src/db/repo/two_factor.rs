//! The two-factor tables: `totp_credentials`, `recovery_code_sets`, `recovery_codes` and
//! `mfa_challenges`. Single-use things are consumed with conditional UPDATEs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{mfa_challenges, recovery_code_sets, recovery_codes, totp_credentials};

/// A TOTP credential (pending until confirmed).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_credentials)]
pub struct TotpRow {
    /// The account.
    pub account_id: String,
    /// The base32 secret, sealed with the data key.
    pub secret_sealed: String,
    /// When enrollment started.
    pub created_at: NaiveDateTime,
    /// When the first code confirmed it (2FA is on from then).
    pub confirmed_at: Option<NaiveDateTime>,
    /// The last time step accepted (a code is accepted once per step).
    pub last_used_step: Option<i64>,
}

/// A set of recovery codes.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_code_sets)]
pub struct CodeSetRow {
    /// Id.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// When it was generated.
    pub created_at: NaiveDateTime,
    /// When a newer set replaced it.
    pub superseded_at: Option<NaiveDateTime>,
}

/// One recovery code (its hash).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_codes)]
pub struct CodeRow {
    /// Id.
    pub id: String,
    /// Its set.
    pub set_id: String,
    /// The account.
    pub account_id: String,
    /// The non-secret lookup id (unique per account).
    pub lookup: String,
    /// Argon2id hash of the secret part.
    pub code_hash: String,
    /// When it was used.
    pub used_at: Option<NaiveDateTime>,
    /// From which IP.
    pub used_ip: Option<String>,
    /// From which user agent.
    pub used_user_agent: Option<String>,
}

/// An mfa challenge: the password step of a login, waiting for a second factor.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_challenges)]
pub struct ChallengeRow {
    /// Id (carried in the mfa token).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// When the password step succeeded.
    pub created_at: NaiveDateTime,
    /// When it stops working.
    pub expires_at: NaiveDateTime,
    /// When a second factor finished it.
    pub used_at: Option<NaiveDateTime>,
}

/// The account's TOTP credential, pending or confirmed.
pub fn find_totp(conn: &mut DbConnection, account_id: &str) -> QueryResult<Option<TotpRow>> {
    totp_credentials::table
        .find(account_id)
        .select(TotpRow::as_select())
        .get_result(conn)
        .optional()
}

/// Replaces a pending enrollment (never a confirmed one: the caller checks).
pub fn put_pending_totp(conn: &mut DbConnection, row: &TotpRow) -> QueryResult<()> {
    diesel::delete(
        totp_credentials::table
            .find(&row.account_id)
            .filter(totp_credentials::confirmed_at.is_null()),
    )
    .execute(conn)?;
    diesel::insert_into(totp_credentials::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Confirms a pending enrollment with the step of its first code; false if not pending.
pub fn confirm_totp(
    conn: &mut DbConnection,
    account_id: &str,
    step: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        totp_credentials::table
            .find(account_id)
            .filter(totp_credentials::confirmed_at.is_null()),
    )
    .set((
        totp_credentials::confirmed_at.eq(now),
        totp_credentials::last_used_step.eq(step),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Accepts `step` if it is newer than the last accepted one; the row count decides a race.
pub fn use_totp_step(conn: &mut DbConnection, account_id: &str, step: i64) -> QueryResult<bool> {
    diesel::update(
        totp_credentials::table
            .find(account_id)
            .filter(totp_credentials::confirmed_at.is_not_null())
            .filter(
                totp_credentials::last_used_step
                    .is_null()
                    .or(totp_credentials::last_used_step.lt(step)),
            ),
    )
    .set(totp_credentials::last_used_step.eq(step))
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes TOTP and every recovery code of the account.
pub fn remove_all(conn: &mut DbConnection, account_id: &str) -> QueryResult<()> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::account_id.eq(account_id)))
        .execute(conn)?;
    diesel::delete(recovery_code_sets::table.filter(recovery_code_sets::account_id.eq(account_id)))
        .execute(conn)?;
    diesel::delete(totp_credentials::table.find(account_id)).execute(conn)?;
    Ok(())
}

/// Marks the account's current set superseded.
pub fn supersede_sets(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        recovery_code_sets::table
            .filter(recovery_code_sets::account_id.eq(account_id))
            .filter(recovery_code_sets::superseded_at.is_null()),
    )
    .set(recovery_code_sets::superseded_at.eq(now))
    .execute(conn)
    .map(|_| ())
}

/// Every lookup id the account has (current and superseded sets), to keep new ones unique.
pub fn lookups(conn: &mut DbConnection, account_id: &str) -> QueryResult<Vec<String>> {
    recovery_codes::table
        .filter(recovery_codes::account_id.eq(account_id))
        .select(recovery_codes::lookup)
        .load(conn)
}

/// Stores a new set with its codes.
pub fn insert_set(conn: &mut DbConnection, set: &CodeSetRow, codes: &[CodeRow]) -> QueryResult<()> {
    diesel::insert_into(recovery_code_sets::table)
        .values(set)
        .execute(conn)?;
    for code in codes {
        diesel::insert_into(recovery_codes::table)
            .values(code)
            .execute(conn)?;
    }
    Ok(())
}

/// The code with `lookup` and its set, in any set of the account.
pub fn find_code(
    conn: &mut DbConnection,
    account_id: &str,
    lookup: &str,
) -> QueryResult<Option<(CodeRow, CodeSetRow)>> {
    recovery_codes::table
        .inner_join(recovery_code_sets::table)
        .filter(recovery_codes::account_id.eq(account_id))
        .filter(recovery_codes::lookup.eq(lookup))
        .select((CodeRow::as_select(), CodeSetRow::as_select()))
        .get_result(conn)
        .optional()
}

/// Consumes an unused code; the row count decides a race.
pub fn consume_code(
    conn: &mut DbConnection,
    code_id: &str,
    now: NaiveDateTime,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .find(code_id)
            .filter(recovery_codes::used_at.is_null()),
    )
    .set((
        recovery_codes::used_at.eq(now),
        recovery_codes::used_ip.eq(ip),
        recovery_codes::used_user_agent.eq(user_agent),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// The account's current set and its codes.
pub fn current_set(
    conn: &mut DbConnection,
    account_id: &str,
) -> QueryResult<Option<(CodeSetRow, Vec<CodeRow>)>> {
    let Some(set) = recovery_code_sets::table
        .filter(recovery_code_sets::account_id.eq(account_id))
        .filter(recovery_code_sets::superseded_at.is_null())
        .select(CodeSetRow::as_select())
        .get_result(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let codes = recovery_codes::table
        .filter(recovery_codes::set_id.eq(&set.id))
        .order(recovery_codes::used_at.asc())
        .select(CodeRow::as_select())
        .load(conn)?;
    Ok(Some((set, codes)))
}

/// Stores an mfa challenge.
pub fn insert_challenge(conn: &mut DbConnection, row: &ChallengeRow) -> QueryResult<()> {
    diesel::insert_into(mfa_challenges::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// A challenge that is neither used nor expired.
pub fn find_live_challenge(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<ChallengeRow>> {
    mfa_challenges::table
        .find(id)
        .filter(mfa_challenges::used_at.is_null())
        .filter(mfa_challenges::expires_at.gt(now))
        .select(ChallengeRow::as_select())
        .get_result(conn)
        .optional()
}

/// Consumes a live challenge; the row count decides a race.
pub fn consume_challenge(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        mfa_challenges::table
            .find(id)
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(now)),
    )
    .set(mfa_challenges::used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

/// Ends every unfinished mfa challenge of an account (a half-finished login dies when the
/// password changes or the account is recovered); returns how many.
pub fn void_challenges(
    conn: &mut DbConnection,
    account_id: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        mfa_challenges::table
            .filter(mfa_challenges::account_id.eq(account_id))
            .filter(mfa_challenges::used_at.is_null()),
    )
    .set(mfa_challenges::used_at.eq(now))
    .execute(conn)
}

/// Removes the account's TOTP only (its recovery codes stay: another factor keeps 2FA on).
pub fn remove_totp(conn: &mut DbConnection, account_id: &str) -> QueryResult<()> {
    diesel::delete(totp_credentials::table.find(account_id)).execute(conn)?;
    Ok(())
}
